/**
 * Streaming detokenization: ids in, text deltas out, never half a character.
 *
 * The technique of vLLM and TGI: keep a small window of ids, the ones already turned into text (from the "prefix
 * offset" to the "read offset") plus the pending ones; decode the window with and without the pending ids and emit
 * the difference. Decoding the window as a whole keeps what depends on neighbouring tokens right (the byte-fallback
 * and byte-level bytes of one character split over several tokens; the SentencePiece "▁" that the decoder strips only
 * at the very start), and the window stays a few tokens long, so a push costs O(new tokens), not O(text so far).
 * While the window's text ends in U+FFFD (maybe an incomplete UTF-8 character) the ids that may complete it are held
 * back; the bytes are given up as U+FFFD at `flush()`, or once 3 more ids have not completed them (they are invalid).
 */
import type { DecodeOptions, LlmTokenizer } from "./tokenizer.ts";

/** Options of `LlmTokenizer.createDetokenizer`. */
export interface DetokenizerOptions extends DecodeOptions {
  /**
   * Ids of the prompt before the generated ones. Their last few ids are decoding context, so the text continues the
   * prompt's: the deltas then concatenate to `decode(prompt + generated)` less its `decode(prompt)` prefix (a
   * SentencePiece first token keeps its leading space, as in vLLM).
   */
  promptIds?: readonly number[];
  /**
   * The model's vocabulary size when it is larger than the tokenizer's (a padded vocabulary: Qwen2.5 has 151,665
   * tokens and 151,936 rows). Ids from the tokenizer's vocabSize up to it have no token: they add no text, as vLLM
   * decodes them, instead of failing the request that sampled one. @default the tokenizer's vocabSize
   */
  modelVocabSize?: number;
}

const REPLACEMENT_CHAR = "\uFFFD";
/** Prompt ids kept as context (vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET). */
const PROMPT_CONTEXT_TOKENS = 5;
/** Most ids held back for an incomplete character: it misses at most 3 bytes, and each id brings at least one. */
const MAX_PENDING_TOKENS = 3;

/** Per tokenizer: the text of each single id decoded on its own (the usual one-id prefix of the window). */
const singleIdText = new WeakMap<LlmTokenizer, Map<number, string>>();
/**
 * Per piecewise tokenizer (`LlmTokenizer.piecewiseDecoding`): the text each id adds after other ids, or null when it
 * cannot stand alone (a special token, or bytes that are not complete UTF-8 on their own).
 */
const continuationText = new WeakMap<LlmTokenizer, (string | null | undefined)[]>();

/**
 * Turns a stream of token ids into text deltas. Concatenated, the deltas equal `tokenizer.decode(allIds, opts)`;
 * no delta ends with part of a character.
 *
 * @example
 * ```ts
 * const detok = tok.createDetokenizer();
 * let out = "";
 * for (const id of tok.encode("emoji 🤖", { addSpecialTokens: false })) out += detok.push([id]);
 * out += detok.flush(); // out === "emoji 🤖", and no delta contained "\uFFFD"
 * ```
 */
export class IncrementalDetokenizer {
  readonly #tok: LlmTokenizer;
  readonly #skipSpecial: boolean;
  /** Special tokens kept and spaced: text between them is decoded run by run (see DecodeOptions). */
  readonly #segmented: boolean;
  /** Ids in [tokenizer.vocabSize, #modelVocab) have no token (padding rows of the model): they add no text. */
  readonly #modelVocab: number;
  readonly #ids: number[] = [];
  #text = "";
  /** Ids of the current run from the prefix offset on; `[0, #read)` are already text, the rest pend. */
  #window: number[] = [];
  #read = 0;
  /** decode(#window[0, #read)), kept while nothing is emitted; null when stale. */
  #prefixText: string | null = "";
  /** Segmented mode: some text precedes the current run; the current run has produced text. */
  #hasOutput = false;
  #runHasOutput = false;

