// The persistent decode launch (issue 16 item 1, session 9: lib/backends/cuda/persistent_decode.ts, kernels/decode_persistent.cu),
// checked without a GPU on weightless plans: which plans it takes (llama-3.2-1b's shapes, the fused one-token decode chain),
// the one launch it leaves for all decoder layers and its arguments, and what stays as before (other step sizes, other
// models, the switch off). The kernel's arithmetic: tools/cuda-kernel-check/decode_persistent.py; the engine's logits
// with the switch on: tests/gpu/persistent_decode.test.ts.
import { type KernelLaunch, type LaunchEnv, planLaunches, type StepShape } from "../lib/backends/cuda/launch_plan.ts";
import { planDecodeFusion } from "../lib/backends/cuda/decode_fusion.ts";
import { plannedKernels } from "../lib/backends/cuda/kernel_set.ts";
import {
  PERSISTENT_DECODE_KERNEL,
  PERSISTENT_DECODE_SMEM,
  persistentCounterCount,
  persistentLayerTable,
  persistentScratchLayout,
  planPersistentDecode,
} from "../lib/backends/cuda/persistent_decode.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import type { EnginePlan } from "../lib/ir/plan.ts";
import { bareLlamaPlan, LLAMA_3_2_1B_CONFIG, namedPlanEnv } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const PD = { table: 1n << 45n, counters: 1n << 46n, scratch: 1n << 47n, blocks: 132 };

function env(plan: EnginePlan, persistent: boolean): LaunchEnv {
  return namedPlanEnv(plan, { fusedDecode: true, pdl: true, ...(persistent ? { persistentDecode: PD } : {}) });
}

const decodeShape = (T: number): StepShape => ({
  numTokens: T,
  numSeqs: T,
  numRows: T,
  attention: { kind: "decode", numSplits: 64, splitSize: 2048 },
  sample: true,
});

const names = (ls: ReturnType<typeof planLaunches>): string[] => ls.map((l) => (l.kind === "kernel" ? l.kernel : l.kind));

test("llama-3.2-1b one-token decode step: all 16 layers in one persistent launch (5 launches in all)", () => {
  const plan = bareLlamaPlan(LLAMA_3_2_1B_CONFIG);
  const ls = planLaunches(env(plan, true), decodeShape(1));
  assert.deepEqual(names(ls), ["embedding_bf16", PERSISTENT_DECODE_KERNEL, "gather_rows_bf16", "gemv_fused_norm_bf16_m1", "sample_f32"]);
  const k = ls[1] as KernelLaunch;
  const pd = planPersistentDecode(plan, planDecodeFusion(plan, 1, true, (n) => n === plan.attributes.logits, 8)!)!;
  assert.equal(pd.layers.length, 16);
  assert.equal(k.op, pd.first);
  assert.equal(plan.ops[pd.first].type, "rmsnorm", "from layer 0's input norm");
  assert.equal((plan.ops[pd.last] as { weight?: string }).weight, "layers.15.down.weight", "to layer 15's down_proj");
  assert.deepEqual(k.grid, [132, 1, 1]);
  assert.equal(k.block, 288);
  assert.equal(k.sharedBytes, PERSISTENT_DECODE_SMEM);
  assert.ok(!k.pdl, "no programmatic dependent launch (the kernel does not wait in code)");
  const sl = persistentScratchLayout();
  const e = env(plan, true);
  assert.deepEqual(k.args, [
    PD.table,
    16,
    1n << 44n,
    1n << 20n,
    (1n << 36n) + BigInt(plan.buffers.hidden.offset),
    PD.scratch + BigInt(sl.qkv),
    PD.scratch + BigInt(sl.attn),
    PD.scratch + BigInt(sl.act),
    e.io.positions,
    e.io.blockTables,
    e.invFreq,
    plan.attributes.rope.attentionScaling,
    1e-5,
    0.125,
    16,
    PD.counters,
    PD.scratch + BigInt(sl.part),
  ]);
  // The lm_head's prologue norm reads the residual stream the launch leaves (through gather_rows).
  assert.equal((ls[2] as KernelLaunch).args[0], (1n << 36n) + BigInt(plan.buffers.hidden.offset));
  // Scratch: qkv 3072, attention 2048, SiLU·mul 8192 bf16, then f32 split partials [32, 4, 66]; 16-byte aligned.
  assert.deepEqual([sl.qkv, sl.attn, sl.act, sl.part, sl.bytes], [0, 6144, 10240, 26624, 26624 + 32 * 4 * 66 * 4]);
  assert.equal(persistentCounterCount(16), 81);
  // The layer table: six weights a layer in the kernel's order.
  const t = persistentLayerTable(pd, (n) => e.weight(n));
  assert.equal(t.length, 96);
  assert.deepEqual(
    [...t.slice(6, 12)],
    ["input_layernorm", "qkv.weight", "o_proj.weight", "post_attention_layernorm", "gate_up.weight", "down.weight"].map((w) => e.weight(`layers.1.${w}`)),
  );
  assert.ok(plannedKernels(e, 8).includes(PERSISTENT_DECODE_KERNEL));
  assert.ok(!plannedKernels(env(plan, false), 8).includes(PERSISTENT_DECODE_KERNEL));
});

