/**
 * Nesting limits on guided decoding constraints, checked before xgrammar sees them. xgrammar's
 * WebAssembly build recurses once per nesting level on a small fixed stack: past a few dozen
 * levels of JSON Schema (about 40 of `additionalProperties`, 40 `$ref` links, 65 `items`) or
 * ~150-200 nested regex / EBNF groups it overruns that stack. Sometimes that traps, sometimes it
 * silently overwrites the engine's memory; either way every later guided request of the process
 * fails or hangs. So a constraint nested deeper than these limits (well inside what compiled
 * cleanly in session 13's probe) is refused at submission.
 */
import { ValidationError } from "../../util/errors.ts";

/** Deepest JSON Schema: objects and arrays on one path, `$ref` targets followed. */
export const MAX_SCHEMA_DEPTH = 32;
/** Deepest group nesting of a regex or an EBNF grammar. */
export const MAX_GROUP_DEPTH = 64;

/**
 * Throws a ValidationError naming `field` when `schema` nests objects / arrays deeper than
 * MAX_SCHEMA_DEPTH along any path, local `$ref`s ("#/…") followed (a recursive reference ends its path).
 */
export function checkSchemaDepth(schema: unknown, field: string): void {
  const memo = new Map<object, number>();
  const onPath = new Set<object>();
  const tooDeep = (): ValidationError =>
    new ValidationError(
      `SamplingParams.${field}: the JSON Schema nests deeper than ${MAX_SCHEMA_DEPTH} objects / arrays (following $ref); the grammar engine cannot compile it safely`,
      field,
      "schema",
    );
  const height = (v: unknown, depth: number): number => {
    if (v === null || typeof v !== "object") return 0;
    if (depth > MAX_SCHEMA_DEPTH) throw tooDeep();
    if (onPath.has(v)) return 0; // a cycle (recursive $ref): the engine makes it one rule
    const known = memo.get(v);
    if (known !== undefined) return known;
    onPath.add(v);
    let h = 0;
    for (const child of Object.values(v)) h = Math.max(h, height(child, depth + 1));
    const ref = (v as { $ref?: unknown }).$ref;
    if (typeof ref === "string") h = Math.max(h, height(resolveLocalRef(schema, ref), depth + 1));
    onPath.delete(v);
    memo.set(v, h + 1);
    return h + 1;
  };
  if (height(schema, 1) > MAX_SCHEMA_DEPTH) throw tooDeep();
}

/** The target of a local JSON pointer `#/a/b` in `root` (undefined when it names nothing). */
function resolveLocalRef(root: unknown, ref: string): unknown {
  if (!ref.startsWith("#")) return undefined;
  let v = root;
  for (const raw of ref.slice(1).split("/").slice(1)) {
    if (v === null || typeof v !== "object") return undefined;
    const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    v = Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined;
  }
  return v;
}

/**
 * Throws a ValidationError naming `field` when `text` (a regex, or EBNF with `"…"` literals) nests
 * `(` groups deeper than MAX_GROUP_DEPTH. Escapes and character classes `[…]` are skipped, and
 * string literals when `literals` (EBNF).
 */
export function checkGroupDepth(text: string, field: string, literals: boolean): void {
  let depth = 0, max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\\") i++;
    else if (c === "[") i = skipClass(text, i);
    else if (literals && c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
    } else if (c === "(") max = Math.max(max, ++depth);
    else if (c === ")") depth = Math.max(0, depth - 1);
  }
  if (max > MAX_GROUP_DEPTH) {
    throw new ValidationError(
      `SamplingParams.${field}: groups nest ${max} deep, above the limit of ${MAX_GROUP_DEPTH}; the grammar engine cannot compile it safely`,
      field,
      max,
    );
  }
}

/** The index of the `]` closing the character class opened at `open` (a leading `]` or `^]` is literal). */
function skipClass(text: string, open: number): number {
  let i = open + 1;
  if (text[i] === "^") i++;
  if (text[i] === "]") i++;
  for (; i < text.length && text[i] !== "]"; i++) if (text[i] === "\\") i++;
  return i;
}
