/**
 * Streaming detokenization: concatenated deltas equal decode(allIds), no delta carries U+FFFD for valid text,
 * whatever the chunking, and a push costs O(new ids).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ValidationError } from "../lib/util/errors.ts";
import { type DecodeOptions, LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { IncrementalDetokenizer } from "../lib/tokenizer/detokenizer.ts";
import { assert, test, tokenizerSets } from "./harness.ts";

const SETS = tokenizerSets;
const OPTION_SETS: DecodeOptions[] = [
  {},
  { skipSpecialTokens: false },
  { skipSpecialTokens: false, spacesBetweenSpecialTokens: false },
];

const loaded = new Map<string, LlmTokenizer>();
function tokenizer(name: string): LlmTokenizer {
  let t = loaded.get(name);
  if (!t) loaded.set(name, t = LlmTokenizer.fromDir(SETS[name]));
  return t;
}
function refTexts(name: string): { text: string; ids: number[] }[] {
  return JSON.parse(readFileSync(join(SETS[name], "reference_encodings.json"), "utf8")).encodings;
}

/** mulberry32: a small seeded PRNG so chunkings are reproducible. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits ids into chunks of 1..maxChunk. */
function chunk(ids: readonly number[], rand: () => number, maxChunk: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < ids.length;) {
    const n = 1 + Math.floor(rand() * maxChunk);
    out.push(ids.slice(i, i + n));
    i += n;
  }
  return out;
}

/** Streams `chunks` through a fresh detokenizer; returns the deltas (flush last). */
function stream(tok: LlmTokenizer, chunks: number[][], opts: DecodeOptions & { promptIds?: number[] } = {}): string[] {
  const d = tok.createDetokenizer(opts);
  const deltas = chunks.map((c) => d.push(c));
  deltas.push(d.flush());
  assert.equal(d.text, deltas.join(""));
  assert.deepEqual(d.tokenIds, chunks.flat());
  return deltas;
}

for (const name of Object.keys(SETS)) {
  test(`${name}: streaming every reference text one id at a time equals decode(), no U+FFFD`, () => {
    const tok = tokenizer(name);
    for (const { text, ids } of refTexts(name)) {
      for (const opts of OPTION_SETS) {
        const deltas = stream(tok, ids.map((id) => [id]), opts);
        const label = `${JSON.stringify(text)} ${JSON.stringify(opts)}`;
        assert.equal(deltas.join(""), tok.decode(ids, opts), label);
        assert.ok(!deltas.some((d) => d.includes("\uFFFD")), `U+FFFD in a delta of ${label}: ${JSON.stringify(deltas)}`);
      }
    }
  });

  test(`${name}: streaming in random chunk sizes equals decode(), no U+FFFD`, () => {
    const tok = tokenizer(name);
    const rand = rng(name.length * 7919);
    for (const { text, ids } of refTexts(name)) {
      for (const opts of OPTION_SETS) {
        for (let trial = 0; trial < 6; trial++) {
          const chunks = chunk(ids, rand, 1 + trial);
          const deltas = stream(tok, chunks, opts);
          const label = `${JSON.stringify(text)} ${JSON.stringify(opts)} ${JSON.stringify(chunks)}`;
          assert.equal(deltas.join(""), tok.decode(ids, opts), label);
          assert.ok(!deltas.some((d) => d.includes("\uFFFD")), `U+FFFD in a delta of ${label}`);
        }
      }
    }
  });
}

test("multi-byte characters are held back until complete (byte fallback and byte-level)", () => {
  const tiny = tokenizer("tinyllama-chat");
  // "🤖" is <0xF0><0x9F><0xA4><0x96> in the Llama vocabulary.
  assert.deepEqual(stream(tiny, [[953], [29877], [2397], [29871], [243], [162], [167], [153]]), [
    "em",
    "o",
    "ji",
    " ",
    "",
    "",
    "",
    "🤖",
    "",
  ]);
  const sm = tokenizer("smollm2-135m-ft-chatml");
  const ids = sm.encode("a🤖b", { addSpecialTokens: false });
  const deltas = stream(sm, ids.map((id) => [id]));
  assert.equal(deltas.join(""), "a🤖b");
  assert.ok(deltas.includes("🤖"), JSON.stringify(deltas));
});

