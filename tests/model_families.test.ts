// Each Llama-family variant (GQA llama, qwen2 q/k/v bias, qwen3 q/k norm + explicit head_dim,
// mistral sliding window, llama with mlp/attention bias and linear rope scaling, untied lm_head)
// built from a random checkpoint and compared with a dense float64 forward written here.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { writeSafetensors } from "../lib/models/safetensors.ts";
import { ModelRunner } from "../lib/runtime/model_runner.ts";
import { assert, test } from "./harness.ts";

interface Fam {
  name: string;
  config: Record<string, unknown>;
  V: number;
  H: number;
  I: number;
  L: number;
  nH: number;
  nKV: number;
  hd: number;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  qkNorm: boolean;
  tied: boolean;
  window: number;
  ropeDiv: number;
}

function fam(name: string, over: Partial<Fam>, config: Record<string, unknown>): Fam {
  const f: Fam = {
    name,
    config: {},
    V: 97,
    H: 48,
    I: 80,
    L: 2,
    nH: 6,
    nKV: 2,
    hd: 8,
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    qkNorm: false,
    tied: false,
    window: 0,
    ropeDiv: 1,
    ...over,
  };
  f.config = {
    vocab_size: f.V,
    hidden_size: f.H,
    intermediate_size: f.I,
    num_hidden_layers: f.L,
    num_attention_heads: f.nH,
    num_key_value_heads: f.nKV,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    max_position_embeddings: 128,
    tie_word_embeddings: f.tied,
    hidden_act: "silu",
    torch_dtype: "float32",
    bos_token_id: 1,
    eos_token_id: 2,
    ...config,
  };
  return f;
}

const FAMILIES: Fam[] = [
  fam("llama GQA untied", {}, { architectures: ["LlamaForCausalLM"], model_type: "llama" }),
  fam("llama bias + linear rope x2, tied", { qkvBias: true, oBias: true, mlpBias: true, tied: true, ropeDiv: 2 }, {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    attention_bias: true,
    mlp_bias: true,
    rope_scaling: { rope_type: "linear", factor: 2 },
  }),
  fam("qwen2 qkv bias, tied", { qkvBias: true, tied: true }, { architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", use_sliding_window: false }),
  fam("qwen3 qk norm, head_dim 16", { qkNorm: true, hd: 16 }, {
    architectures: ["Qwen3ForCausalLM"],
    model_type: "qwen3",
    head_dim: 16,
    attention_bias: false,
  }),
  fam("mistral sliding window 5", { window: 5, nH: 4, nKV: 4, hd: 12 }, { architectures: ["MistralForCausalLM"], model_type: "mistral", sliding_window: 5 }),
];

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s / 4294967296) * 2 - 1;
  };
}

function makeCheckpoint(f: Fam, dir: string): Map<string, Float32Array> {
  const r = rng(f.name.length * 7919 + f.V);
  const W = new Map<string, Float32Array>();
  const add = (n: string, numel: number, scale: number, base = 0) => W.set(n, Float32Array.from({ length: numel }, () => base + r() * scale));
  add("model.embed_tokens.weight", f.V * f.H, 1);
  for (let l = 0; l < f.L; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, f.H, 0.2, 1);
    add(`${p}post_attention_layernorm.weight`, f.H, 0.2, 1);
    add(`${p}self_attn.q_proj.weight`, f.nH * f.hd * f.H, 0.3);
    add(`${p}self_attn.k_proj.weight`, f.nKV * f.hd * f.H, 0.3);
    add(`${p}self_attn.v_proj.weight`, f.nKV * f.hd * f.H, 0.3);
    add(`${p}self_attn.o_proj.weight`, f.H * f.nH * f.hd, 0.3);
    if (f.qkvBias) { for (const [n, m] of [["q", f.nH], ["k", f.nKV], ["v", f.nKV]] as const) add(`${p}self_attn.${n}_proj.bias`, m * f.hd, 0.5); }
    if (f.oBias) add(`${p}self_attn.o_proj.bias`, f.H, 0.5);
    if (f.qkNorm) {
      add(`${p}self_attn.q_norm.weight`, f.hd, 0.3, 1);
      add(`${p}self_attn.k_norm.weight`, f.hd, 0.3, 1);
    }
    add(`${p}mlp.gate_proj.weight`, f.I * f.H, 0.3);
    add(`${p}mlp.up_proj.weight`, f.I * f.H, 0.3);
    add(`${p}mlp.down_proj.weight`, f.H * f.I, 0.3);
    if (f.mlpBias) {
      add(`${p}mlp.gate_proj.bias`, f.I, 0.3);
      add(`${p}mlp.up_proj.bias`, f.I, 0.3);
      add(`${p}mlp.down_proj.bias`, f.H, 0.3);
    }
  }
  add("model.norm.weight", f.H, 0.2, 1);
  if (!f.tied) add("lm_head.weight", f.V * f.H, 0.5);
  const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const [n, d] of W) tensors[n] = { dtype: "F32", shape: [d.length], data: d };
  // Real shapes: 2-D for matrices.
  for (const [n, d] of W) {
    if (n.endsWith("bias") || n.includes("norm")) continue;
    const rows = n.includes("embed") || n.includes("lm_head")
      ? f.V
      : n.includes("q_proj")
      ? f.nH * f.hd
      : /[kv]_proj/.test(n)
      ? f.nKV * f.hd
      : n.includes("o_proj") || n.includes("down")
      ? f.H
      : f.I;
    tensors[n].shape = [rows, d.length / rows];
  }
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(f.config));
  return W;
}

