/**
 * The hostile-input corpus: malformed configs, safetensors, engines, tokenizers, prompts, sampling
 * fields and option objects, generated as mutations of a valid tiny checkpoint written to a temp dir.
 *
 * Every case ends in one of two ways, or the case fails:
 * - an `LlmrtError` of an accepted kind whose message names the file or field and the value
 *   (`expect` checks the message), or
 * - a normal return that `ok` checks is a correct result (never silent garbage).
 * A crash (a non-llmrt error), a hang (past the per-case timeout) or a wrong result fails the case.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { buildSync } from "../../lib/builder/builder.ts";
import { Engine } from "../../lib/builder/engine.ts";
import { SamplingParamsSchema } from "../../lib/executor/sampling_params.ts";
import type { LLM } from "../../lib/llmapi/llm.ts";
import { AutoModelForCausalLM } from "../../lib/models/llama.ts";
import { ModelRunner } from "../../lib/runtime/model_runner.ts";
import { type ErrorKind, LlmrtError, showValue } from "../../lib/util/errors.ts";
import { blobOffset, type Meta, readMeta, rewriteMeta } from "./engine_edit.ts";
import { tempDir } from "./fixtures.ts";

/** One hostile input and what must come of it. */
export interface HostileCase {
  readonly name: string;
  readonly run: () => unknown;
  /** Error kinds accepted. */
  readonly kinds: readonly ErrorKind[];
  /** Checks a thrown LlmrtError's message names what it must (returns a complaint, or null). */
  readonly expect: (e: LlmrtError) => string | null;
  /** When present, a normal return is acceptable if this finds the result correct (throws if not). */
  readonly ok?: (result: unknown) => void | Promise<void>;
  /**
   * A known shortfall in code outside this suite's owner (named with the file): the case runs and a
   * failure is reported as a known gap instead of failing the suite; once it holds, the runner says so.
   */
  readonly knownGap?: string;
}

/** The outcome of one case: null when it held, else what went wrong. */
export async function runCase(c: HostileCase, timeoutMs = 20_000): Promise<string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<"hang">((resolve) => (timer = setTimeout(() => resolve("hang"), timeoutMs)));
  let outcome: { threw: unknown } | { value: unknown } | "hang";
  try {
    outcome = await Promise.race([Promise.resolve().then(c.run).then((value) => ({ value })), hang]);
  } catch (e) {
    outcome = { threw: e };
  } finally {
    clearTimeout(timer);
  }
  if (outcome === "hang") return `hung for ${timeoutMs} ms`;
  if ("value" in outcome) {
    if (!c.ok) return `returned normally (${showValue(outcome.value)}) but an error was required`;
    try {
      await c.ok(outcome.value);
      return null;
    } catch (e) {
      return `returned a wrong result: ${(e as Error).message}`;
    }
  }
  const e = outcome.threw;
  if (!(e instanceof LlmrtError)) return `crashed with a non-llmrt error: ${(e as Error)?.stack ?? String(e)}`;
  if (!c.kinds.includes(e.kind)) return `error of kind ${e.kind}, expected ${c.kinds.join("/")}: ${e.message}`;
  const why = c.expect(e);
  return why ? `${why}: ${e.message}` : null;
}

/** The message contains every string (each group: at least one of its alternatives). */
export function mentions(...groups: (string | readonly string[])[]): (e: LlmrtError) => string | null {
  return (e) => {
    for (const g of groups) {
      const alts = typeof g === "string" ? [g] : g;
      if (alts.length === 0) continue; // nothing to show (an empty container, a function)
      if (!alts.some((a) => e.message.includes(a))) return `message does not mention ${alts.map((a) => JSON.stringify(a)).join(" or ")}`;
    }
    return null;
  };
}

/**
 * How a value may show in a message: itself (shortened as showValue does), or for a container the
 * offending element; nothing is required of an empty container or a function (the field is named).
 */
export function valueText(v: unknown): string[] {
  if (typeof v === "function") return [];
  if (typeof v === "number" && !Number.isFinite(v)) return [String(v), "null", "number"];
  const parts = Array.isArray(v) ? v : v !== null && typeof v === "object" ? [...Object.keys(v), ...Object.values(v)] : [];
  if ((Array.isArray(v) || (v !== null && typeof v === "object")) && parts.length === 0) return [];
  const s = showValue(v);
  return [s.length > 40 ? s.slice(0, 40) : s, ...parts.flatMap((p) => (typeof p === "string" ? [p] : [showValue(p), String(p)]))];
}

const BUILD = { maxBatchSize: 2, maxNumTokens: 64 };

function copyDir(src: string): string {
  const dir = tempDir();
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  return dir;
}

function buildDir(dir: string): Engine {
  const model = AutoModelForCausalLM.fromHuggingFace(dir);
  try {
    return buildSync(model, BUILD);
  } finally {
    model.close();
  }
}

const isEngine = (r: unknown): void => {
  if (!(r instanceof Engine)) throw new Error(`expected an Engine, got ${showValue(r)}`);
  if (r.plan.ops.length === 0) throw new Error("engine with an empty plan");
  r.dispose();
};

// ---------------------------------------------------------------------------------------------
// configs

const CONFIG_FIELDS = [
  "vocab_size",
  "hidden_size",
  "intermediate_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "max_position_embeddings",
  "head_dim",
  "rms_norm_eps",
  "rope_theta",
];
const BAD_VALUES: unknown[] = [0, -1, 1.5, "8", true, [], {}, 1e9, 1e300, "x".repeat(5000)];

