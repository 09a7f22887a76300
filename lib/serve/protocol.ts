/**
 * Request bodies of the OpenAI API (completions, chat completions), validated with zod, and their
 * mapping to llmrt's SamplingParams. Unknown fields are ignored (as vLLM does); llmrt's extra
 * sampling fields are accepted under vLLM's names (`top_k`, `min_p`, `repetition_penalty`, ...).
 */
import { z } from "zod";
import { HttpError } from "./errors.ts";
import { badLogitBiasKey, type GuidedDecodingInput, logitBiasKeyMessage, responseFormatToGuidedDecoding, type SamplingParamsInput, showValue } from "./deps.ts";

const int = z.number().int();
const posInt = int.positive();
const nonNegInt = int.nonnegative();
const tokenId = nonNegInt;

/**
 * `schema`, after refusing an own `__proto__` key: JSON.parse makes one, and z.record / z.looseObject
 * skip it, so without this check it would be silently dropped.
 */
function refuseProtoKey<O, I>(schema: z.ZodType<O, I>, message: string): z.ZodType<O, I> {
  return z.custom<I>((v) => !(typeof v === "object" && v !== null && Object.hasOwn(v, "__proto__")), message).pipe(schema);
}

const isJsonObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Fields shared by completions and chat completions. */
const SamplingFields = {
  model: z.string().nullish(),
  n: posInt.max(128).nullish(),
  max_tokens: posInt.nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(64)], { error: "expected a string or an array of at most 64 strings" })
    .superRefine((s, ctx) => {
      const empty = typeof s === "string" ? (s === "" ? 0 : -1) : s.indexOf("");
      if (empty >= 0) ctx.addIssue({ code: "custom", path: typeof s === "string" ? [] : [empty], message: "a stop string must not be empty" });
    }).nullish(),
  /** Any safe integer (OpenAI takes negative seeds too; they map to the top of llmrt's range). */
  seed: int.min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: refuseProtoKey(
    z.record(z.string(), z.number().min(-100).max(100)).superRefine((bias, ctx) => {
      const key = badLogitBiasKey(bias);
      if (key !== undefined) ctx.addIssue({ code: "custom", message: logitBiasKeyMessage(key) });
    }),
    'key "__proto__" is not a token id',
  ).nullish(),
  user: z.string().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
  // vLLM's extra sampling fields.
  best_of: posInt.max(128).nullish(),
  use_beam_search: z.boolean().nullish(),
  length_penalty: z.number().nullish(),
  top_k: int.min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).max(10).nullish(),
  min_tokens: nonNegInt.nullish(),
  ignore_eos: z.boolean().nullish(),
  stop_token_ids: z.array(tokenId).nullish(),
  include_stop_str_in_output: z.boolean().nullish(),
  skip_special_tokens: z.boolean().nullish(),
  spaces_between_special_tokens: z.boolean().nullish(),
  // Each is tokenized on the server's event loop at submission: bounded so one request cannot stall it.
  bad_words: z.array(z.string().min(1)).max(1024).nullish(),
  allowed_token_ids: z.array(tokenId).min(1).nullish(),
  truncate_prompt_tokens: posInt.nullish(),
  /** Encode text prompts with the tokenizer's special tokens (BOS). @default true for completions, false for chat (the template writes them) */
  add_special_tokens: z.boolean().nullish(),
  no_repeat_ngram_size: nonNegInt.nullish(),
  priority: int.nullish(),
  // Structured output: OpenAI's response_format, or one of vLLM's guided_* fields.
  response_format: z.looseObject({ type: z.string() }).nullish(),
  // The schema object as sent (own keys kept, `__proto__` included).
  guided_json: z.union([z.custom<Record<string, unknown>>(isJsonObject), z.string()], { error: "expected a JSON Schema object or its JSON text" }).nullish(),
  guided_regex: z.string().nullish(),
  guided_choice: z.array(z.string()).min(1).nullish(),
  guided_grammar: z.string().nullish(),
};

