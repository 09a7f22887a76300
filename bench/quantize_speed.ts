/**
 * Speed of calibration-based weight-only quantization (issue 12: AWQ / GPTQ on 1B+ models) on the
 * CPU, phase by phase and layer by layer: the calibration forward with its input statistics (with
 * and without GPTQ's Hessians), AWQ's scale search per input group, GPTQ per linear, RTN packing;
 * then (kjv-llama only, unless --no-e2e) quantizeSync end to end. Peak RSS (the kernel's high-water
 * mark where /proc has it) is printed at the end. --e2e-only W4A16_GPTQ (or any of W4A16_AWQ, FP8,
 * FP8_PER_CHANNEL_PER_TOKEN, FP8_BLOCK_SCALES, W8A16, W4A16): only quantizeSync of that
 * algorithm end to end (its peak memory alone; synthetic models too).
 *
 * Models: `kjv` (models/kjv-llama), or `llama-3.2-1b` / `llama-3.1-8b`: random weights with the
 * real layer shapes (hidden, intermediate, heads) but `--layers` layers (default 1) and a 512-token
 * vocabulary (embeddings and lm_head are not quantized), written with writeSafetensors to a temp
 * dir. Per-layer times extrapolate to the full depth (16 / 32 layers): every layer does the same work.
 *
 *   bun bench/quantize_speed.ts --model kjv [--threads 1]
 *   bun bench/quantize_speed.ts --model llama-3.2-1b --tokens 256 [--threads 16] [--gptq-max-k 2048] [--skip-awq]
 *
 * --tokens: calibration tokens (quantize's default is 1024; forward and statistics scale linearly
 * with it, AWQ's search and GPTQ do not). --gptq-max-k K skips GPTQ on linears with more input
 * channels (its cost grows as K³: extrapolate); --gptq-modules a,b runs GPTQ on those modules only. --threads: this thread plus workers (default 1).
 * --cpu-clock: every time printed is process CPU time (all threads) instead of wall time — on a
 * shared machine, one thread's CPU time is what it would take alone.
 *
 * --light (with --model llama-3.2-1b | llama-3.1-8b): the calibration-light algorithms only (FP8,
 * FP8_PER_CHANNEL_PER_TOKEN, FP8_BLOCK_SCALES, W8A16, W4A16 RTN) on one layer's linears of that shape
 * (random float32 weights in shared memory, no checkpoint): ns/param per phase (the copy into the
 * shared arena quantize() makes when a pool runs, row amax, e4m3 encode with a known scale — these three on one thread — and
 * whole quantizeFp8 / quantizeFp8Block / quantizeRtn on --threads) and the whole model's linears at that rate.
 *
 *   bun bench/quantize_speed.ts --model llama-3.1-8b --light [--threads 16] [--cpu-clock]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { AutoModelForCausalLM, type LlamaForCausalLM } from "../lib/models/llama.ts";
import { writeSafetensors } from "../lib/models/safetensors.ts";
import { type IntGrid, quantizeRtn } from "../lib/quantization/algorithms.ts";
import { awqSearchScales } from "../lib/quantization/awq.ts";
import { gptqFactor, quantizeGptq } from "../lib/quantization/gptq.ts";
import { QuantPool } from "../lib/quantization/pool.ts";
import { calibrationSequences, forEachLayerInputs, type LayerInputs } from "../lib/quantization/calibration.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { absMax, fp8Scale, quantizeFp8 } from "../lib/quantization/fp8.ts";
import { quantizeFp8Block } from "../lib/quantization/fp8_block.ts";
import { e4m3EncodeDiv } from "../lib/util/e4m3.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string" },
    layers: { type: "string" },
    tokens: { type: "string" },
    "group-size": { type: "string" },
    "gptq-max-k": { type: "string" },
    "skip-awq": { type: "boolean" },
    "skip-gptq": { type: "boolean" },
    "no-e2e": { type: "boolean" },
    "e2e-only": { type: "string" },
    "gptq-modules": { type: "string" },
    threads: { type: "string" },
    "cpu-clock": { type: "boolean" },
    light: { type: "boolean" },
  },
});

const SHAPES: Record<string, { hidden: number; inter: number; heads: number; kv: number; depth: number }> = {
  "llama-3.2-1b": { hidden: 2048, inter: 8192, heads: 32, kv: 8, depth: 16 },
  "llama-3.1-8b": { hidden: 4096, inter: 14336, heads: 32, kv: 8, depth: 32 },
};

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

/** A random checkpoint with the layer shapes of `name` (salient input channels, as trained models have). */
function syntheticModel(name: string, layers: number): string {
  const sh = SHAPES[name];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-qspeed-"));
  const H = sh.hidden, I = sh.inter, hd = H / sh.heads, V = 512;
  const r = rng(7);
  const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  const add = (n: string, shape: number[], scale: number, base = 0): void => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = base + scale * r();
    tensors[n] = { dtype: "F32", shape, data };
  };
  add("model.embed_tokens.weight", [V, H], 2);
  add("model.norm.weight", [H], 0.2, 1);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [H], 0.2, 1);
    add(`${p}post_attention_layernorm.weight`, [H], 0.2, 1);
    for (const k of [3, 17, 40, 300]) tensors[`${p}input_layernorm.weight`].data[k] *= 8;
    const ws = 2 / Math.sqrt(H);
    add(`${p}self_attn.q_proj.weight`, [sh.heads * hd, H], ws);
    add(`${p}self_attn.k_proj.weight`, [sh.kv * hd, H], ws);
    add(`${p}self_attn.v_proj.weight`, [sh.kv * hd, H], ws);
    add(`${p}self_attn.o_proj.weight`, [H, sh.heads * hd], ws);
    add(`${p}mlp.gate_proj.weight`, [I, H], ws);
    add(`${p}mlp.up_proj.weight`, [I, H], ws);
    add(`${p}mlp.down_proj.weight`, [H, I], 2 / Math.sqrt(I));
  }
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: H,
    intermediate_size: I,
    num_attention_heads: sh.heads,
    num_key_value_heads: sh.kv,
    head_dim: hd,
    num_hidden_layers: layers,
    vocab_size: V,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    tie_word_embeddings: true,
  };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
  return dir;
}

