/**
 * Guided decoding parameters (TensorRT-LLM's GuidedDecodingParams): what the user writes, its
 * normalized, structured-clonable form, the OpenAI `response_format` mapping, and the validation
 * of a finished output into `parsed`. Imports no grammar engine (that is grammar.ts).
 */
import { z } from "zod";
import { showValue, UnsupportedError, ValidationError } from "../../util/errors.ts";
import { checkGroupDepth, checkSchemaDepth } from "./depth.ts";

/** A JSON Schema document (an object, or its JSON text). */
export type JsonSchema = Readonly<Record<string, unknown>> | string;

/** Exactly one constraint; `anyWhitespace` (json / jsonObject only) lets the model put whitespace anywhere JSON allows. */
export type GuidedDecodingInput =
  | { readonly json: z.ZodType | JsonSchema; readonly anyWhitespace?: boolean }
  | { readonly jsonObject: true; readonly anyWhitespace?: boolean }
  | { readonly regex: string }
  | { readonly choice: readonly string[] }
  | { readonly grammar: string };

/** The kinds of constraint. */
export type GuidedKind = "json" | "jsonObject" | "regex" | "choice" | "grammar";

/**
 * Normalized guided decoding parameters: plain data that crosses to a worker thread. A zod schema
 * given as `json` becomes its JSON Schema here; the schema itself rides along as the
 * non-enumerable `zodSchema` (not cloned, not frozen), so `parsed` is validated by it in process.
 */
export interface GuidedDecoding {
  readonly kind: GuidedKind;
  /** json: the JSON Schema text the grammar is compiled from. */
  readonly jsonSchema?: string;
  readonly regex?: string;
  readonly choice?: readonly string[];
  /** grammar: EBNF (xgrammar / GBNF dialect, start rule `root`). */
  readonly grammar?: string;
  /** json / jsonObject: any JSON whitespace allowed (else compact `{"a":1,"b":2}`). @default false */
  readonly anyWhitespace: boolean;
  /** json from a zod schema: the schema (non-enumerable). */
  readonly zodSchema?: z.ZodType;
}

const FIELD = "guidedDecoding";

/**
 * Most `choice` strings, and most UTF-8 bytes in all of them. The choices compile to one grammar on
 * the caller's thread at submission, in time that grows with their total size: 64 KiB of choices
 * stalled the event loop ~1.2 s on a CPU host (50,000 choices ~1.3 s); 16 KiB takes ~0.1-0.2 s. The
 * count cap matches the server's bad_words cap.
 */
export const MAX_CHOICES = 1024;
export const MAX_CHOICE_BYTES = 16 * 1024;
const utf8 = new TextEncoder();
const KINDS: readonly GuidedKind[] = ["json", "jsonObject", "regex", "choice", "grammar"];

function isZodSchema(v: unknown): v is z.ZodType {
  return v instanceof z.ZodType || (v !== null && typeof v === "object" && "_zod" in v && typeof (v as { safeParse?: unknown }).safeParse === "function");
}

/**
 * Validates and normalizes `SamplingParams.guidedDecoding`. A malformed value is a ValidationError
 * naming the field; a zod schema JSON Schema cannot express (z.date(), z.bigint(), a custom check
 * only) is an UnsupportedError naming `guidedDecoding.json`.
 *
 * @example
 * ```ts
 * normalizeGuidedDecoding({ json: z.object({ name: z.string() }) }).jsonSchema; // '{"type":"object",…}'
 * normalizeGuidedDecoding({ choice: ["yes", "no"] }).kind;                     // "choice"
 * ```
 */
