import type { LlamaForCausalLM } from "../models/llama.ts";
import { InternalError, UnsupportedError, ValidationError } from "../util/errors.ts";
import { type IntGrid, quantizeRtn } from "./algorithms.ts";
import { awqSearchScales } from "./awq.ts";
import { type GptqFactor, gptqFactor, quantizeGptq } from "./gptq.ts";
import { QuantPool } from "./pool.ts";
import { f64, serialRunner, SharedArena, type TaskRunner } from "./tasks.ts";
import { type Calibration, calibrationSequences, forEachLayerInputs, type InputStats, type LayerInputs } from "./calibration.ts";
import { quantizeFp8, tensorAbsMax } from "./fp8.ts";
import { quantizeFp8Block } from "./fp8_block.ts";
import { quantizeNvfp4, toW4A8 } from "./nvfp4.ts";
import { quantizeInt8PerChannel, smoothFactors } from "./smoothquant.ts";
import type { QuantizedTensor } from "./packed.ts";
import { kvCacheScales, withKvCacheQuant } from "./kv_cache_quant.ts";
import { isWeightOnly, type QuantAlgo } from "./quant_algo.ts";
import { effectiveGroupSize, type LayerQuant, QuantConfig, type QuantConfigInput } from "./quant_config.ts";
import { OverlayWeightSource, QuantizedModel } from "./quantized_model.ts";

/** Options of {@link quantize}. */
export interface QuantizeOptions {
  /** Token id sequences or texts. @default a slice of the embedded model's training text (KJV) */
  readonly calibration?: Calibration;
  /** Tokenizes calibration texts. @default the model directory's tokenizer.json */
  readonly tokenize?: (text: string) => number[];
  /** Calibration tokens used in all. @default 1024 */
  readonly maxCalibrationTokens?: number;
  /** Tokens per calibration sequence. @default 256 */
  readonly calibrationSeqLen?: number;
  /** GPTQ damping, a fraction of the Hessian's mean diagonal. @default 0.01 */
  readonly gptqDampPercent?: number;
  /** AWQ: calibration rows (tokens) scoring each scale candidate. @default 64 */
  readonly awqSampleRows?: number;
  /** AWQ: candidate exponents α = 0, 1/n, …, (n−1)/n. @default 10 */
  readonly awqGridSize?: number;
  /**
   * `kvCacheQuantAlgo`: calibrate one KV scale per (layer, k | v, kv head) from the calibration amax;
   * false uses the fixed defaults (FP8 1.0, INT8 1/16: kv_cache_quant.ts). @default true
   */
  readonly calibrateKvCache?: boolean;
  /**
   * Threads for the calibration forward, Hessians, AWQ's search and GPTQ (this one and Web Workers);
   * results are the same for any count. @default the machine's cores for models with ≥ 4M weights
   * per layer, else 1
   */
  readonly threads?: number;
}