test("persistent decode: other step sizes, the switch off and other models keep the per-layer launches", () => {
  const plan = bareLlamaPlan(LLAMA_3_2_1B_CONFIG);
  for (const T of [2, 3, 8]) {
    assert.deepEqual(names(planLaunches(env(plan, true), decodeShape(T))), names(planLaunches(env(plan, false), decodeShape(T))), `T=${T}`);
  }
  assert.equal(planLaunches(env(plan, false), decodeShape(1)).length, 84);
  const prefill: StepShape = { numTokens: 16, numSeqs: 1, numRows: 1, attention: { kind: "prefill" }, sample: true };
  assert.ok(!names(planLaunches(env(plan, true), prefill)).includes(PERSISTENT_DECODE_KERNEL));
  const fuse1 = (p: EnginePlan) => planDecodeFusion(p, 1, true, (n) => n === p.attributes.logits, 8)!;
  // Shapes other than the kernel's, a bias, a sliding window: not taken.
  for (
    const raw of [
      { ...LLAMA_3_2_1B_CONFIG, hidden_size: 4096 },
      { ...LLAMA_3_2_1B_CONFIG, intermediate_size: 14336 },
      { ...LLAMA_3_2_1B_CONFIG, num_key_value_heads: 4 },
      { ...LLAMA_3_2_1B_CONFIG, attention_bias: true },
      { ...LLAMA_3_2_1B_CONFIG, architectures: ["MistralForCausalLM"], model_type: "mistral", sliding_window: 64 },
    ]
  ) {
    const p = bareLlamaPlan(raw);
    assert.equal(planPersistentDecode(p, fuse1(p)), undefined, JSON.stringify(raw).slice(0, 80));
    assert.ok(!names(planLaunches(env(p, true), decodeShape(1))).includes(PERSISTENT_DECODE_KERNEL));
  }
  // Two layers of the 1B's shapes: taken (the layer count is the kernel's argument).
  assert.equal(
    planPersistentDecode(
      bareLlamaPlan({ ...LLAMA_3_2_1B_CONFIG, num_hidden_layers: 2 }),
      fuse1(bareLlamaPlan({ ...LLAMA_3_2_1B_CONFIG, num_hidden_layers: 2 })),
    )?.layers.length,
    2,
  );
});

test("persistentDecode switch: off by default, LLMRT_PERSISTENT_DECODE turns it on", () => {
  assert.equal(resolveCudaFlags({}).persistentDecode, false);
  assert.equal(resolveCudaFlags({ persistentDecode: true }).persistentDecode, true);
  assert.equal(resolveCudaFlags({}, (n) => (n === "persistentDecode" ? true : undefined)).persistentDecode, true);
});
