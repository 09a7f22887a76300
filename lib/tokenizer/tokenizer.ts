/**
 * LlmTokenizer: a Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) run by @huggingface/tokenizers,
 * configured to give the ids and text transformers 5 gives, plus chat templates and streaming detokenization.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { FormatError, showValue, ValidationError } from "../util/errors.ts";
import { type ChatMessage, ChatTemplate, type ChatTemplates, readChatTemplates } from "./chat_template.ts";
import { type DetokenizerOptions, IncrementalDetokenizer } from "./detokenizer.ts";

/** Options of `LlmTokenizer.encode`. */
export interface EncodeOptions {
  /** Add what the tokenizer's post-processor adds (e.g. BOS for Llama 2). @default true */
  addSpecialTokens?: boolean;
}

/** Options of `LlmTokenizer.decode` (and of the streaming detokenizer). */
export interface DecodeOptions {
  /** Drop special tokens (added tokens marked special, and `additional_special_tokens`). @default true */
  skipSpecialTokens?: boolean;
  /**
   * When special tokens are kept: decode the text between them on its own and join the pieces (special tokens and
   * non-empty texts) with one space, as vLLM does through transformers' slow tokenizers. `false` gives exactly
   * transformers' (fast tokenizer) `decode(ids, skip_special_tokens=False)`. No effect when they are skipped.
   * @default true
   */
  spacesBetweenSpecialTokens?: boolean;
}

/** Options of `LlmTokenizer.applyChatTemplate`. */
export interface ApplyChatTemplateOptions {
  /** Append the header that opens the assistant's turn. @default false */
  addGenerationPrompt?: boolean;
  /** A template source, or the name of one of the tokenizer's named templates; @default the tokenizer's own. */
  chatTemplate?: string;
  /** Tool (function) schemas, `tools` in the template. */
  tools?: unknown[];
  /** More template variables (snake_case, e.g. `{ enable_thinking: false }`). */
  extra?: Record<string, unknown>;
}

/** Optional extra files of a tokenizer directory, for `LlmTokenizer.fromJson`. */
export interface TokenizerExtras {
  /** chat_template.jinja contents; wins over tokenizer_config.json `chat_template`. */
  chatTemplate?: string;
  /** special_tokens_map.json contents; its tokens win over tokenizer_config.json's. */
  specialTokensMap?: object;
  /** generation_config.json contents: fallback bos/eos/pad ids and extra stop ids. */
  generationConfig?: object;
}

const tokenId = z.number().int().nonnegative();
/** Template variables (and context keys) `applyChatTemplate` sets from its arguments. */
const OWN_TEMPLATE_VARIABLES = ["messages", "add_generation_prompt", "tools", "addGenerationPrompt", "bosToken", "eosToken"];
const TokenText = z.union([z.string(), z.looseObject({ content: z.string() })]).nullish();
const TokenTextList = z.array(z.union([z.string(), z.looseObject({ content: z.string() })])).nullish();

const TokenizerJsonSchema = z.looseObject({
  model: z.looseObject({ vocab: z.unknown() }),
  added_tokens: z.array(z.looseObject({ id: tokenId, content: z.string(), special: z.boolean().optional() })).nullish(),
  normalizer: z.unknown().optional(),
  pre_tokenizer: z.unknown().optional(),
  post_processor: z.unknown().optional(),
  decoder: z.unknown().optional(),
});

const TokenizerConfigSchema = z.looseObject({
  tokenizer_class: z.string().nullish(),
  bos_token: TokenText,
  eos_token: TokenText,
  unk_token: TokenText,
  pad_token: TokenText,
  additional_special_tokens: TokenTextList,
  add_bos_token: z.boolean().nullish(),
  add_eos_token: z.boolean().nullish(),
  add_prefix_space: z.boolean().nullish(),
  legacy: z.boolean().nullish(),
  clean_up_tokenization_spaces: z.boolean().nullish(),
  chat_template: z.unknown().optional(),
});

const SpecialTokensMapSchema = z.looseObject({
  bos_token: TokenText,
  eos_token: TokenText,
  unk_token: TokenText,
  pad_token: TokenText,
  additional_special_tokens: TokenTextList,
});