/** The linears of one decoder layer, grouped by the input they share. */
const GROUPS = [
  { input: "attnIn", modules: ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"] },
  { input: "attnOut", modules: ["self_attn.o_proj"] },
  { input: "mlpIn", modules: ["mlp.gate_proj", "mlp.up_proj"] },
  { input: "mlpAct", modules: ["mlp.down_proj"] },
] as const;
/** Algorithms that quantize each weight as read (no calibration-driven rescaling of the weights). */
const LIGHT: ReadonlySet<string> = new Set(["FP8", "FP8_PER_CHANNEL_PER_TOKEN", "FP8_BLOCK_SCALES", "W8A16", "W4A16"]);
/** Linears fused into one engine weight must share a quantization. */
const FUSED = [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["mlp.gate_proj", "mlp.up_proj"]];

const same = (a: LayerQuant | null, b: LayerQuant | null): boolean =>
  a === b ||
  (a !== null && b !== null && a.bits === b.bits && a.groupSize === b.groupSize && a.hasZeroPoint === b.hasZeroPoint &&
    (a.algo === b.algo || (isWeightOnly(a.algo) && isWeightOnly(b.algo))));

/** The plan: each quantized HF linear → its grid and algorithm. Validates shapes before any work. */
function planModules(model: LlamaForCausalLM, qc: QuantConfig): Map<string, { lq: LayerQuant; grid: IntGrid; N: number; K: number }> {
  const plan = new Map<string, { lq: LayerQuant; grid: IntGrid; N: number; K: number }>();
  const add = (module: string): LayerQuant | null => {
    const lq = qc.layerQuant(module);
    if (!lq) return null;
    const name = `${module}.weight`;
    if (!model.weights.has(name)) throw new ValidationError(`quantize: checkpoint has no tensor '${name}'`, name);
    const [N, K] = model.weights.info(name).shape;
    const groupSize = effectiveGroupSize(lq, module, K);
    plan.set(name, { lq, grid: { bits: lq.bits, groupSize, hasZeroPoint: lq.hasZeroPoint }, N, K });
    return lq;
  };
  for (let l = 0; l < model.config.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    const got = new Map<string, LayerQuant | null>();
    for (const g of GROUPS) for (const m of g.modules) got.set(m, add(p + m));
    for (const f of FUSED) {
      if (!f.every((m) => same(got.get(m)!, got.get(f[0])!))) {
        throw new ValidationError(
          `quantize: ${f.map((m) => p + m).join(", ")} are fused into one engine weight and must share one quantization (got ${
            f.map((m) => got.get(m)?.algo ?? "none").join(", ")
          })`,
          "QuantConfig",
          f.map((m) => p + m),
        );
      }
    }
  }
  if (qc.layerQuant("lm_head")) {
    if (model.config.tieWordEmbeddings || !model.weights.has("lm_head.weight")) {
      throw new UnsupportedError(
        "quantize: lm_head shares the embedding table (tied); quantizing it is not supported — keep 'lm_head' in excludeModules",
        "QuantConfig.excludeModules",
        qc.excludeModules,
      );
    }
    add("lm_head");
  }
  return plan;
}

/** The statistics of inputs x/s (for weights scaled by s along their input dim). */
function scaleStats(st: InputStats, s: Float64Array): InputStats {
  const K = s.length;
  const rows = st.rows.slice();
  for (let t = 0; t < st.numRows; t++) for (let k = 0; k < K; k++) rows[t * K + k] /= s[k];
  let hessian: Float64Array | null = null;
  if (st.hessian) {
    hessian = st.hessian.slice();
    for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) hessian[i * K + j] /= s[i] * s[j];
  }
  return {
    absMean: st.absMean.map((v, k) => v / s[k]),
    sqMean: st.sqMean.map((v, k) => v / (s[k] * s[k])),
    rows,
    numRows: st.numRows,
    hessian,
    numTokens: st.numTokens,
    absMax: st.absMax.map((v, k) => v / s[k]),
  };
}

/**
 * Quantizes a model's linears per `quantConfig` and returns a {@link QuantizedModel} that `build()`
 * takes like any other: W8A16 / W4A16 (round to nearest, per-channel unless a groupSize is given),
 * W4A16_AWQ (activation-aware scale search folded into the preceding norm / projection), W4A16_GPTQ (Hessian-based rounding with error feedback),
 * FP8 (e4m3 weights with a per-tensor scale, static per-tensor activation scale from the calibration amax) and FP8_PER_CHANNEL_PER_TOKEN
 * (per-output-channel weight scales, dynamic per-token activation scales), W8A8_SQ_PER_CHANNEL (SmoothQuant with `alpha`: int8 per-channel
 * weights, dynamic per-token int8 activations), W4A8_AWQ (AWQ int4 groupwise weights, static per-tensor FP8 activations) and NVFP4
 * (e2m1 weights and activations with e4m3 scales per 16 and float32 global scales; on the H200, which has no FP4 tensor cores, a storage
 * format the CUDA kernels dequantize).
 * Every algorithm but RTN (W8A16 / W4A16) runs a float forward over the calibration tokens, one layer at a time.
 * `kvCacheQuantAlgo` (FP8 / INT8) calibrates one KV-cache scale per (layer, k | v, kv head) in the same pass; on an
 * already quantized model (e.g. a pre-quantized checkpoint) with quantAlgo NO_QUANT it only adds the KV-cache quantization.
 *
 * @example
 * ```ts
 * const model = AutoModelForCausalLM.fromHuggingFace("models/kjv-llama");
 * const q = await quantize(model, { quantAlgo: QuantAlgo.W4A16_GPTQ, groupSize: 64 });
 * const engine = await build(q);
 * ```
 */
export function quantize(model: LlamaForCausalLM, quantConfig: QuantConfigInput | QuantConfig, options: QuantizeOptions = {}): Promise<QuantizedModel> {
  return Promise.resolve().then(() => quantizeSync(model, quantConfig, options));
}