/** config.json mutations of the checkpoint in `base`; each builds an engine. */
export function configCases(base: string): HostileCase[] {
  const cases: HostileCase[] = [];
  const withConfig = (name: string, edit: (c: Record<string, unknown>) => unknown, check: Omit<HostileCase, "name" | "run">): void => {
    cases.push({
      name: `config: ${name}`,
      run: () => {
        const dir = copyDir(base);
        const file = path.join(dir, "config.json");
        const c = JSON.parse(fs.readFileSync(file, "utf8"));
        const replaced = edit(c);
        fs.writeFileSync(file, typeof replaced === "string" ? replaced : JSON.stringify(replaced === undefined ? c : replaced));
        return buildDir(dir);
      },
      ...check,
    });
  };
  for (const field of CONFIG_FIELDS) {
    for (const v of BAD_VALUES) {
      // eps and theta: any positive number is a legal (if odd) model; the engine must build.
      const legal = (field === "rms_norm_eps" || field === "rope_theta") && typeof v === "number" && v > 0 && Number.isFinite(v);
      withConfig(`${field} = ${showValue(v).slice(0, 30)}`, (c) => void (c[field] = v), {
        kinds: ["validation", "resource", "format"],
        // A value zod accepts but the checkpoint contradicts is a shape error naming the tensor.
        expect: (e) => e.kind === "format" ? mentions("model.safetensors", "'model.", "expected [")(e) : mentions(field, valueText(v))(e),
        ...(legal ? { ok: isEngine } : {}),
      });
    }
  }
  for (const field of ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"]) {
    withConfig(`${field} missing`, (c) => void delete c[field], { kinds: ["validation"], expect: mentions(field, "missing") });
  }
  const wholeFile: [string, string][] = [["empty file", ""], ["not JSON", "{ vocab_size: 512"], ["truncated JSON", '{"vocab_size": 5'], [
    "NaN literal",
    '{"vocab_size": NaN}',
  ]];
  for (const [name, text] of wholeFile) withConfig(name, () => text, { kinds: ["format"], expect: mentions("config.json", ["JSON", "read"]) });
  for (const v of [null, [], "llama", 42]) {
    withConfig(`config is ${showValue(v)}`, () => JSON.stringify(v), { kinds: ["validation", "format"], expect: mentions("config.json", valueText(v)) });
  }
  const fieldCases: [string, unknown, string[]][] = [
    ["architectures", ["GPT2LMHeadModel"], ["architectures", "GPT2LMHeadModel"]],
    ["architectures", "LlamaForCausalLM", ["architectures", '"LlamaForCausalLM"']],
    ["model_type", "bert", ["model_type", "bert"]],
    ["model_type", 7, ["model_type", "7"]],
    ["hidden_act", "gelu", ["hidden_act", "gelu"]],
    ["rope_scaling", { type: "weird", factor: 2 }, ["rope_scaling", "weird"]],
    ["rope_scaling", { rope_type: "linear" }, ["rope_scaling.factor", "linear"]],
    ["rope_scaling", { rope_type: "llama3", factor: 8, low_freq_factor: 4, high_freq_factor: 1 }, ["rope_scaling.high_freq_factor", "1"]],
    ["rope_scaling", "linear", ["rope_scaling", '"linear"']],
    ["tie_word_embeddings", "yes", ["tie_word_embeddings", '"yes"']],
    ["eos_token_id", "2", ["eos_token_id", '"2"']],
    ["eos_token_id", [1.5], ["eos_token_id", "1.5"]],
    ["bos_token_id", -0.5, ["bos_token_id", "-0.5"]],
    ["torch_dtype", "float64", ["torch_dtype", "float64"]],
    ["partial_rotary_factor", 0.5, ["partial_rotary_factor", "0.5"]],
    ["rms_norm_eps", -1e-5, ["rms_norm_eps", "-0.00001"]],
    ["rope_theta", -10000, ["rope_theta", "-10000"]],
    ["num_key_value_heads", 3, ["num_key_value_heads", "3"]],
  ];
  for (const [field, v, words] of fieldCases) {
    withConfig(`${field} = ${showValue(v)}`, (c) => void (c[field] = v), { kinds: ["validation"], expect: mentions(...words) });
  }
  withConfig("mistral model_type with a llama architecture", (c) => void (c.model_type = "mistral"), {
    kinds: ["validation"],
    expect: mentions("architectures", "mistral"),
  });
  withConfig("an unknown key is ignored", (c) => void (c.some_future_key = { a: 1 }), { kinds: [], expect: () => "must build", ok: isEngine });
  withConfig("num_key_value_heads null means = heads (checkpoint disagrees)", (c) => void (c.num_key_value_heads = null), {
    kinds: ["format"],
    expect: mentions("k_proj", "expected ["),
  });
  return cases;
}

// ---------------------------------------------------------------------------------------------
// safetensors

function readHeader(file: string): { header: Record<string, unknown>; data: Uint8Array } {
  const b = fs.readFileSync(file);
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n))), data: b.subarray(8 + n) };
}

function writeHeader(file: string, header: unknown, data: Uint8Array): void {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  fs.writeFileSync(file, out);
}

