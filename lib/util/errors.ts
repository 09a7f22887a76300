/**
 * Error classes shared by every layer. Library code throws these (never exits, never bare asserts).
 */

/** Bad user input: a field of an options object, config file or request. Names the field and value. */
export class ValidationError extends Error {
  override name = "ValidationError";
  constructor(message: string, readonly field?: string, readonly value?: unknown) {
    super(message);
  }
}

/** A file (safetensors, engine, config, tokenizer) that cannot be read as what it claims to be. */
export class FormatError extends Error {
  override name = "FormatError";
  constructor(message: string, readonly path?: string) {
    super(message);
  }
}

/** Shows a value in an error message, shortened so a huge value cannot flood the message. */
export function showValue(value: unknown): string {
  let s: string;
  try {
    s = typeof value === "string" ? JSON.stringify(value) : typeof value === "bigint" ? `${value}n` : JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value);
  }
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}