/** OpenAI and vLLM refuse stream_options on a request that does not stream. */
function streamOptionsNeedStream(b: { stream?: boolean | null; stream_options?: unknown }, ctx: z.RefinementCtx): void {
  if (b.stream_options != null && b.stream !== true) ctx.addIssue({ code: "custom", path: ["stream_options"], message: "only allowed with stream: true" });
}

/** POST /v1/completions. */
export const CompletionRequestSchema = z.looseObject({
  ...SamplingFields,
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1),
    z.array(tokenId).min(1),
    z.array(z.array(tokenId).min(1)).min(1),
  ], { error: "expected a string, an array of strings, an array of token ids or an array of them" }),
  echo: z.boolean().nullish(),
  logprobs: nonNegInt.max(20).nullish(),
  suffix: z.string().nullish(),
}).superRefine(streamOptionsNeedStream);
export type CompletionRequest = z.output<typeof CompletionRequestSchema>;

/** A message's content: a string, null, or text parts (joined); another kind of part is refused naming it. */
const ContentSchema = z.union([z.string(), z.null(), z.array(z.unknown())], { error: "expected a string, null or an array of content parts" })
  .transform((c, ctx): string | null => {
    if (!Array.isArray(c)) return c;
    let text = "";
    for (const [i, part] of c.entries()) {
      const p = isJsonObject(part) ? part : {};
      if (p.type !== "text") {
        ctx.addIssue({ code: "custom", path: isJsonObject(part) ? [i, "type"] : [i], message: 'only "text" content parts are supported' });
      } else if (typeof p.text !== "string") {
        ctx.addIssue({ code: "custom", path: [i, "text"], message: "expected a string" });
      } else {
        text += p.text;
      }
    }
    return text;
  });
const ChatMessageSchema = z.looseObject({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: ContentSchema.optional(),
  name: z.string().optional(),
});

/** Template variables the chat route sets itself, and what to use instead of passing them in chat_template_kwargs. */
const SERVER_TEMPLATE_VARIABLES: Readonly<Record<string, string>> = {
  messages: "send them as messages",
  add_generation_prompt: "use the request field add_generation_prompt",
  tools: "tool calling is not supported",
};

/** POST /v1/chat/completions. */
export const ChatRequestSchema = z.looseObject({
  ...SamplingFields,
  messages: z.array(ChatMessageSchema).min(1),
  max_completion_tokens: posInt.nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: nonNegInt.max(20).nullish(),
  add_generation_prompt: z.boolean().nullish(),
  chat_template_kwargs: refuseProtoKey(z.record(z.string(), z.unknown()), 'key "__proto__" cannot be a template variable')
    .superRefine((kw, ctx) => {
      for (const [k, instead] of Object.entries(SERVER_TEMPLATE_VARIABLES)) {
        if (Object.hasOwn(kw, k)) ctx.addIssue({ code: "custom", path: [k], message: `the server sets this template variable; ${instead}` });
      }
    }).nullish(),
  tools: z.array(z.unknown()).nullish(),
}).superRefine(streamOptionsNeedStream);
export type ChatRequest = z.output<typeof ChatRequestSchema>;

/** Request fields (of OpenAI's or vLLM's API) this server does not implement, when `isNoOp` is false for their value. */
type Unsupported = readonly (readonly [field: string, isNoOp: (v: unknown) => boolean, why: string])[];
const absentOrFalse = (v: unknown): boolean => v == null || v === false;
const absentOrEmpty = (v: unknown): boolean => v == null || (Array.isArray(v) && v.length === 0);

/** What neither route implements. */
const UNSUPPORTED: Unsupported = [
  ["prompt_logprobs", (v) => v == null, "prompt logprobs are not computed by this server"],
  ["return_tokens_as_token_ids", absentOrFalse, "not supported"],
  ["guided_whitespace_pattern", (v) => v == null, "not supported"],
];