/** model.safetensors mutations (bytes, header, tensors) of the checkpoint in `base`. */
export function safetensorsCases(base: string, generate: (dir: string) => Promise<unknown>): HostileCase[] {
  const cases: HostileCase[] = [];
  const size = fs.statSync(path.join(base, "model.safetensors")).size;
  const headerLen = Number(new DataView(fs.readFileSync(path.join(base, "model.safetensors")).buffer).getBigUint64(0, true));
  const withFile = (name: string, edit: (file: string) => void, check: Omit<HostileCase, "name" | "run">, run: (dir: string) => unknown = buildDir): void => {
    cases.push({
      name: `safetensors: ${name}`,
      run: () => {
        const dir = copyDir(base);
        edit(path.join(dir, "model.safetensors"));
        return run(dir);
      },
      ...check,
    });
  };
  const fileErr = { kinds: ["format"] as ErrorKind[], expect: mentions("model.safetensors") };
  for (const n of [0, 4, 7, 8, 8 + (headerLen >> 1), 8 + headerLen, 8 + headerLen + 100, size - 1]) {
    withFile(`truncated to ${n} bytes`, (f) => fs.writeFileSync(f, fs.readFileSync(f).subarray(0, n)), fileErr);
  }
  for (const len of [0n, 1n, BigInt(size), 2n ** 40n, 2n ** 63n]) {
    withFile(`header length ${len}`, (f) => {
      const b = fs.readFileSync(f);
      new DataView(b.buffer, b.byteOffset).setBigUint64(0, len, true);
      fs.writeFileSync(f, b);
    }, fileErr);
  }
  for (const at of [8, 9, 8 + (headerLen >> 2), 8 + (headerLen >> 1), 8 + headerLen - 1]) {
    withFile(`header byte ${at} set to 0xff`, (f) => {
      const b = fs.readFileSync(f);
      b[at] = 0xff;
      fs.writeFileSync(f, b);
    }, fileErr);
  }
  const headerEdits: [string, (h: Record<string, Record<string, unknown>>) => unknown][] = [
    ["header is an array", () => [1, 2]],
    ["entry is a string", (h) => void (h["model.norm.weight"] = "F32" as unknown as Record<string, unknown>)],
    ["dtype F128", (h) => void (h["model.norm.weight"].dtype = "F128")],
    ["dtype I32 for a float weight", (h) => void (h["model.norm.weight"].dtype = "I32")],
    ["dtype U8 for a projection (size-consistent)", (h) => {
      const t = h["model.layers.0.mlp.down_proj.weight"];
      t.dtype = "U8";
      t.shape = [(t.shape as number[])[0] * 4, (t.shape as number[])[1]];
    }],
    ["shape with a negative dim", (h) => void (h["model.norm.weight"].shape = [-32])],
    ["shape with a string", (h) => void (h["model.norm.weight"].shape = ["32"])],
    ["shape disagreeing with the offsets", (h) => void (h["model.norm.weight"].shape = [33])],
    ["offsets reversed", (h) => {
      const o = h["model.norm.weight"].data_offsets as number[];
      h["model.norm.weight"].data_offsets = [o[1], o[0]];
    }],
    ["offsets past the end", (h) => {
      const o = h["model.norm.weight"].data_offsets as number[];
      h["model.norm.weight"].data_offsets = [o[0] + size, o[1] + size];
    }],
    ["offsets overlapping another tensor", (h) => {
      const a = h["model.layers.0.input_layernorm.weight"].data_offsets as number[];
      h["model.layers.0.post_attention_layernorm.weight"].data_offsets = [a[0] + 4, a[1] + 4];
    }],
    ["offsets missing", (h) => void delete h["model.norm.weight"].data_offsets],
    ["an absurd shape [1e9, 1e9]", (h) => void (h["model.norm.weight"].shape = [1e9, 1e9])],
    ["a shape of 20 dims of 1000", (h) => void (h["model.norm.weight"].shape = Array(20).fill(1000))],
    ["offsets of 1e300", (h) => void (h["model.norm.weight"].data_offsets = [0, 1e300])],
    ["__metadata__ with a number", (h) => void (h.__metadata__ = { format: 1 } as unknown as Record<string, unknown>)],
    ["a needed tensor missing", (h) => void delete h["model.layers.1.mlp.up_proj.weight"]],
    ["the embedding missing", (h) => void delete h["model.embed_tokens.weight"]],
    ["a transposed projection", (h) => {
      const s = h["model.layers.0.self_attn.k_proj.weight"].shape as number[];
      h["model.layers.0.self_attn.k_proj.weight"].shape = [s[1], s[0]];
    }],
    ["a projection reshaped with the same count", (h) => {
      const s = h["model.layers.1.mlp.gate_proj.weight"].shape as number[];
      h["model.layers.1.mlp.gate_proj.weight"].shape = [s[0] * 2, s[1] / 2];
    }],
    ["an extra layer beyond num_hidden_layers", (h) => void (h["model.layers.7.input_layernorm.weight"] = { ...h["model.norm.weight"] })],
  ];
  for (const [name, edit] of headerEdits) {
    withFile(name, (f) => {
      const { header, data } = readHeader(f);
      const replaced = edit(header as Record<string, Record<string, unknown>>);
      writeHeader(f, replaced ?? header, data);
    }, { kinds: ["format"], expect: mentions("model.safetensors") });
  }
  // An extra tensor the model does not use (outside the layers) is ignored, as transformers does.
  withFile("an unused empty tensor with a 10 MB name", (f) => {
    const { header, data } = readHeader(f);
    header["x".repeat(10_000_000)] = { dtype: "F32", shape: [0], data_offsets: [0, 0] };
    writeHeader(f, header, data);
  }, { kinds: ["format"], expect: mentions("model.safetensors"), ok: isEngine });
  withFile("model.safetensors is a directory", (f) => {
    fs.rmSync(f);
    fs.mkdirSync(f);
  }, { kinds: ["format"], expect: mentions("model.safetensors", "directory") });
  withFile("model.safetensors missing", (f) => fs.rmSync(f), { kinds: ["format"], expect: mentions(["safetensors", "no such"]) });
  // Non-finite weights: the engine builds; a request on it fails with the reason, never garbage ids.
  for (const [name, value] of [["NaN", NaN], ["+Infinity", Infinity]] as const) {
    withFile(
      `${name} in every weight of layer 0's down_proj`,
      (f) => {
        const { header, data } = readHeader(f);
        const o = (header["model.layers.0.mlp.down_proj.weight"] as { data_offsets: number[] }).data_offsets;
        new Float32Array(data.buffer, data.byteOffset + o[0], (o[1] - o[0]) / 4).fill(value);
        writeHeader(f, header, data);
      },
      { kinds: ["request_failed"], expect: mentions(["NaN", "non-finite", "finite", "Infinity"]) },
      generate,
    );
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------
// engines

/** Mutations of an engine directory built from `base`: flipped bytes, truncation, versions, config.json, plan. */
export function engineCases(base: string): HostileCase[] {
  const cases: HostileCase[] = [];
  const ref = tempDir("llmrt-engine-");
  const e = buildDir(base);
  e.save(ref);
  e.dispose();
  const refIds = greedy(ref);
  const file = path.join(ref, "rank0.engine");
  const size = fs.statSync(file).size;
  const meta = readMeta(file);
  const dv = new DataView(fs.readFileSync(file).buffer);
  const dataOffset = Number(dv.getBigUint64(32, true));
  // Loads, verifies every blob, then generates: the ids must equal the unmutated engine's.
  const loadAndRun = (dir: string): number[] => {
    using engine = Engine.fromDir(dir);
    engine.verify();
    return greedy(dir);
  };
  const sameIds = (r: unknown): void => {
    if (JSON.stringify(r) !== JSON.stringify(refIds)) throw new Error(`generated ${showValue(r)}, the intact engine ${showValue(refIds)}`);
  };
  const withEngine = (name: string, edit: (dir: string) => void, check: Omit<HostileCase, "name" | "run">): void => {
    cases.push({
      name: `engine: ${name}`,
      run: () => {
        const dir = copyDir(ref);
        edit(dir);
        return loadAndRun(dir);
      },
      ...check,
    });
  };
  const inFile = { kinds: ["format"] as ErrorKind[], expect: mentions(["rank0.engine", "config.json"]), ok: sameIds };
  const positions = new Set<number>([0, 3, 7, 8, 9, 12, 16, 20, 24, 32, 40, 48, 52, 56, 57, 59, 60, 100, 255, 256, 300]);
  for (let i = 1; i <= 12; i++) positions.add(Math.floor(256 + ((dataOffset - 256) * i) / 13));
  for (const t of meta.tensors) positions.add(dataOffset + t.offset + Math.floor(t.bytes / 2));
  positions.add(size - 1);
  for (const at of positions) {
    withEngine(`byte ${at} of ${size} flipped`, (dir) => {
      const f = path.join(dir, "rank0.engine");
      const b = fs.readFileSync(f);
      b[at] ^= 0x10;
      fs.writeFileSync(f, b);
    }, inFile);
  }
  for (const n of [0, 8, 100, 255, 256, dataOffset - 1, dataOffset, dataOffset + 1000, size - 256, size - 1]) {
    withEngine(
      `truncated to ${n} bytes`,
      (dir) => fs.writeFileSync(path.join(dir, "rank0.engine"), fs.readFileSync(path.join(dir, "rank0.engine")).subarray(0, n)),
      {
        kinds: ["format"],
        expect: mentions("rank0.engine", ["truncated", "header"]),
      },
    );
  }
  withEngine("trailing garbage appended", (dir) => fs.appendFileSync(path.join(dir, "rank0.engine"), new Uint8Array(4096)), {
    kinds: ["format"],
    expect: mentions("rank0.engine", "trailing"),
  });
  for (const v of [0, 1, 3, 0xffffffff]) {
    withEngine(`header version ${v}`, (dir) => {
      const f = path.join(dir, "rank0.engine");
      const b = fs.readFileSync(f);
      new DataView(b.buffer, b.byteOffset).setUint32(8, v, true);
      fs.writeFileSync(f, b);
    }, { kinds: ["format"], expect: mentions("rank0.engine", `version ${v}`, "needs version 2") });
  }
  withEngine("rank0.engine missing", (dir) => fs.rmSync(path.join(dir, "rank0.engine")), { kinds: ["format"], expect: mentions("rank0.engine") });
  withEngine("rank0.engine is a directory", (dir) => {
    fs.rmSync(path.join(dir, "rank0.engine"));
    fs.mkdirSync(path.join(dir, "rank0.engine"));
  }, { kinds: ["format"], expect: mentions("rank0.engine") });
  // config.json
  // deno-lint-ignore no-explicit-any
  const cfgEdits: [string, (c: any) => unknown, string[]][] = [
    ["formatVersion 1", (c) => void (c.llmrt.formatVersion = 1), ["format version 1", "needs version 2"]],
    ["no llmrt section", (c) => void delete c.llmrt, ["config.json", "needs version 2"]],
    ["no build.maxSeqLen", (c) => void delete c.build.maxSeqLen, ["build.maxSeqLen"]],
    ["build.maxBatchSize 'x'", (c) => void (c.build.maxBatchSize = "x"), ["build.maxBatchSize", '"x"']],
    ["build.maxBatchSize 1e7", (c) => void (c.build.maxBatchSize = 1e7), ["build.maxBatchSize", "10000000"]],
    ["model.vocabSize 4096", (c) => void (c.model.vocabSize = 4096), ["model.vocabSize", "4096"]],
    ["model.numAttentionHeads 2", (c) => void (c.model.numAttentionHeads = 2), ["model.numAttentionHeads", "2"]],
    ["model.headDim deleted", (c) => void delete c.model.headDim, ["model.headDim"]],
    ["dtype bfloat16", (c) => void (c.dtype = "bfloat16"), ["dtype", "bfloat16"]],
    ["dtype int3", (c) => void (c.dtype = "int3"), ["dtype", "int3"]],
    ["an unknown top-level key", (c) => void (c.surprise = 1), ["surprise"]],
    ["an array", () => [], ["config.json"]],
  ];
  for (const [name, edit, words] of cfgEdits) {
    withEngine(`config.json ${name}`, (dir) => {
      const f = path.join(dir, "config.json");
      const c = JSON.parse(fs.readFileSync(f, "utf8"));
      fs.writeFileSync(f, JSON.stringify(edit(c) ?? c));
    }, { kinds: ["format", "validation"], expect: mentions(...words) });
  }
  withEngine("config.json not JSON", (dir) => fs.writeFileSync(path.join(dir, "config.json"), "{"), { kinds: ["format"], expect: mentions("config.json") });
  withEngine("config.json empty", (dir) => fs.writeFileSync(path.join(dir, "config.json"), ""), { kinds: ["format"], expect: mentions("config.json") });
  // The plan and tensor table, rewritten self-consistently (CRC recomputed): the checks behind the CRC.
  const planEdits: [string, (m: Meta) => void, string[]][] = [
    ["unknown op type", (m) => void m.plan.ops.splice(2, 0, { type: "conv2d", x: "hidden" }), ['unknown op type "conv2d"']],
    ["op type not a string", (m) => void (m.plan.ops[1].type = 5), ["unknown op type 5"]],
    ["an attention op removed", (m) => void m.plan.ops.splice(m.plan.ops.findIndex((o: { type: string }) => o.type === "paged_attention"), 1), [
      "layer 0",
      "no attention",
    ]],
    ["layer index 99", (m) => void (m.plan.ops.find((o: { type: string }) => o.type === "rope_kv_write").layer = 99), ["layer 99"]],
    ["numKvHeads 3 in an op", (m) => void (m.plan.ops.find((o: { type: string }) => o.type === "paged_attention").numKvHeads = 3), ["numKvHeads is 3"]],
    ["headDim 16 in an op", (m) => void (m.plan.ops.find((o: { type: string }) => o.type === "rope_kv_write").headDim = 16), ["headDim is 16"]],
    ["linear inFeatures wrong", (m) => void (m.plan.ops.find((o: { type: string }) => o.type === "linear").inFeatures = 7), ["7"]],
    ["linear weight renamed", (m) => void (m.plan.ops.find((o: { type: string }) => o.type === "linear").weight = "nope"), ["'nope'", "missing"]],
    ["a weight dropped from the table", (m) => void (m.tensors = m.tensors.filter((t: { name: string }) => t.name !== "norm")), ["'norm'", "missing"]],
    ["a weight's dtype float64", (m) => void (m.tensors.find((t: { name: string }) => t.name === "norm").dtype = "float64"), ["float64"]],
    ["a weight's shape negative", (m) => void (m.tensors.find((t: { name: string }) => t.name === "norm").shape = [-32]), ["'norm'", "shape"]],
    ["a weight listed twice", (m) => void m.tensors.push({ ...m.tensors[0] }), ["listed twice"]],
    ["a weight's shape [1e9, 1e9]", (m) => void (m.tensors.find((t: { name: string }) => t.name === "norm").shape = [1e9, 1e9]), ["'norm'", "shape"]],
    ["a plan of 100000 unknown ops", (m) => void (m.plan.ops = Array.from({ length: 100_000 }, () => ({ type: "nop" }))), ["unknown op type"]],
    ["two blobs overlapping", (m) => void (m.tensors[1].offset = m.tensors[0].offset), ["overlap"]],
    ["a blob offset unaligned", (m) => void (m.tensors[1].offset += 4), ["aligned"]],
    ["a blob past the data section", (m) => void (m.tensors[1].offset = 1 << 30), ["past the end"]],
    ["a wrong blob CRC", (m) => void (m.tensors[2].crc32 = (m.tensors[2].crc32 + 1) >>> 0), ["corrupt", meta.tensors[2].name]],
    ["arenaBytes 256", (m) => void (m.plan.arenaBytes = 256), ["arena"]],
    ["a buffer offset negative", (m) => void ((Object.values(m.plan.buffers)[0] as { offset: number }).offset = -256), ["plan.buffers"]],
    ["elementBytes 0", (m) => void (m.plan.elementBytes = 0), ["elementBytes"]],
    ["attributes.vocabSize 100", (m) => void (m.plan.attributes.vocabSize = 100), ["attributes.vocabSize is 100"]],
    ["rope invFreq too short", (m) => void (m.plan.attributes.rope.invFreq = [1]), ["invFreq"]],
    ["plan missing", (m) => void (m.plan = null), ["plan"]],
    ["engine config differs from config.json", (m) => void (m.config.model.rmsNormEps = 0.5), ["rmsNormEps"]],
    ["no sample op", (m) => void (m.plan.ops = m.plan.ops.filter((o: { type: string }) => o.type !== "sample")), ["sample"]],
  ];
  for (const [name, edit, words] of planEdits) {
    withEngine(`plan/table: ${name}`, (dir) => rewriteMeta(path.join(dir, "rank0.engine"), edit), {
      kinds: ["format"],
      expect: mentions(["rank0.engine", "config.json"], ...words),
    });
  }
  withEngine("blob bytes of 'norm' zeroed", (dir) => {
    const f = path.join(dir, "rank0.engine");
    const b = fs.readFileSync(f);
    b.fill(0, blobOffset(f, "norm"), blobOffset(f, "norm") + 64);
    fs.writeFileSync(f, b);
  }, { kinds: ["format"], expect: mentions("rank0.engine", "'norm' is corrupt") });
  return cases;
}

function greedy(dir: string): number[] {
  using runner = ModelRunner.fromDir(dir);
  return runner.generate([[1, 5, 9, 13]], { maxNewTokens: 4, endId: -1 }).newTokenIds[0];
}

// ---------------------------------------------------------------------------------------------
// tokenizers

/** tokenizer.json / tokenizer_config.json mutations of the checkpoint in `base`; each creates an LLM and generates. */
export function tokenizerCases(base: string, createAndGenerate: (dir: string) => Promise<unknown>, okOutput: (r: unknown) => void): HostileCase[] {
  const cases: HostileCase[] = [];
  const tok = JSON.parse(fs.readFileSync(path.join(base, "tokenizer.json"), "utf8"));
  const withTok = (name: string, edit: (dir: string) => void, check: Omit<HostileCase, "name" | "run">): void => {
    cases.push({
      name: `tokenizer: ${name}`,
      run: () => {
        const dir = copyDir(base);
        edit(dir);
        return createAndGenerate(dir);
      },
      ...check,
    });
  };
  const tokErr = { kinds: ["format", "validation"] as ErrorKind[], expect: mentions(["tokenizer.json", "tokenizer"]) };
  const writeTok = (dir: string, t: unknown): void => fs.writeFileSync(path.join(dir, "tokenizer.json"), typeof t === "string" ? t : JSON.stringify(t));
  withTok("not JSON", (d) => writeTok(d, "{ model"), tokErr);
  withTok("empty", (d) => writeTok(d, ""), tokErr);
  withTok("truncated", (d) => writeTok(d, JSON.stringify(tok).slice(0, 1000)), tokErr);
  withTok("an empty object", (d) => writeTok(d, {}), tokErr);
  withTok("an array", (d) => writeTok(d, []), tokErr);
  // @huggingface/tokenizers infers the model from its fields when the type is unknown: it still works.
  withTok("model type unknown", (d) => writeTok(d, { ...tok, model: { ...tok.model, type: "Quantum" } }), { ...tokErr, ok: okOutput });
  withTok("model without vocab", (d) => writeTok(d, { ...tok, model: { ...tok.model, vocab: undefined } }), tokErr);
  withTok(
    "an added token with id 1e9",
    (d) =>
      writeTok(d, {
        ...tok,
        added_tokens: [...(tok.added_tokens ?? []), {
          id: 1e9,
          content: "<huge>",
          special: true,
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
        }],
      }),
    {
      kinds: ["validation", "format"],
      expect: mentions(["1000000000", "tokenizer"]),
    },
  );
  withTok("tokenizer.json missing", (d) => fs.rmSync(path.join(d, "tokenizer.json")), { kinds: ["format"], expect: mentions("tokenizer.json") });
  withTok("tokenizer.json is a directory", (d) => {
    fs.rmSync(path.join(d, "tokenizer.json"));
    fs.mkdirSync(path.join(d, "tokenizer.json"));
  }, { kinds: ["format"], expect: mentions("tokenizer.json") });
  withTok("tokenizer_config.json not JSON", (d) => fs.writeFileSync(path.join(d, "tokenizer_config.json"), "{"), {
    kinds: ["format"],
    expect: mentions("tokenizer_config.json"),
  });
  withTok(
    "tokenizer_config.json chat_template a number",
    (d) => fs.writeFileSync(path.join(d, "tokenizer_config.json"), JSON.stringify({ chat_template: 5 })),
    {
      kinds: ["format", "validation"],
      expect: mentions(["chat_template", "tokenizer_config.json"]),
    },
  );
  withTok("tokenizer_config.json with unknown keys", (d) => fs.writeFileSync(path.join(d, "tokenizer_config.json"), JSON.stringify({ some_new_key: [1, 2] })), {
    kinds: [],
    expect: () => "must generate",
    ok: okOutput,
  });
  return cases;
}

// ---------------------------------------------------------------------------------------------
// prompts, sampling fields, option objects (on one live LLM)

/** Checks a generate() result is well formed: n outputs, ids inside the vocabulary, a finish reason. */
export function wellFormed(vocab: number, n = 1): (r: unknown) => void {
  return (r) => {
    const out = r as { outputs: { tokenIds: number[]; finishReason: string | null; text: string }[] };
    if (!out || !Array.isArray(out.outputs)) throw new Error(`no outputs: ${showValue(r)}`);
    if (out.outputs.length !== n) throw new Error(`${out.outputs.length} outputs, expected ${n}`);
    for (const o of out.outputs) {
      if (!o.tokenIds.every((t) => Number.isInteger(t) && t >= 0 && t < vocab)) throw new Error(`ids outside [0, ${vocab}): ${showValue(o.tokenIds)}`);
      if (!o.finishReason) throw new Error("no finish reason");
      if (typeof o.text !== "string") throw new Error("no text");
    }
  };
}

/** Hostile prompts on `llm` (text and id forms). */
export function promptCases(llm: () => LLM, vocab: number): HostileCase[] {
  const cases: HostileCase[] = [];
  const gen = (p: unknown) => () => llm().generate(p as string, { maxTokens: 3, temperature: 0 }, { useTqdm: false });
  const ok = wellFormed(vocab);
  const okText: [string, string][] = [
    ["empty string (the BOS token alone)", ""],
    ["a space", " "],
    ["NUL bytes", "\u0000\u0000a"],
    ["a lone surrogate", "\uD800abc"],
    ["emoji", "🙂🦀👩‍👩‍👧".repeat(20)],
    ["right-to-left text", "مرحبا بالعالم"],
    ["combining marks", "e\u0301\u0301\u0301"],
    ["control characters", "\u0007\u001b[31m\r\n\t"],
    ["a BOM", "\uFEFFOnce"],
    ["special-token text", "<s></s><unk>"],
    ["a JSON string", '{"a": [1, 2]}'],
  ];
  for (const [name, p] of okText) cases.push({ name: `prompt: ${name}`, run: gen(p), kinds: ["validation"], expect: mentions("prompt"), ok });
  const bad: [string, unknown, ErrorKind[], (string | string[])[]][] = [
    ["1 MB of text", "a ".repeat(500_000), ["resource", "validation"], ["prompt", ["bytes", "tokens"]]],
    ["more tokens than maxInputLen", Array.from({ length: 600 }, () => 5), ["validation"], ["prompt", "600"]],
    ["empty id array", [], ["validation"], ["prompt"]],
    ["a negative id", [1, -1], ["validation"], ["prompt", "-1"]],
    ["a fractional id", [1, 1.5], ["validation"], ["prompt", "1.5"]],
    ["a NaN id", [1, NaN], ["validation"], ["prompt", ["NaN", "null"]]],
    ["an id past the vocabulary", [1, vocab], ["validation"], ["prompt", String(vocab)]],
    ["an id of 1e9", [1, 1e9], ["validation"], ["prompt", "1000000000"]],
    ["a string id", [1, "2"], ["validation"], ["prompt", "2"]],
    ["null", null, ["validation"], ["prompt", "null"]],
    ["undefined", undefined, ["validation"], ["prompt"]],
    ["a number", 42, ["validation"], ["prompt", "42"]],
    ["an object", { text: "hi" }, ["validation"], ["prompt"]],
    ["a boolean", true, ["validation"], ["prompt", "true"]],
  ];
  for (const [name, p, kinds, words] of bad) cases.push({ name: `prompt: ${name}`, run: gen(p), kinds, expect: mentions(...words) });
  cases.push({
    name: "prompt: nested arrays are a batch of one id prompt",
    run: gen([[1, 2]]),
    kinds: ["validation"],
    expect: mentions("prompt"),
    ok: (r) => {
      if (!Array.isArray(r) || r.length !== 1) throw new Error(`expected one output, got ${showValue(r)}`);
      ok(r[0]);
    },
  });
  return cases;
}

const SAMPLING_VALUES: unknown[] = [-1, 0, 1.5, NaN, Infinity, "x", null, [], {}, true, 1e300, [-1], [1e9], { "5": 1e39 }, () => 1];

/** Every SamplingParams field with wrong types and ranges. */
export function samplingCases(llm: () => LLM, vocab: number): HostileCase[] {
  const cases: HostileCase[] = [];
  // The schema is an object piped through a refinement: its fields are the pipe's input shape.
  const schema = SamplingParamsSchema as unknown as { shape?: object; _zod: { def: { in?: { shape?: object } } } };
  const fields = Object.keys(schema.shape ?? schema._zod.def.in?.shape ?? {});
  if (fields.length < 30) throw new Error(`SamplingParams fields not found (${fields.length})`);
  for (const field of fields) {
    for (const v of SAMPLING_VALUES) {
      const params: Record<string, unknown> = { maxTokens: 3, temperature: 0, [field]: v };
      if (field === "maxTokens" && typeof v === "number" && v > 8) continue; // covered by 1e300 below
      const n = field === "n" && typeof v === "number" && Number.isInteger(v) && v > 0 ? v : 1;
      const beams = (field === "beamWidth" || field === "bestOf") ? 1 : n;
      cases.push({
        name: `sampling: ${field} = ${showValue(v) ?? String(v)}`,
        run: () => llm().generate([1, 5, 9], params, { useTqdm: false }),
        kinds: ["validation", "request_failed", "unsupported"],
        // promptLogprobs on an engine without context logits: the field and the build option are named;
        // an embeddingBias of the wrong length: its length is the value shown.
        expect: (e) => {
          if (e.kind !== "validation") return mentions([field, "logits", "token"])(e);
          const shown = e.message.includes("gatherContextLogits") ? [] : field === "embeddingBias" && Array.isArray(v) ? [`${v.length} entries`] : valueText(v);
          return mentions(field, shown)(e);
        },
        ok: wellFormed(vocab, beams),
      });
    }
  }
  cases.push({
    name: "sampling: maxTokens = 1e300",
    run: () => llm().generate([1, 5, 9], { maxTokens: 1e300 }, { useTqdm: false }),
    kinds: ["validation"],
    expect: mentions("maxTokens"),
  });
  cases.push({
    name: "sampling: an unknown key",
    run: () => llm().generate([1, 5, 9], { maxTokens: 3, temprature: 0.5 } as never, { useTqdm: false }),
    kinds: ["validation"],
    expect: mentions("temprature"),
  });
  cases.push({
    name: "sampling: params is a string",
    run: () => llm().generate([1, 5, 9], "greedy" as never, { useTqdm: false }),
    kinds: ["validation"],
    expect: mentions(["SamplingParams", "samplingParams"], '"greedy"'),
  });
  return cases;
}

/** Option objects: LLM.create, BuildConfig, generate and generateAsync options. */
export function optionCases(model: string, llm: () => LLM, create: (o: unknown) => Promise<unknown>): HostileCase[] {
  const cases: HostileCase[] = [];
  const createBad: [string, Record<string, unknown>, string[]][] = [
    ["an unknown key", { model, backend: "cpu", modle: "x" }, ["modle"]],
    ["model a number", { model: 42, backend: "cpu" }, ["model", "42"]],
    ["model empty", { model: "", backend: "cpu" }, ["model"]],
    ["model not a directory", { model: "/nonexistent/dir", backend: "cpu" }, ["model", "/nonexistent/dir"]],
    ["backend tpu", { model, backend: "tpu" }, ["backend", "tpu"]],
    ["dtype int3", { model, backend: "cpu", dtype: "int3" }, ["dtype", "int3"]],
    ["maxBatchSize 0", { model, backend: "cpu", maxBatchSize: 0 }, ["maxBatchSize", "0"]],
    ["maxNumTokens -5", { model, backend: "cpu", maxNumTokens: -5 }, ["maxNumTokens", "-5"]],
    ["kvCacheConfig.maxTokens -1", { model, backend: "cpu", kvCacheConfig: { maxTokens: -1 } }, ["maxTokens", "-1"]],
    ["kvCacheConfig unknown key", { model, backend: "cpu", kvCacheConfig: { blocks: 3 } }, ["blocks"]],
    ["kvCacheConfig.freeGpuMemoryFraction 2", { model, backend: "cpu", kvCacheConfig: { freeGpuMemoryFraction: 2 } }, ["freeGpuMemoryFraction", "2"]],
    ["buildConfig.maxBatchSize 'x'", { model, backend: "cpu", buildConfig: { maxBatchSize: "x" } }, ["maxBatchSize", '"x"']],
    ["buildConfig.tokensPerBlock 3", { model, backend: "cpu", buildConfig: { tokensPerBlock: 3 } }, ["tokensPerBlock", "3"]],
    ["buildConfig unknown key", { model, backend: "cpu", buildConfig: { maxBatchSz: 3 } }, ["maxBatchSz"]],
    ["buildConfig.maxBatchSize 1e7", { model, backend: "cpu", cacheEngine: false, buildConfig: { maxBatchSize: 1e7 } }, ["maxBatchSize", "10000000"]],
    ["buildConfig.maxNumTokens 1e8", { model, backend: "cpu", cacheEngine: false, buildConfig: { maxNumTokens: 1e8 } }, ["maxNumTokens", "100000000"]],
    ["executorMode thread", { model, backend: "cpu", executorMode: "thread" }, ["executorMode", "thread"]],
    ["tokenizer dir missing", { model, backend: "cpu", tokenizer: "/nonexistent/tok" }, ["/nonexistent/tok"]],
    ["options null", null as unknown as Record<string, unknown>, ["LLM.create"]],
  ];
  for (const [name, o, words] of createBad) {
    cases.push({ name: `options: LLM.create ${name}`, run: () => create(o), kinds: ["validation", "format", "resource"], expect: mentions(...words) });
  }
  const genOpts: [string, unknown, string[]][] = [
    ["generate useTqdm 'x'", { useTqdm: "x" }, ["useTqdm", '"x"']],
    ["generate priority NaN", { priority: NaN }, ["priority"]],
    ["generate an unknown key", { streaming: true }, ["streaming"]],
  ];
  for (const [name, o, words] of genOpts) {
    cases.push({
      name: `options: ${name}`,
      run: () => llm().generate([1, 5], { maxTokens: 2 }, o as never),
      kinds: ["validation"],
      expect: mentions(...words),
    });
  }
  const asyncOpts: [string, unknown, string[]][] = [
    ["generateAsync signal {}", { signal: {} }, ["signal"]],
    ["generateAsync streaming 'yes'", { streaming: "yes" }, ["streaming", '"yes"']],
    ["generateAsync an unknown key", { abortSignal: 1 }, ["abortSignal"]],
  ];
  for (const [name, o, words] of asyncOpts) {
    cases.push({
      name: `options: ${name}`,
      run: () => llm().generateAsync([1, 5], { maxTokens: 2 }, o as never).result(),
      kinds: ["validation"],
      expect: mentions(...words),
    });
  }
  return cases;
}
