#!/usr/bin/env bun
/**
 * Checks that an llmrt engine holds exactly what an FP8 packer wrote (issue 14): for every FP8 linear of the
 * engine (fused q/k/v and gate/up included) the e4m3 bytes of each part's rows give the packer's two
 * position-weighted checksums (sum of byte[i] · (i mod M + 1), M = 251 and 65521, over the part's flat [N, K]
 * bytes), the part's rows of `<w>.scales` its first / last / summed scale, the static activation scale the
 * packer's input_scale, and the plan's KV-cache scales the packer's k_scale / v_scale of every layer.
 * The reference is `fp8_pack_ref.json`, written by tools/quant-packers/pack_fp8_torch.py (torch on the GPU
 * host) from its own tensors, independently of llmrt's loader.
 *
 *   bun tools/quant-packers/check_fp8_pack.ts --model PACKED_DIR [--layers all|0,15,31]
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { buildSync } from "../../lib/builder/builder.ts";
import type { Engine } from "../../lib/builder/engine.ts";
import { openModel } from "../../lib/quantization/prequantized.ts";

/** One quantized linear as the packer wrote it. */
export interface Fp8PackRefLinear {
  readonly shape: readonly [number, number];
  readonly checksums: readonly number[];
  readonly scale_first: number;
  readonly scale_last: number;
  readonly scale_sum: number;
  readonly input_scale?: number;
}

/** fp8_pack_ref.json. */
export interface Fp8PackRef {
  readonly scheme: "static" | "dynamic";
  readonly mods: readonly number[];
  readonly linears: Readonly<Record<string, Fp8PackRefLinear>>;
  /** Per layer [k_scale, v_scale], or null without a KV-cache scheme. */
  readonly kv: readonly (readonly [number, number])[] | null;
}

/** Engine weight → the checkpoint modules its rows hold, in order. */
const PARTS: readonly [string, readonly string[]][] = [
  ["qkv", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]],
  ["o_proj", ["self_attn.o_proj"]],
  ["gate_up", ["mlp.gate_proj", "mlp.up_proj"]],
  ["down", ["mlp.down_proj"]],
];

/** The packer's checksums of a flat byte range (see the file comment). Exact in a float64 below 2^53. */
export function fp8Checksums(bytes: Uint8Array, mods: readonly number[]): number[] {
  return mods.map((m) => {
    let s = 0, w = 1;
    for (let i = 0; i < bytes.length; i++) {
      s += bytes[i] * w;
      if (++w > m) w = 1;
    }
    return s;
  });
}

/** What the check found. */
export interface Fp8PackCheck {
  readonly linears: number;
  readonly bytes: number;
  readonly kvLayers: number;
  readonly mismatches: readonly string[];
}

/**
 * Compares `engine` with the packer's reference over `layers` (default all); mismatches are listed, not thrown.
 */