  /** Use `LlmTokenizer.createDetokenizer`. */
  constructor(tokenizer: LlmTokenizer, opts: DetokenizerOptions = {}) {
    this.#tok = tokenizer;
    this.#skipSpecial = opts.skipSpecialTokens ?? true;
    this.#segmented = !this.#skipSpecial && (opts.spacesBetweenSpecialTokens ?? true);
    this.#modelVocab = opts.modelVocabSize ?? tokenizer.vocabSize;
    if (opts.promptIds !== undefined) this.#seed(opts.promptIds);
  }

  /** All text emitted so far (the concatenated deltas). */
  get text(): string {
    return this.#text;
  }

  /** A copy of every id pushed so far (prompt ids excluded). */
  get tokenIds(): number[] {
    return this.#ids.slice();
  }

  /** Adds newly generated ids; returns the text they complete ("" while a character is still incomplete). */
  push(ids: readonly number[]): string {
    this.#tok.validateIds(ids, "IncrementalDetokenizer.push", this.#modelVocab);
    if (this.#modelVocab > this.#tok.vocabSize && ids.some((id) => id >= this.#tok.vocabSize)) {
      const kept = ids.filter((id) => id < this.#tok.vocabSize);
      const delta = kept.length > 0 ? this.push(kept) : "";
      this.#ids.length -= kept.length; // every id, padding ones included, in order
      this.#ids.push(...ids);
      return delta;
    }
    if (this.#read > 0 && this.#window.length === this.#read && this.#runHasOutput) {
      // Nothing pends: with a piecewise decoder the ids' cached continuation texts are the delta (no decoding).
      const fast = this.#pieces(ids, 0);
      if (fast !== null && fast !== "") {
        for (const id of ids) this.#ids.push(id);
        this.#window = ids.slice();
        this.#read = ids.length;
        this.#prefixText = null;
        this.#text += fast;
        return fast;
      }
    }
    const special = this.#tok.specialTokenIds;
    let delta = "";
    for (const id of ids) {
      this.#ids.push(id);
      if (special.has(id)) {
        if (this.#skipSpecial) continue;
        if (this.#segmented) {
          delta += this.#emit(true);
          delta += (this.#hasOutput ? " " : "") + this.#tok.idToToken(id);
          this.#hasOutput = true;
          this.#startRun();
          continue;
        }
      }
      this.#window.push(id);
    }
    delta += this.#emit(false);
    this.#text += delta;
    return delta;
  }

  /** Ends the stream: returns what was held back (incomplete bytes become U+FFFD, as `decode` gives them). */
  flush(): string {
    const delta = this.#emit(true);
    this.#text += delta;
    return delta;
  }

  /** Decodes the pending ids of the window; emits the text that can no longer change (all of it when `final`). */
  #emit(final: boolean): string {
    if (this.#window.length === this.#read) return "";
    this.#prefixText ??= this.#read === 1 ? this.#decodeOne(this.#window[0]) : this.#decode(this.#window.slice(0, this.#read));
    const prefix = this.#prefixText;
    let end = this.#window.length;
    let text = this.#continued(prefix) ?? this.#decode(this.#window);
    if (!final && text.endsWith(REPLACEMENT_CHAR)) [end, text] = this.#completeCut(prefix);
    if (!final && text.length <= prefix.length) return "";
    let delta = text.slice(prefix.length);
    // vLLM's offsets: the emitted pending ids become the next prefix; ids past `end` still pend.
    const oldRead = this.#read;
    this.#window = this.#window.slice(oldRead);
    this.#read = end - oldRead;
    this.#prefixText = null;
    if (delta !== "" && !this.#runHasOutput) {
      if (this.#segmented && this.#hasOutput) delta = " " + delta;
      this.#runHasOutput = true;
      this.#hasOutput = true;
    }
    return delta;
  }

  /**
   * The window's text ends in U+FFFD: maybe a character whose last bytes have not come yet. Returns the longest cut
   * `[end, decode(window[0, end))]` among the last MAX_PENDING_TOKENS pending ids whose text is complete. A
   * character misses at most 3 bytes, each in its own token, so the text before the last 3 ids is final even when it
   * ends in U+FFFD (those bytes are invalid, not incomplete): that keeps the held ids, and the window, bounded.
   */
  #completeCut(prefix: string): [number, string] {
    const len = this.#window.length;
    for (let end = len - 1; end > this.#read && end >= len - MAX_PENDING_TOKENS; end--) {
      const text = this.#decode(this.#window.slice(0, end));
      if (!text.endsWith(REPLACEMENT_CHAR)) return [end, text];
    }
    const end = len - MAX_PENDING_TOKENS;
    return end > this.#read ? [end, this.#decode(this.#window.slice(0, end))] : [this.#read, prefix];
  }

  /**
   * The window's text without decoding it, for a piecewise tokenizer whose pending ids all stand alone and follow
   * at least one emitted id: the prefix's text plus each pending id's continuation text (memoized per tokenizer).
   * Null when that does not apply (the caller decodes the window) or when the text ends in U+FFFD.
   */
  #continued(prefix: string): string | null {
    if (this.#read === 0) return null;
    const pieces = this.#pieces(this.#window, this.#read);
    if (pieces === null) return null;
    const text = prefix + pieces;
    return text.endsWith(REPLACEMENT_CHAR) ? null : text;
  }

  /** The continuation texts of `ids[from..]` joined, or null when the tokenizer is not piecewise or one id cannot stand alone. */
  #pieces(ids: readonly number[], from: number): string | null {
    if (this.#tok.piecewiseDecoding !== true) return null;
    let memo = continuationText.get(this.#tok);
    if (!memo) continuationText.set(this.#tok, memo = []);
    let text = "";
    for (let i = from; i < ids.length; i++) {
      const id = ids[i];
      let piece = memo[id];
      if (piece === undefined) memo[id] = piece = this.#continuationOf(id);
      if (piece === null) return null;
      text += piece;
    }
    return text;
  }

  /** The text `id` adds after another id: decode([id, id]) less decode([id]), when both are complete text. */
  #continuationOf(id: number): string | null {
    if (this.#tok.specialTokenIds.has(id)) return null;
    const one = this.#decodeOne(id);
    const two = this.#decode([id, id]);
    if (one.includes(REPLACEMENT_CHAR) || two.includes(REPLACEMENT_CHAR) || !two.startsWith(one)) return null;
    return two.slice(one.length);
  }

  /** `#decode([id])`, memoized per tokenizer (a stream's window usually starts with the one id emitted last). */
  #decodeOne(id: number): string {
    let memo = singleIdText.get(this.#tok);
    if (!memo) singleIdText.set(this.#tok, memo = new Map());
    let text = memo.get(id);
    if (text === undefined) memo.set(id, text = this.#decode([id]));
    return text;
  }

  #decode(ids: readonly number[]): string {
    return this.#tok.decode(ids, { skipSpecialTokens: false, spacesBetweenSpecialTokens: false });
  }

  #startRun(): void {
    this.#window = [];
    this.#read = 0;
    this.#prefixText = "";
    this.#runHasOutput = false;
  }

  /** Takes the prompt's last few decodable ids (of its last run, when segmented) as the window's emitted part. */
  #seed(promptIds: readonly number[]): void {
    this.#tok.validateIds(promptIds, "promptIds", this.#modelVocab);
    if (this.#modelVocab > this.#tok.vocabSize) promptIds = promptIds.filter((id) => id < this.#tok.vocabSize);
    const special = this.#tok.specialTokenIds;
    const context: number[] = [];
    let sawKept = false;
    for (let i = promptIds.length - 1; i >= 0 && context.length < PROMPT_CONTEXT_TOKENS; i--) {
      const id = promptIds[i];
      if (special.has(id)) {
        if (this.#skipSpecial) continue;
        if (this.#segmented) {
          sawKept = true;
          break;
        }
      }
      context.push(id);
    }
    context.reverse();
    this.#window = context;
    this.#read = context.length;
    this.#prefixText = null;
    this.#runHasOutput = context.length > 0;
    this.#hasOutput = sawKept || context.length > 0;
  }
}