export function normalizeGuidedDecoding(input: unknown): GuidedDecoding {
  if (input instanceof Object && "kind" in input && KINDS.includes((input as GuidedDecoding).kind) && "anyWhitespace" in input) {
    return input as GuidedDecoding; // already normalized (a SamplingParams copied from another)
  }
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new ValidationError(`SamplingParams.${FIELD}: expected an object with one of ${KINDS.join(", ")} (got ${showValue(input)})`, FIELD, input);
  }
  const o = input as Record<string, unknown>;
  const given = KINDS.filter((k) => o[k] !== undefined);
  if (given.length !== 1) {
    throw new ValidationError(
      `SamplingParams.${FIELD}: expected exactly one of ${KINDS.join(", ")}, got ${given.length === 0 ? "none" : given.join(" and ")} in ${showValue(input)}`,
      FIELD,
      Object.keys(o),
    );
  }
  const kind = given[0];
  const unknownKey = Object.keys(o).find((k) => !KINDS.includes(k as GuidedKind) && k !== "anyWhitespace");
  if (unknownKey !== undefined) {
    throw new ValidationError(
      `SamplingParams.${FIELD}.${unknownKey}: unknown field (got ${showValue(o[unknownKey])})`,
      `${FIELD}.${unknownKey}`,
      o[unknownKey],
    );
  }
  if (o.anyWhitespace !== undefined && (typeof o.anyWhitespace !== "boolean" || (kind !== "json" && kind !== "jsonObject"))) {
    throw new ValidationError(
      `SamplingParams.${FIELD}.anyWhitespace: expected a boolean, with json or jsonObject only (got ${showValue(o.anyWhitespace)})`,
      `${FIELD}.anyWhitespace`,
      o.anyWhitespace,
    );
  }
  const anyWhitespace = o.anyWhitespace === true;
  const v = o[kind];
  const field = `${FIELD}.${kind}`;
  switch (kind) {
    case "json": {
      if (isZodSchema(v)) {
        let schema: unknown;
        try {
          // The model writes the schema's input; zod then parses it into the output type.
          schema = z.toJSONSchema(v, { io: "input", unrepresentable: "throw" });
        } catch (e) {
          throw new UnsupportedError(`SamplingParams.${field}: this zod schema has no JSON Schema form (${(e as Error).message})`, field, "zod schema");
        }
        checkSchemaDepth(schema, field);
        const out: GuidedDecoding = { kind, jsonSchema: JSON.stringify(tidySchema(schema)), anyWhitespace };
        Object.defineProperty(out, "zodSchema", { value: v, enumerable: false });
        return out;
      }
      let doc: unknown = v;
      if (typeof v === "string") {
        try {
          doc = JSON.parse(v);
        } catch (e) {
          throw new ValidationError(`SamplingParams.${field}: not JSON: ${(e as Error).message} (got ${showValue(v)})`, field, v);
        }
      }
      if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
        if (doc !== true) throw new ValidationError(`SamplingParams.${field}: expected a zod schema or a JSON Schema object (got ${showValue(v)})`, field, v);
      }
      checkSchemaDepth(doc, field);
      let jsonSchema: string;
      try {
        jsonSchema = JSON.stringify(doc);
      } catch (e) { // a BigInt, a cycle, or nesting past the stack
        throw new ValidationError(`SamplingParams.${field}: the JSON Schema cannot be written as JSON (${(e as Error).message})`, field, "schema");
      }
      return { kind, jsonSchema, anyWhitespace };
    }
    case "jsonObject":
      if (v !== true) throw new ValidationError(`SamplingParams.${field}: expected true (got ${showValue(v)})`, field, v);
      return { kind, anyWhitespace };
    case "regex":
      if (typeof v !== "string" || v.length === 0) {
        throw new ValidationError(`SamplingParams.${field}: expected a non-empty regular expression string (got ${showValue(v)})`, field, v);
      }
      checkGroupDepth(v, field, false);
      return { kind, regex: v, anyWhitespace };
    case "choice": {
      if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === "string" && s.length > 0)) {
        throw new ValidationError(`SamplingParams.${field}: expected a non-empty array of non-empty strings (got ${showValue(v)})`, field, v);
      }
      if (v.length > MAX_CHOICES) {
        throw new ValidationError(`SamplingParams.${field}: at most ${MAX_CHOICES} choices, got ${v.length}`, field, v.length);
      }
      const bytes = (v as string[]).reduce((a, c) => a + utf8.encode(c).length, 0);
      if (bytes > MAX_CHOICE_BYTES) {
        throw new ValidationError(`SamplingParams.${field}: the choices total ${bytes} bytes (UTF-8), above the limit of ${MAX_CHOICE_BYTES}`, field, bytes);
      }
      return { kind, choice: [...new Set(v as string[])], anyWhitespace };
    }
    case "grammar":
      if (typeof v !== "string" || v.trim().length === 0) {
        throw new ValidationError(`SamplingParams.${field}: expected EBNF text with a root rule (got ${showValue(v)})`, field, v);
      }
      checkGroupDepth(v, field, true);
      return { kind, grammar: v, anyWhitespace };
  }
}

