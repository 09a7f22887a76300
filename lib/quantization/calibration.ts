/**
 * Calibration: token sequences from ids or texts (default: a slice of the embedded model's training
 * text, data/kjv_calibration.txt — the King James Bible, public domain), and a float forward of the
 * model layer by layer that hands each layer's linear-input statistics to a callback.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import * as fs from "node:fs";
import * as path from "node:path";
import * as K from "../backends/cpu/kernels.ts";
import type { LlamaForCausalLM } from "../models/llama.ts";
import { computeRopeInvFreq } from "../models/rope.ts";
import { ValidationError } from "../util/errors.ts";
import type { InputSample } from "./algorithms.ts";
import { transposeRows } from "./linalg.ts";
import { f64, serialRunner, type TaskRunner } from "./tasks.ts";

/** Calibration data: token id sequences, or texts (tokenized with the model's tokenizer). */
export type Calibration = readonly (readonly number[])[] | readonly string[];

/** The default calibration text: the first 12 verses of every 40th training chapter of the KJV (47 KB, 30 books). */
export function defaultCalibrationText(): string {
  return fs.readFileSync(new URL("./data/kjv_calibration.txt", import.meta.url).pathname, "utf8");
}

/** A tokenizer built straight from `<dir>/tokenizer.json` (enough for calibration text). */
export function tokenizerFromDir(dir: string): (text: string) => number[] {
  const json = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const cfgPath = path.join(dir, "tokenizer_config.json");
  const cfg = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {};
  const tok = new Tokenizer(json, cfg);
  return (text) => tok.encode(text).ids;
}

/**
 * Token sequences of at most `seqLen` tokens, `maxTokens` in all. Texts are tokenized with
 * `tokenize`, or with the tokenizer.json of the model's directory.
 */
export function calibrationSequences(
  model: LlamaForCausalLM,
  calibration: Calibration | undefined,
  opts: { tokenize?: (text: string) => number[]; seqLen?: number; maxTokens?: number } = {},
): number[][] {
  const seqLen = Math.min(opts.seqLen ?? 256, model.config.maxPositionEmbeddings);
  const maxTokens = opts.maxTokens ?? 1024;
  const data = calibration ?? [defaultCalibrationText()];
  if (data.length === 0) throw new ValidationError("quantize: calibration is empty", "calibration", data);
  let ids: number[][];
  if (typeof data[0] === "string") {
    let tokenize = opts.tokenize;
    if (!tokenize) {
      const dir = model.options.sourceDir;
      if (!dir || !fs.existsSync(path.join(dir, "tokenizer.json"))) {
        throw new ValidationError(
          "quantize: calibration texts need a tokenizer: pass options.tokenize, token ids, or a model directory with tokenizer.json",
          "calibration",
        );
      }
      tokenize = tokenizerFromDir(dir);
    }
    ids = (data as readonly string[]).map((t) => tokenize!(t));
  } else {
    ids = (data as readonly (readonly number[])[]).map((s) => [...s]);
  }
  const V = model.config.vocabSize;
  for (const seq of ids) {
    for (const id of seq) {
      if (!(Number.isInteger(id) && id >= 0 && id < V)) {
        throw new ValidationError(`quantize: calibration token id ${id} is outside the vocabulary [0, ${V})`, "calibration", id);
      }
    }
  }
  // Every window of seqLen tokens; when there are more than maxTokens, windows spread evenly over all of them.
  const windows: number[][] = [];
  for (const seq of ids) for (let i = 0; i < seq.length; i += seqLen) windows.push(seq.slice(i, i + seqLen));
  const total = windows.reduce((a, w) => a + w.length, 0);
  if (total === 0) throw new ValidationError("quantize: calibration has no tokens", "calibration");
  if (total <= maxTokens) return windows;
  const want = Math.max(1, Math.floor(maxTokens / seqLen));
  const out: number[][] = [];
  for (let i = 0; i < want; i++) out.push(windows[Math.floor((i * windows.length) / want)]);
  return out;
}