/** What the completions route does not implement. */
export const COMPLETION_UNSUPPORTED: Unsupported = [
  ...UNSUPPORTED,
  ["suffix", (v) => v == null || v === "", "not supported"],
];

/** What the chat route does not implement (the tool and audio fields of OpenAI, vLLM's template fields). */
export const CHAT_UNSUPPORTED: Unsupported = [
  ...UNSUPPORTED,
  ["tools", absentOrEmpty, "tool calling is not supported"],
  ["tool_choice", (v) => v == null || v === "none", "tool calling is not supported"],
  ["functions", absentOrEmpty, "function calling is not supported"],
  ["function_call", (v) => v == null || v === "none", "function calling is not supported"],
  ["audio", (v) => v == null, "audio output is not supported"],
  ["modalities", (v) => v == null || (Array.isArray(v) && v.every((m) => m === "text")), "only the text modality is supported"],
  ["echo", absentOrFalse, "not supported on chat completions"],
  ["continue_final_message", absentOrFalse, "not supported"],
  ["chat_template", (v) => v == null, "a chat template per request is not supported (the model's own is used)"],
  ["documents", absentOrEmpty, "not supported"],
];

/**
 * Refuses any field of `table` given with an effect: a 400 naming it and the value, instead of a
 * request that silently ignores it.
 */
export function refuseUnsupported(body: Readonly<Record<string, unknown>>, table: Unsupported): void {
  for (const [field, isNoOp, why] of table) {
    if (Object.hasOwn(body, field) && !isNoOp(body[field])) {
      throw new HttpError(400, `${field}: ${why}, got ${showValue(body[field])}`, "invalid_request_error", field, "unsupported");
    }
  }
}

/**
 * The top-level fields of `body` that `schema` does not know (the request schemas are loose, as OpenAI clients
 * send vendor fields: these are ignored, and the routes report them through ServeState.warn, as vLLM logs them).
 */
export function ignoredFields(schema: z.ZodObject, body: unknown): string[] {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return [];
  return Object.keys(body).filter((k) => !Object.hasOwn(schema.shape, k));
}

/**
 * Parses a body with `schema`; a bad one is a 400 naming the first bad field (dotted path) and
 * what was expected.
 */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, "the request body must be a JSON object", "invalid_request_error", null, "invalid_body");
  }
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const param = issue.path.map(String).join(".");
  let given: unknown = body;
  for (const k of issue.path) given = given !== null && typeof given === "object" ? (given as Record<PropertyKey, unknown>)[k as PropertyKey] : undefined;
  const shown = given === undefined ? "nothing" : showValue(given);
  throw new HttpError(400, `${param || "body"}: ${issue.message}, got ${shown}`, "invalid_request_error", param || null, "invalid_value");
}

type Sampling = z.output<z.ZodObject<typeof SamplingFields>>;

/** A random seed for requests that give none (OpenAI draws fresh samples per request). */
function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

/**
 * The guided decoding a request asks for: `response_format` (json_object, json_schema) or exactly
 * one of vLLM's `guided_json`, `guided_regex`, `guided_choice`, `guided_grammar`; 400 naming the
 * field when several are given or one is malformed.
 */
function guidedOf(b: Sampling): [field: string, guided: GuidedDecodingInput] | undefined {
  const given: [string, GuidedDecodingInput | undefined][] = [];
  if (b.response_format != null) given.push(["response_format", responseFormatToGuidedDecoding(b.response_format)]);
  if (b.guided_json != null) given.push(["guided_json", { json: b.guided_json }]);
  if (b.guided_regex != null) given.push(["guided_regex", { regex: b.guided_regex }]);
  if (b.guided_choice != null) given.push(["guided_choice", { choice: b.guided_choice }]);
  if (b.guided_grammar != null) given.push(["guided_grammar", { grammar: b.guided_grammar }]);
  const set = given.filter(([, g]) => g !== undefined);
  if (set.length > 1) {
    throw new HttpError(
      400,
      `${set[1][0]}: only one of response_format, guided_json, guided_regex, guided_choice, guided_grammar may be given (also got ${set[0][0]})`,
      "invalid_request_error",
      set[1][0],
      "invalid_value",
    );
  }
  return set[0] as [string, GuidedDecodingInput] | undefined;
}

