#!/usr/bin/env bun
/**
 * Writes a pre-quantized FP8 Hugging Face checkpoint in a public layout from a float checkpoint, the
 * way the public tools do, with plain loops independent of llmrt's quantizers (only the e4m3 codec is
 * shared): every q/k/v/o/gate/up/down projection of a Llama-family model becomes an F8_E4M3 `weight`
 * plus its scales; other tensors are copied; config.json gets the layout's `quantization_config`.
 * Also writes `dequantized.safetensors.ref`: the float32 values e4m3 · scale the packer stored.
 *
 * Layouts:
 * - `fp8` (AutoFP8 / vLLM): per-tensor s = amax / 448, q = e4m3(w / s); `weight_scale` F32 scalar
 *   (shape []); activation_scheme "static" adds `input_scale` F32 scalars (given, e.g. from calibration),
 *   "dynamic" none.
 * - `fp8-block` (transformers FineGrainedFP8, DeepSeek-V3 / Qwen3-FP8): per [bn, bk] block,
 *   m = 448 / amax, q = e4m3(w · m), `weight_scale_inv` = 1 / m, F32 [⌈N/bn⌉, ⌈K/bk⌉];
 *   `weight_block_size: [bn, bk]`, activation_scheme "dynamic".
 * - `compressed-tensors` (llm-compressor FP8_DYNAMIC): per output channel s = amax / 448,
 *   q = e4m3(w / s), `weight_scale` [N, 1] in the checkpoint's float dtype; dynamic per-token
 *   activations; optional `kv_cache_scheme` with `self_attn.k_scale` / `v_scale` [1] per layer.
 * Arithmetic in float32 (as PyTorch does it); scales of all-zero tensors/rows/blocks are 1.
 *
 *   bun tools/quant-packers/pack_fp8_checkpoint.ts --model DIR --out DIR --layout fp8|fp8-block|compressed-tensors
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { Checkpoint, type TensorToWrite, writeSafetensors } from "../../lib/models/safetensors.ts";
import { E4M3_DECODE, e4m3Encode } from "../../lib/util/e4m3.ts";
import type { DType } from "../../lib/util/dtype.ts";
import { f32ToBf16, f32ToF16 } from "../../lib/util/dtype.ts";

const LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];
const f = Math.fround;

export interface Fp8PackOptions {
  readonly layout: "fp8" | "fp8-block" | "compressed-tensors";
  /** `fp8`: "static" writes `input_scale` from `inputScales` (module → scale). @default "dynamic" */
  readonly activationScheme?: "static" | "dynamic";
  readonly inputScales?: Readonly<Record<string, number>>;
  /**
   * `fp8`: per-module weight scales to use instead of amax / 448 (e.g. one scale shared by the q/k/v
   * parts of a fused projection, as llmrt's quantize(FP8) makes them). @default amax / 448
   */
  readonly weightScales?: Readonly<Record<string, number>>;
  /** `fp8-block`: [bn, bk]. @default [128, 128] */
  readonly blockSize?: readonly [number, number];
  /** `compressed-tensors`: KV-cache scales per layer, written as a kv_cache_scheme. */
  readonly kvScales?: readonly { readonly k: number; readonly v: number }[];
}

/** One quantized linear: e4m3 bytes [N*K], its scale tensor (shape, values) and the dequantized values. */
function packLinear(
  W: Float32Array,
  N: number,
  K: number,
  o: Fp8PackOptions,
  given?: number,
): { q: Uint8Array; scale: number[]; shape: number[]; deq: Float32Array } {
  const q = new Uint8Array(N * K), deq = new Float32Array(N * K);
  if (o.layout === "fp8-block") {
    const [bn, bk] = o.blockSize ?? [128, 128], R = Math.ceil(N / bn), C = Math.ceil(K / bk);
    const inv: number[] = [];
    for (let i = 0; i < R; i++) {
      for (let j = 0; j < C; j++) {
        let amax = 0;
        for (let n = i * bn; n < Math.min(N, (i + 1) * bn); n++) {
          for (let k = j * bk; k < Math.min(K, (j + 1) * bk); k++) amax = Math.max(amax, Math.abs(W[n * K + k]));
        }
        const m = amax > 0 ? f(448 / amax) : 1, s = f(1 / m);
        inv.push(s);
        for (let n = i * bn; n < Math.min(N, (i + 1) * bn); n++) {
          for (let k = j * bk; k < Math.min(K, (j + 1) * bk); k++) {
            q[n * K + k] = e4m3Encode(f(W[n * K + k] * m));
            deq[n * K + k] = f(E4M3_DECODE[q[n * K + k]] * s);
          }
        }
      }
    }
    return { q, scale: inv, shape: [R, C], deq };
  }
  const perChannel = o.layout === "compressed-tensors";
  const rowAmax = Array.from({ length: N }, (_, n) => W.subarray(n * K, (n + 1) * K).reduce((a, v) => Math.max(a, Math.abs(v)), 0));
  const tensorAmax = Math.max(...rowAmax);
  const scale = perChannel ? rowAmax.map((a) => (a > 0 ? f(a / 448) : 1)) : [given ?? (tensorAmax > 0 ? f(tensorAmax / 448) : 1)];
  for (let n = 0; n < N; n++) {
    const s = scale[perChannel ? n : 0];
    for (let k = 0; k < K; k++) {
      q[n * K + k] = e4m3Encode(f(W[n * K + k] / s));
      deq[n * K + k] = f(E4M3_DECODE[q[n * K + k]] * s);
    }
  }
  return { q, scale, shape: perChannel ? [N, 1] : [], deq };
}