/** Statistics of the rows fed to one set of linears sharing an input. */
export interface InputStats extends InputSample {
  /** [K, K] Σ x xᵀ / numTokens, when requested. */
  readonly hessian: Float64Array | null;
  readonly numTokens: number;
  /** [K] max |x_k| over the calibration tokens (FP8's static activation scale). */
  readonly absMax: Float64Array;
}

/** Linear-input points of one decoder layer (HF module names share these inputs). */
export interface LayerInputs {
  /** q/k/v input (after input_layernorm). */
  readonly attnIn: InputStats;
  /** o_proj input (attention output). */
  readonly attnOut: InputStats;
  /** gate/up input (after post_attention_layernorm). */
  readonly mlpIn: InputStats;
  /** down_proj input (silu(gate)·up). */
  readonly mlpAct: InputStats;
  /** max |x| of what the layer writes to the KV cache, per KV head: [2, numKvHeads] (K after RoPE, then V). */
  readonly kvAmax: Float64Array;
}

class StatsBuilder {
  readonly absSum: Float64Array;
  readonly sqSum: Float64Array;
  readonly absMax: Float64Array;
  readonly hessian: Float64Array | null;
  readonly rows: Float64Array;
  numTokens = 0;
  numRows = 0;
  /** Scratch: the rows of one add() transposed (the Hessian's blocked accumulation). */
  private xt: Float64Array = new Float64Array(0);
  constructor(readonly K: number, withHessian: boolean, readonly maxRows: number, readonly stride: number, readonly runner: TaskRunner) {
    this.absSum = new Float64Array(K);
    this.sqSum = new Float64Array(K);
    this.absMax = new Float64Array(K);
    this.hessian = withHessian ? f64(K * K, runner) : null;
    this.rows = new Float64Array(maxRows * K);
  }
  add(x: Float32Array, T: number): void {
    const K = this.K, H = this.hessian;
    for (let t = 0; t < T; t++) {
      const o = t * K;
      for (let k = 0; k < K; k++) {
        this.absSum[k] += Math.abs(x[o + k]);
        this.absMax[k] = Math.max(this.absMax[k], Math.abs(x[o + k]));
        this.sqSum[k] += x[o + k] * x[o + k];
      }
      if (this.numTokens % this.stride === 0 && this.numRows < this.maxRows) {
        for (let k = 0; k < K; k++) this.rows[this.numRows * K + k] = x[o + k];
        this.numRows++;
      }
      this.numTokens++;
    }
    if (H) { // H's lower triangle += Σ_t x_t x_tᵀ: rows of H as tasks, each value one sum over this call's tokens
      if (this.xt.length < K * T) this.xt = f64(K * T, this.runner);
      transposeRows(x, T, K, this.xt);
      this.runner.run({ kind: "gram", H, xt: this.xt, T, K, rows: 16 }, Math.ceil(K / 16));
    }
  }
  finish(): InputStats {
    const K = this.K, n = Math.max(1, this.numTokens);
    const H = this.hessian;
    if (H) {
      for (let i = 0; i < K; i++) {
        for (let j = 0; j <= i; j++) {
          H[i * K + j] /= n;
          H[j * K + i] = H[i * K + j];
        }
      }
    }
    return {
      absMean: this.absSum.map((v) => v / n),
      sqMean: this.sqSum.map((v) => v / n),
      hessian: H,
      rows: this.rows.subarray(0, this.numRows * K),
      numRows: this.numRows,
      numTokens: this.numTokens,
      absMax: this.absMax,
    };
  }
}

