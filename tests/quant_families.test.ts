// Quantization on architectures kjv-llama does not cover: a random Qwen2-style model (q/k/v biases,
// untied lm_head, no GQA — so AWQ folds o_proj's scales into v_proj's rows and bias) and a Llama with
// MLP biases (AWQ folds down_proj's scales into up_proj's rows and bias). A wrong fold moves the
// logits by O(1); a right one leaves only the int4 rounding, about as large as RTN's.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { RequestOutput } from "../lib/executor/outputs.ts";
import { LLM } from "../lib/llmapi/llm.ts";
import { writeSafetensors } from "../lib/models/safetensors.ts";
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { assert, test } from "./harness.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

/** Writes a random checkpoint of `config` (every projection; biases as the config implies). */
function randomCheckpoint(dir: string, config: Record<string, unknown>, biases: { qkv: boolean; mlp: boolean }, seed: number): void {
  const r = rng(seed);
  const H = config.hidden_size as number, I = config.intermediate_size as number, V = config.vocab_size as number;
  const nH = config.num_attention_heads as number, nKV = config.num_key_value_heads as number, hd = H / nH;
  const t: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  const add = (name: string, shape: number[], scale: number, base = 0): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    t[name] = { dtype: "F32", shape, data: Float32Array.from({ length: n }, () => base + scale * r()) };
  };
  add("model.embed_tokens.weight", [V, H], 1);
  add("lm_head.weight", [V, H], 0.3);
  add("model.norm.weight", [H], 0.2, 1);
  for (let l = 0; l < (config.num_hidden_layers as number); l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [H], 0.5, 1);
    add(`${p}post_attention_layernorm.weight`, [H], 0.5, 1);
    for (const [m, rows] of [["q", nH * hd], ["k", nKV * hd], ["v", nKV * hd]] as const) {
      add(`${p}self_attn.${m}_proj.weight`, [rows, H], 0.25);
      if (biases.qkv) add(`${p}self_attn.${m}_proj.bias`, [rows], 0.2);
    }
    add(`${p}self_attn.o_proj.weight`, [H, nH * hd], 0.25);
    if (config.attention_bias) add(`${p}self_attn.o_proj.bias`, [H], 0.2);
    add(`${p}mlp.gate_proj.weight`, [I, H], 0.25);
    add(`${p}mlp.up_proj.weight`, [I, H], 0.25);
    add(`${p}mlp.down_proj.weight`, [H, I], 0.25);
    if (biases.mlp) { for (const [m, n] of [["gate", I], ["up", I], ["down", H]] as const) add(`${p}mlp.${m}_proj.bias`, [n], 0.2); }
    // A few salient input channels, as trained models have (what AWQ's scales are for).
    for (const k of [3, 17, 40]) t[`${p}input_layernorm.weight`].data[k] *= 6;
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, "model.safetensors"), t);
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
}

const prompts = [Array.from({ length: 48 }, (_, i) => (i * 7 + 3) % 97), Array.from({ length: 48 }, (_, i) => (i * 13 + 5) % 97)];
const calibration = Array.from({ length: 8 }, (_, s) => Array.from({ length: 64 }, (_, i) => (i * (s + 3) + s * 11) % 97));

async function contextLogits(dir: string, quantConfig?: QuantConfigInput): Promise<Float32Array[]> {
  // quantize() takes calibration ids through LLM.create only by default text; these models have no
  // tokenizer, so quantize in memory here the way LLM.create would and build from the QuantizedModel.
  const { AutoModelForCausalLM } = await import("../lib/models/llama.ts");
  const { quantizeSync } = await import("../lib/quantization/quantize.ts");
  const { buildSync } = await import("../lib/builder/builder.ts");
  const base = AutoModelForCausalLM.fromHuggingFace(dir);
  const model = quantConfig ? quantizeSync(base, quantConfig, { calibration }) : base;
  const engDir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-qfam-eng-"));
  try {
    const engine = buildSync(model, { backend: "cpu", maxBatchSize: 2, maxNumTokens: 128, maxSeqLen: 128, gatherContextLogits: true });
    engine.save(engDir);
    engine.dispose();
    model.close();
    await using llm = await LLM.create({ model: engDir, backend: "cpu", skipTokenizerInit: true });
    const outs = await llm.generate(prompts, { temperature: 0, maxTokens: 1, returnContextLogits: true }, { useTqdm: false }) as RequestOutput[];
    return outs.flatMap((o) => [...o.contextLogits!]);
  } finally {
    fs.rmSync(engDir, { recursive: true, force: true });
  }
}

/** Relative L2 error of logits rows. */
function relErr(a: Float32Array[], b: Float32Array[]): number {
  let num = 0, den = 0;
  a.forEach((row, i) =>
    row.forEach((v, j) => {
      num += (v - b[i][j]) ** 2;
      den += b[i][j] ** 2;
    })
  );
  return Math.sqrt(num / den);
}