/**
 * Drops `$schema` (the grammar compiler does not need it). zod's ±(2^53 - 1) bounds on `.int()`
 * stay: they bound an integer to 16 digits, so a model cannot run on in digits past what zod accepts.
 */
function tidySchema(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(tidySchema);
  if (s === null || typeof s !== "object") return s;
  // fromEntries defines own keys: assigning `out["__proto__"]` would set the prototype instead (a property named so lost).
  return Object.fromEntries(Object.entries(s).filter(([k]) => k !== "$schema").map(([k, v]) => [k, tidySchema(v)]));
}

/** An OpenAI `response_format` (chat completions). */
export type ResponseFormat =
  | { readonly type: "text" }
  | { readonly type: "json_object" }
  | {
    readonly type: "json_schema";
    readonly json_schema: { readonly name?: string; readonly schema?: Record<string, unknown>; readonly strict?: boolean | null };
  };

/**
 * The guided decoding an OpenAI `response_format` asks for (undefined for `text` or none); the
 * server passes the result as `SamplingParams.guidedDecoding`. A malformed value is a
 * ValidationError naming `response_format`.
 *
 * @example
 * ```ts
 * responseFormatToGuidedDecoding({ type: "json_object" });                                   // { jsonObject: true }
 * responseFormatToGuidedDecoding({ type: "json_schema", json_schema: { name: "p", schema } }); // { json: schema }
 * ```
 */
export function responseFormatToGuidedDecoding(rf: unknown): GuidedDecodingInput | undefined {
  if (rf === undefined || rf === null) return undefined;
  const o = rf as { type?: unknown; json_schema?: { schema?: unknown } };
  if (typeof o !== "object" || typeof o.type !== "string") {
    throw new ValidationError('response_format: expected { type: "text" | "json_object" | "json_schema" }', "response_format", rf);
  }
  switch (o.type) {
    case "text":
      return undefined;
    case "json_object":
      return { jsonObject: true };
    case "json_schema": {
      const schema = o.json_schema?.schema;
      if (o.json_schema === null || typeof o.json_schema !== "object") {
        throw new ValidationError("response_format.json_schema: expected { name, schema }", "response_format.json_schema", o.json_schema);
      }
      // OpenAI: a json_schema without a schema means any JSON object.
      if (schema === undefined) return { jsonObject: true };
      if (schema === null || typeof schema !== "object" || Array.isArray(schema)) {
        throw new ValidationError("response_format.json_schema.schema: expected a JSON Schema object", "response_format.json_schema.schema", schema);
      }
      return { json: schema as Record<string, unknown> };
    }
    default:
      throw new ValidationError(
        `response_format.type: ${JSON.stringify(o.type)} is not one of "text", "json_object", "json_schema"`,
        "response_format.type",
        o.type,
      );
  }
}

/** The result of validating a finished output. */
export type ParsedResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: string };

const fromSchemaCache = new Map<string, z.ZodType | null>();

/**
 * Parses and validates the text of a finished json / jsonObject output: JSON.parse, then the zod
 * schema (in process) or the JSON Schema read by `z.fromJSONSchema` (a worker thread, or a JSON
 * Schema given directly). Other kinds have no parsed value (ok with undefined).
 */
export function parseGuidedOutput(g: GuidedDecoding, text: string): ParsedResult {
  if (g.kind !== "json" && g.kind !== "jsonObject") return { ok: true, value: undefined };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `not JSON: ${(e as Error).message}` };
  }
  if (g.kind === "jsonObject") {
    return value !== null && typeof value === "object" && !Array.isArray(value) ? { ok: true, value } : { ok: false, error: "not a JSON object" };
  }
  const schema = g.zodSchema ?? schemaOf(g.jsonSchema!);
  if (!schema) return { ok: true, value };
  const r = schema.safeParse(value);
  return r.success ? { ok: true, value: r.data } : { ok: false, error: r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ") };
}

/** A zod validator for a JSON Schema text, or null where zod cannot read it (the grammar alone then checks the output). */
function schemaOf(jsonSchema: string): z.ZodType | null {
  let s = fromSchemaCache.get(jsonSchema);
  if (s === undefined) {
    try {
      s = z.fromJSONSchema(JSON.parse(jsonSchema)) as z.ZodType;
    } catch {
      s = null;
    }
    if (fromSchemaCache.size > 256) fromSchemaCache.clear();
    fromSchemaCache.set(jsonSchema, s);
  }
  return s;
}