/** Reads HF tensors by name and concatenates them along dim 0. */
function readCat(model: LlamaForCausalLM, names: readonly string[]): Float32Array {
  const parts = names.map((n) => model.weights.readFloat32(n));
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Runs the float model over `seqs` one layer at a time and calls `onLayer(l, inputs)` with the
 * statistics of that layer's linear inputs (Hessians when `hessian`, `sampleRows` sampled rows).
 * Returns the statistics of the final-norm output (lm_head's input). `runner` spreads the linears
 * (by output columns) and the Hessians (by rows) over threads; results do not depend on it.
 */
export function forEachLayerInputs(
  model: LlamaForCausalLM,
  seqs: readonly number[][],
  opts: { hessian: boolean; sampleRows: number; runner?: TaskRunner },
  onLayer: (layer: number, inputs: LayerInputs) => void,
): InputStats {
  const c = model.config;
  const H = c.hiddenSize, hd = c.headDim, nH = c.numAttentionHeads, nKV = c.numKeyValueHeads, I = c.intermediateSize;
  const qkvW = (nH + 2 * nKV) * hd;
  const total = seqs.reduce((a, s) => a + s.length, 0);
  const stride = Math.max(1, Math.floor(total / opts.sampleRows));
  const { invFreq, attentionScaling } = computeRopeInvFreq(c);
  const hidden = ((embed: Float32Array) =>
    // the float32 table (2 GB for an 8B model) is not kept past this
    seqs.map((ids) => {
      const h = new Float32Array(ids.length * H);
      K.embedding(Int32Array.from(ids), ids.length, embed, H, c.vocabSize, h);
      return h;
    }))(model.weights.readFloat32("model.embed_tokens.weight"));
  const runner = opts.runner ?? serialRunner, par = runner.threads > 1;
  const stats = (k: number): StatsBuilder => new StatsBuilder(k, opts.hessian, opts.sampleRows, stride, runner);
  // Arrays the linear tasks read or write live in shared memory when other threads run them.
  const f32 = (n: number): Float32Array => par ? new Float32Array(new SharedArrayBuffer(4 * n)) : new Float32Array(n);
  const share = <A extends Float32Array | null>(a: A): A => {
    if (!par || !a) return a;
    const c = f32(a.length);
    c.set(a);
    return c as A;
  };
  const linear = (x: Float32Array, wt: Float32Array, b: Float32Array | null, M: number, N: number, Kin: number, out: Float32Array): void => {
    if (!par) K.linear(x, wt, b, M, N, Kin, out);
    else runner.run({ kind: "linear", x, w: wt, bias: b, M, N, K: Kin, out, rows: 64 }, Math.ceil(N / 64));
  };
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    const w = {
      inNorm: model.weights.readFloat32(`${p}input_layernorm.weight`),
      postNorm: model.weights.readFloat32(`${p}post_attention_layernorm.weight`),
      qkv: share(readCat(model, ["q", "k", "v"].map((n) => `${p}self_attn.${n}_proj.weight`))),
      qkvB: share(c.qkvBias ? readCat(model, ["q", "k", "v"].map((n) => `${p}self_attn.${n}_proj.bias`)) : null),
      o: share(model.weights.readFloat32(`${p}self_attn.o_proj.weight`)),
      oB: share(c.oProjBias ? model.weights.readFloat32(`${p}self_attn.o_proj.bias`) : null),
      gu: share(readCat(model, [`${p}mlp.gate_proj.weight`, `${p}mlp.up_proj.weight`])),
      guB: share(c.mlpBias ? readCat(model, [`${p}mlp.gate_proj.bias`, `${p}mlp.up_proj.bias`]) : null),
      down: share(model.weights.readFloat32(`${p}mlp.down_proj.weight`)),
      downB: share(c.mlpBias ? model.weights.readFloat32(`${p}mlp.down_proj.bias`) : null),
      qn: c.qkNorm ? model.weights.readFloat32(`${p}self_attn.q_norm.weight`) : null,
      kn: c.qkNorm ? model.weights.readFloat32(`${p}self_attn.k_norm.weight`) : null,
    };
    const s = { attnIn: stats(H), attnOut: stats(nH * hd), mlpIn: stats(H), mlpAct: stats(I) };
    const kvAmax = new Float64Array(2 * nKV);
    for (let si = 0; si < seqs.length; si++) {
      const T = seqs[si].length, h = hidden[si];
      const xn = f32(T * H);
      K.rmsnorm(h, w.inNorm, c.rmsNormEps, T, H, xn);
      s.attnIn.add(xn, T);
      const qkv = f32(T * qkvW);
      linear(xn, w.qkv, w.qkvB, T, qkvW, H, qkv);
      if (w.qn && w.kn) K.qkNorm(qkv, w.qn, w.kn, c.rmsNormEps, T, nH, nKV, hd);
      const attn = share(causalAttention(qkv, T, nH, nKV, hd, invFreq, attentionScaling, c.slidingWindow ?? 0));
      // qkv now holds the rotated k: the values the KV cache stores (as float32).
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < 2 * nKV; h++) {
          const o = t * qkvW + (nH + h) * hd;
          for (let i = 0; i < hd; i++) kvAmax[h] = Math.max(kvAmax[h], Math.abs(qkv[o + i]));
        }
      }
      s.attnOut.add(attn, T);
      const o = f32(T * H);
      linear(attn, w.o, w.oB, T, H, nH * hd, o);
      K.addInPlace(o, h, T * H);
      K.rmsnorm(h, w.postNorm, c.rmsNormEps, T, H, xn);
      s.mlpIn.add(xn, T);
      const gu = f32(T * 2 * I);
      linear(xn, w.gu, w.guB, T, 2 * I, H, gu);
      const act = f32(T * I);
      K.siluMul(gu, act, T, I);
      s.mlpAct.add(act, T);
      linear(act, w.down, w.downB, T, H, I, o);
      K.addInPlace(o, h, T * H);
    }
    for (const k of Object.keys(w)) (w as Record<string, unknown>)[k] = null; // the float weights are not kept while the layer is quantized
    onLayer(l, { attnIn: s.attnIn.finish(), attnOut: s.attnOut.finish(), mlpIn: s.mlpIn.finish(), mlpAct: s.mlpAct.finish(), kvAmax });
  }
  const fin = stats(H);
  const norm = model.weights.readFloat32("model.norm.weight");
  for (let si = 0; si < seqs.length; si++) {
    const T = seqs[si].length, xn = new Float32Array(T * H);
    K.rmsnorm(hidden[si], norm, c.rmsNormEps, T, H, xn);
    fin.add(xn, T);
  }
  return fin.finish();
}

