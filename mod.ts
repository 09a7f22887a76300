/**
 * llmrt — a TypeScript LLM inference engine for Bun and Deno, modeled on TensorRT-LLM.
 *
 * @example
 * ```ts
 * import { LLM } from "llmrt";
 * await using llm = await LLM.create({ model: "path/to/hf-checkpoint" });
 * const out = await llm.generate("Once upon a time", { maxTokens: 32, temperature: 0 });
 * console.log(out.outputs[0].text);
 * ```
 * @module
 */
export { LLM, type LlmOptions, type Prompt, resolveBackend } from "./lib/llmapi/llm.ts";
export { type GenerationConfigMode, type GenerationDefaults, readGenerationDefaults } from "./lib/llmapi/generation_config.ts";
export {
  ChatTemplate,
  ChatTemplateError,
  type CompletionOutput,
  type FinishReason,
  type GuidedDecodingInput,
  LlmTokenizer,
  type ParsedRequestOutput,
  type ResponseFormat,
  responseFormatToGuidedDecoding,
  SamplingParams,
  type SamplingParamsInput,
} from "./lib/llmapi/contract.ts";
/** `RequestOutput` is the live, async-iterable result; `RequestOutputData` the plain snapshot it yields. */
export { RequestOutput, type RequestOutputData } from "./lib/llmapi/request_output.ts";
export { createExecutor, type CreateExecutorOptions, type ExecutorMode } from "./lib/executor/create.ts";
export { GenerationExecutor } from "./lib/executor/executor.ts";
export { GenerationResult } from "./lib/executor/result.ts";
export type { IterationStats, KvCacheConfigInput } from "./lib/executor/config.ts";
export { build, buildSync } from "./lib/builder/builder.ts";
export { type BuildConfig, type BuildConfigInput, parseBuildConfig } from "./lib/builder/build_config.ts";
export { Engine } from "./lib/builder/engine.ts";
export { Network } from "./lib/ir/network.ts";
export { type KvCache, Session, type SessionBackend, type SessionOptions, type StepInputs, type StepOutputs } from "./lib/runtime/session.ts";
export { type GenerationOutput, ModelRunner, type SamplingConfigInput } from "./lib/runtime/model_runner.ts";
// Tensor parallelism: the communicator contract, the one-worker-per-rank session, the TCP rendezvous.
export type { CommDType, Communicator } from "./lib/ir/communicator.ts";
export { TpSession, type TpSessionOptions } from "./lib/runtime/tp_session.ts";
export { parseMaster } from "./lib/runtime/tp_rendezvous.ts";
export { runTpWorker, type TpWorkerOptions } from "./lib/llmapi/tp_worker.ts";
export { AutoModelForCausalLM, LlamaForCausalLM } from "./lib/models/llama.ts";
export { loadPretrainedConfig, parsePretrainedConfig, type PretrainedConfig } from "./lib/models/config.ts";
export { Checkpoint, SafetensorsFile } from "./lib/models/safetensors.ts";
export {
  AbortedError,
  DisposedError,
  type ErrorKind,
  FormatError,
  InternalError,
  LlmrtError,
  RequestFailedError,
  ResourceError,
  type SerializedError,
  UnsupportedError,
  ValidationError,
  WorkerError,
} from "./lib/util/errors.ts";
export { CudaError, NativeLibraryError } from "./ffi/errors.ts";
export { KvCacheQuantAlgo, QuantAlgo } from "./lib/quantization/quant_algo.ts";
export { type LayerQuant, QuantConfig, type QuantConfigInput } from "./lib/quantization/quant_config.ts";
export { quantize, type QuantizeOptions } from "./lib/quantization/quantize.ts";
export { QuantizedModel } from "./lib/quantization/quantized_model.ts";
export { E4M3_MAX, e4m3Decode, e4m3Encode } from "./lib/quantization/fp8.ts";
export { E2M1_MAX, e2m1Decode, e2m1Encode } from "./lib/quantization/nvfp4.ts";
export { openModel } from "./lib/quantization/prequantized.ts";
export { saveQuantizedCheckpoint } from "./lib/quantization/export.ts";