/** The request field that set SamplingParams.guidedDecoding (for naming it in errors). */
function guidedField(b: Sampling): string | undefined {
  const g = guidedOf(b);
  if (!g) return undefined;
  return g[0] === "response_format" && b.response_format?.type === "json_schema" ? "response_format.json_schema.schema" : g[0];
}

/**
 * The request field each SamplingParams field that has no request field of its own came from, for
 * errors (see `samplingParams` in generation.ts): the guided decoding field, and `n` for the
 * sequence count when `best_of` is absent.
 */
export function requestFields(b: Sampling): Record<string, string | undefined> {
  const sequences = b.best_of != null ? "best_of" : "n";
  return { guided_decoding: guidedField(b), best_of: sequences, beam_width: sequences };
}

/** llmrt's scheduling priority (higher first) of vLLM's `priority` (lower first); undefined when absent. */
export function priorityOf(b: Sampling): number | undefined {
  return b.priority == null || b.priority === 0 ? undefined : -b.priority;
}

/** The SamplingParams input of a request's sampling fields (absent fields keep llmrt's defaults). */
export function toSamplingInput(
  b: Sampling,
  maxTokens: number,
  logprobs: number | undefined,
): SamplingParamsInput {
  const p: Record<string, unknown> = {
    maxTokens,
    n: b.n ?? undefined,
    // Absent: the model's generation_config.json default (LLM generationConfig "auto"), else 1 (OpenAI's, SamplingParams').
    temperature: b.temperature ?? undefined,
    topP: b.top_p ?? undefined,
    stop: b.stop == null ? undefined : typeof b.stop === "string" ? [b.stop] : b.stop,
    seed: b.seed == null ? randomSeed() : b.seed >= 0 ? b.seed : 2 ** 53 + b.seed,
    presencePenalty: b.presence_penalty ?? undefined,
    frequencyPenalty: b.frequency_penalty ?? undefined,
    logitBias: b.logit_bias ?? undefined,
    logprobs,
    bestOf: b.best_of ?? undefined,
    useBeamSearch: b.use_beam_search ?? undefined,
    lengthPenalty: b.length_penalty ?? undefined,
    topK: b.top_k == null ? undefined : b.top_k === -1 ? 0 : b.top_k,
    minP: b.min_p ?? undefined,
    repetitionPenalty: b.repetition_penalty ?? undefined,
    minTokens: b.min_tokens ?? undefined,
    ignoreEos: b.ignore_eos ?? undefined,
    stopTokenIds: b.stop_token_ids ?? undefined,
    includeStopStrInOutput: b.include_stop_str_in_output ?? undefined,
    skipSpecialTokens: b.skip_special_tokens ?? undefined,
    spacesBetweenSpecialTokens: b.spaces_between_special_tokens ?? undefined,
    badWords: b.bad_words ?? undefined,
    allowedTokenIds: b.allowed_token_ids ?? undefined,
    truncatePromptTokens: b.truncate_prompt_tokens ?? undefined,
    noRepeatNgramSize: b.no_repeat_ngram_size ?? undefined,
    guidedDecoding: guidedOf(b)?.[1],
  };
  if (b.use_beam_search) {
    // Beam search is deterministic: OpenAI's default temperature 1 does not apply.
    delete p.temperature;
    delete p.seed;
  }
  for (const k of Object.keys(p)) if (p[k] === undefined) delete p[k];
  return p as SamplingParamsInput;
}