test("an incomplete character at the end becomes U+FFFD only at flush, as decode() gives it", () => {
  const tiny = tokenizer("tinyllama-chat");
  const d = tiny.createDetokenizer();
  assert.equal(d.push([15043, 243, 162]), "Hello");
  assert.equal(d.flush(), "\uFFFD");
  assert.equal(d.text, tiny.decode([15043, 243, 162]));
});

test("invalid bytes are given up after 3 more ids, so the held window stays bounded", () => {
  const st = tokenizer("stories260k");
  const cont = st.tokenToId("<0x80>")!; // a lone continuation byte: never valid
  const deltas = stream(st, [[cont], [cont], [cont], [cont], [cont]]);
  assert.deepEqual(deltas, ["", "", "", "\uFFFD", "\uFFFD", "\uFFFD\uFFFD\uFFFD"]);
  assert.equal(deltas.join(""), st.decode([cont, cont, cont, cont, cont]));
});

test("random ids (invalid byte runs, special tokens) still concatenate to decode() for every chunking", () => {
  const rand = rng(99);
  for (const name of ["tinyllama-chat", "smollm2-135m-ft-chatml", "stories260k"]) {
    const tok = tokenizer(name);
    const special = [...tok.specialTokenIds];
    for (let trial = 0; trial < 150; trial++) {
      const ids = Array.from({ length: 1 + Math.floor(rand() * 30) }, () => {
        const r = rand();
        if (r < 0.35) return 3 + Math.floor(rand() * 256); // byte tokens (Llama) / single-byte symbols (GPT-2)
        if (r < 0.42) return special[Math.floor(rand() * special.length)];
        return Math.floor(rand() * tok.vocabSize);
      });
      for (const opts of OPTION_SETS) {
        const deltas = stream(tok, chunk(ids, rand, 4), opts);
        assert.equal(deltas.join(""), tok.decode(ids, opts), `${name} ${JSON.stringify(ids)} ${JSON.stringify(opts)}`);
      }
    }
  }
});

test("promptIds: the continuation keeps the SentencePiece leading space (as vLLM)", () => {
  const tiny = tokenizer("tinyllama-chat");
  const prompt = tiny.encode("Once upon a time,"); // [1, 9038, 2501, 263, 931, 29892]
  const gen = [727, 471]; // "▁there", "▁was"
  assert.deepEqual(stream(tiny, [[727], [471]], { promptIds: prompt }), [" there", " was", ""]);
  assert.deepEqual(stream(tiny, [[727], [471]]), ["there", " was", ""]);
  const all = tiny.decode([...prompt, ...gen]);
  assert.equal(all, "Once upon a time, there was");
});

test("promptIds after a chat prompt: deltas equal decode(prompt + generated) less decode(prompt)", () => {
  const gens: Record<string, string> = {
    "tinyllama-chat": " 6, of course. 🤖 中文",
    "phi-3-mini": "6. Also: naïve café — 中文字符 🚀",
    "smollm2-135m-ft-chatml": "6.<|im_end|>\nThanks 🤖",
  };
  const rand = rng(5);
  for (const [name, genText] of Object.entries(gens)) {
    const tok = tokenizer(name);
    const messages = [{ role: "user", content: "And 3+3?" }];
    const prompt = tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), { addSpecialTokens: false });
    const gen = tok.encode(genText, { addSpecialTokens: false });
    for (const opts of OPTION_SETS) {
      const whole = tok.decode([...prompt, ...gen], opts);
      const head = tok.decode(prompt, opts);
      assert.ok(whole.startsWith(head), `${name} ${JSON.stringify(opts)}`);
      for (const maxChunk of [1, 3]) {
        const deltas = stream(tok, chunk(gen, rand, maxChunk), { ...opts, promptIds: prompt });
        assert.equal(deltas.join(""), whole.slice(head.length), `${name} ${JSON.stringify(opts)}`);
        assert.ok(!deltas.some((d) => d.includes("\uFFFD")));
      }
    }
  }
});

