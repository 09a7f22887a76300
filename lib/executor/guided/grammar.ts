/**
 * Grammar compilation and per-step token masks for guided decoding, over xgrammar (xgrammar.ts):
 * the tokenizer's vocabulary in xgrammar's form, one compiler per (vocabulary, model vocab size),
 * compiled grammars cached by constraint, and one matcher per generated sequence that gives the
 * bitmask of allowed next tokens and advances on each sampled token.
 */
import { applyTokenMask } from "../../ir/sampling.ts";
import { DisposedError, UnsupportedError, ValidationError } from "../../util/errors.ts";
import type { GuidedDecoding } from "./params.ts";
import {
  checkXgAlive,
  type XgBinding,
  xgCall,
  type XgCompiledGrammar,
  xgCrashed,
  type XgGrammarCompiler,
  type XgGrammarMatcher,
  type XgTokenizerInfo,
} from "./xgrammar.ts";

/** What guided decoding needs of a tokenizer (LlmTokenizer has it). */
export interface VocabularySource {
  readonly vocabSize: number;
  idToToken(id: number): string | undefined;
  readonly specialTokenIds: ReadonlySet<number>;
}

/** How xgrammar reads token strings back into bytes. */
export type VocabType = "byte_level" | "byte_fallback" | "raw";

/** A vocabulary in xgrammar's form: the token strings as the tokenizer stores them, special tokens as "". */
export interface GuidedVocabulary {
  readonly tokens: readonly string[];
  /** byte_level: GPT-2 byte alphabet ("Ġ" = space); byte_fallback: SentencePiece ("▁" = space, "<0x0A>" bytes); raw: as is. */
  readonly vocabType: VocabType;
  /** SentencePiece tokenizers add "▁" before the text. */
  readonly prependSpace: boolean;
}

const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;

/**
 * The vocabulary of `tok` as xgrammar wants it. The type is read from the tokens themselves: the
 * 256 `<0xNN>` byte tokens of a SentencePiece byte-fallback model, or the GPT-2 byte alphabet
 * (every token made of the 256 printable stand-ins, "Ġ" among them) of a byte-level BPE.
 * Special tokens (and ids without a token) become "", which xgrammar never allows inside a
 * grammar; the stop ids are allowed where the grammar may end.
 */
export function guidedVocabulary(tok: VocabularySource): GuidedVocabulary {
  const tokens: string[] = [];
  let byteTokens = 0;
  let spaceMarks = 0;
  let gptSpace = 0;
  for (let id = 0; id < tok.vocabSize; id++) {
    const t = tok.specialTokenIds.has(id) ? undefined : tok.idToToken(id);
    tokens.push(t ?? "");
    if (t === undefined) continue;
    if (BYTE_TOKEN.test(t)) byteTokens++;
    if (t.includes("\u2581")) spaceMarks++;
    if (t.startsWith("\u0120")) gptSpace++;
  }
  if (byteTokens >= 256 || (spaceMarks > 0 && gptSpace === 0)) return { tokens, vocabType: "byte_fallback", prependSpace: true };
  if (gptSpace > 0) return { tokens, vocabType: "byte_level", prependSpace: false };
  return { tokens, vocabType: "raw", prependSpace: false };
}

/** A constraint compiled against one vocabulary (shared by every matcher of it). */
export class CompiledGuidedGrammar {
  readonly #handle: XgCompiledGrammar;
  readonly #owner: GuidedCompiler;
  constructor(owner: GuidedCompiler, handle: XgCompiledGrammar) {
    this.#owner = owner;
    this.#handle = handle;
  }
  /** A fresh matcher at the grammar's start; `stopIds` end the output where the grammar may end. */
  matcher(stopIds: readonly number[]): GuidedMatcher {
    return new GuidedMatcher(this.#owner.xg, this.#handle, this.#owner.vocabSize, stopIds);
  }
  /** @internal */
  delete(): void {
    if (!xgCrashed()) this.#handle.delete();
  }
}

const matcherNet = new FinalizationRegistry<XgGrammarMatcher>((h) => {
  try {
    if (!xgCrashed()) h.delete();
  } catch { /* already gone */ }
});

/**
 * The grammar state of one generated sequence: the mask of allowed next tokens, advanced by each
 * token sampled. Owns a WASM object: `dispose()` when the sequence ends (a finalizer is the net).
 *
 * @example
 * ```ts
 * const m = compiler.compile(normalizeGuidedDecoding({ choice: ["yes", "no"] })).matcher([eosId]);
 * m.applyMask(logitsRow);            // disallowed ids → -inf
 * m.accept(sampledId);
 * m.dispose();
 * ```
 */
export class GuidedMatcher {
  readonly vocabSize: number;
  /** Ids that end the output (allowed only where the grammar accepts). */
  readonly stopIds: readonly number[];
  readonly #xg: XgBinding;
  #handle: XgGrammarMatcher | null;