const GenerationConfigSchema = z.looseObject({
  bos_token_id: tokenId.nullish(),
  eos_token_id: z.union([tokenId, z.array(tokenId)]).nullish(),
  pad_token_id: tokenId.nullish(),
});

type TokenizerJson = z.output<typeof TokenizerJsonSchema>;
type TokenizerConfig = z.output<typeof TokenizerConfigSchema>;

/**
 * A tokenizer for one model: encode, decode, chat template, streaming detokenizer.
 *
 * Encodings equal transformers 5 `tokenizer(text)["input_ids"]`: the tokenizer.json `truncation` and `padding`
 * sections are dropped (never truncate or pad here), and for `LlamaTokenizer` classes with a SentencePiece-style
 * tokenizer.json the pipeline is rebuilt as transformers 5 rebuilds it (Metaspace pre-tokenizer that does not add a
 * second "▁" to text starting with a space; BOS/EOS from `add_bos_token`/`add_eos_token`).
 *
 * @example
 * ```ts
 * const tok = LlmTokenizer.fromDir("/models/tinyllama-chat");
 * const ids = tok.encode("Hello world");           // [1, 15043, 3186]
 * tok.decode(ids);                                 // "Hello world"
 * const prompt = tok.applyChatTemplate([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
 * const detok = tok.createDetokenizer();
 * for (const id of [15043, 3186]) process.stdout.write(detok.push([id]));
 * ```
 */
export class LlmTokenizer {
  /** Number of ids: 1 + the largest id of the vocabulary and added tokens. Valid ids are `0..vocabSize-1`. */
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  /** `eosTokenId` plus every generation_config.json `eos_token_id` (the ids that end a generation). */
  readonly stopTokenIds: readonly number[];
  /** Ids skipped by `decode` with `skipSpecialTokens` (added tokens marked special, `additional_special_tokens`). */
  readonly specialTokenIds: ReadonlySet<number>;
  /**
   * True when the decoder treats tokens one by one apart from the first (byte-level, WordPiece without clean-up,
   * Metaspace, Replace/ByteFallback/Fuse/Strip sequences; no clean-up of tokenization spaces): then the text a token
   * adds after others depends on the token alone, and the streaming detokenizer caches it per id.
   */
  readonly piecewiseDecoding: boolean;
  readonly #tok: Tokenizer;
  readonly #tokens: { bos: string | null; eos: string | null; unk: string | null; pad: string | null };
  readonly #chatTemplates: ChatTemplates;
  readonly #compiled = new Map<string, ChatTemplate>();

