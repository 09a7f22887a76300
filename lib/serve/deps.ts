/**
 * Everything lib/serve takes from the layers below it, in one place: the LLM API (lib/llmapi, with
 * the request contract it re-exports) and the error family (lib/util).
 */
export { LLM } from "../llmapi/llm.ts";
export {
  badLogitBiasKey,
  checkMinTokensRoom,
  type CompletionOutput,
  type GuidedDecodingInput,
  logitBiasKeyMessage,
  responseFormatToGuidedDecoding,
  SamplingParams,
  type SamplingParamsInput,
} from "../llmapi/contract.ts";
export type { RequestOutput, RequestOutputData } from "../llmapi/request_output.ts";
export { LlmrtError, showValue } from "../util/errors.ts";
