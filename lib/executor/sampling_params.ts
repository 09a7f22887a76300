import { z } from "zod";
import { splitSeed } from "../ir/sampling.ts";
import { ValidationError } from "../util/errors.ts";
import { parseWith } from "../util/validate.ts";
import { bannedAllowedIds, bannedAllowedIdsError } from "./row_checks.ts";
import { type GuidedDecoding, type GuidedDecodingInput, normalizeGuidedDecoding } from "./guided/params.ts";

const nonNegInt = z.number().int().nonnegative();
const tokenId = z.number().int().nonnegative();

/** Largest `n` / `bestOf` / `beamWidth` (per-sequence seeds stay distinct up to this many). */
export const MAX_SEQUENCES_PER_REQUEST = 1024;

/** What a logits-processor callback learns about the sequence it is called for. */
export interface LogitsProcessorInfo {
  readonly requestId: number;
  /** Index of the sequence within its request (0 … n-1, or the beam index). */
  readonly seqIndex: number;
  readonly promptIds: readonly number[];
}

/**
 * A host-side logits processor (vLLM's `(token_ids, logits)` signature, TensorRT-LLM's
 * LogitsProcessor role). `tokenIds` are the tokens generated so far (prompt excluded; it is in
 * `info.promptIds`); `logits` is the row `[vocab]` to edit in place. Returning a Float32Array or a
 * number[] of the same length replaces the row instead; any other return value fails the request.
 */
export type LogitsProcessorFn = (tokenIds: readonly number[], logits: Float32Array, info: LogitsProcessorInfo) => void | Float32Array | number[];

/** Largest finite float32: a bias beyond it would turn the logits row into +-inf. */
const MAX_FLOAT32 = 3.4028234663852886e38;

/** A synchronous function (an async one returns a Promise the sampler cannot wait for). */
const isSyncFn = (f: unknown): boolean =>
  typeof f === "function" && f.constructor?.name !== "AsyncFunction" && f.constructor?.name !== "AsyncGeneratorFunction";

const logitsProcessorFns = z.custom<LogitsProcessorFn | LogitsProcessorFn[]>(
  (v) => isSyncFn(v) || (Array.isArray(v) && v.length > 0 && v.every(isSyncFn)),
  { message: "expected a function (tokenIds, logits, info) => void | Float32Array | number[] (not async), or a non-empty array of them" },
);

/** One string or a list of non-empty strings, normalized to a list. */
const stringList = z.union([z.string().min(1), z.array(z.string().min(1, "expected a non-empty string"))], {
  error: "expected a string or an array of strings",
})
  .transform((v): string[] => (typeof v === "string" ? [v] : v));

/**
 * Sampling parameters of one request: every field of TensorRT-LLM's SamplingParams (camelCase),
 * plus vLLM's `logitBias` and `allowedTokenIds`. Every field is optional; unknown fields and
 * inconsistent combinations are errors naming the field.
 */