/** Synchronous form of {@link quantize}. */
export function quantizeSync(model: LlamaForCausalLM, quantConfig: QuantConfigInput | QuantConfig, options: QuantizeOptions = {}): QuantizedModel {
  const qc = QuantConfig.from(quantConfig);
  if (model instanceof QuantizedModel) {
    if (qc.quantAlgo === "NO_QUANT" && qc.kvCacheQuantAlgo !== null) {
      return withKvCacheQuant(model, qc.kvCacheQuantAlgo, {
        calibrate: options.calibrateKvCache,
        calibration: options.calibration,
        tokenize: options.tokenize,
        seqLen: options.calibrationSeqLen,
        maxTokens: options.maxCalibrationTokens,
      });
    }
    throw new ValidationError(
      `quantize: the model is already quantized (${model.quantConfig.quantAlgo}); only KV-cache quantization can be added (quantAlgo NO_QUANT with a kvCacheQuantAlgo)`,
      "model",
      model.quantConfig.quantAlgo,
    );
  }
  const threads = calibrationThreads(model.config, options.threads);
  const plan = planModules(model, qc);
  const floats = new Map<string, Float32Array>();
  const quantized = new Map<string, QuantizedTensor>();
  const awqScales = new Map<string, Float64Array>();
  const algos = new Set([...plan.values()].map((v) => v.lq.algo));
  const kvAlgo = qc.kvCacheQuantAlgo, calibrateKv = kvAlgo !== null && options.calibrateKvCache !== false;
  const needsData = ["W4A16_AWQ", "W4A16_GPTQ", "FP8", "W8A8_SQ_PER_CHANNEL", "W4A8_AWQ", "NVFP4"].some((a) => algos.has(a as QuantAlgo)) || calibrateKv;
  const preQuant = new Map<string, Float32Array>();
  const c = model.config;
  const kvAmax: Float64Array[] = [];
  let runner: TaskRunner = serialRunner;
  const arena = new SharedArena();
  const quantizeLayer = (l: number, inputs: LayerInputs | null): void => {
    const p = `model.layers.${l}.`;
    if (runner.threads > 1) { // room for the layer's float32 weights of the light algorithms
      arena.reset(
        GROUPS.flatMap((g) => g.modules).reduce((a, m) => {
          const e = plan.get(`${p}${m}.weight`);
          return a + (e && LIGHT.has(e.lq.algo) ? e.N * e.K : 0);
        }, 0),
      );
    }
    if (inputs) kvAmax[l] = inputs.kvAmax;
    const W = new Map<string, Float64Array>();
    const weight = (name: string): Float64Array => {
      let w = W.get(name);
      if (!w) { // in shared memory when a pool runs: its workers read the weights
        const f = model.weights.readFloat32(name);
        W.set(name, w = f64(f.length, runner));
        w.set(f);
      }
      return w;
    };
    // Weights of the calibration-light algorithms that nothing scaled (not in W): the float32 values as read
    // (copied into the shared arena when a pool runs), no float64 working copy.
    const F32 = new Map<string, Float32Array>();
    const source = (name: string): Float64Array | Float32Array => {
      const w = W.get(name);
      if (w || !LIGHT.has(plan.get(name)?.lq.algo ?? "")) return w ?? weight(name);
      let f = F32.get(name);
      if (!f) {
        const r = model.weights.readFloat32(name);
        if (runner.threads > 1) (f = arena.f32(r.length)).set(r);
        F32.set(name, f ??= r);
      }
      return f;
    };
    const touched = new Set<string>();
    const stats = new Map<string, InputStats>();
    // AWQ: search each input group's scales on the float weights (all groups of the layer at once:
    // no search reads what another group's scaling changes), fold 1/s upstream, scale columns by s.
    const awqOf = (g: (typeof GROUPS)[number]): string[] =>
      g.modules.map((m) => `${p}${m}.weight`).filter((n) => plan.get(n)?.lq.algo === "W4A16_AWQ" || plan.get(n)?.lq.algo === "W4A8_AWQ");
    const searched = GROUPS.filter((g) => inputs && awqOf(g).length > 0 && awqUpstream(g.input, p, c));
    const found = awqSearchScales(
      searched.map((g) => {
        const parts = awqOf(g).map(weight), e = plan.get(awqOf(g)[0])!;
        const cat = f64(parts.reduce((a, w) => a + w.length, 0), runner);
        let o = 0;
        for (const w of parts) {
          cat.set(w, o);
          o += w.length;
        }
        return { W: cat, N: cat.length / e.K, K: e.K, grid: e.grid, x: inputs![g.input] };
      }),
      options.awqGridSize ?? 10,
      Infinity,
      runner,
    );
    for (const g of GROUPS) {
      const names = g.modules.map((m) => `${p}${m}.weight`);
      let st = inputs ? inputs[g.input] : null;
      if (st && searched.includes(g)) {
        const upstream = awqUpstream(g.input, p, c);
        if (upstream) {
          const s = found[searched.indexOf(g)], K = s.length;
          for (const n of names) {
            const w = weight(n);
            for (let r = 0; r < w.length / K; r++) for (let k = 0; k < K; k++) w[r * K + k] *= s[k];
            touched.add(n);
          }
          for (const u of upstream) foldInverse(u, s, weight, touched);
          awqScales.set(`${p}${g.input}`, s);
          st = scaleStats(st, s);
        }
      }
      if (st && names.some((n) => plan.get(n)?.lq.algo === "W8A8_SQ_PER_CHANNEL")) smoothGroup(g.input, p, names, st, qc.alpha, weight, touched, preQuant);
      if (st) stats.set(g.input, st);
    }
    for (const g of GROUPS) {
      // Linears fused into one engine weight (q/k/v, gate/up) share one global scale: NVFP4's, and per-tensor
      // FP8's weight scale (the amax of all parts), so the fused weight keeps a single scale that an FP8 GEMM
      // can take as a scalar.
      let groupAmax: number | undefined;
      const fused = (): number => (groupAmax ??= g.modules.map((x) => `${p}${x}.weight`).filter((n) => plan.has(n)).reduce(
        (m, n) => Math.max(m, tensorAbsMax(source(n), plan.get(n)!.N, plan.get(n)!.K, runner)),
        0,
      ));
      let factor: GptqFactor | undefined; // GPTQ's H⁻¹ factor, shared by the linears of one input
      for (const m of g.modules) {
        const name = `${p}${m}.weight`;
        const e = plan.get(name);
        if (!e) continue;
        const w = source(name);
        const amax = e.lq.algo === "NVFP4" || e.lq.algo === "FP8" ? fused() : undefined;
        const st = stats.get(g.input) ?? null;
        if (e.lq.algo === "W4A16_GPTQ" && st?.hessian) factor ??= gptqFactor(st.hessian, e.K, options.gptqDampPercent, runner);
        quantized.set(name, quantizeOne(e.lq.algo, w, e.N, e.K, e.grid, st, options, amax, preQuant.get(name), factor, runner));
        touched.delete(name);
      }
    }
    for (const n of touched) floats.set(n, Float32Array.from(W.get(n)!));
  };
  const pool = threads > 1 ? QuantPool.create(threads) : null;
  if (pool) runner = pool;
  try {
    if (needsData) {
      const seqs = calibrationSequences(model, options.calibration, {
        tokenize: options.tokenize,
        seqLen: options.calibrationSeqLen,
        maxTokens: options.maxCalibrationTokens,
      });
      const final = forEachLayerInputs(model, seqs, { hessian: algos.has("W4A16_GPTQ"), sampleRows: options.awqSampleRows ?? 64, runner }, quantizeLayer);
      const lm = plan.get("lm_head.weight");
      if (lm) {
        quantized.set(
          "lm_head.weight",
          quantizeOne(
            lm.lq.algo,
            Float64Array.from(model.weights.readFloat32("lm_head.weight")),
            lm.N,
            lm.K,
            lm.grid,
            final,
            options,
            undefined,
            undefined,
            undefined,
            runner,
          ),
        );
      }
    } else {
      for (let l = 0; l < c.numHiddenLayers; l++) quantizeLayer(l, null);
      const lm = plan.get("lm_head.weight");
      if (lm) quantized.set("lm_head.weight", quantizeOne(lm.lq.algo, model.weights.readFloat32("lm_head.weight"), lm.N, lm.K, lm.grid, null, options));
    }
  } finally {
    pool?.close();
  }
  const kvScales = calibrateKv ? kvCacheScales(kvAlgo, kvAmax) : null;
  return new QuantizedModel(c, new OverlayWeightSource(model.weights, floats, quantized), model.options, qc, awqScales, kvScales);
}