  constructor(xg: XgBinding, compiled: XgCompiledGrammar, vocabSize: number, stopIds: readonly number[]) {
    this.#xg = xg;
    this.vocabSize = vocabSize;
    this.stopIds = [...new Set(stopIds.filter((id) => id >= 0 && id < vocabSize))];
    // No stop id: the matcher terminates on its own where the grammar is complete and nothing may follow
    // (xgrammar takes no empty override list; the vocabulary's own stop list is empty, see GuidedCompiler).
    checkXgAlive();
    const stops = this.stopIds.length > 0 ? xg.vecIntFromJSArray(this.stopIds) : undefined;
    try {
      this.#handle = xgCall(
        () => new xg.GrammarMatcher(compiled, stops, this.stopIds.length === 0, -1),
        (m) => new ValidationError(`guided decoding: xgrammar cannot start a matcher: ${m}`, "guidedDecoding"),
      );
    } finally {
      if (!xgCrashed()) stops?.delete();
    }
    matcherNet.register(this, this.#handle, this);
  }

  #live(): XgGrammarMatcher {
    if (!this.#handle) throw new DisposedError("GuidedMatcher");
    checkXgAlive();
    return this.#handle;
  }

  /** Bitmask of the allowed next tokens: bit (id % 32) of word id / 32, `[ceil(vocabSize / 32)]` int32. */
  nextTokenBitmask(): Int32Array {
    const v = this.#live().GetNextTokenBitmask(this.vocabSize);
    try {
      return this.#xg.vecIntToView(v).slice();
    } finally {
      v.delete();
    }
  }