export const SamplingParamsSchema = z.strictObject({
  /**
   * Most tokens to generate. Generation also stops (finishReason "length") when the sequence fills the
   * engine's context (maxSeqLen), as vLLM's offline LLM does; the server instead refuses prompt +
   * max_tokens > maxSeqLen, as OpenAI and vLLM's server do. @default 32
   */
  maxTokens: z.number().int().positive().default(32),
  /**
   * Fewest tokens before end ids, stop ids or stop strings may end the request. More than the context
   * holds after the prompt (maxSeqLen - prompt tokens) is refused at submission. @default 0
   */
  minTokens: nonNegInt.default(0),
  /** Sequences returned. @default 1 */
  n: z.number().int().positive().max(MAX_SEQUENCES_PER_REQUEST).default(1),
  /** Sequences generated, the `n` best (by cumulative logprob) returned. @default n (beamWidth with beam search) */
  bestOf: z.number().int().positive().max(MAX_SEQUENCES_PER_REQUEST).optional(),
  /** Beam search instead of sampling (temperature, topK, topP, minP and seed are then unused). @default false */
  useBeamSearch: z.boolean().default(false),
  /** Beams kept per step; only with useBeamSearch. @default bestOf ?? n */
  beamWidth: z.number().int().positive().max(MAX_SEQUENCES_PER_REQUEST).optional(),
  /** Beam scores are sumLogprob / length^lengthPenalty (HF). @default 1 */
  lengthPenalty: z.number().default(1),
  /** Beam search stopping: true = as soon as beamWidth hypotheses finished; false = HF heuristic; "never" = exact. @default false */
  earlyStopping: z.union([z.boolean(), z.literal("never")]).default(false),
  /**
   * 0 means greedy. At most the largest finite float32 (the samplers take it as float32: an infinite temperature would
   * turn masked logits into NaN). @default 1
   */
  temperature: z.number().nonnegative().max(MAX_FLOAT32, `must be a finite float32 value (<= ${MAX_FLOAT32})`).default(1),
  /** 0 = off. @default 0 */
  topK: nonNegInt.default(0),
  /** @default 1 */
  topP: z.number().gt(0).lte(1).default(1),
  /** @default 0 */
  minP: z.number().min(0).lte(1).default(0),
  /** Per-request seed (reproducible regardless of batch mates). @default 0 */
  seed: nonNegInt.max(Number.MAX_SAFE_INTEGER).default(0),
  /** End-of-sequence id; defaults to the tokenizer's/model's eos. */
  endId: z.number().int().optional(),
  /** Padding id. */
  padId: z.number().int().optional(),
  /** Strings that end the request, matched in the detokenized text across token boundaries. @default [] */
  stop: stringList.default([]),
  /** More ids that end the request. @default [] */
  stopTokenIds: z.array(tokenId).default([]),
  /** Keep the matched stop string in the text. @default false */
  includeStopStrInOutput: z.boolean().default(false),
  /** Keep generating past end ids (stop ids and stop strings still apply). @default false */
  ignoreEos: z.boolean().default(false),
  /** HF repetition penalty over prompt + output tokens; 1 = off. @default 1 */
  repetitionPenalty: z.number().gt(0).default(1),
  /** OpenAI presence penalty over output tokens, in [-2, 2]. @default 0 */
  presencePenalty: z.number().min(-2).max(2).default(0),
  /** OpenAI frequency penalty over output tokens, in [-2, 2]. @default 0 */
  frequencyPenalty: z.number().min(-2).max(2).default(0),
  /** Ban any n-gram of this size from repeating (HF, over prompt + output); 0 = off. @default 0 */
  noRepeatNgramSize: nonNegInt.default(0),
  /** Words never generated; encoded with the request's tokenizer at submission. @default [] */
  badWords: stringList.default([]),
  /** Token ids never generated. @default [] */
  badTokenIds: z.array(tokenId).default([]),
  /** Per-token logprobs of the top-k alternatives (0 = only the chosen token's); unset = none. */
  logprobs: nonNegInt.optional(),
  /**
   * Logprobs of the prompt tokens (each given the ones before it), with top-k alternatives, in
   * `RequestOutput.promptLogprobs`; unset = none. Needs an engine built with gatherContextLogits.
   */
  promptLogprobs: nonNegInt.optional(),
  /**
   * Return the prompt positions' raw logits in `RequestOutput.contextLogits`. Needs an engine built
   * with gatherContextLogits. @default false
   */
  returnContextLogits: z.boolean().default(false),
  /** Return each generated token's raw logits row in `CompletionOutput.generationLogits`. @default false */
  returnGenerationLogits: z.boolean().default(false),
  /** Output token ids exclude the prompt. @default true */
  excludeInputFromOutput: z.boolean().default(true),
  /** Decode token ids to text. @default true */
  detokenize: z.boolean().default(true),
  /** @default true */
  skipSpecialTokens: z.boolean().default(true),
  /** @default true */
  spacesBetweenSpecialTokens: z.boolean().default(true),
  /** Add BOS etc. when encoding a string prompt. @default true */
  addSpecialTokens: z.boolean().default(true),
  /** Keep only the last this many prompt tokens. */
  truncatePromptTokens: z.number().int().positive().optional(),
  /** Added to every logits row, `[vocab]` (copied at construction). */
  embeddingBias: z.union([z.instanceof(Float32Array), z.array(z.number())], { error: "expected a Float32Array or number[] of vocabulary length" })
    .transform((v): Float32Array => Float32Array.from(v)).optional(),
  /** Host-side callback(s) run first on every logits row. */
  logitsProcessor: logitsProcessorFns.optional(),
  /**
   * vLLM/OpenAI logit bias: token id (as a key) → added value. z.record skips a `__proto__` key (an own property
   * after JSON.parse): it is refused here instead of silently dropped.
   */
  logitBias: z.custom<Record<string, number>>(
    (v) => !(typeof v === "object" && v !== null && Object.hasOwn(v, "__proto__")),
    'key "__proto__" is not a token id',
  )
    .pipe(z.record(z.string(), z.number())).optional(),
  /**
   * vLLM: only these ids may be generated. Refused when every one is banned before the first token
   * (badTokenIds, one-token badWords, or end / stop ids under minTokens); a step that finds no id
   * left later (noRepeatNgramSize, multi-token badWords) fails the request with a ValidationError
   * naming the fields.
   */
  allowedTokenIds: z.array(tokenId).min(1, "expected at least one id").optional(),
  /**
   * Constrains the output to a grammar (TensorRT-LLM's GuidedDecodingParams), exactly one of
   * `{ json: zodSchema | JSONSchema }`, `{ jsonObject: true }`, `{ regex }`, `{ choice: string[] }`,
   * `{ grammar }` (EBNF); json / jsonObject outputs carry the validated object as `parsed`. At most
   * 1024 choices of 16 KiB (UTF-8) in all: they compile to one grammar on the caller's thread.
   * A malformed or unrepresentable constraint is an error here; one the grammar compiler rejects
   * (an unsatisfiable schema, bad EBNF or regex) fails the request at submission.
   */
  guidedDecoding: z.custom<GuidedDecodingInput | GuidedDecoding>((v) => v !== null && typeof v === "object", {
    message: "expected { json } | { jsonObject: true } | { regex } | { choice } | { grammar }",
  })
    .transform((v): GuidedDecoding => normalizeGuidedDecoding(v)).optional(),
}).superRefine((p, ctx) => {
  // A dotted path ("logitBias.5") names the value itself, so the message shows it.
  const bad = (path: string, message: string): void => {
    ctx.addIssue({ code: "custom", path: path.split("."), message });
  };
  const badKey = badLogitBiasKey(p.logitBias ?? {});
  if (badKey !== undefined) bad("logitBias", logitBiasKeyMessage(badKey));
  const badBias = Object.entries(p.logitBias ?? {}).find(([, v]) => !(Math.abs(v) <= MAX_FLOAT32));
  if (badBias !== undefined) bad(`logitBias.${badBias[0]}`, `the bias is not a finite float32 value (|bias| <= ${MAX_FLOAT32})`);
  if (p.embeddingBias !== undefined && !p.embeddingBias.every(Number.isFinite)) bad("embeddingBias", "expected finite values");
  if (p.minTokens > p.maxTokens) bad("minTokens", `must be <= maxTokens (${p.maxTokens})`);
  if (p.bestOf !== undefined && p.bestOf < p.n) bad("bestOf", `must be >= n (${p.n})`);
  if (p.beamWidth !== undefined && !p.useBeamSearch) bad("beamWidth", "needs useBeamSearch: true");
  if (p.useBeamSearch) {
    if (p.beamWidth !== undefined && p.bestOf !== undefined && p.beamWidth !== p.bestOf) {
      bad("beamWidth", `must equal bestOf (${p.bestOf}) when both are given`);
    }
    const width = p.beamWidth ?? p.bestOf ?? p.n;
    if (width < p.n) bad("beamWidth", `must be >= n (${p.n}): beam search returns at most beamWidth sequences`);
    if (p.topK > 1 || p.topP < 1 || p.minP > 0) {
      bad(p.topK > 1 ? "topK" : p.topP < 1 ? "topP" : "minP", "must be off with useBeamSearch (beam search is deterministic)");
    }
  } else {
    if (p.earlyStopping !== false) bad("earlyStopping", "only applies with useBeamSearch: true");
    if ((p.bestOf ?? p.n) > 1 && (p.temperature === 0 || p.topK === 1)) {
      bad(p.n > 1 ? "n" : "bestOf", "greedy decoding (temperature 0 or topK 1) would return identical sequences; use useBeamSearch or a temperature > 0");
    }
  }
}).transform((p) => {
  const beamWidth = p.useBeamSearch ? p.beamWidth ?? p.bestOf ?? p.n : 1;
  return { ...p, beamWidth, bestOf: p.useBeamSearch ? beamWidth : p.bestOf ?? p.n };
});

