import { z } from "zod";
import { parseWith } from "../util/validate.ts";

const nonNegInt = z.number().int().nonnegative();

/**
 * Sampling parameters of one request (TensorRT-LLM's SamplingParams, camelCase).
 * Every field is optional; unknown fields are an error naming the field.
 */
export const SamplingParamsSchema = z.strictObject({
  /** Most tokens to generate. @default 32 */
  maxTokens: z.number().int().positive().default(32),
  /** Fewest tokens before end/stop ids may end the request. @default 0 */
  minTokens: nonNegInt.default(0),
  /** 0 means greedy. @default 1 */
  temperature: z.number().nonnegative().default(1),
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
  /** More ids that end the request. @default [] */
  stopTokenIds: z.array(nonNegInt).default([]),
  /** Keep generating past end ids. @default false */
  ignoreEos: z.boolean().default(false),
  /** Decode token ids to text. @default true */
  detokenize: z.boolean().default(true),
  /** @default true */
  skipSpecialTokens: z.boolean().default(true),
  /** @default true */
  spacesBetweenSpecialTokens: z.boolean().default(true),
  /** Add BOS etc. when encoding a string prompt. @default true */
  addSpecialTokens: z.boolean().default(true),
});

export type SamplingParamsInput = z.input<typeof SamplingParamsSchema>;
type SamplingParamsFields = z.output<typeof SamplingParamsSchema>;

/**
 * Validated, frozen sampling parameters. Accepts a plain object anywhere a SamplingParams is taken.
 *
 * @example
 * ```ts
 * const p = new SamplingParams({ maxTokens: 64, temperature: 0 });
 * await llm.generate("Once upon a time", p);
 * await llm.generate("Once upon a time", { maxTokens: 64, temperature: 0.8, topP: 0.9, seed: 7 });
 * ```
 */
export class SamplingParams {
  declare readonly maxTokens: number;
  declare readonly minTokens: number;
  declare readonly temperature: number;
  declare readonly topK: number;
  declare readonly topP: number;
  declare readonly minP: number;
  declare readonly seed: number;
  declare readonly endId: number | undefined;
  declare readonly padId: number | undefined;
  declare readonly stopTokenIds: readonly number[];
  declare readonly ignoreEos: boolean;
  declare readonly detokenize: boolean;
  declare readonly skipSpecialTokens: boolean;
  declare readonly spacesBetweenSpecialTokens: boolean;
  declare readonly addSpecialTokens: boolean;

  constructor(input: SamplingParamsInput = {}) {
    const parsed: Readonly<SamplingParamsFields> = parseWith(SamplingParamsSchema, input, "SamplingParams");
    Object.assign(this, parsed);
    Object.freeze(this);
  }

  /** Returns `p` if it is already a SamplingParams, else validates it. */
  static from(p: SamplingParams | SamplingParamsInput | undefined): SamplingParams {
    return p instanceof SamplingParams ? p : new SamplingParams(p ?? {});
  }
}