  private constructor(json: TokenizerJson, config: TokenizerConfig, extras: {
    chatTemplate?: string;
    specialTokensMap?: z.output<typeof SpecialTokensMapSchema>;
    generationConfig?: z.output<typeof GenerationConfigSchema>;
  }) {
    const map = extras.specialTokensMap ?? {};
    // special_tokens_map.json wins over tokenizer_config.json, as in transformers' from_pretrained.
    const bos = tokenText(map.bos_token) ?? tokenText(config.bos_token);
    const eos = tokenText(map.eos_token) ?? tokenText(config.eos_token);
    const unk = tokenText(map.unk_token) ?? tokenText(config.unk_token);
    const pad = tokenText(map.pad_token) ?? tokenText(config.pad_token);
    const additional = (map.additional_special_tokens ?? config.additional_special_tokens ?? [])
      .map((t) => typeof t === "string" ? t : t.content);
    this.#tokens = { bos, eos, unk, pad };

    const pipeline = transformersPipeline(json, config, bos, eos);
    try {
      this.#tok = new Tokenizer(pipeline, {
        ...config,
        bos_token: bos ?? undefined,
        eos_token: eos ?? undefined,
        unk_token: unk ?? undefined,
        pad_token: pad ?? undefined,
        additional_special_tokens: additional,
        // transformers >= 4.45 defaults to no clean-up; the library would default to clean-up.
        clean_up_tokenization_spaces: config.clean_up_tokenization_spaces ?? false,
      });
    } catch (e) {
      throw new FormatError(`tokenizer.json: @huggingface/tokenizers cannot load it: ${(e as Error).message}`, "tokenizer.json");
    }

    this.vocabSize = countIds(json);
    this.piecewiseDecoding = !(config.clean_up_tokenization_spaces ?? false) &&
      (json.model as { end_of_word_suffix?: unknown }).end_of_word_suffix == null &&
      isPiecewiseDecoder((pipeline as { decoder?: unknown }).decoder);
    const special = new Set<number>();
    for (const t of json.added_tokens ?? []) if (t.special) special.add(t.id);
    for (const t of additional) {
      const id = this.#tok.token_to_id(t);
      if (id !== undefined) special.add(id);
    }
    this.specialTokenIds = special;

    const gen = extras.generationConfig ?? {};
    const idOf = (t: string | null): number | null => (t === null ? null : this.#tok.token_to_id(t) ?? null);
    this.bosTokenId = idOf(bos) ?? gen.bos_token_id ?? null;
    this.eosTokenId = idOf(eos) ?? firstOf(gen.eos_token_id) ?? null;
    this.padTokenId = idOf(pad) ?? gen.pad_token_id ?? null;
    this.unkTokenId = idOf(unk);
    const stops = [this.eosTokenId, ...[gen.eos_token_id ?? []].flat()].filter((x): x is number => x !== null);
    this.stopTokenIds = Object.freeze([...new Set(stops)]);
    this.#chatTemplates = readChatTemplates(config.chat_template, extras.chatTemplate);
  }

  /**
   * Loads a Hugging Face tokenizer directory: tokenizer.json and tokenizer_config.json (required), and
   * special_tokens_map.json, chat_template.jinja, generation_config.json when present. A missing or malformed file
   * is a `FormatError` naming it.
   *
   * @example
   * ```ts
   * const tok = LlmTokenizer.fromDir("/work/shared/tokenizers/smollm2-135m-ft-chatml");
   * ```
   */
  static fromDir(dir: string): LlmTokenizer {
    const path = (name: string): string => join(dir, name);
    const json = parseFile(TokenizerJsonSchema, readJsonFile(path("tokenizer.json"), true), path("tokenizer.json"));
    const config = parseFile(TokenizerConfigSchema, readJsonFile(path("tokenizer_config.json"), true), path("tokenizer_config.json"));
    const mapRaw = readJsonFile(path("special_tokens_map.json"), false);
    const genRaw = readJsonFile(path("generation_config.json"), false);
    const jinjaPath = path("chat_template.jinja");
    return new LlmTokenizer(json, config, {
      chatTemplate: existsSync(jinjaPath) ? readTextFile(jinjaPath) : undefined,
      specialTokensMap: mapRaw === undefined ? undefined : parseFile(SpecialTokensMapSchema, mapRaw, path("special_tokens_map.json")),
      generationConfig: genRaw === undefined ? undefined : parseFile(GenerationConfigSchema, genRaw, path("generation_config.json")),
    });
  }

  /**
   * Builds a tokenizer from already parsed tokenizer.json and tokenizer_config.json objects.
   *
   * @example
   * ```ts
   * const tok = LlmTokenizer.fromJson(JSON.parse(tokJsonText), JSON.parse(configText), { chatTemplate: jinjaText });
   * ```
   */
  static fromJson(tokenizerJson: object, tokenizerConfig: object, extras: TokenizerExtras = {}): LlmTokenizer {
    const json = parseFile(TokenizerJsonSchema, tokenizerJson, "tokenizer.json");
    const config = parseFile(TokenizerConfigSchema, tokenizerConfig, "tokenizer_config.json");
    if (extras.chatTemplate !== undefined && typeof extras.chatTemplate !== "string") {
      throw new ValidationError(`extras.chatTemplate: expected a string, got ${showValue(extras.chatTemplate)}`, "chatTemplate", extras.chatTemplate);
    }
    return new LlmTokenizer(json, config, {
      chatTemplate: extras.chatTemplate,
      specialTokensMap: extras.specialTokensMap && parseFile(SpecialTokensMapSchema, extras.specialTokensMap, "special_tokens_map.json"),
      generationConfig: extras.generationConfig && parseFile(GenerationConfigSchema, extras.generationConfig, "generation_config.json"),
    });
  }

  /** Text → ids, as transformers `tokenizer(text)["input_ids"]`; special-token text in `text` becomes its id. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== "string") throw new ValidationError(`encode: text must be a string, got ${showValue(text)}`, "text", text);
    return this.#tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** Ids → text. An id outside `0..vocabSize-1` is a `ValidationError` naming it. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    this.validateIds(ids, "decode");
    const special = this.specialTokenIds;
    if (opts.skipSpecialTokens ?? true) return this.#decodeRaw(ids.filter((id) => !special.has(id)));
    if (!(opts.spacesBetweenSpecialTokens ?? true)) return this.#decodeRaw(ids);
    const parts: string[] = [];
    let start = 0;
    const endRun = (end: number): void => {
      const text = this.#decodeRaw(ids.slice(start, end));
      if (text !== "") parts.push(text);
    };
    for (let i = 0; i < ids.length; i++) {
      if (!special.has(ids[i])) continue;
      endRun(i);
      parts.push(this.#tok.id_to_token(ids[i])!);
      start = i + 1;
    }
    endRun(ids.length);
    return parts.join(" ");
  }

  /**
   * Throws a `ValidationError` naming the first id that is not an integer in `0..vocabSize-1` with a token. Ids from
   * vocabSize up to `modelVocabSize` (a padded model's rows, which have no token) pass.
   *
   * @example
   * ```ts
   * tok.validateIds(request.promptTokenIds, "promptTokenIds");
   * ```
   */
  validateIds(ids: readonly number[], what = "token ids", modelVocabSize = this.vocabSize): void {
    if (!Array.isArray(ids)) throw new ValidationError(`${what}: expected an array of token ids, got ${showValue(ids)}`, what, ids);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (Number.isInteger(id) && id >= this.vocabSize && id < modelVocabSize) continue; // a padding row of the model
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.#tok.id_to_token(id) === undefined) {
        throw new ValidationError(
          `${what}: token id ${showValue(id)} at index ${i} is not in the vocabulary (valid ids 0..${this.vocabSize - 1})`,
          what,
          id,
        );
      }
    }
  }

  /** The token string of an id (e.g. "▁Hello", "<0xE2>", "Ġworld"), or undefined. */
  idToToken(id: number): string | undefined {
    return this.#tok.id_to_token(id);
  }

  /** The id of a token string, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.#tok.token_to_id(token);
  }

  /** True when the tokenizer has a default chat template. */
  get hasChatTemplate(): boolean {
    return this.#chatTemplates.defaultTemplate !== null;
  }

  /**
   * Renders a conversation with the tokenizer's chat template (or `opts.chatTemplate`, a named template or a source)
   * into the prompt text; encode it with `encode(text, { addSpecialTokens: false })` when the template writes BOS.
   *
   * @example
   * ```ts
   * tok.applyChatTemplate([{ role: "user", content: "What is 2+2?" }], { addGenerationPrompt: true });
   * ```
   */
  applyChatTemplate(messages: ChatMessage[], opts: ApplyChatTemplateOptions = {}): string {
    // The variables the arguments set: the same key in `extra` would be silently overridden.
    const clash = Object.keys(opts.extra ?? {}).find((k) => OWN_TEMPLATE_VARIABLES.includes(k));
    if (clash !== undefined) {
      throw new ValidationError(
        `applyChatTemplate: extra.${clash} is a variable its own argument sets (messages, addGenerationPrompt, tools), got ${showValue(opts.extra![clash])}`,
        `extra.${clash}`,
        opts.extra![clash],
      );
    }
    const source = this.#templateSource(opts.chatTemplate);
    let compiled = this.#compiled.get(source);
    if (!compiled) {
      compiled = new ChatTemplate(source);
      this.#compiled.set(source, compiled);
    }
    const { bos, eos, unk, pad } = this.#tokens;
    const specials: Record<string, string> = {};
    if (unk !== null) specials.unk_token = unk;
    if (pad !== null) specials.pad_token = pad;
    return compiled.render({
      ...specials,
      ...opts.extra,
      messages,
      addGenerationPrompt: opts.addGenerationPrompt ?? false,
      bosToken: bos,
      eosToken: eos,
      tools: opts.tools ?? null,
    });
  }

  /**
   * A streaming detokenizer: push ids as they are sampled, get back only the new text. With `promptIds` the first
   * delta keeps the leading space a SentencePiece token carries after the prompt.
   *
   * @example
   * ```ts
   * const d = tok.createDetokenizer({ promptIds });
   * for await (const ids of stream) send(d.push(ids));
   * send(d.flush());
   * ```
   */
  createDetokenizer(opts: DetokenizerOptions = {}): IncrementalDetokenizer {
    return new IncrementalDetokenizer(this, opts);
  }

  #decodeRaw(ids: readonly number[]): string {
    return ids.length === 0 ? "" : this.#tok.decode(ids as number[], { skip_special_tokens: false });
  }

  #templateSource(requested: string | undefined): string {
    const { defaultTemplate, named } = this.#chatTemplates;
    if (requested !== undefined) {
      if (typeof requested !== "string") {
        throw new ValidationError(`applyChatTemplate: chatTemplate must be a string, got ${showValue(requested)}`, "chatTemplate", requested);
      }
      return named.get(requested) ?? requested;
    }
    if (defaultTemplate !== null) return defaultTemplate;
    if (named.size > 0) {
      throw new ValidationError(
        `applyChatTemplate: this tokenizer has several chat templates and none named "default"; ` +
          `pass opts.chatTemplate = one of ${showValue([...named.keys()])}`,
        "chatTemplate",
      );
    }
    throw new ValidationError(
      "applyChatTemplate: this tokenizer has no chat template (no chat_template in tokenizer_config.json and no " +
        "chat_template.jinja); pass one as opts.chatTemplate",
      "chatTemplate",
    );
  }
}