/** The first key of a logit bias that is not a token id in canonical decimal ("7", not "007", "+7" or " 7"). */
export function badLogitBiasKey(bias: Readonly<Record<string, unknown>>): string | undefined {
  return Object.keys(bias).find((k) => !/^(0|[1-9]\d*)$/.test(k));
}

/** Why `key` is refused as a logit bias key. */
export function logitBiasKeyMessage(key: string): string {
  const id = /^\s*\+?\d+\s*$/.test(key) ? ` (write ${JSON.stringify(String(Number(key)))})` : "";
  return `key ${JSON.stringify(key)} is not a token id: a key must be a token id in decimal, without sign, spaces or leading zeros${id}`;
}

/**
 * Refuses a `minTokens` that cannot be generated: a prompt of `promptLen` tokens leaves room for
 * `maxSeqLen - promptLen` (the executor's admission and the server both check with this).
 */
export function checkMinTokensRoom(minTokens: number, promptLen: number, maxSeqLen: number): void {
  const room = maxSeqLen - promptLen;
  if (minTokens > room) {
    throw new ValidationError(
      `SamplingParams.minTokens: ${minTokens} tokens cannot be generated: a prompt of ${promptLen} tokens leaves room for ${room} below the context length (maxSeqLen) ${maxSeqLen}`,
      "minTokens",
      minTokens,
    );
  }
}