/** Dense float64 forward; returns the last position's logits. */
function reference(f: Fam, W: Map<string, Float32Array>, ids: number[]): number[] {
  const T = ids.length, g = (n: string) => W.get(n)!;
  const mm = (x: number[], w: Float32Array, n: number, k: number, b?: Float32Array) =>
    Array.from({ length: n }, (_, j) => {
      let a = b ? b[j] : 0;
      for (let i = 0; i < k; i++) a += x[i] * w[j * k + i];
      return a;
    });
  const norm = (x: number[], w: Float32Array, eps = 1e-6) => {
    const r = Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + eps);
    return x.map((v, i) => v / r * w[i]);
  };
  const rope = (v: number[], pos: number) => {
    const h = f.hd / 2, o = v.slice();
    for (let i = 0; i < h; i++) {
      const a = pos * (1 / 10000 ** (2 * i / f.hd)) / f.ropeDiv;
      o[i] = v[i] * Math.cos(a) - v[i + h] * Math.sin(a);
      o[i + h] = v[i + h] * Math.cos(a) + v[i] * Math.sin(a);
    }
    return o;
  };
  let x = ids.map((id) => Array.from(g("model.embed_tokens.weight").subarray(id * f.H, id * f.H + f.H)));
  for (let l = 0; l < f.L; l++) {
    const p = `model.layers.${l}.`;
    const ks: number[][][] = [], vs: number[][][] = [], qs: number[][][] = [];
    for (let t = 0; t < T; t++) {
      const h = norm(x[t], g(`${p}input_layernorm.weight`));
      const heads = (w: string, n: number) => {
        const y = mm(h, g(`${p}self_attn.${w}_proj.weight`), n * f.hd, f.H, f.qkvBias ? g(`${p}self_attn.${w}_proj.bias`) : undefined);
        return Array.from({ length: n }, (_, i) => y.slice(i * f.hd, (i + 1) * f.hd));
      };
      let q = heads("q", f.nH), k = heads("k", f.nKV);
      if (f.qkNorm) {
        q = q.map((v) => norm(v, g(`${p}self_attn.q_norm.weight`)));
        k = k.map((v) => norm(v, g(`${p}self_attn.k_norm.weight`)));
      }
      qs.push(q.map((v) => rope(v, t)));
      ks.push(k.map((v) => rope(v, t)));
      vs.push(heads("v", f.nKV));
    }
    x = x.map((xt, t) => {
      const attn: number[] = [];
      for (let hh = 0; hh < f.nH; hh++) {
        const kv = Math.floor(hh / (f.nH / f.nKV));
        const start = f.window ? Math.max(0, t + 1 - f.window) : 0;
        const sc = [];
        for (let j = start; j <= t; j++) sc.push(qs[t][hh].reduce((a, v, i) => a + v * ks[j][kv][i], 0) / Math.sqrt(f.hd));
        const m = Math.max(...sc), e = sc.map((v) => Math.exp(v - m)), z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < f.hd; i++) attn.push(e.reduce((a, w, j) => a + w / z * vs[start + j][kv][i], 0));
      }
      const o = mm(attn, g(`${p}self_attn.o_proj.weight`), f.H, f.nH * f.hd, f.oBias ? g(`${p}self_attn.o_proj.bias`) : undefined);
      const x1 = xt.map((v, i) => v + o[i]);
      const h2 = norm(x1, g(`${p}post_attention_layernorm.weight`));
      const gt = mm(h2, g(`${p}mlp.gate_proj.weight`), f.I, f.H, f.mlpBias ? g(`${p}mlp.gate_proj.bias`) : undefined);
      const up = mm(h2, g(`${p}mlp.up_proj.weight`), f.I, f.H, f.mlpBias ? g(`${p}mlp.up_proj.bias`) : undefined);
      const act = gt.map((v, i) => v / (1 + Math.exp(-v)) * up[i]);
      const d = mm(act, g(`${p}mlp.down_proj.weight`), f.H, f.I, f.mlpBias ? g(`${p}mlp.down_proj.bias`) : undefined);
      return x1.map((v, i) => v + d[i]);
    });
  }
  const fin = norm(x[T - 1], g("model.norm.weight"));
  return mm(fin, f.tied ? g("model.embed_tokens.weight") : g("lm_head.weight"), f.V, f.H);
}

for (const f of FAMILIES) {
  test(`${f.name}: last-position logits match a dense float64 forward; decode after prefill agrees`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-fam-"));
    const W = makeCheckpoint(f, dir);
    const model = AutoModelForCausalLM.fromHuggingFace(dir);
    const engine = buildSync(model, { maxBatchSize: 2, maxNumTokens: 64, tokensPerBlock: 4 });
    model.close();
    using runner = ModelRunner.fromEngine(engine);
    const prompt = [1, 5, 17, 33, 2, 64, 90, 11, 42];
    const out = runner.generate([prompt], { maxNewTokens: 3, endId: -1, outputGenerationLogits: true });
    const got = out.generationLogits![0];
    const check = (logits: Float32Array, ids: number[], what: string) => {
      const ref = reference(f, W, ids);
      let abs = 0, mx = 0;
      for (let i = 0; i < f.V; i++) {
        abs = Math.max(abs, Math.abs(logits[i] - ref[i]));
        mx = Math.max(mx, Math.abs(ref[i]));
      }
      assert.ok(abs / mx < 1e-5, `${what}: max abs ${abs.toExponential(2)} (max |logit| ${mx.toFixed(2)})`);
    };
    check(got[0], prompt, "prefill");
    check(got[2], [...prompt, ...out.newTokenIds[0].slice(0, 2)], "after 2 decode steps");
  });
}
