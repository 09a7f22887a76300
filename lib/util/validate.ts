import type { z } from "zod";
import { showValue, ValidationError } from "./errors.ts";

/**
 * Parses `value` with a zod schema and returns a frozen result. On failure throws a
 * `ValidationError` that names the first bad field (dotted path), the value given, and what was
 * expected, e.g. `SamplingParams.temperature: expected >= 0, got -1`.
 *
 * @example
 * ```ts
 * const cfg = parseWith(BuildConfigSchema, { maxBatchSize: 8 }, "BuildConfig");
 * ```
 */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): Readonly<z.output<S>> {
  const r = schema.safeParse(value);
  if (r.success) return deepFreeze(r.data) as Readonly<z.output<S>>;
  const issue = r.error.issues[0];
  const path = issue.path.map(String).join(".");
  const field = path ? `${what}.${path}` : what;
  const given = issue.path.reduce<unknown>(
    (v, k) => (v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[k as PropertyKey] : undefined),
    value,
  );
  const extra = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more issue(s))` : "";
  throw new ValidationError(`${field}: ${issue.message}, got ${showValue(given)}${extra}`, field, given);
}

/** Freezes an object graph (plain objects and arrays only; typed arrays are left as they are). */
export function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === "object" && isPlain(o) && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as Record<string, unknown>)) deepFreeze(v);
  }
  return o;
}

/** A plain object or array: class instances given as values (an AbortSignal, a typed array) are not frozen. */
function isPlain(o: object): boolean {
  const proto = Object.getPrototypeOf(o);
  return proto === Object.prototype || proto === null || Array.isArray(o);
}