export function checkFp8Pack(engine: Engine, ref: Fp8PackRef, layers?: readonly number[]): Fp8PackCheck {
  const L = engine.config.model.numHiddenLayers;
  const bad: string[] = [];
  let linears = 0, bytes = 0;
  const ops = new Map<string, Extract<(typeof engine.plan.ops)[number], { type: "linear" }>>();
  for (const op of engine.plan.ops) if (op.type === "linear") ops.set(op.weight, op);
  for (const l of layers ?? Array.from({ length: L }, (_, i) => i)) {
    for (const [w, parts] of PARTS) {
      const name = `layers.${l}.${w}.weight`;
      const op = ops.get(name);
      const f = op?.weightFormat;
      if (!op || f?.format !== "fp8_e4m3") {
        bad.push(`${name}: not an FP8 linear in the engine (${f?.format ?? "no weight format"})`);
        continue;
      }
      const q = engine.readTensor(name), scales = engine.readFloat32(f.scales);
      const K = op.inFeatures;
      let row = 0;
      const inputScales: number[] = [];
      for (const part of parts) {
        const key = `model.layers.${l}.${part}`, r = ref.linears[key];
        if (!r) {
          bad.push(`${key}: missing from the packer's reference`);
          continue;
        }
        const [N, k] = r.shape;
        if (k !== K) bad.push(`${key}: packer K ${k}, engine ${K}`);
        const got = fp8Checksums(q.subarray(row * K, (row + N) * K), ref.mods);
        if (got.some((v, i) => v !== r.checksums[i])) bad.push(`${key}: e4m3 bytes differ (checksums ${got} vs ${r.checksums})`);
        const s = scales.subarray(row, row + N);
        // Per-tensor weights ("static": one stored scale) hold it on every row of the engine's scales.
        let sum = 0;
        for (const v of s) sum += v;
        if (ref.scheme === "static") sum /= N;
        if (s[0] !== Math.fround(r.scale_first) || s[N - 1] !== Math.fround(r.scale_last) || Math.abs(sum - r.scale_sum) > 1e-9 * Math.abs(r.scale_sum)) {
          bad.push(`${key}: scales differ (first ${s[0]} / ${r.scale_first}, last ${s[N - 1]} / ${r.scale_last}, sum ${sum} / ${r.scale_sum})`);
        }
        if (r.input_scale !== undefined) inputScales.push(r.input_scale);
        row += N;
        bytes += N * K;
        linears++;
      }
      if (row !== op.outFeatures) bad.push(`${name}: the parts hold ${row} rows, the engine ${op.outFeatures}`);
      if (ref.scheme === "static") {
        const want = Math.fround(Math.max(...inputScales));
        if (f.activation !== "static_per_tensor" || f.activationScale !== want) {
          bad.push(`${name}: activation ${f.activation} scale ${f.activationScale}, packer input_scale ${want}`);
        }
        if (f.weightScale !== "per_tensor") bad.push(`${name}: weightScale ${f.weightScale}, the packer shares one scale per fused linear`);
      } else if (f.activation !== "dynamic_per_token") {
        bad.push(`${name}: activation ${f.activation}, the packer wrote dynamic per-token activations`);
      }
    }
  }
  const kv = engine.plan.attributes.kvCache;
  let kvLayers = 0;
  if (ref.kv) {
    const nKV = engine.config.model.numKeyValueHeads;
    if (!kv || kv.quantAlgo !== "FP8") bad.push(`engine KV cache is ${kv?.quantAlgo ?? "not quantized"}, the packer wrote an FP8 kv_cache_scheme`);
    else {
      for (let l = 0; l < L; l++) {
        for (let j = 0; j < 2; j++) {
          const want = Math.fround(ref.kv[l][j]);
          for (let h = 0; h < nKV; h++) {
            const got = kv.scales[(l * 2 + j) * nKV + h];
            if (got !== want) bad.push(`layer ${l} ${j ? "v" : "k"} head ${h}: KV scale ${got}, packer ${want}`);
          }
        }
        kvLayers++;
      }
    }
  } else if (kv) bad.push(`engine KV cache is ${kv.quantAlgo}, the packer wrote no kv_cache_scheme`);
  return { linears, bytes, kvLayers, mismatches: bad };
}

if (import.meta.main) {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { model: { type: "string" }, layers: { type: "string" } } });
  if (!values.model) {
    console.error("usage: check_fp8_pack.ts --model PACKED_DIR [--layers all|0,15,31]");
    process.exit(2);
  }
  const ref = JSON.parse(fs.readFileSync(path.join(values.model, "fp8_pack_ref.json"), "utf8")) as Fp8PackRef;
  const t0 = performance.now();
  const model = openModel(values.model, { dtype: "bfloat16" });
  const engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 1, maxNumTokens: 64, maxSeqLen: 64, tokensPerBlock: 32 });
  const t1 = performance.now();
  const layers = !values.layers || values.layers === "all" ? undefined : values.layers.split(",").map(Number);
  const r = checkFp8Pack(engine, ref, layers);
  const t2 = performance.now();
  console.log(
    `fp8 pack check ${values.model} (${ref.scheme}): ${r.linears} linears, ${(r.bytes / 1e9).toFixed(3)} GB of e4m3 bytes, ${r.kvLayers} layers' KV scales; ` +
      `${r.mismatches.length} mismatches (open + build ${((t1 - t0) / 1000).toFixed(1)} s, check ${((t2 - t1) / 1000).toFixed(1)} s)`,
  );
  for (const m of r.mismatches.slice(0, 20)) console.log(`  MISMATCH ${m}`);
  engine.dispose();
  process.exit(r.mismatches.length ? 1 : 0);
}