for (
  const [name, config, biases] of [
    ["qwen2 (q/k/v biases, no GQA: o_proj scales fold into v_proj)", {
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      vocab_size: 97,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 4,
      max_position_embeddings: 128,
      rms_norm_eps: 1e-6,
      tie_word_embeddings: false,
    }, { qkv: true, mlp: false }],
    ["llama with MLP biases (down_proj scales fold into up_proj rows and bias)", {
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      vocab_size: 97,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 128,
      rms_norm_eps: 1e-6,
      tie_word_embeddings: false,
      mlp_bias: true,
    }, { qkv: false, mlp: true }],
  ] as [string, Record<string, unknown>, { qkv: boolean; mlp: boolean }][]
) {
  test(`${name}: AWQ g32 and GPTQ g32 logits stay within int4 rounding of float (≤ 2× RTN's error)`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-qfam-"));
    try {
      randomCheckpoint(dir, config, biases, 11);
      const ref = await contextLogits(dir);
      const rtn = relErr(await contextLogits(dir, { quantAlgo: "W4A16", groupSize: 32, hasZeroPoint: true }), ref);
      const awq = relErr(await contextLogits(dir, { quantAlgo: "W4A16_AWQ", groupSize: 32, hasZeroPoint: true }), ref);
      const gptq = relErr(await contextLogits(dir, { quantAlgo: "W4A16_GPTQ", groupSize: 32, hasZeroPoint: true }), ref);
      console.log(`${name}: logits relative L2 error RTN ${rtn.toFixed(4)}, AWQ ${awq.toFixed(4)}, GPTQ ${gptq.toFixed(4)}`);
      assert.ok(rtn > 0 && rtn < 0.2, `RTN error ${rtn}`);
      assert.ok(awq < 2 * rtn, `AWQ error ${awq} vs RTN ${rtn}: a scale fold is wrong`);
      assert.ok(gptq < 2 * rtn, `GPTQ error ${gptq} vs RTN ${rtn}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
}

test("AWQ folds exactly: norms, v_proj rows + bias and up_proj rows + bias are divided by the scales the next linears were multiplied by", async () => {
  const { AutoModelForCausalLM } = await import("../lib/models/llama.ts");
  const { quantizeSync } = await import("../lib/quantization/quantize.ts");
  const { dequantize } = await import("../lib/quantization/packed.ts");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-qfold-"));
  try {
    // No GQA and biases everywhere AWQ folds into: every fold path at once.
    randomCheckpoint(
      dir,
      {
        architectures: ["LlamaForCausalLM"],
        model_type: "llama",
        vocab_size: 97,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 1,
        num_attention_heads: 4,
        num_key_value_heads: 4,
        max_position_embeddings: 128,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: false,
        mlp_bias: true,
        attention_bias: true,
      },
      { qkv: true, mlp: true },
      5,
    );
    const base = AutoModelForCausalLM.fromHuggingFace(dir);
    const q = quantizeSync(AutoModelForCausalLM.fromHuggingFace(dir), { quantAlgo: "W4A16_AWQ", groupSize: 32, hasZeroPoint: true }, {
      calibration,
      awqGridSize: 20,
    });
    try {
      const p = "model.layers.0.";
      const s = (input: string): Float64Array => q.awqScales.get(`${p}${input}`)!;
      for (const g of ["attnIn", "attnOut", "mlpIn", "mlpAct"]) assert.ok(q.awqScales.has(`${p}${g}`), g);
      assert.ok(s("attnIn").some((v) => Math.abs(Math.log(v)) > 0.1), "AWQ picked scales ≈ 1 on inputs with salient channels");
      const orig = (n: string): Float32Array => base.weights.readFloat32(n);
      const close = (got: number, want: number, tol: number, what: string): void => {
        if (!(Math.abs(got - want) <= tol)) assert.fail(`${what}: ${got} vs ${want} (tolerance ${tol})`);
      };
      // Norms and biases are float overrides: exactly x / s (float32 rounding).
      for (const [norm, input] of [["input_layernorm", "attnIn"], ["post_attention_layernorm", "mlpIn"]]) {
        const w = orig(`${p}${norm}.weight`), got = q.weights.readFloat32(`${p}${norm}.weight`);
        w.forEach((v, k) => close(got[k], v / s(input)[k], 1e-6 * Math.abs(v / s(input)[k]), `${norm}[${k}]`));
      }
      for (const [bias, input] of [["self_attn.v_proj.bias", "attnOut"], ["mlp.up_proj.bias", "mlpAct"]]) {
        const b = orig(`${p}${bias}`), got = q.weights.readFloat32(`${p}${bias}`);
        b.forEach((v, j) => close(got[j], v / s(input)[j], 1e-6 * Math.abs(v / s(input)[j]), `${bias}[${j}]`));
      }
      // Quantized weights: dequantized = W · s_in[k] / s_out[j] up to one quantization step of its group.
      for (
        const [lin, input, out] of [
          ["self_attn.q_proj", "attnIn", null],
          ["self_attn.v_proj", "attnIn", "attnOut"],
          ["self_attn.o_proj", "attnOut", null],
          ["mlp.up_proj", "mlpIn", "mlpAct"],
          ["mlp.gate_proj", "mlpIn", null],
          ["mlp.down_proj", "mlpAct", null],
        ] as const
      ) {
        const t = q.quantizedTensor(`${p}${lin}.weight`)!, W = orig(`${p}${lin}.weight`), D = dequantize(t);
        const ng = t.cols / t.groupSize;
        for (let j = 0; j < t.rows; j++) {
          for (let k = 0; k < t.cols; k++) {
            const want = (W[j * t.cols + k] * s(input)[k]) / (out ? s(out)[j] : 1);
            close(D[j * t.cols + k], want, t.scales[j * ng + Math.floor(k / t.groupSize)] * 1.0001, `${lin}[${j},${k}]`);
          }
        }
      }
    } finally {
      q.close();
      base.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