function tokenText(t: string | { content: string } | null | undefined): string | null {
  return t == null ? null : typeof t === "string" ? t : t.content;
}

function firstOf(x: number | number[] | null | undefined): number | undefined {
  return x == null ? undefined : typeof x === "number" ? x : x[0];
}

/** 1 + the largest id among the model vocabulary (object or Unigram list) and the added tokens. */
function countIds(json: TokenizerJson): number {
  let max = -1;
  const vocab = json.model.vocab;
  if (Array.isArray(vocab)) max = vocab.length - 1;
  else if (vocab !== null && typeof vocab === "object") {
    for (const id of Object.values(vocab)) if (typeof id === "number" && id > max) max = id;
  }
  for (const t of json.added_tokens ?? []) if (t.id > max) max = t.id;
  return max + 1;
}

const LLAMA_CLASSES = new Set(["LlamaTokenizer", "LlamaTokenizerFast"]);

/** True for the Llama 2 style layout: Prepend("▁") + Replace(" " → "▁") normalizer, or a Metaspace pre-tokenizer. */
function isSentencePieceLayout(json: TokenizerJson): boolean {
  const types: unknown[] = [];
  const walk = (n: unknown): void => {
    if (n === null || typeof n !== "object") return;
    const o = n as { type?: unknown; prepend?: unknown; normalizers?: unknown };
    if (o.type === "Prepend" && o.prepend === "\u2581") types.push("Prepend");
    if (Array.isArray(o.normalizers)) o.normalizers.forEach(walk);
  };
  walk(json.normalizer);
  const pre = json.pre_tokenizer as { type?: unknown } | null | undefined;
  return types.length > 0 || pre?.type === "Metaspace";
}

