/**
 * Tokenizing a long text prompt without blocking the event loop: the text is cut at line starts
 * into slices of about {@link SLICE_CHARS} characters, each slice encoded in its own macrotask, so
 * the executor's steps (and every stream) keep running while a long prompt is tokenized. A cut is
 * used only where the tokenizer does not merge across it in the text around it (the tokens of the
 * joined neighbourhood equal the tokens of its two halves); a tokenizer that merges across every
 * line gets one encode, as before. And the byte cap checked before any tokenizing.
 */

import { ResourceError } from "../util/errors.ts";

/** What is needed of a tokenizer. */
export interface SliceEncoder {
  encode(text: string, opts?: { readonly addSpecialTokens?: boolean }): number[];
}

/** Prompts longer than this (characters) are tokenized in slices. */
export const SLICE_CHARS = 8 * 1024;
/** Characters on each side of a cut checked for merges across it. */
const CHECK_CHARS = 256;

/** A macrotask turn (setImmediate exists in Bun and Deno). */
function nextTurn(): Promise<void> {
  const si = (globalThis as { setImmediate?: (cb: () => void) => unknown }).setImmediate;
  return new Promise<void>((resolve) => (si ? si(resolve) : setTimeout(resolve, 0)));
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Tokens of `text[cut, end)` as they come out in the whole text after a cut at a line start: the
 * piece is encoded behind the newline before it (so a tokenizer that prefixes every text it
 * encodes, as SentencePiece's dummy prefix does, prefixes the newline instead), and the newline's
 * own tokens are dropped. Null when they do not come first.
 */
function encodeAfterCut(tok: SliceEncoder, text: string, cut: number, end: number): number[] | null {
  const opts = { addSpecialTokens: false };
  const ctx = text.slice(cut - 1, cut);
  const pre = tok.encode(ctx, opts);
  const ids = tok.encode(ctx + text.slice(cut, end), opts);
  if (ids.length < pre.length || !sameIds(ids.slice(0, pre.length), pre)) return null;
  return ids.slice(pre.length);
}

/** True when the tokens of text around `cut` are the tokens of its two sides (the right as {@link encodeAfterCut} gives them). */
function isSafeCut(tok: SliceEncoder, text: string, cut: number): boolean {
  const from = Math.max(0, cut - CHECK_CHARS), to = Math.min(text.length, cut + CHECK_CHARS);
  const opts = { addSpecialTokens: false };
  const right = encodeAfterCut(tok, text, cut, to);
  return right !== null && sameIds(tok.encode(text.slice(from, to), opts), [...tok.encode(text.slice(from, cut), opts), ...right]);
}

/**
 * The next cut of `text` at or after `from`: after a newline followed by a non-space character,
 * checked with {@link isSafeCut} (a few candidates, each check costs encodes); -1 when none within
 * `sliceChars` characters is safe.
 */
function nextCut(tok: SliceEncoder, text: string, from: number, sliceChars: number): number {
  let tries = 0;
  for (let i = text.indexOf("\n", from); i >= 0 && i < from + sliceChars && tries < 4; i = text.indexOf("\n", i + 1)) {
    if (i + 1 >= text.length || /\s/.test(text[i + 1])) continue;
    tries++;
    if (isSafeCut(tok, text, i + 1)) return i + 1;
  }
  return -1;
}

/** Cut points of `text`, about every `sliceChars` characters (for tests and tools). */
export function sliceCuts(tok: SliceEncoder, text: string, sliceChars: number = SLICE_CHARS): number[] {
  const cuts: number[] = [];
  for (let from = sliceChars; from < text.length - 1;) {
    const cut = nextCut(tok, text, from, sliceChars);
    if (cut < 0) {
      from += sliceChars;
      continue;
    }
    cuts.push(cut);
    from = cut + sliceChars;
  }
  return cuts;
}

/**
 * Encodes `text` like `tok.encode(text, { addSpecialTokens })`, a slice per macrotask. `isCancelled`
 * is polled between slices (an aborted request stops tokenizing).
 *
 * @example
 * ```ts
 * const ids = await encodeInSlices(tokenizer, longText, true, () => aborted);
 * ```
 */
export async function encodeInSlices(
  tok: SliceEncoder,
  text: string,
  addSpecialTokens: boolean,
  isCancelled: () => boolean = () => false,
): Promise<number[] | null> {
  const ids: number[] = [];
  let start = 0;
  let misses = 0; // slices without a safe cut: a tokenizer that merges across lines gets one encode
  while (start < text.length) {
    await nextTurn();
    if (isCancelled()) return null;
    let end = text.length;
    for (let from = start + SLICE_CHARS; from < text.length - 1 && misses < 4; from += SLICE_CHARS) {
      const cut = nextCut(tok, text, from, SLICE_CHARS);
      if (cut >= 0) {
        end = cut;
        break;
      }
      misses++;
    }
    const part = start === 0 ? tok.encode(text.slice(0, end), { addSpecialTokens }) : encodeAfterCut(tok, text, start, end);
    if (part === null) return tok.encode(text, { addSpecialTokens }); // checked at the cut, so not expected
    for (const t of part) ids.push(t);
    start = end;
  }
  return ids;
}

/** Fails a text prompt longer than `maxBytes` UTF-8 bytes before it is tokenized (ResourceError naming `field`). */
export function checkPromptBytes(prompt: string, maxBytes: number, field: string): void {
  if (prompt.length * 3 <= maxBytes) return; // a UTF-16 unit is at most 3 UTF-8 bytes
  const bytes = new TextEncoder().encode(prompt).length;
  if (bytes > maxBytes) {
    throw new ResourceError(
      `LLM.generate ${field}: a text prompt of ${bytes} bytes exceeds maxPromptBytes ${maxBytes}; it cannot fit maxInputLen tokens ` +
        "(raise LLM.create({ maxPromptBytes }) if your text really packs that many bytes per token)",
      field,
      bytes,
      { maxPromptBytes: maxBytes },
    );
  }
}