/** Threads of the calibration work: `threads` (validated), else all cores for models with ≥ 4M weights per layer. */
function calibrationThreads(c: LlamaForCausalLM["config"], threads: number | undefined): number {
  if (threads !== undefined) {
    if (!Number.isInteger(threads) || threads < 1) {
      throw new ValidationError(`quantize: options.threads must be a positive integer, got ${threads}`, "threads", threads);
    }
    return threads;
  }
  const qkv = (c.numAttentionHeads + 2 * c.numKeyValueHeads) * c.headDim;
  const perLayer = c.hiddenSize * (qkv + c.numAttentionHeads * c.headDim + 3 * c.intermediateSize);
  return perLayer >= 2 ** 22 ? Math.max(1, navigator.hardwareConcurrency ?? 1) : 1;
}

function quantizeOne(
  algo: string,
  w: ArrayLike<number>,
  N: number,
  K: number,
  grid: IntGrid,
  st: InputStats | null,
  options: QuantizeOptions,
  weightAmax?: number,
  preQuantScale?: Float32Array,
  factor?: GptqFactor,
  runner: TaskRunner = serialRunner,
): QuantizedTensor {
  const inputAmax = (): number => {
    if (!st) throw new InternalError(`quantize: ${algo} needs calibration statistics of the layer input`);
    return st.absMax.reduce((a, b) => Math.max(a, b), 0);
  };
  if (algo === "W8A8_SQ_PER_CHANNEL") return quantizeInt8PerChannel(w, N, K, preQuantScale);
  if (algo === "W4A8_AWQ") return toW4A8(quantizeRtn(w, N, K, grid), inputAmax());
  if (algo === "NVFP4") return quantizeNvfp4(w, N, K, inputAmax(), weightAmax);
  if (algo === "FP8") return quantizeFp8(w, N, K, algo, st ? st.absMax.reduce((a, b) => Math.max(a, b), 0) : undefined, weightAmax, runner);
  if (algo === "FP8_PER_CHANNEL_PER_TOKEN") return quantizeFp8(w, N, K, algo, undefined, undefined, runner);
  if (algo === "FP8_BLOCK_SCALES") return quantizeFp8Block(w, N, K, undefined, runner).tensor;
  if (algo === "W4A16_GPTQ" && st?.hessian) {
    return quantizeGptq(w instanceof Float64Array ? w : Float64Array.from(w), N, K, grid, factor ?? st.hessian, options.gptqDampPercent, runner);
  }
  return quantizeRtn(w, N, K, grid, undefined, runner);
}

