import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assert, sharedDir, test } from "./harness.ts";
import { loadPretrainedConfig, parsePretrainedConfig, type PretrainedConfig } from "../lib/models/config.ts";
import { FormatError, ValidationError } from "../lib/util/errors.ts";

// Realistic config.json contents, as published on the Hugging Face Hub.
const LLAMA_3_2_1B = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: 128001,
  head_dim: 64,
  hidden_act: "silu",
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-05,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  transformers_version: "4.45.0.dev0",
  use_cache: true,
  vocab_size: 128256,
};

const LLAMA_2_7B = {
  architectures: ["LlamaForCausalLM"],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: "silu",
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 11008,
  max_position_embeddings: 4096,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 32,
  pretraining_tp: 1,
  rms_norm_eps: 1e-05,
  rope_scaling: null,
  tie_word_embeddings: false,
  torch_dtype: "float16",
  transformers_version: "4.31.0.dev0",
  use_cache: true,
  vocab_size: 32000,
};

const MISTRAL_7B = {
  architectures: ["MistralForCausalLM"],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: "silu",
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: "mistral",
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-05,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  transformers_version: "4.34.0.dev0",
  use_cache: true,
  vocab_size: 32000,
};

const QWEN2_5_0_5B = {
  architectures: ["Qwen2ForCausalLM"],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: "silu",
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 24,
  model_type: "qwen2",
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-06,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  transformers_version: "4.40.1",
  use_cache: true,
  use_mrope: false,
  use_sliding_window: false,
  vocab_size: 151936,
};