export type SamplingParamsInput = z.input<typeof SamplingParamsSchema>;
type SamplingParamsFields = z.output<typeof SamplingParamsSchema>;

/** The fields each SamplingParams' input set (not undefined), copied one level deep: what {@link SamplingParams.withDefaults} keeps. */
const givenInputs = new WeakMap<SamplingParams, Readonly<Record<string, unknown>>>();

/** `input`'s set fields; arrays, typed arrays and plain objects copied so later edits to them do not leak in. */
function givenFields(input: SamplingParamsInput): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? [...v] : v instanceof Float32Array ? v.slice() : k === "logitBias" && v !== null && typeof v === "object" ? { ...v } : v;
  }
  return out;
}

/**
 * Validated, frozen sampling parameters. Accepts a plain object anywhere a SamplingParams is taken.
 * `bestOf` and `beamWidth` read back resolved (bestOf ≥ n; beamWidth 1 unless useBeamSearch).
 * `stop` and `badWords` read back as lists.
 *
 * @example
 * ```ts
 * const p = new SamplingParams({ maxTokens: 64, temperature: 0 });
 * await llm.generate("Once upon a time", p);
 * await llm.generate("Once upon a time", { maxTokens: 64, temperature: 0.8, topP: 0.9, seed: 7, stop: ["\n"] });
 * await llm.generate("Once upon a time", { useBeamSearch: true, beamWidth: 4, n: 2, lengthPenalty: 0.6 });
 * ```
 */
