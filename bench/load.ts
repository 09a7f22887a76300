/**
 * Load time of `LLM.create` (issue 16 item 4), phase by phase: a cold run (engine built from the
 * safetensors checkpoint and written to an empty engine cache), then cached runs (the engine read
 * from the cache). Each run prints its total and `llm.loadStats` (cache key, read, build, cache
 * write, open, cache verify, weight upload, session start). The checkpoint's pages are in the OS
 * page cache after the first run (and after --make): these are warm-disk numbers.
 *
 *   bun bench/load.ts --make llama-3.2-1b --out /tmp/l1b        # random bf16 weights, real shapes
 *   bun bench/load.ts --model /tmp/l1b --backend cpu --dtype bfloat16 [--cached-runs 2]
 *   bun bench/load.ts --model /models/llama-3.1-8b --backend cuda
 *
 * The engine cache lives in a fresh temp dir (removed at the end) unless --cache-dir is given.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { LLM } from "../lib/llmapi/llm.ts";
import { formatLoadStats } from "../lib/llmapi/progress.ts";
import { writeSafetensors } from "../lib/models/safetensors.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    make: { type: "string" },
    out: { type: "string" },
    model: { type: "string" },
    backend: { type: "string", default: "cpu" },
    dtype: { type: "string", default: "auto" },
    "cached-runs": { type: "string", default: "2" },
    "cache-dir": { type: "string" },
  },
});

const SHAPES: Record<string, { hidden: number; inter: number; heads: number; kv: number; layers: number; vocab: number; tied: boolean }> = {
  "llama-3.2-1b": { hidden: 2048, inter: 8192, heads: 32, kv: 8, layers: 16, vocab: 128256, tied: true },
  "llama-3.1-8b": { hidden: 4096, inter: 14336, heads: 32, kv: 8, layers: 32, vocab: 128256, tied: false },
};

/** Writes a random-weight bf16 checkpoint with the real shapes of `name` (one pool of random bf16 values, viewed per tensor). */
function makeModel(name: string, dir: string): void {
  const s = SHAPES[name];
  if (!s) throw new Error(`--make: one of ${Object.keys(SHAPES).join(", ")}, got ${JSON.stringify(name)}`);
  fs.mkdirSync(dir, { recursive: true });
  const H = s.hidden, I = s.inter, hd = H / s.heads;
  const pool = new Uint16Array(Math.max(s.vocab * H, I * H));
  let r = 12345;
  for (let i = 0; i < pool.length; i++) {
    r = (Math.imul(r, 1664525) + 1013904223) >>> 0;
    pool[i] = 0x3c00 | (r >>> 25) | ((r & 1) << 15); // |x| in [2^-7, 2^-6): small weights, both signs
  }
  const tensors: Record<string, { dtype: "BF16"; shape: number[]; data: Uint16Array }> = {};
  let at = 0;
  const add = (n: string, shape: number[]): void => {
    const numel = shape.reduce((a, b) => a * b, 1);
    if (at + numel > pool.length) at = 0;
    tensors[n] = { dtype: "BF16", shape, data: pool.subarray(at, at + numel) };
    at += 4099;
  };
  add("model.embed_tokens.weight", [s.vocab, H]);
  if (!s.tied) add("lm_head.weight", [s.vocab, H]);
  add("model.norm.weight", [H]);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [H]);
    add(`${p}post_attention_layernorm.weight`, [H]);
    add(`${p}self_attn.q_proj.weight`, [s.heads * hd, H]);
    add(`${p}self_attn.k_proj.weight`, [s.kv * hd, H]);
    add(`${p}self_attn.v_proj.weight`, [s.kv * hd, H]);
    add(`${p}self_attn.o_proj.weight`, [H, s.heads * hd]);
    add(`${p}mlp.gate_proj.weight`, [I, H]);
    add(`${p}mlp.up_proj.weight`, [I, H]);
    add(`${p}mlp.down_proj.weight`, [H, I]);
  }
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  fs.writeFileSync(
    path.join(dir, "config.json"),
    JSON.stringify({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      hidden_size: H,
      intermediate_size: I,
      num_attention_heads: s.heads,
      num_key_value_heads: s.kv,
      head_dim: hd,
      num_hidden_layers: s.layers,
      vocab_size: s.vocab,
      max_position_embeddings: 131072,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      tie_word_embeddings: s.tied,
      torch_dtype: "bfloat16",
      bos_token_id: 128000,
      eos_token_id: 128001,
    }),
  );
  const bytes = fs.statSync(path.join(dir, "model.safetensors")).size;
  console.log(`wrote ${dir}: ${name} shapes, bf16 random weights, ${(bytes / 1e9).toFixed(2)} GB`);
}

if (values.make) {
  if (!values.out) throw new Error("--make needs --out DIR");
  makeModel(values.make, values.out);
  process.exit(0);
}
if (!values.model) throw new Error("--model DIR (an HF checkpoint) or --make NAME --out DIR");

const cacheDir = values["cache-dir"] ?? fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-loadbench-"));
process.env.LLMRT_CACHE_DIR = cacheDir;
const opts = {
  model: values.model,
  backend: values.backend as "cpu" | "cuda",
  dtype: values.dtype as "auto" | "bfloat16" | "float32" | "float16",
  skipTokenizerInit: !fs.existsSync(path.join(values.model, "tokenizer.json")),
  buildConfig: { maxBatchSize: 1, maxNumTokens: 128, maxSeqLen: 256 },
  kvCacheConfig: { maxTokens: 256 },
};
console.log(
  `LLM.create ${values.model} (${opts.backend}, dtype ${opts.dtype}), engine cache ${cacheDir}, ${
    process.versions.bun ? `bun ${process.versions.bun}` : "deno"
  }`,
);
try {
  const runs = 1 + Number(values["cached-runs"]);
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const llm = await LLM.create(opts);
    const ms = performance.now() - t0;
    await llm.shutdown(); // waits for a background cache write, whose phase then shows
    const s = llm.loadStats;
    console.log(`${i === 0 ? "cold  " : "cached"} LLM.create ${(ms / 1000).toFixed(2)} s (${s.source}): ${formatLoadStats(s)}`);
  }
} finally {
  if (!values["cache-dir"]) fs.rmSync(cacheDir, { recursive: true, force: true });
}
