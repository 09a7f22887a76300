/**
 * The request contract and the tokenizer as the LLM API's users see them: they live below the
 * executor (lib/executor, lib/tokenizer) and are re-exported here.
 */
export { badLogitBiasKey, checkMinTokensRoom, logitBiasKeyMessage, SamplingParams, type SamplingParamsInput } from "../executor/sampling_params.ts";
export type { CompletionOutput, FinishReason, RequestOutput as RequestOutputSnapshot } from "../executor/outputs.ts";
export {
  type GuidedDecoding,
  type GuidedDecodingInput,
  type JsonSchema,
  type ResponseFormat,
  responseFormatToGuidedDecoding,
} from "../executor/guided/params.ts";
export type { GuidedJsonParams, ParsedCompletionOutput, ParsedRequestOutput } from "../executor/guided/types.ts";
export { LlmTokenizer } from "../tokenizer/tokenizer.ts";
export { ChatTemplate, ChatTemplateError } from "../tokenizer/chat_template.ts";