const QWEN3_0_6B = {
  architectures: ["Qwen3ForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  head_dim: 128,
  hidden_act: "silu",
  hidden_size: 1024,
  initializer_range: 0.02,
  intermediate_size: 3072,
  max_position_embeddings: 40960,
  max_window_layers: 28,
  model_type: "qwen3",
  num_attention_heads: 16,
  num_hidden_layers: 28,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-06,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  transformers_version: "4.51.0",
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

function withTmpDir(fn: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-cfg-"));
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Asserts `fn` throws a ValidationError whose message contains every part. */
function expectValidation(fn: () => unknown, ...parts: string[]): ValidationError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ValidationError, `expected ValidationError, got ${caught}`);
  for (const p of parts) assert.ok(caught.message.includes(p), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(p)}`);
  return caught;
}

test("config: stories260k from the shared model directory", () => {
  const cfg = loadPretrainedConfig(sharedDir + "models/stories260k");
  const want: PretrainedConfig = {
    architecture: "LlamaForCausalLM",
    modelType: "llama",
    vocabSize: 512,
    hiddenSize: 64,
    intermediateSize: 172,
    numHiddenLayers: 5,
    numAttentionHeads: 8,
    numKeyValueHeads: 4,
    headDim: 8,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 512,
    tieWordEmbeddings: true,
    qkvBias: false,
    oProjBias: false,
    mlpBias: false,
    qkNorm: false,
    hiddenAct: "silu",
    slidingWindow: null,
    bosTokenId: 1,
    eosTokenIds: [2],
    padTokenId: null,
    torchDtype: "float32",
  };
  assert.deepEqual(cfg, want);
  assert.ok(Object.isFrozen(cfg));
  assert.ok(Object.isFrozen(cfg.eosTokenIds));
});

test("config: Llama-3.2-1B (llama3 rope scaling, tied, GQA, explicit head_dim)", () => {
  const cfg = parsePretrainedConfig(LLAMA_3_2_1B);
  assert.equal(cfg.architecture, "LlamaForCausalLM");
  assert.equal(cfg.headDim, 64);
  assert.equal(cfg.numKeyValueHeads, 8);
  assert.equal(cfg.ropeTheta, 500000);
  assert.deepEqual(cfg.ropeScaling, { type: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  assert.equal(cfg.tieWordEmbeddings, true);
  assert.equal(cfg.maxPositionEmbeddings, 131072);
  assert.equal(cfg.rmsNormEps, 1e-5);
  assert.deepEqual([cfg.bosTokenId, cfg.eosTokenIds, cfg.torchDtype], [128000, [128001], "bfloat16"]);
  assert.deepEqual([cfg.qkvBias, cfg.oProjBias, cfg.mlpBias, cfg.qkNorm, cfg.slidingWindow], [false, false, false, false, null]);
  assert.ok(Object.isFrozen(cfg.ropeScaling));
});

test("config: Llama-2 style (no rope_theta → 10000, MHA, untied) and llama attention/mlp bias flags", () => {
  const cfg = parsePretrainedConfig(LLAMA_2_7B);
  assert.equal(cfg.ropeTheta, 10000);
  assert.equal(cfg.ropeScaling, null);
  assert.equal(cfg.headDim, 128);
  assert.equal(cfg.numKeyValueHeads, 32);
  assert.equal(cfg.tieWordEmbeddings, false);
  assert.equal(cfg.torchDtype, "float16");
  const biased = parsePretrainedConfig({ ...LLAMA_2_7B, attention_bias: true, mlp_bias: true });
  assert.deepEqual([biased.qkvBias, biased.oProjBias, biased.mlpBias], [true, true, true]);
  // num_key_value_heads absent → llama defaults it to num_attention_heads; pad -1 means none
  const { num_key_value_heads: _, ...noKv } = LLAMA_2_7B;
  const c2 = parsePretrainedConfig({ ...noKv, pad_token_id: -1 });
  assert.equal(c2.numKeyValueHeads, 32);
  assert.equal(c2.padTokenId, null);
});

test("config: Mistral-7B (sliding window 4096, no biases) and v0.3-style null window", () => {
  const cfg = parsePretrainedConfig(MISTRAL_7B);
  assert.equal(cfg.architecture, "MistralForCausalLM");
  assert.equal(cfg.modelType, "mistral");
  assert.equal(cfg.slidingWindow, 4096);
  assert.equal(cfg.numKeyValueHeads, 8);
  assert.equal(cfg.headDim, 128);
  assert.deepEqual([cfg.qkvBias, cfg.oProjBias, cfg.mlpBias, cfg.qkNorm], [false, false, false, false]);
  const v03 = parsePretrainedConfig({ ...MISTRAL_7B, sliding_window: null, rope_theta: 1000000.0, vocab_size: 32768 });
  assert.equal(v03.slidingWindow, null);
  assert.equal(v03.ropeTheta, 1e6);
  // key absent → MistralConfig's default window (4096)
  const { sliding_window: _, ...noWindow } = MISTRAL_7B;
  assert.equal(parsePretrainedConfig(noWindow).slidingWindow, 4096);
});

test("config: Qwen2.5-0.5B (qkv bias, no o_proj bias, tied, sliding window off)", () => {
  const cfg = parsePretrainedConfig(QWEN2_5_0_5B);
  assert.equal(cfg.architecture, "Qwen2ForCausalLM");
  assert.equal(cfg.headDim, 64);
  assert.equal(cfg.numKeyValueHeads, 2);
  assert.deepEqual([cfg.qkvBias, cfg.oProjBias, cfg.mlpBias, cfg.qkNorm], [true, false, false, false]);
  assert.equal(cfg.tieWordEmbeddings, true);
  assert.equal(cfg.slidingWindow, null, "use_sliding_window false → no window even though sliding_window is set");
  assert.equal(cfg.ropeTheta, 1e6);
  assert.deepEqual(cfg.eosTokenIds, [151643]);
  assert.equal(cfg.bosTokenId, 151643);
});

test("config: qwen2 sliding window applies only when every layer slides", () => {
  const all = parsePretrainedConfig({ ...QWEN2_5_0_5B, use_sliding_window: true, sliding_window: 4096, max_window_layers: 0 });
  assert.equal(all.slidingWindow, 4096);
  const none = parsePretrainedConfig({ ...QWEN2_5_0_5B, use_sliding_window: true, sliding_window: 4096, max_window_layers: 24 });
  assert.equal(none.slidingWindow, null);
  const byLayerTypes = parsePretrainedConfig({
    ...QWEN3_0_6B,
    use_sliding_window: true,
    sliding_window: 8192,
    layer_types: Array(28).fill("sliding_attention"),
  });
  assert.equal(byLayerTypes.slidingWindow, 8192);
  expectValidation(
    () => parsePretrainedConfig({ ...QWEN3_0_6B, use_sliding_window: true, sliding_window: 8192, layer_types: ["sliding_attention"] }),
    "config.layer_types",
    "expected 28 entries",
  );
  expectValidation(
    () => parsePretrainedConfig({ ...QWEN2_5_0_5B, use_sliding_window: true, sliding_window: 4096, max_window_layers: 21 }),
    "config.max_window_layers",
    "3 of 24 sliding",
    "not supported",
  );
});

test("config: Qwen3-0.6B (qk norm, head_dim 128 ≠ hidden/heads, tied)", () => {
  const cfg = parsePretrainedConfig(QWEN3_0_6B);
  assert.equal(cfg.architecture, "Qwen3ForCausalLM");
  assert.equal(cfg.headDim, 128);
  assert.equal(cfg.hiddenSize / cfg.numAttentionHeads, 64);
  assert.deepEqual([cfg.qkvBias, cfg.oProjBias, cfg.mlpBias, cfg.qkNorm], [false, false, false, true]);
  assert.equal(cfg.tieWordEmbeddings, true);
  assert.equal(cfg.maxPositionEmbeddings, 40960);
  assert.equal(cfg.slidingWindow, null);
  // head_dim absent: qwen3 defaults to 128 (not hidden/heads)
  const { head_dim: _, ...noHeadDim } = QWEN3_0_6B;
  assert.equal(parsePretrainedConfig(noHeadDim).headDim, 128);
  // attention_bias on qwen3 biases q/k/v and o
  const biased = parsePretrainedConfig({ ...QWEN3_0_6B, attention_bias: true });
  assert.deepEqual([biased.qkvBias, biased.oProjBias], [true, true]);
});

test("config: linear and dynamic rope scaling, with legacy `type` and with `rope_type`", () => {
  const linear = parsePretrainedConfig({ ...LLAMA_2_7B, rope_scaling: { type: "linear", factor: 2.0 } });
  assert.deepEqual(linear.ropeScaling, { type: "linear", factor: 2 });
  const dynamic = parsePretrainedConfig({ ...LLAMA_2_7B, rope_scaling: { rope_type: "dynamic", factor: 4.0 } });
  assert.deepEqual(dynamic.ropeScaling, { type: "dynamic", factor: 4 });
  const dflt = parsePretrainedConfig({ ...LLAMA_2_7B, rope_scaling: { rope_type: "default" } });
  assert.equal(dflt.ropeScaling, null);
});

test("config: yarn scaling (Qwen long-context recipe) fills transformers' defaults", () => {
  const cfg = parsePretrainedConfig({
    ...QWEN3_0_6B,
    rope_scaling: { rope_type: "yarn", factor: 4.0, original_max_position_embeddings: 32768 },
  });
  assert.deepEqual(cfg.ropeScaling, { type: "yarn", factor: 4, originalMaxPositionEmbeddings: 32768, betaFast: 32, betaSlow: 1, truncate: true });
});

test("config: transformers 5 layout (rope_parameters with rope_theta inside, dtype key)", () => {
  const { rope_scaling: _s, rope_theta: _t, torch_dtype: _d, ...rest } = LLAMA_3_2_1B;
  const cfg = parsePretrainedConfig({
    ...rest,
    dtype: "bfloat16",
    rope_parameters: {
      rope_theta: 500000.0,
      rope_type: "llama3",
      factor: 32.0,
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
    },
  });
  assert.deepEqual(cfg, parsePretrainedConfig(LLAMA_3_2_1B));
  const plain = parsePretrainedConfig({ ...QWEN3_0_6B, rope_theta: undefined, rope_parameters: { rope_type: "default", rope_theta: 1000000 } });
  assert.equal(plain.ropeTheta, 1e6);
  assert.equal(plain.ropeScaling, null);
});

test("config: only model_type or only architectures is enough", () => {
  const { architectures: _a, ...noArch } = QWEN2_5_0_5B;
  assert.equal(parsePretrainedConfig(noArch).architecture, "Qwen2ForCausalLM");
  const { model_type: _m, ...noType } = MISTRAL_7B;
  assert.equal(parsePretrainedConfig(noType).modelType, "mistral");
});

test("config: generation_config.json eos ids are merged; bos/pad fill in nulls", () => {
  withTmpDir((dir) => {
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...LLAMA_3_2_1B, eos_token_id: [128001, 128008] }));
    fs.writeFileSync(
      path.join(dir, "generation_config.json"),
      JSON.stringify({ bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], pad_token_id: 128004, do_sample: true }),
    );
    const cfg = loadPretrainedConfig(dir);
    assert.deepEqual(cfg.eosTokenIds, [128001, 128008, 128009]);
    assert.equal(cfg.padTokenId, 128004);
    assert.equal(cfg.bosTokenId, 128000);
    assert.ok(Object.isFrozen(cfg));
    assert.ok(Object.isFrozen(cfg.eosTokenIds));
  });
});

// ---------------------------------------------------------------- errors, one per kind

test("config error: unsupported architecture names it and lists the supported ones", () => {
  expectValidation(
    () => parsePretrainedConfig({ ...LLAMA_2_7B, architectures: ["GemmaForCausalLM"], model_type: undefined }, "/m/gemma/config.json"),
    "/m/gemma/config.json",
    "config.architectures",
    '"GemmaForCausalLM"',
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM",
  );
});

test("config error: unsupported model_type names it and lists the supported ones", () => {
  const e = expectValidation(
    () => parsePretrainedConfig({ ...LLAMA_2_7B, model_type: "gemma2", architectures: undefined }),
    "config.json",
    "config.model_type",
    '"gemma2"',
    "llama, mistral, qwen2, qwen3",
  );
  assert.equal(e.field, "model_type");
  assert.equal(e.value, "gemma2");
});

test("config error: architecture and model_type disagree", () => {
  expectValidation(() => parsePretrainedConfig({ ...LLAMA_2_7B, model_type: "qwen2" }), "LlamaForCausalLM", 'model_type "qwen2"');
});

test("config error: neither model_type nor architectures", () => {
  const { architectures: _a, model_type: _m, ...bare } = LLAMA_2_7B;
  expectValidation(() => parsePretrainedConfig(bare), "config.model_type", "required field is missing");
});

test("config error: missing required field names it", () => {
  const { hidden_size: _, ...noHidden } = LLAMA_2_7B;
  const e = expectValidation(() => parsePretrainedConfig(noHidden, "/x/config.json"), "/x/config.json", "config.hidden_size", "required field is missing");
  assert.equal(e.field, "hidden_size");
});

test("config error: wrong type names the field and the value", () => {
  expectValidation(() => parsePretrainedConfig({ ...QWEN3_0_6B, num_hidden_layers: "28" }), "config.num_hidden_layers", '"28"');
  expectValidation(() => parsePretrainedConfig({ ...QWEN3_0_6B, vocab_size: -5 }), "config.vocab_size", "-5");
  expectValidation(() => parsePretrainedConfig({ ...QWEN3_0_6B, torch_dtype: "float64" }), "config.torch_dtype", '"float64"');
  expectValidation(() => parsePretrainedConfig({ ...QWEN3_0_6B, tie_word_embeddings: "yes" }), "config.tie_word_embeddings", '"yes"');
  expectValidation(() => parsePretrainedConfig([1, 2]), "config.json", "must be a JSON object");
});

test("config error: hidden_act other than silu", () => {
  expectValidation(() => parsePretrainedConfig({ ...LLAMA_2_7B, hidden_act: "gelu" }), "config.hidden_act", '"gelu"', 'only "silu"');
});

test("config error: inconsistent heads (kv heads not dividing, hidden not divisible, odd head_dim)", () => {
  expectValidation(
    () => parsePretrainedConfig({ ...LLAMA_2_7B, num_key_value_heads: 5 }),
    "config.num_key_value_heads",
    "must divide num_attention_heads (32)",
    "5",
  );
  expectValidation(() => parsePretrainedConfig({ ...LLAMA_2_7B, hidden_size: 4100 }), "config.hidden_size", "multiple of num_attention_heads", "4100");
  expectValidation(() => parsePretrainedConfig({ ...LLAMA_2_7B, head_dim: 127 }), "config.head_dim", "even", "127");
  // qwen2 without num_key_value_heads takes transformers' class default (32), which 14 heads cannot use
  const { num_key_value_heads: _, ...noKv } = QWEN2_5_0_5B;
  expectValidation(() => parsePretrainedConfig(noKv), "config.num_key_value_heads", "must divide num_attention_heads (14)", "32");
});

test("config error: rope scaling problems name the rope field", () => {
  expectValidation(
    () => parsePretrainedConfig({ ...LLAMA_2_7B, rope_scaling: { rope_type: "longrope", factor: 2, short_factor: [], long_factor: [] } }),
    "config.rope_scaling.rope_type",
    '"longrope"',
    "supported: default, linear, dynamic, llama3, yarn",
  );
  expectValidation(
    () => parsePretrainedConfig({ ...LLAMA_2_7B, rope_scaling: { type: "linear" } }),
    "config.rope_scaling.factor",
    'required for rope_type "linear"',
  );
  expectValidation(
    () => parsePretrainedConfig({ ...LLAMA_3_2_1B, rope_scaling: { ...LLAMA_3_2_1B.rope_scaling, low_freq_factor: undefined } }),
    "config.rope_scaling.low_freq_factor",
  );
  expectValidation(() => parsePretrainedConfig({ ...LLAMA_2_7B, rope_scaling: { type: "linear", factor: -2 } }), "config.rope_scaling.factor", "-2");
  expectValidation(() => parsePretrainedConfig({ ...LLAMA_2_7B, partial_rotary_factor: 0.5 }), "config.partial_rotary_factor", "0.5");
});

test("config error: loadPretrainedConfig on a missing or non-JSON config.json is a FormatError naming the file", () => {
  withTmpDir((dir) => {
    const file = path.join(dir, "config.json");
    assert.throws(() => loadPretrainedConfig(dir), (e: unknown) => e instanceof FormatError && e.message.includes(file) && /cannot read/.test(e.message));
    fs.writeFileSync(file, "{ not json");
    assert.throws(() => loadPretrainedConfig(dir), (e: unknown) => e instanceof FormatError && e.message.includes(file) && /not valid JSON/.test(e.message));
    fs.writeFileSync(file, JSON.stringify({ ...LLAMA_2_7B, hidden_act: "relu" }));
    expectValidation(() => loadPretrainedConfig(dir), file, "config.hidden_act");
    fs.writeFileSync(file, JSON.stringify(LLAMA_2_7B));
    fs.writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: "2" }));
    expectValidation(() => loadPretrainedConfig(dir), path.join(dir, "generation_config.json"), "eos_token_id");
  });
});