/** --light: per-phase ns/param of the calibration-light algorithms on one layer's linears (as quantize() runs them: one per module). */
function lightBench(name: string): void {
  const sh = SHAPES[name], H = sh.hidden, hd = H / sh.heads, I = sh.inter;
  const shapes: [string, number, number][] = [
    ["q_proj", sh.heads * hd, H],
    ["k_proj", sh.kv * hd, H],
    ["v_proj", sh.kv * hd, H],
    ["o_proj", H, sh.heads * hd],
    ["gate_proj", I, H],
    ["up_proj", I, H],
    ["down_proj", H, I],
  ];
  const perLayer = shapes.reduce((a, [, n, k]) => a + n * k, 0);
  const r = rng(11);
  const total = new Map<string, number>();
  for (const [lin, N, K] of shapes) {
    const w32 = new Float32Array(N * K);
    for (let i = 0; i < w32.length; i++) w32[i] = r() * 0.05;
    const W = new Float32Array(new SharedArrayBuffer(4 * N * K)); // as quantize() holds them when a pool runs (its shared arena)
    W.set(w32);
    const rowAmax = new Float64Array(N), packed = new Uint8Array(N * K);
    const phases: [string, () => unknown][] = [
      ["copy into the shared arena (1 thread)", () => W.set(w32)],
      ["FP8 row amax (1 thread)", () => {
        for (let n = 0; n < N; n++) rowAmax[n] = absMax(W, n * K, K);
      }],
      ["FP8 encode, scale known (1 thread)", () => {
        for (let n = 0; n < N; n++) e4m3EncodeDiv(W, n * K, K, fp8Scale(rowAmax[n]), packed, n * K);
      }],
      ["FP8", () => quantizeFp8(W, N, K, "FP8", 1, undefined, pool)],
      ["FP8_PER_CHANNEL_PER_TOKEN", () => quantizeFp8(W, N, K, "FP8_PER_CHANNEL_PER_TOKEN", undefined, undefined, pool)],
      ["FP8_BLOCK_SCALES", () => quantizeFp8Block(W, N, K, undefined, pool)],
      ["W8A16 (RTN per channel)", () => quantizeRtn(W, N, K, { bits: 8, groupSize: K, hasZeroPoint: false }, undefined, pool)],
      ["W4A16 (RTN per channel)", () => quantizeRtn(W, N, K, { bits: 4, groupSize: K, hasZeroPoint: false }, undefined, pool)],
      ["W4A16 (RTN g128)", () => quantizeRtn(W, N, K, { bits: 4, groupSize: 128, hasZeroPoint: false }, undefined, pool)],
    ];
    for (const [phase, f] of phases) {
      const [, ms] = time(f);
      total.set(phase, (total.get(phase) ?? 0) + ms);
      console.log(`  ${lin} [${N}x${K}] ${phase}: ${(ms * 1e6 / (N * K)).toFixed(2)} ns/param`);
    }
  }
  console.log(`${name}, one layer (${(perLayer / 1e6).toFixed(1)}M linear params), ${sh.depth} layers; ${threads} thread(s):`);
  for (const [phase, ms] of total) {
    console.log(`  ${phase}: ${(ms * 1e6 / perLayer).toFixed(2)} ns/param, ${sec(ms * sh.depth)} for all ${sh.depth} layers' linears`);
  }
}

