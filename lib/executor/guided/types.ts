/**
 * Types of a guided JSON request and its typed outputs: `LLM.generate(prompt, { guidedDecoding:
 * { json: Schema } })` resolves to outputs whose `parsed` is `z.output<typeof Schema>`.
 */
import type { z } from "zod";
import type { CompletionOutput, RequestOutput } from "../outputs.ts";
import type { SamplingParamsInput } from "../sampling_params.ts";

/** Sampling parameters that constrain the output to the JSON Schema of the zod schema `S`. */
export type GuidedJsonParams<S extends z.ZodType> = Omit<SamplingParamsInput, "guidedDecoding"> & {
  readonly guidedDecoding: { readonly json: S; readonly anyWhitespace?: boolean };
};

/** A completion whose `parsed` is typed (set on a final output that completed the grammar and validated). */
export interface ParsedCompletionOutput<T> extends Omit<CompletionOutput, "parsed"> {
  readonly parsed?: T;
}

/** A request output whose completions carry a typed `parsed`. */
export interface ParsedRequestOutput<T> extends Omit<RequestOutput, "outputs"> {
  readonly outputs: readonly ParsedCompletionOutput<T>[];
}