/** Whether a decoder config only transforms tokens one at a time (and the first specially); see piecewiseDecoding. */
function isPiecewiseDecoder(decoder: unknown): boolean {
  if (decoder === null || typeof decoder !== "object") return false;
  const d = decoder as {
    type?: unknown;
    decoders?: unknown;
    cleanup?: unknown;
    pattern?: { String?: unknown };
    start?: unknown;
    stop?: unknown;
  };
  switch (d.type) {
    case "ByteLevel":
    case "Metaspace":
    case "ByteFallback":
    case "Fuse":
      return true;
    case "WordPiece":
      return !d.cleanup; // @huggingface/tokenizers cleans up only when `cleanup` is set
    case "Replace":
      return typeof d.pattern?.String === "string" && d.pattern.String.length === 1;
    case "Strip":
      return (d.stop ?? 0) === 0 && ((d.start ?? 0) as number) <= 1;
    case "Sequence":
      return Array.isArray(d.decoders) && d.decoders.every(isPiecewiseDecoder);
    default:
      return false;
  }
}

/** The id of a token string according to the tokenizer.json (added tokens first, then the model vocabulary). */
function jsonTokenId(json: TokenizerJson, token: string): number | undefined {
  const added = json.added_tokens?.find((t) => t.content === token);
  if (added) return added.id;
  const vocab = json.model.vocab;
  if (vocab !== null && typeof vocab === "object" && !Array.isArray(vocab)) {
    const id = (vocab as Record<string, unknown>)[token];
    if (typeof id === "number") return id;
  }
  return undefined;
}