const modelName = values.model ?? "kjv";
const synthetic = modelName in SHAPES;
const dir = synthetic
  ? syntheticModel(modelName, Number(values.layers ?? 1))
  : modelName === "kjv"
  ? new URL("../models/kjv-llama/", import.meta.url).pathname
  : modelName;
const tokens = Number(values.tokens ?? 1024);
const groupSize = Number(values["group-size"] ?? (synthetic ? 128 : 64));
const gptqMaxK = Number(values["gptq-max-k"] ?? Infinity);
const threads = Number(values.threads ?? 1);
using pool = QuantPool.create(threads);
const cpu0 = process.cpuUsage(), wall0 = performance.now();
let peakRss = 0;
const rss = (): void => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
};
const sec = (ms: number): string => (ms / 1000).toFixed(2) + " s";
const now = (): number => {
  if (!values["cpu-clock"]) return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const time = <T>(f: () => T): [T, number] => {
  const t0 = now();
  const v = f();
  rss();
  return [v, now() - t0];
};

if (values.light) {
  if (!(values.model! in SHAPES)) throw new Error(`--light needs --model ${Object.keys(SHAPES).join(" | ")}, got ${values.model}`);
  lightBench(values.model!);
  process.exit(0);
}

try {
  const model: LlamaForCausalLM = AutoModelForCausalLM.fromHuggingFace(dir);
  const c = model.config;
  // Token ids spread over the vocabulary (the synthetic models have no tokenizer; kjv uses its default text).
  const calibration = synthetic ? [Array.from({ length: tokens }, (_, i) => (i * 7919 + 13) % c.vocabSize)] : undefined;
  const seqs = calibrationSequences(model, calibration, { maxTokens: tokens });
  const numTokens = seqs.reduce((a, s) => a + s.length, 0);
  console.log(
    `${modelName}: hidden ${c.hiddenSize}, intermediate ${c.intermediateSize}, heads ${c.numAttentionHeads}/${c.numKeyValueHeads}, ` +
      `${c.numHiddenLayers} layer(s) timed; ${numTokens} calibration tokens in ${seqs.length} sequence(s); group ${groupSize}; ` +
      `${typeof Bun !== "undefined" ? "bun " + Bun.version : "deno"}, ${threads} thread(s)`,
  );
  if (values["e2e-only"]) {
    const quantAlgo = values["e2e-only"] as "W4A16_AWQ" | "W4A16_GPTQ" | "FP8" | "FP8_PER_CHANNEL_PER_TOKEN" | "FP8_BLOCK_SCALES" | "W8A16" | "W4A16";
    const opts = { threads, calibration, maxCalibrationTokens: tokens };
    const grouped = quantAlgo === "W4A16_AWQ" || quantAlgo === "W4A16_GPTQ"; // the others: their default (per channel / per block)
    const qc = grouped ? { quantAlgo, groupSize, hasZeroPoint: quantAlgo === "W4A16_AWQ" } : { quantAlgo };
    const [, ms] = time(() => quantizeSync(model, qc, opts));
    console.log(`quantizeSync ${quantAlgo}${grouped ? ` g${groupSize}` : ""} end to end: ${sec(ms)} (${sec(ms / c.numHiddenLayers)} per layer)`);
  }
  const [, fwd] = values["e2e-only"] ? [null, 0] : time(() => forEachLayerInputs(model, seqs, { hessian: false, sampleRows: 64, runner: pool }, () => rss()));
  if (!values["e2e-only"]) console.log(`calibration forward + mean/max statistics: ${sec(fwd / c.numHiddenLayers)} per layer`);
  const grid: IntGrid = { bits: 4, groupSize, hasZeroPoint: true };
  const perLayer: { awq: number; gptq: number; rtn: number; hessFwd: number }[] = [];
  let t0 = now();
  if (!values["e2e-only"]) {
    forEachLayerInputs(model, seqs, { hessian: !values["skip-gptq"], sampleRows: 64, runner: pool }, (l: number, inputs: LayerInputs) => {
      const row = { awq: 0, gptq: 0, rtn: 0, hessFwd: now() - t0 };
      const p = `model.layers.${l}.`;
      const groups = [
        ["attnIn", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]],
        ["attnOut", ["self_attn.o_proj"]],
        ["mlpIn", ["mlp.gate_proj", "mlp.up_proj"]],
        ["mlpAct", ["mlp.down_proj"]],
      ] as const;
      const weights = groups.map(([, modules]) => modules.map((m) => Float64Array.from(model.weights.readFloat32(`${p}${m}.weight`))));
      if (!values["skip-awq"]) { // all groups' searches in one batch, as quantize() runs them (o_proj: no fold under GQA)
        const searches = groups.flatMap(([input], gi) => {
          if (input === "attnOut") return [];
          const K = inputs[input].absMean.length, ws = weights[gi];
          const cat = new Float64Array(new SharedArrayBuffer(8 * ws.reduce((a, w) => a + w.length, 0)));
          let o = 0;
          for (const w of ws) cat.set(w, (o += w.length) - w.length);
          return [{ W: cat, N: cat.length / K, K, grid, x: inputs[input] }];
        });
        const [, ms] = time(() => awqSearchScales(searches, 10, Infinity, pool));
        console.log(`  layer ${l} AWQ search ${searches.map((x) => `[${x.N}x${x.K}]`).join(" ")}: ${sec(ms)}`);
        row.awq += ms;
      }
      for (const [gi, [input, modules]] of groups.entries()) {
        const st = inputs[input], ws = weights[gi];
        const K = st.absMean.length;
        let factor: ReturnType<typeof gptqFactor> | null = null;
        for (let i = 0; i < ws.length; i++) {
          const n = ws[i].length / K;
          const [, ms] = time(() => quantizeRtn(ws[i], n, K, grid));
          row.rtn += ms;
          if (values["skip-gptq"] || K > gptqMaxK || !st.hessian) continue;
          if (values["gptq-modules"] && !values["gptq-modules"].split(",").includes(modules[i])) continue;
          if (!factor) {
            const [f, fms] = time(() => gptqFactor(st.hessian!, K, 0.01, pool));
            console.log(`  layer ${l} GPTQ H⁻¹ factor ${input} [${K}x${K}]: ${sec(fms)}`);
            row.gptq += fms;
            factor = f;
          }
          const [, gms] = time(() => quantizeGptq(ws[i].slice(), n, K, grid, factor!, 0.01, pool));
          console.log(`  layer ${l} GPTQ ${modules[i]} [${n}x${K}]: ${sec(gms)}`);
          row.gptq += gms;
        }
      }
      perLayer.push(row);
      console.log(
        `layer ${l}: forward + statistics${values["skip-gptq"] ? "" : " + Hessians"} ${sec(row.hessFwd)}, AWQ search ${sec(row.awq)}, GPTQ ${
          sec(row.gptq)
        }, RTN + packing ${sec(row.rtn)}`,
      );
      t0 = now();
    });
  }
  if (synthetic && !values["e2e-only"]) {
    const depth = SHAPES[modelName].depth, avg = (f: (r: (typeof perLayer)[0]) => number) => perLayer.reduce((a, r) => a + f(r), 0) / perLayer.length;
    console.log(
      `extrapolated to ${depth} layers (${threads} thread(s)): AWQ (forward + search + RTN) ${
        sec(depth * (fwd / c.numHiddenLayers + avg((r) => r.awq + r.rtn)))
      }, ` +
        `GPTQ (forward + Hessians + GPTQ) ${sec(depth * avg((r) => r.hessFwd + r.gptq))}`,
    );
  }
  if (!synthetic && !values["no-e2e"] && !values["e2e-only"]) {
    for (const quantAlgo of ["W4A16_AWQ", "W4A16_GPTQ"] as const) {
      const [, ms] = time(() => quantizeSync(model, { quantAlgo, groupSize, hasZeroPoint: quantAlgo === "W4A16_AWQ" }, { threads }));
      console.log(`quantizeSync ${quantAlgo} g${groupSize} end to end: ${sec(ms)}`);
    }
  }
  model.close();
  const cpu = process.cpuUsage(cpu0);
  const hwm = fs.existsSync("/proc/self/status") ? /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8")) : null;
  if (hwm) peakRss = Math.max(peakRss, Number(hwm[1]) * 1024);
  console.log(
    `peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB; ${threads} thread(s); wall ${sec(performance.now() - wall0)}, process CPU ${
      sec((cpu.user + cpu.system) / 1000)
    }`,
  );
} finally {
  if (synthetic) fs.rmSync(dir, { recursive: true, force: true });
}
