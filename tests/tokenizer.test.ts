/**
 * LlmTokenizer against transformers: every reference_encodings.json entry of every shared tokenizer set must match
 * exactly (ids with and without special tokens, decoded text, decoded text with special tokens).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FormatError, ValidationError } from "../lib/util/errors.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { assert, test, tokenizerSets } from "./harness.ts";

interface RefEncoding {
  text: string;
  ids: number[];
  ids_no_special: number[];
  decoded: string;
  decoded_with_special: string;
}

const SETS = tokenizerSets;

const loaded = new Map<string, LlmTokenizer>();
function tokenizer(name: string): LlmTokenizer {
  let t = loaded.get(name);
  if (!t) loaded.set(name, t = LlmTokenizer.fromDir(SETS[name]));
  return t;
}
function refs(name: string): RefEncoding[] {
  return JSON.parse(readFileSync(join(SETS[name], "reference_encodings.json"), "utf8")).encodings;
}
function readJson(name: string, file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(SETS[name], file), "utf8"));
}

for (const name of Object.keys(SETS)) {
  test(`${name}: encode with special tokens equals transformers for every reference text`, () => {
    const tok = tokenizer(name);
    const entries = refs(name);
    assert.ok(entries.length >= 9);
    assert.deepEqual(entries.map((e) => tok.encode(e.text)), entries.map((e) => e.ids));
  });

  test(`${name}: encode without special tokens equals transformers`, () => {
    const tok = tokenizer(name);
    const entries = refs(name);
    assert.deepEqual(entries.map((e) => tok.encode(e.text, { addSpecialTokens: false })), entries.map((e) => e.ids_no_special));
  });

  test(`${name}: decode (special tokens skipped) equals transformers`, () => {
    const tok = tokenizer(name);
    const entries = refs(name);
    assert.deepEqual(entries.map((e) => tok.decode(e.ids)), entries.map((e) => e.decoded));
  });

  test(`${name}: decode with special tokens (no added spaces) equals transformers`, () => {
    const tok = tokenizer(name);
    const entries = refs(name);
    const opts = { skipSpecialTokens: false, spacesBetweenSpecialTokens: false };
    assert.deepEqual(entries.map((e) => tok.decode(e.ids, opts)), entries.map((e) => e.decoded_with_special));
  });

  test(`${name}: round trip decode(encode(text)) is the text, but for SentencePiece's first space and skipped specials`, () => {
    const tok = tokenizer(name);
    for (const e of refs(name)) {
      const back = tok.decode(tok.encode(e.text));
      assert.equal(back, e.decoded, JSON.stringify(e.text));
      const lossy = /^ /.test(e.text) || /<s>|<\/s>/.test(e.text);
      if (!lossy) assert.equal(back, e.text, JSON.stringify(e.text));
    }
  });
}

test("special token ids and vocabulary sizes of every set", () => {
  const expected: Record<string, [number, number | null, number | null, number | null, number[], number]> = {
    // name: [vocabSize, bos, eos, pad, stopTokenIds, number of special ids]
    "tinyllama-chat": [32000, 1, 2, 2, [2], 3],
    "phi-3-mini": [32011, 1, 32000, 32000, [32000], 13],
    "smollm": [49153, 0, 0, 49152, [0], 18],
    "smollm2-135m-ft-chatml": [49152, 1, 2, 2, [2], 17],
    "stories260k": [512, 1, 2, null, [2], 3],
  };
  for (const [name, [vocab, bos, eos, pad, stops, numSpecial]] of Object.entries(expected)) {
    const tok = tokenizer(name);
    assert.deepEqual(
      [tok.vocabSize, tok.bosTokenId, tok.eosTokenId, tok.padTokenId, [...tok.stopTokenIds], tok.specialTokenIds.size],
      [vocab, bos, eos, pad, stops, numSpecial],
      name,
    );
  }
  const phi = tokenizer("phi-3-mini");
  assert.ok(phi.specialTokenIds.has(32007) && phi.specialTokenIds.has(32010));
  assert.ok(!phi.specialTokenIds.has(2), `"</s>" is an added token with special=false in phi-3-mini`);
  assert.ok(tokenizer("smollm").specialTokenIds.has(49152));
});

test("idToToken / tokenToId", () => {
  const tok = tokenizer("tinyllama-chat");
  assert.equal(tok.idToToken(15043), "\u2581Hello");
  assert.equal(tok.idToToken(243), "<0xF0>");
  assert.equal(tok.tokenToId("<0x0A>"), 13);
  assert.equal(tok.tokenToId("</s>"), 2);
  assert.equal(tok.tokenToId("no such token"), undefined);
  assert.equal(tok.idToToken(32000), undefined);
  const sm = tokenizer("smollm2-135m-ft-chatml");
  assert.equal(sm.idToToken(905), "\u0120world");
  assert.equal(sm.tokenToId("<|im_end|>"), 2);
});

test("decode of an empty list is empty; encode of an empty string has only the BOS", () => {
  assert.equal(tokenizer("tinyllama-chat").decode([]), "");
  assert.deepEqual(tokenizer("tinyllama-chat").encode(""), [1]);
  assert.deepEqual(tokenizer("smollm2-135m-ft-chatml").encode(""), []);
});

test("decode rejects ids outside the vocabulary with a ValidationError naming the id", () => {
  const tok = tokenizer("tinyllama-chat");
  assert.throws(() => tok.decode([15043, 32000]), (e: unknown) => {
    assert.ok(e instanceof ValidationError);
    assert.match(e.message, /token id 32000 at index 1 is not in the vocabulary \(valid ids 0\.\.31999\)/);
    return true;
  });
  assert.throws(() => tok.decode([-1]), /token id -1 at index 0/);
  assert.throws(() => tok.decode([1.5]), /token id 1\.5 at index 0/);
  assert.throws(() => tokenizer("smollm").decode([49153]), /token id 49153/);
  assert.equal(tokenizer("smollm").decode([49152], { skipSpecialTokens: false }), "[PAD]");
});

test("spacesBetweenSpecialTokens (default true) spaces kept special tokens apart, run by run", () => {
  const tiny = tokenizer("tinyllama-chat");
  const ids = [1, 1, 16333, 4266, 29871, 2]; // "<s> literal special </s>"
  assert.equal(tiny.decode(ids, { skipSpecialTokens: false }), "<s> <s> literal special  </s>");
  assert.equal(tiny.decode(ids, { skipSpecialTokens: false, spacesBetweenSpecialTokens: false }), "<s><s> literal special </s>");
  assert.equal(tiny.decode(ids, { spacesBetweenSpecialTokens: true }), "literal special ", "no effect when specials are skipped");
  const sm = tokenizer("smollm2-135m-ft-chatml");
  const chat = sm.encode("<|im_start|>user\nHi<|im_end|>\n", { addSpecialTokens: false });
  assert.equal(sm.decode(chat, { skipSpecialTokens: false }), "<|im_start|> user\nHi <|im_end|> \n");
  assert.equal(sm.decode(chat, { skipSpecialTokens: false, spacesBetweenSpecialTokens: false }), "<|im_start|>user\nHi<|im_end|>\n");
  // A non-special added token (phi-3 "</s>") is plain text for both options.
  const phi = tokenizer("phi-3-mini");
  assert.equal(phi.decode([1, 16333, 4266, 29871, 2], { skipSpecialTokens: false }), "<s> literal special </s>");
});

test("smollm: tokenizer.json truncation (192) and padding (Fixed 192, [PAD]) are never applied", () => {
  const sm = tokenizer("smollm");
  const text = Array.from({ length: 30 }, (_, i) => `Sentence number ${i} is here.`).join(" ");
  const ids = sm.encode(text);
  assert.ok(ids.length > 192, `expected more than 192 ids, got ${ids.length}`);
  assert.ok(!ids.includes(49152));
  assert.equal(sm.decode(ids), text);
  // Same vocabulary and merges, no truncation/padding sections: identical ids.
  assert.deepEqual(ids, tokenizer("smollm2-135m-ft-chatml").encode(text));
  assert.deepEqual(sm.encode("Hello world"), [19556, 905]);
});

test("fromJson gives the same tokenizer as fromDir", () => {
  const tok = LlmTokenizer.fromJson(readJson("phi-3-mini", "tokenizer.json"), readJson("phi-3-mini", "tokenizer_config.json"));
  for (const e of refs("phi-3-mini")) assert.deepEqual(tok.encode(e.text), e.ids);
  assert.equal(tok.eosTokenId, 32000);
  assert.equal(tok.hasChatTemplate, true);
});

test("LlamaTokenizer: legacy selects transformers' prepend scheme (docstring example 'Hello <s>.')", () => {
  const json = readJson("tinyllama-chat", "tokenizer.json");
  const config = readJson("tinyllama-chat", "tokenizer_config.json");
  // transformers' LlamaTokenizer docstring: legacy=False -> [1, 15043, 29871, 1, 29889]; legacy=True -> [..., 869] ("▁.")
  assert.deepEqual(LlmTokenizer.fromJson(json, { ...config, legacy: false }).encode("Hello <s>."), [1, 15043, 29871, 1, 29889]);
  assert.deepEqual(LlmTokenizer.fromJson(json, { ...config, legacy: true }).encode("Hello <s>."), [1, 15043, 29871, 1, 869]);
  const noPrefix = LlmTokenizer.fromJson(json, { ...config, add_prefix_space: false });
  assert.deepEqual(noPrefix.encode("Hello world"), [1, 10994, 3186]);
  assert.equal(noPrefix.decode([15043, 3186]), " Hello world");
});

test("add_bos_token / add_eos_token in tokenizer_config.json rebuild the BOS/EOS template", () => {
  const json = readJson("tinyllama-chat", "tokenizer.json");
  const config = readJson("tinyllama-chat", "tokenizer_config.json");
  assert.deepEqual(LlmTokenizer.fromJson(json, { ...config, add_eos_token: true }).encode("Hello world"), [1, 15043, 3186, 2]);
  assert.deepEqual(LlmTokenizer.fromJson(json, { ...config, add_bos_token: false }).encode("Hello world"), [15043, 3186]);
  assert.deepEqual(
    LlmTokenizer.fromJson(json, { ...config, add_eos_token: true }).encode("Hello world", { addSpecialTokens: false }),
    [15043, 3186],
  );
  const sm = readJson("smollm2-135m-ft-chatml", "tokenizer.json");
  const smConfig = readJson("smollm2-135m-ft-chatml", "tokenizer_config.json");
  assert.deepEqual(LlmTokenizer.fromJson(sm, { ...smConfig, add_bos_token: true }).encode("Hello world"), [1, 19556, 905]);
});

test("generation_config.json fills missing ids and adds stop ids", () => {
  const json = readJson("stories260k", "tokenizer.json");
  const config = readJson("stories260k", "tokenizer_config.json");
  const tok = LlmTokenizer.fromJson(json, { ...config, eos_token: null }, {
    generationConfig: { eos_token_id: [2, 1], pad_token_id: 0 },
  });
  assert.equal(tok.eosTokenId, 2);
  assert.deepEqual([...tok.stopTokenIds], [2, 1]);
  assert.equal(tok.padTokenId, 0);
});

function withTempDir(files: Record<string, string>, fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "llmrt-tok-"));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertFormatError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test("malformed or missing files are FormatErrors naming the file", () => {
  const tokJson = readFileSync(join(SETS["stories260k"], "tokenizer.json"), "utf8");
  const config = readFileSync(join(SETS["stories260k"], "tokenizer_config.json"), "utf8");
  withTempDir({ "tokenizer_config.json": config }, (dir) => {
    assertFormatError(() => LlmTokenizer.fromDir(dir), /tokenizer\.json: file not found/);
  });
  withTempDir({ "tokenizer.json": tokJson }, (dir) => {
    assertFormatError(() => LlmTokenizer.fromDir(dir), /tokenizer_config\.json: file not found/);
  });
  withTempDir({ "tokenizer.json": tokJson.slice(0, 1000), "tokenizer_config.json": config }, (dir) => {
    assertFormatError(() => LlmTokenizer.fromDir(dir), /tokenizer\.json: not valid JSON/);
  });
  withTempDir({ "tokenizer.json": tokJson, "tokenizer_config.json": "{ bad" }, (dir) => {
    assertFormatError(() => LlmTokenizer.fromDir(dir), /tokenizer_config\.json: not valid JSON/);
  });
  withTempDir({ "tokenizer.json": tokJson, "tokenizer_config.json": "[1, 2]" }, (dir) => {
    assertFormatError(() => LlmTokenizer.fromDir(dir), /tokenizer_config\.json: expected a JSON object/);
  });
  withTempDir({ "tokenizer.json": JSON.stringify({ version: "1.0" }), "tokenizer_config.json": config }, (dir) => {
    assertFormatError(() => LlmTokenizer.fromDir(dir), /tokenizer\.json: model: /);
  });
  withTempDir({ "tokenizer.json": tokJson, "tokenizer_config.json": JSON.stringify({ bos_token: 5 }) }, (dir) => {
    assertFormatError(() => LlmTokenizer.fromDir(dir), /tokenizer_config\.json: bos_token: .*got 5/);
  });
  withTempDir({ "tokenizer.json": tokJson, "tokenizer_config.json": config, "generation_config.json": "{" }, (dir) => {
    assertFormatError(() => LlmTokenizer.fromDir(dir), /generation_config\.json: not valid JSON/);
  });
  assertFormatError(() => LlmTokenizer.fromDir(join(tmpdir(), "llmrt-no-such-dir-4711")), /tokenizer\.json: file not found/);
  assertFormatError(() => LlmTokenizer.fromJson({ model: { type: "NoSuchModel", vocab: {} } }, {}), /tokenizer\.json/);
});

test("encode rejects a non-string", () => {
  assert.throws(() => tokenizer("smollm").encode(42 as unknown as string), ValidationError);
});