/** Where AWQ's 1/s goes for an input group: tensors whose output rows feed that input (null: cannot fold). */
function awqUpstream(input: string, p: string, c: LlamaForCausalLM["config"]): string[] | null {
  switch (input) {
    case "attnIn":
      return [`${p}input_layernorm.weight`];
    case "mlpIn":
      return [`${p}post_attention_layernorm.weight`];
    case "mlpAct":
      return [`${p}mlp.up_proj.weight`, ...(c.mlpBias ? [`${p}mlp.up_proj.bias`] : [])];
    case "attnOut": // o_proj's input channel j is v's output row j only without GQA
      if (c.numKeyValueHeads !== c.numAttentionHeads || c.qkNorm) return null;
      return [`${p}self_attn.v_proj.weight`, ...(c.qkvBias ? [`${p}self_attn.v_proj.bias`] : [])];
    default:
      return null;
  }
}

/** Divides output row r of tensor `name` (element r of a vector) by s[r]. */
function foldInverse(name: string, s: Float64Array, weight: (n: string) => Float64Array, touched: Set<string>): void {
  const w = weight(name);
  const rows = s.length, cols = w.length / rows;
  if (!Number.isInteger(cols)) throw new ValidationError(`quantize: cannot fold AWQ scales into '${name}' (${w.length} values, ${rows} channels)`, name);
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) w[r * cols + k] /= s[r];
  touched.add(name);
}

/**
 * SmoothQuant on one input group: s from the input's calibration amax and the group's weights;
 * every linear of the group gets W·diag(s); X / s is folded into the preceding RMSNorm (q/k/v,
 * gate/up) or recorded as the pre-quant multiplier 1/s of the input (o_proj, down_proj).
 */
function smoothGroup(
  input: string,
  p: string,
  names: readonly string[],
  st: InputStats,
  alpha: number,
  weight: (n: string) => Float64Array,
  touched: Set<string>,
  preQuant: Map<string, Float32Array>,
): void {
  const K = st.absMax.length;
  const s = smoothFactors(st.absMax, names.map(weight), K, alpha);
  for (const n of names) {
    const w = weight(n);
    for (let r = 0; r < w.length / K; r++) for (let k = 0; k < K; k++) w[r * K + k] *= s[k];
    touched.add(n);
  }
  const norm = input === "attnIn" ? `${p}input_layernorm.weight` : input === "mlpIn" ? `${p}post_attention_layernorm.weight` : null;
  if (norm) foldInverse(norm, s, weight, touched);
  else for (const n of names) preQuant.set(n, Float32Array.from(s, (v) => 1 / v));
}