/**
 * The tokenizer.json pipeline as transformers 5 assembles it: no truncation/padding (transformers' `tokenizer(text)`
 * does not apply them by default either); for LlamaTokenizer with a SentencePiece layout the pipeline that
 * transformers' LlamaTokenizer builds; and a BOS/EOS template from explicit `add_bos_token`/`add_eos_token`.
 */
function transformersPipeline(json: TokenizerJson, config: TokenizerConfig, bos: string | null, eos: string | null): object {
  const out: Record<string, unknown> = { ...json, truncation: null, padding: null, added_tokens: json.added_tokens ?? [] };
  if (LLAMA_CLASSES.has(config.tokenizer_class ?? "") && isSentencePieceLayout(json)) {
    const addPrefixSpace = config.add_prefix_space ?? true;
    const prependScheme = !addPrefixSpace ? "never" : (config.legacy ?? false) ? "always" : "first";
    out.normalizer = null;
    out.pre_tokenizer = { type: "Metaspace", replacement: "\u2581", prepend_scheme: prependScheme, split: false };
    out.decoder = {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "\u2581" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        ...(addPrefixSpace ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
      ],
    };
  }
  const explicit = config.add_bos_token != null || config.add_eos_token != null;
  if (explicit || json.post_processor == null) {
    const bosId = bos === null ? undefined : jsonTokenId(json, bos);
    const eosId = eos === null ? undefined : jsonTokenId(json, eos);
    const addBos = (config.add_bos_token ?? false) && bosId !== undefined;
    const addEos = (config.add_eos_token ?? false) && eosId !== undefined;
    out.post_processor = templateProcessing(addBos ? [bos!, bosId!] : null, addEos ? [eos!, eosId!] : null);
  }
  return out;
}

/** A tokenizers TemplateProcessing post-processor: `[bos] $A [eos]` (pair: `[bos] $A [eos] [bos] $B [eos]`). */
function templateProcessing(bos: [string, number] | null, eos: [string, number] | null): object {
  const piece = (t: [string, number] | null, typeId: number): object[] => (t ? [{ SpecialToken: { id: t[0], type_id: typeId } }] : []);
  const seq = (id: string, typeId: number): object => ({ Sequence: { id, type_id: typeId } });
  const specialTokens: Record<string, object> = {};
  for (const t of [bos, eos]) if (t) specialTokens[t[0]] = { id: t[0], ids: [t[1]], tokens: [t[0]] };
  return {
    type: "TemplateProcessing",
    single: [...piece(bos, 0), seq("A", 0), ...piece(eos, 0)],
    pair: [...piece(bos, 0), seq("A", 0), ...piece(eos, 0), ...piece(bos, 1), seq("B", 1), ...piece(eos, 1)],
    special_tokens: specialTokens,
  };
}

/** Reads and parses a JSON file; a missing required file or bad JSON is a `FormatError` naming the file. */
function readTextFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new FormatError(`${path}: cannot read: ${(e as Error).message}`, path);
  }
}

function readJsonFile(path: string, required: boolean): unknown {
  if (!existsSync(path)) {
    if (!required) return undefined;
    throw new FormatError(`${path}: file not found (a tokenizer directory needs tokenizer.json and tokenizer_config.json)`, path);
  }
  const text = readTextFile(path);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(`${path}: not valid JSON: ${(e as Error).message}`, path);
  }
}

/** Validates a parsed file with a zod schema; a mismatch is a `FormatError` naming the file and the field. */
function parseFile<S extends z.ZodType>(schema: S, value: unknown, file: string): z.output<S> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new FormatError(`${file}: expected a JSON object, got ${showValue(value)}`, file);
  }
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const given = issue.path.reduce<unknown>(
    (v, k) => (v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[k as PropertyKey] : undefined),
    value,
  );
  throw new FormatError(`${file}: ${issue.path.map(String).join(".")}: ${issue.message}, got ${showValue(given)}`, file);
}