/** RoPE (rotate_half) on q and k of packed qkv rows [T, (nH + 2nKV)·hd], then causal GQA attention → [T, nH·hd]. */
function causalAttention(
  qkv: Float32Array,
  T: number,
  nH: number,
  nKV: number,
  hd: number,
  invFreq: Float64Array,
  scaling: number,
  window: number,
): Float32Array {
  const width = (nH + 2 * nKV) * hd, half = hd / 2, group = nH / nKV;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const a = invFreq[i] * t, cs = Math.cos(a) * scaling, sn = Math.sin(a) * scaling;
      for (let h = 0; h < nH + nKV; h++) {
        const o = t * width + h * hd;
        const x = qkv[o + i], y = qkv[o + half + i];
        qkv[o + i] = x * cs - y * sn;
        qkv[o + half + i] = y * cs + x * sn;
      }
    }
  }
  const out = new Float32Array(T * nH * hd);
  const scores = new Float64Array(T), acc = new Float64Array(hd);
  const scale = 1 / Math.sqrt(hd);
  for (let t = 0; t < T; t++) {
    const start = window > 0 ? Math.max(0, t + 1 - window) : 0;
    for (let h = 0; h < nH; h++) {
      const qo = t * width + h * hd, kvh = (h / group) | 0;
      let max = -Infinity;
      for (let j = start; j <= t; j++) {
        const ko = j * width + (nH + kvh) * hd;
        let d = 0;
        for (let i = 0; i < hd; i++) d += qkv[qo + i] * qkv[ko + i];
        scores[j] = d * scale;
        if (scores[j] > max) max = scores[j];
      }
      let sum = 0;
      for (let j = start; j <= t; j++) {
        scores[j] = Math.exp(scores[j] - max);
        sum += scores[j];
      }
      acc.fill(0);
      for (let j = start; j <= t; j++) {
        const vo = j * width + (nH + nKV + kvh) * hd, pj = scores[j] / sum;
        for (let i = 0; i < hd; i++) acc[i] += pj * qkv[vo + i];
      }
      for (let i = 0; i < hd; i++) out[(t * nH + h) * hd + i] = acc[i];
    }
  }
  return out;
}