test("push validates ids (ValidationError naming the id) and keeps its state", () => {
  const tiny = tokenizer("tinyllama-chat");
  const d = tiny.createDetokenizer();
  assert.equal(d.push([15043]), "Hello");
  assert.throws(() => d.push([3186, 40000]), (e: unknown) => e instanceof ValidationError && /token id 40000 at index 1/.test(e.message));
  assert.equal(d.push([3186]), " world");
  assert.equal(d.text, "Hello world");
  assert.deepEqual(d.tokenIds, [15043, 3186]);
  assert.throws(() => tiny.createDetokenizer({ promptIds: [1, -3] }), /promptIds: token id -3/);
});

test("a push costs O(new ids): total ids decoded stays proportional to ids pushed", () => {
  const tok = tokenizer("smollm2-135m-ft-chatml");
  const text = Array.from({ length: 400 }, (_, i) => `Line ${i}: naïve café 中文 🤖 and more words.`).join("\n");
  const ids = tok.encode(text, { addSpecialTokens: false });
  assert.ok(ids.length > 5000, `${ids.length}`);
  let decodedIds = 0;
  const counting = {
    decode: (x: readonly number[], o?: DecodeOptions) => {
      decodedIds += x.length;
      return tok.decode(x, o);
    },
    validateIds: (x: readonly number[], what?: string) => tok.validateIds(x, what),
    idToToken: (id: number) => tok.idToToken(id),
    specialTokenIds: tok.specialTokenIds,
  } as unknown as LlmTokenizer;
  const d = new IncrementalDetokenizer(counting);
  let out = "";
  for (const id of ids) out += d.push([id]);
  out += d.flush();
  assert.equal(out, text);
  assert.ok(decodedIds < ids.length * 12, `decoded ${decodedIds} ids in total for ${ids.length} pushed`);
});

test("piecewise decoders: the shared tokenizers qualify, and a warm stream decodes only its first id (continuation texts cached)", () => {
  for (const name of Object.keys(SETS)) assert.equal(tokenizer(name).piecewiseDecoding, true, name);
  const tok = tokenizer("smollm2-135m-ft-chatml");
  // ASCII: every id's bytes are complete UTF-8 (a character split over ids takes the decoding path).
  const text = Array.from({ length: 50 }, (_, i) => `Line ${i}: naive cafe and more words.`).join("\n");
  const ids = tok.encode(text, { addSpecialTokens: false });
  let decodedIds = 0;
  const counting = {
    decode: (x: readonly number[], o?: DecodeOptions) => {
      decodedIds += x.length;
      return tok.decode(x, o);
    },
    validateIds: (x: readonly number[], what?: string) => tok.validateIds(x, what),
    idToToken: (id: number) => tok.idToToken(id),
    specialTokenIds: tok.specialTokenIds,
    piecewiseDecoding: true,
  } as unknown as LlmTokenizer;
  const run = (): string => {
    const d = new IncrementalDetokenizer(counting);
    let out = "";
    for (const id of ids) out += d.push([id]);
    return out + d.flush();
  };
  assert.equal(run(), text);
  const cold = decodedIds;
  decodedIds = 0;
  assert.equal(run(), text);
  // Only the stream's first id is decoded (it has no emitted id before it); cold, each distinct id once or twice.
  assert.equal(decodedIds, 1, `warm stream decoded ${decodedIds} ids (cold ${cold})`);
});