  /** Writes the bitmask of the allowed next tokens at `into[offset, offset + ceil(vocabSize / 32))`. */
  writeNextTokenBitmask(into: Int32Array, offset: number): void {
    const v = this.#live().GetNextTokenBitmask(this.vocabSize);
    try {
      into.set(this.#xg.vecIntToView(v), offset);
    } finally {
      v.delete();
    }
  }

  /**
   * Sets every disallowed id of `row[vocabSize]` to -inf; returns how many stay allowed (0 only
   * when an edit before it already banned every id the grammar allows).
   */
  applyMask(row: Float32Array): number {
    return applyBitmask(row, this.nextTokenBitmask());
  }

  /** Advances by one sampled token; false (state unchanged) when the grammar does not allow it. */
  accept(token: number): boolean {
    return this.#live().AcceptToken(token, false);
  }

  /** True once a stop id was accepted, or (no stop ids) the grammar is complete and nothing may follow. */
  get isTerminated(): boolean {
    return this.#live().IsTerminated();
  }

  dispose(): void {
    if (!this.#handle) return;
    matcherNet.unregister(this);
    if (!xgCrashed()) this.#handle.delete();
    this.#handle = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** `row[i] = -inf` wherever bit i of `mask` is 0; returns the number of ids left allowed. */
export function applyBitmask(row: Float32Array, mask: Int32Array): number {
  return applyTokenMask(row, 0, row.length, mask);
}

/** Most compiled constraints kept per compiler. */
const MAX_CACHED = 64;

/**
 * Compiles guided decoding constraints against one vocabulary. One per executor (its tokenizer
 * and the engine's vocab size, which may exceed the tokenizer's: the extra ids are never allowed).
 * A constraint xgrammar rejects (bad EBNF, regex or schema; an unsatisfiable schema) is a
 * ValidationError naming `guidedDecoding.<kind>` with xgrammar's reason.
 */
export class GuidedCompiler {
  readonly xg: XgBinding;
  readonly vocabSize: number;
  readonly vocabulary: GuidedVocabulary;
  #info: XgTokenizerInfo | null;
  #compiler: XgGrammarCompiler | null;
  readonly #cache = new Map<string, CompiledGuidedGrammar>();

  constructor(xg: XgBinding, vocabulary: GuidedVocabulary, vocabSize: number) {
    if (vocabSize < vocabulary.tokens.length) {
      throw new ValidationError(
        `GuidedCompiler: model vocab size ${vocabSize} is smaller than the tokenizer's ${vocabulary.tokens.length}`,
        "vocabSize",
        vocabSize,
      );
    }
    this.xg = xg;
    this.vocabSize = vocabSize;
    this.vocabulary = vocabulary;
    checkXgAlive();
    const vec = xg.vecStringFromJSArray(vocabulary.tokens);
    const stops = xg.vecIntFromJSArray([]);
    try {
      this.#info = xgCall(
        () => new xg.TokenizerInfo(vec, vocabulary.vocabType.toUpperCase(), vocabSize, stops, vocabulary.prependSpace),
        (m) => new ValidationError(`guided decoding: xgrammar cannot read the vocabulary: ${m}`, "tokenizer"),
      );
    } finally {
      if (!xgCrashed()) {
        vec.delete();
        stops.delete();
      }
    }
    this.#compiler = new xg.GrammarCompiler(this.#info, 1, true);
  }

  /** The compiled grammar of `g` (cached by constraint). */
  compile(g: GuidedDecoding): CompiledGuidedGrammar {
    const key = cacheKey(g);
    const hit = this.#cache.get(key);
    if (hit) {
      this.#cache.delete(key); // most recently used last
      this.#cache.set(key, hit);
      return hit;
    }
    const c = this.#live();
    const field = `guidedDecoding.${g.kind}`;
    const fail = (m: string): Error =>
      /not supported|unsupported|not implemented/i.test(m)
        ? new UnsupportedError(`SamplingParams.${field}: ${m}`, field)
        : new ValidationError(`SamplingParams.${field}: ${m}`, field);
    const compact = g.anyWhitespace ? undefined : { first: ",", second: ":" };
    const handle = xgCall((): XgCompiledGrammar => {
      switch (g.kind) {
        case "json":
          return c.CompileJSONSchema(g.jsonSchema!, g.anyWhitespace, undefined, compact, true, g.anyWhitespace ? 8 : undefined);
        case "jsonObject":
          return c.CompileJSONSchema(JSON_OBJECT_SCHEMA, g.anyWhitespace, undefined, compact, false, g.anyWhitespace ? 8 : undefined);
        case "regex":
          return c.CompileStructuralTag(JSON.stringify({ type: "structural_tag", format: { type: "regex", pattern: g.regex } }));
        case "choice":
          return this.#compileEbnf(c, `root ::= ${g.choice!.map(ebnfString).join(" | ")}`);
        case "grammar":
          return this.#compileEbnf(c, g.grammar!);
      }
    }, fail);
    const compiled = new CompiledGuidedGrammar(this, handle);
    this.#cache.set(key, compiled);
    if (this.#cache.size > MAX_CACHED) {
      const [oldKey, old] = this.#cache.entries().next().value!;
      this.#cache.delete(oldKey);
      old.delete();
    }
    return compiled;
  }

  #compileEbnf(c: XgGrammarCompiler, ebnf: string): XgCompiledGrammar {
    const grammar = new this.xg.Grammar.FromEBNF(ebnf, "root");
    try {
      return c.CompileGrammar(grammar);
    } finally {
      if (!xgCrashed()) grammar.delete();
    }
  }

  #live(): XgGrammarCompiler {
    if (!this.#compiler) throw new DisposedError("GuidedCompiler");
    return this.#compiler;
  }

  dispose(): void {
    for (const g of this.#cache.values()) g.delete();
    this.#cache.clear();
    if (!xgCrashed()) {
      this.#compiler?.delete();
      this.#info?.delete();
    }
    this.#compiler = null;
    this.#info = null;
  }
}

/** Any JSON object (OpenAI json_object): properties of any JSON value. */
const JSON_OBJECT_SCHEMA = JSON.stringify({ type: "object", additionalProperties: true });

function cacheKey(g: GuidedDecoding): string {
  const body = g.kind === "json"
    ? g.jsonSchema
    : g.kind === "regex"
    ? g.regex
    : g.kind === "choice"
    ? JSON.stringify(g.choice)
    : g.kind === "grammar"
    ? g.grammar
    : "";
  return `${g.kind}|${g.anyWhitespace ? 1 : 0}|${body}`;
}

/** A string literal of xgrammar's EBNF (JSON escapes: \" \\ \n \uXXXX). */
function ebnfString(s: string): string {
  return JSON.stringify(s);
}