export class SamplingParams {
  declare readonly maxTokens: number;
  declare readonly minTokens: number;
  declare readonly n: number;
  declare readonly bestOf: number;
  declare readonly useBeamSearch: boolean;
  declare readonly beamWidth: number;
  declare readonly lengthPenalty: number;
  declare readonly earlyStopping: boolean | "never";
  declare readonly temperature: number;
  declare readonly topK: number;
  declare readonly topP: number;
  declare readonly minP: number;
  declare readonly seed: number;
  declare readonly endId: number | undefined;
  declare readonly padId: number | undefined;
  declare readonly stop: readonly string[];
  declare readonly stopTokenIds: readonly number[];
  declare readonly includeStopStrInOutput: boolean;
  declare readonly ignoreEos: boolean;
  declare readonly repetitionPenalty: number;
  declare readonly presencePenalty: number;
  declare readonly frequencyPenalty: number;
  declare readonly noRepeatNgramSize: number;
  declare readonly badWords: readonly string[];
  declare readonly badTokenIds: readonly number[];
  declare readonly logprobs: number | undefined;
  declare readonly promptLogprobs: number | undefined;
  declare readonly returnContextLogits: boolean;
  declare readonly returnGenerationLogits: boolean;
  declare readonly excludeInputFromOutput: boolean;
  declare readonly detokenize: boolean;
  declare readonly skipSpecialTokens: boolean;
  declare readonly spacesBetweenSpecialTokens: boolean;
  declare readonly addSpecialTokens: boolean;
  declare readonly truncatePromptTokens: number | undefined;
  /** `[vocab]`, copied from the input (do not mutate). */
  declare readonly embeddingBias: Float32Array | undefined;
  declare readonly logitsProcessor: LogitsProcessorFn | readonly LogitsProcessorFn[] | undefined;
  declare readonly logitBias: Readonly<Record<string, number>> | undefined;
  declare readonly allowedTokenIds: readonly number[] | undefined;
  /** Normalized (a zod schema is kept as its JSON Schema plus the non-enumerable `zodSchema`). */
  declare readonly guidedDecoding: GuidedDecoding | undefined;

  constructor(input: SamplingParamsInput = {}) {
    const parsed: Readonly<SamplingParamsFields> = parseWith(SamplingParamsSchema, input, "SamplingParams");
    // Allowed ids all banned by the request alone (the model's end ids are only known at submission, where this is checked again with them).
    const banned = bannedAllowedIds(parsed, parsed.endId !== undefined && parsed.endId >= 0 ? [parsed.endId] : []);
    if (banned) throw bannedAllowedIdsError(parsed, banned);
    Object.assign(this, parsed);
    givenInputs.set(this, Object.freeze(givenFields(input)));
    Object.freeze(this);
  }

  /**
   * These parameters with `defaults` filling the fields their input did not set (a model's
   * generation_config.json defaults: lib/llmapi/generation_config.ts). The input's own values always
   * win, an explicit `temperature: 0` included. Returns `this` when nothing is filled.
   *
   * @example
   * ```ts
   * new SamplingParams({ maxTokens: 8 }).withDefaults({ temperature: 0.6, maxTokens: 64 }); // maxTokens 8, temperature 0.6
   * ```
   */
  withDefaults(defaults: SamplingParamsInput): SamplingParams {
    const given = givenInputs.get(this);
    if (given === undefined) return this; // rebuilt from validated fields (the executor's worker): complete already
    const fill = Object.entries(defaults).filter(([k, v]) => v !== undefined && !Object.hasOwn(given, k));
    return fill.length === 0 ? this : new SamplingParams({ ...Object.fromEntries(fill), ...given } as SamplingParamsInput);
  }

  /** Returns `p` if it is already a SamplingParams, else validates it. */
  static from(p: SamplingParams | SamplingParamsInput | undefined): SamplingParams {
    return p instanceof SamplingParams ? p : new SamplingParams(p ?? {});
  }

  /** True when tokens are chosen by argmax (temperature 0 or topK 1), not drawn. */
  get isGreedy(): boolean {
    return this.temperature === 0 || this.topK === 1;
  }

  /**
   * The (lo, hi) u32 seed words for sequence `seqIndex` of this request (for `SamplingInputs.seed`).
   * Sequence 0 uses `seed` itself, so n = 1 matches a plain seeded run; sequence k > 0 adds
   * k·2^21 to the high word, which no user seed (< 2^53) reaches, so the n samples draw from
   * distinct streams that never collide with another request's seed.
   */
  seedWords(seqIndex = 0): [number, number] {
    const [lo, hi] = splitSeed(this.seed);
    return [lo, (hi + seqIndex * 0x200000) >>> 0];
  }
}