function scaleTensor(values: number[], shape: number[], dtype: DType): TensorToWrite {
  const x = Float32Array.from(values);
  return { dtype, shape, data: dtype === "BF16" ? f32ToBf16(x) : dtype === "F16" ? f32ToF16(x) : x };
}

/** Packs `modelDir` into `outDir` in `o.layout`. */
export function packFp8Checkpoint(modelDir: string, outDir: string, o: Fp8PackOptions): void {
  const ckpt = Checkpoint.open(modelDir);
  const config = JSON.parse(fs.readFileSync(path.join(modelDir, "config.json"), "utf8"));
  const tensors: Record<string, TensorToWrite> = {};
  const dequantized: Record<string, TensorToWrite> = {};
  const linears = new Set<string>();
  for (let l = 0; l < config.num_hidden_layers; l++) for (const m of LINEARS) linears.add(`model.layers.${l}.${m}.weight`);
  const staticInput = o.layout === "fp8" && o.activationScheme === "static";
  for (const name of ckpt.names()) {
    const info = ckpt.info(name);
    if (!linears.has(name)) {
      tensors[name] = { dtype: info.dtype as DType, shape: info.shape, data: ckpt.readBytes(name) };
      continue;
    }
    const [N, K] = info.shape, m = name.replace(/\.weight$/, "");
    const p = packLinear(ckpt.readFloat32(name), N, K, o, o.layout === "fp8" ? o.weightScales?.[m] : undefined);
    tensors[name] = { dtype: "F8_E4M3", shape: [N, K], data: p.q };
    // compressed-tensors stores scales in the model's float dtype; the fp8 layouts in F32.
    const sDtype = o.layout === "compressed-tensors" ? info.dtype as DType : "F32";
    tensors[`${m}.${o.layout === "fp8-block" ? "weight_scale_inv" : "weight_scale"}`] = scaleTensor(p.scale, p.shape, sDtype);
    if (staticInput) {
      const a = o.inputScales?.[m];
      if (!(a !== undefined && a > 0)) throw new Error(`packFp8Checkpoint: activation_scheme static needs inputScales['${m}']`);
      tensors[`${m}.input_scale`] = scaleTensor([a], [], "F32");
    }
    dequantized[name] = { dtype: "F32", shape: [N, K], data: p.deq };
  }
  if (o.kvScales) {
    if (o.layout !== "compressed-tensors") throw new Error("packFp8Checkpoint: kvScales are written in the compressed-tensors layout only");
    o.kvScales.forEach((s, l) => {
      tensors[`model.layers.${l}.self_attn.k_scale`] = scaleTensor([s.k], [1], "F32");
      tensors[`model.layers.${l}.self_attn.v_scale`] = scaleTensor([s.v], [1], "F32");
    });
  }
  ckpt.close();
  fs.mkdirSync(outDir, { recursive: true });
  writeSafetensors(path.join(outDir, "model.safetensors"), tensors, { format: "pt" });
  writeSafetensors(path.join(outDir, "dequantized.safetensors.ref"), dequantized);
  config.quantization_config = quantizationConfig(o);
  fs.writeFileSync(path.join(outDir, "config.json"), JSON.stringify(config, null, 2));
  for (const name of ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"]) {
    if (fs.existsSync(path.join(modelDir, name))) fs.copyFileSync(path.join(modelDir, name), path.join(outDir, name));
  }
}

function quantizationConfig(o: Fp8PackOptions): Record<string, unknown> {
  if (o.layout === "fp8") return { quant_method: "fp8", activation_scheme: o.activationScheme ?? "dynamic", ignored_layers: ["lm_head"] };
  if (o.layout === "fp8-block") return { quant_method: "fp8", activation_scheme: "dynamic", fmt: "e4m3", weight_block_size: [...(o.blockSize ?? [128, 128])] };
  const args = (strategy: string, dynamic: boolean, observer: string | null) => ({
    num_bits: 8,
    type: "float",
    symmetric: true,
    group_size: null,
    strategy,
    block_structure: null,
    dynamic,
    actorder: null,
    observer,
    observer_kwargs: {},
  });
  return {
    quant_method: "compressed-tensors",
    format: "float-quantized",
    quantization_status: "compressed",
    global_compression_ratio: null,
    config_groups: {
      group_0: {
        targets: ["Linear"],
        weights: args("channel", false, "minmax"),
        input_activations: args("token", true, null),
        output_activations: null,
        format: "float-quantized",
      },
    },
    ignore: ["lm_head"],
    kv_cache_scheme: o.kvScales ? args("tensor", false, "minmax") : null,
    sparsity_config: {},
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { model: { type: "string" }, out: { type: "string" }, layout: { type: "string" } } });
  const layout = values.layout;
  if (!values.model || !values.out || (layout !== "fp8" && layout !== "fp8-block" && layout !== "compressed-tensors")) {
    console.error("usage: pack_fp8_checkpoint.ts --model DIR --out DIR --layout fp8|fp8-block|compressed-tensors");
    process.exit(2);
  }
  packFp8Checkpoint(values.model, values.out, { layout });
}
