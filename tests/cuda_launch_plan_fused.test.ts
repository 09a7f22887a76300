// The fused decode launch plan (lib/backends/cuda/decode_fusion.ts: RMSNorm in the GEMV prologue,
// residual add / SiLU·mul / fp32 logits in its epilogue, RoPE + KV write + split attention + merge in
// decode_attention), checked without a GPU on the fake device of tests/cuda_fake_device.ts: bf16
// engines run prefill and decode steps of 1, 3 and 8 sequences (graph buckets 1, 2, 4, 8 and eager
// steps, one and two attention splits) with `fusedDecode` on and off. The stand-ins round like the
// kernels' documented roundings, so the fused plan must give the unfused plan's bits (logits, ids, KV
// cache); both must match the float32 CPU session to bf16 tolerance. This checks the arguments of every
// gemv_fused* and decode_attention launch (addresses, rows, modes, grids, split geometry, counters,
// overlap of outputs with inputs) — not the kernels' arithmetic (tools/cuda-kernel-check/decode_step.py).
import * as fs from "node:fs";
import process from "node:process";
import { isPrefillPdlKernel, type KernelLaunch, type Launch, type LaunchEnv, planLaunches, type StepShape } from "../lib/backends/cuda/launch_plan.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { shardEngine } from "../lib/builder/sharding.ts";
import type { Engine } from "../lib/builder/engine.ts";
import type { Op } from "../lib/ir/network.ts";
import type { EnginePlan } from "../lib/ir/plan.ts";
import type { StepInputs } from "../lib/ir/step_io.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { FakeCudaSession, fromBf16Bits, maxRelDiff, randomModel, step } from "./cuda_fake_device.ts";
import { bareLlamaPlan, LLAMA_3_2_1B_CONFIG, namedPlanEnv, sameBits, sameKvCache } from "./cuda_fake_plans.ts";
import { assert, sharedDir, test } from "./harness.ts";

const storiesDir = `${process.env.LLMRT_MODELS ?? `${sharedDir}models`}/stories260k`;

/**
 * Logits of the bf16 fake device vs the float32 CPU session: max |Δ| / max |logit| (maxRelDiff). The
 * weights are bf16 values in both engines, so the difference is the bf16 rounding of every stored
 * activation (relative error up to 2^-9 ≈ 2e-3 each: the embedding row, norm outputs, q/k/v, rotated q
 * and k, attention out, the projections, the residual after each add, SiLU·mul), about ten roundings a
 * layer compounding through two layers and the lm_head: measured ≤ 2.0e-2 on these models and steps
 * (deterministic: fixed seeds), so the bound is twice that. A wrong address, row count or mode gives
 * O(1) errors; the smaller slips (an eps, a bias, one row) are caught by the fused-vs-unfused check,
 * which is exact (same bits).
 */
const LOGITS_TOL = 4e-2;
/** KV cache vs the CPU's (rotated k and v, fewer roundings deep): measured ≤ 1.3e-2, twice that. */
const KV_TOL = 2.6e-2;

const SMALL = { vocab_size: 101, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, max_position_embeddings: 256 };
/** Prompt lengths of the 8 sequences: sequence 0 long (two attention splits on eager steps), the others short. */
const LENS = [72, 5, 3, 9, 2, 7, 4, 11];
const FUSED_MODELS: { name: string; raw: Record<string, unknown>; seed: number; qkNorm?: boolean; weightScale?: number; lens?: number[] }[] = [
  {
    name: "llama q/k/v/o + mlp bias, head dim 64, G 4",
    raw: {
      ...SMALL,
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 64,
      attention_bias: true,
      mlp_bias: true,
    },
    seed: 11,
  },
  {
    name: "qwen3 q/k norm, head dim 128, G 2",
    raw: { ...SMALL, architectures: ["Qwen3ForCausalLM"], model_type: "qwen3", num_attention_heads: 4, num_key_value_heads: 2, head_dim: 128 },
    seed: 7,
    qkNorm: true,
  },
  {
    // G 16: two decode_attention blocks per kv head.
    name: "mistral sliding window 6, head dim 64, G 16",
    raw: {
      ...SMALL,
      architectures: ["MistralForCausalLM"],
      model_type: "mistral",
      num_attention_heads: 16,
      num_key_value_heads: 1,
      head_dim: 64,
      sliding_window: 6,
    },
    seed: 13,
  },
  {
    // 8 rows × 1032 > 8192 staged elements: bucket 8 runs the norms unfolded (RMSNorm launch + plain
    // gemv_fused); the lm_head is the embedding table.
    name: "llama hidden 1032 (no RMSNorm prologue at 8 rows), tied embeddings",
    raw: {
      vocab_size: 101,
      hidden_size: 1032,
      intermediate_size: 64,
      num_hidden_layers: 2,
      max_position_embeddings: 256,
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      num_attention_heads: 2,
      num_key_value_heads: 1,
      head_dim: 64,
      tie_word_embeddings: true,
    },
    seed: 17,
    weightScale: 0.075, // ~0.3 · sqrt(64 / 1032): activations of the small models' size
    lens: [6, 5, 3, 9, 2, 7, 4, 11], // the wide GEMVs are the slow part here; splits are covered above
  },
];

const BUILD = { backend: "cuda" as const, maxBatchSize: 8, maxNumTokens: 128, maxSeqLen: 160, tokensPerBlock: 4 };

function engines(raw: Record<string, unknown>, seed: number, weightScale?: number): { bf16: Engine; f32: Engine } {
  const model = randomModel(raw, seed, true, weightScale);
  try {
    return { bf16: buildSync(model, { ...BUILD, dtype: "bfloat16" }), f32: buildSync(model, { ...BUILD, dtype: "float32" }) };
  } finally {
    model.close();
  }
}

/**
 * The same plan with every layer's attention output and SiLU·mul output moved past the arena's end,
 * clear of the inputs of the launches that produce them when fused (qkv; the MLP input): the arena
 * planner (lib/ir/plan.ts planMemory, unfused op order) may let them share memory, which
 * decode_attention takes only for one token and gemv_fused not at all.
 */
function fusedOutputsClear(plan: EnginePlan): EnginePlan {
  const buffers = { ...plan.buffers };
  let end = plan.arenaBytes;
  for (const op of plan.ops) {
    if (op.type !== "paged_attention" && op.type !== "silu_mul") continue;
    buffers[op.out] = { ...buffers[op.out], offset: end };
    end += buffers[op.out].bytes;
  }
  return { ...plan, buffers, arenaBytes: end };
}

const kernelOf = (l: Launch): string => (l.kind === "gemm" ? `gemm ${l.outDtype}` : l.kernel.replace(/_m\d$/, ""));
const modeOf = (l: Launch): number | undefined => (l.kind === "kernel" && l.kernel.startsWith("gemv_fused") ? l.args[9] as number : undefined);

/** Kernel (and gemv_fused mode) of each launch, e.g. "gemv_fused_norm_bf16/2". */
const shape = (ls: readonly Launch[]): string[] => ls.map((l) => kernelOf(l) + (modeOf(l) === undefined ? "" : `/${modeOf(l)}`));

/** The fused decode step of `layers` layers when every fusion applies: 5 launches a layer + 4. */
function fullyFused(layers: number, hd: number, qkNorm: boolean, group: number): string[] {
  const layer = [
    "gemv_fused_norm_bf16/0",
    ...(qkNorm ? ["qk_norm_bf16"] : []),
    `decode_attention_${group <= 4 ? "g4_" : ""}bf16_hd${hd}`,
    "gemv_fused_bf16/1",
    "gemv_fused_norm_bf16/2",
    "gemv_fused_bf16/1",
  ];
  return ["embedding_bf16", ...Array.from({ length: layers }, () => layer).flat(), "gather_rows_bf16", "gemv_fused_norm_bf16/3", "sample_f32"];
}

for (const m of FUSED_MODELS) {
  for (const variant of ["engine plan", "fused outputs clear of inputs"] as const) {
    test(`fused decode plan on a fake device equals the unfused plan and the CPU session: ${m.name} (${variant})`, () => {
      const { bf16, f32 } = engines(m.raw, m.seed, m.weightScale);
      const plan = variant === "engine plan" ? bf16.plan : fusedOutputsClear(bf16.plan);
      const a = plan.attributes;
      const numBlocks = 84;
      const fused = new FakeCudaSession(bf16, numBlocks, 132, false, { fusedDecode: true, plan });
      const plain = new FakeCudaSession(bf16, numBlocks, 132, false, { plan });
      const cpu = new CpuSession(f32);
      const kv = cpu.createKvCache(numBlocks);
      const V = a.vocabSize, maxBlocks = 44; // != the device stride (160 / 4 = 40): re-strided rows
      const perm = Array.from({ length: numBlocks }, (_, i) => (i * 29 + 5) % numBlocks);
      const lens = m.lens ?? LENS;
      const seqs = lens.map((n, s) => ({
        ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
        blocks: s === 0 ? perm.slice(0, 24) : perm.slice(24 + 8 * (s - 1), 32 + 8 * (s - 1)),
      }));
      const pos = lens.map((n) => n - 1);
      const last = seqs.map((s) => s.ids[s.ids.length - 1]);
      let greedyCompared = 0, fusedAttention = 0, fusedSteps = 0, fullShapes = 0, unfoldedShapes = 0;
      const layerBytes = fused.env.kvLayerBytes;
      const run = (what: string, inp: StepInputs, graphs: boolean): Int32Array => {
        const want = { sampledIds: new Int32Array(inp.logitRows.length), logits: new Float32Array(inp.logitRows.length * V) };
        cpu.run(inp, want, kv);
        const got = fused.run(inp, graphs), ref = plain.run(inp, graphs);
        // Fused vs unfused on the fake device: the same bits.
        sameBits(got.logits, ref.logits, `${what}: fused vs unfused logits`);
        assert.deepEqual(Array.from(got.ids), Array.from(ref.ids), `${what}: fused vs unfused ids`);
        sameKvCache(fused, plain, a.numLayers, what);
        // vs the float32 CPU session.
        const rel = maxRelDiff(got.logits, want.logits);
        assert.ok(rel < LOGITS_TOL, `${what}: logits differ from the CPU session's (max rel ${rel.toExponential(2)})`);
        for (let r = 0; r < inp.logitRows.length; r++) {
          if (inp.sampling!.temperature[r] !== 0) continue;
          const row = want.logits.subarray(r * V, (r + 1) * V), sorted = Array.from(row).sort((x, y) => y - x);
          const scale = Math.max(...Array.from(want.logits, Math.abs));
          if (sorted[0] - sorted[1] <= 2 * LOGITS_TOL * scale) continue; // a near tie may flip under bf16 rounding
          assert.equal(got.ids[r], want.sampledIds[r], `${what}: greedy id of row ${r}`);
          greedyCompared++;
        }
        kv.layers.forEach((cpuLayer, l) => {
          const dev = fused.mem.u16(fused.env.kvBase + BigInt(l * layerBytes), cpuLayer.length);
          let d = 0, mx = 0;
          for (let i = 0; i < cpuLayer.length; i++) {
            d = Math.max(d, Math.abs(fromBf16Bits(dev[i]) - cpuLayer[i]));
            mx = Math.max(mx, Math.abs(cpuLayer[i]));
          }
          assert.ok(d / mx < KV_TOL, `${what}: KV layer ${l} differs from the CPU cache (max rel ${(d / mx).toExponential(2)})`);
        });
        // The launches: fewer with the fusion, and the fully fused shape where it applies.
        const fl = fused.lastLaunches, pl = plain.lastLaunches;
        const T = inp.tokenIds.length;
        if (T === inp.seqStarts.length - 1) {
          fusedSteps++;
          assert.ok(fl.length < pl.length, `${what}: ${fl.length} fused launches vs ${pl.length}`);
          fusedAttention += fl.filter((l) => l.kind === "kernel" && l.kernel.startsWith("decode_attention")).length;
          const rows = (fl[0] as KernelLaunch).grid[0]; // the embedding's: the step's rows (a graph's bucket)
          const attnFuses = rows === 1 || !attentionAliases(plan, rows);
          if (rows * a.hiddenSize <= 8192 && attnFuses) {
            assert.deepEqual(
              shape(fl),
              fullyFused(a.numLayers, a.headDim, !!m.qkNorm, (m.raw.num_attention_heads as number) / a.numKvHeads),
              `${what}: fused launches`,
            );
            fullShapes++;
          }
          if (rows * a.hiddenSize > 8192) {
            // Too many rows to stage the norm: RMSNorm launches, plain gemv_fused (SiLU·mul where its output is clear).
            const sh = shape(fl);
            assert.ok(
              !sh.some((k) => k.startsWith("gemv_fused_norm")) && sh.includes("rmsnorm_bf16") && sh.includes("gemv_fused_bf16/3"),
              `${what}: ${sh.join(" ")}`,
            );
            if (variant !== "engine plan") assert.equal(sh.filter((k) => k === "gemv_fused_bf16/2").length, a.numLayers, `${what}: SiLU·mul epilogues`);
            unfoldedShapes++;
          }
          // Unfused: embedding, 9 or 10 a layer (+ qk_norm), add, gather, rmsnorm, lm_head, sample.
          const reduce = pl.some((l) => l.kind === "kernel" && l.kernel.startsWith("paged_attention_decode_reduce")) ? 1 : 0;
          assert.equal(pl.length, 1 + a.numLayers * (9 + reduce + (m.qkNorm ? 1 : 0)) + 5, `${what}: unfused launches`);
        } else {
          assert.deepEqual(shape(fl), shape(pl), `${what}: a prefill step does not fuse`);
        }
        return want.sampledIds;
      };
      run("prefill", step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), maxBlocks), false);
      // Decode steps: graph buckets 8, 4 (3 sequences + a dummy row), 1, 2; eager steps of 3, 8 and 1 sequences.
      const schedule: [number[], boolean][] = [
        [[0, 1, 2, 3, 4, 5, 6, 7], true],
        [[0, 1, 2], true],
        [[3], true],
        [[0, 4, 5], false],
        [[0, 1, 2, 3, 4, 5, 6, 7], false],
        [[0], false],
        [[6, 7], true],
        [[0, 1, 2, 3, 4, 5, 6, 7], true],
      ];
      schedule.forEach(([which, graphs], i) => {
        const inp = step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), maxBlocks);
        const ids = run(`decode ${i}: ${which.length} sequence(s) (${graphs ? "graph bucket" : "eager"})`, inp, graphs);
        which.forEach((s, r) => {
          last[s] = ids[r];
          pos[s]++;
        });
      });
      assert.ok(greedyCompared >= 8, `only ${greedyCompared} greedy ids compared with the CPU session`);
      assert.ok(fullShapes >= (variant === "engine plan" ? 2 : 5), `${fullShapes} fully fused steps`);
      assert.equal(unfoldedShapes, a.hiddenSize > 1024 ? 3 : 0, "steps of 8 rows with unfolded norms");
      assert.equal(fusedSteps, schedule.length);
      // decode_attention runs at least in the one-sequence steps (and in every step once clear of qkv).
      assert.ok(fusedAttention >= (variant === "engine plan" ? 2 : schedule.length) * a.numLayers, `${fusedAttention} decode_attention launches`);
      assert.ok(fused.graphSteps === 5 && fused.eagerSteps === 4, `graph ${fused.graphSteps} / eager ${fused.eagerSteps} steps`);
    });
  }
}

/** Whether some layer's attention output overlaps its qkv input for `rows` decode rows (planMemory's placement). */
function attentionAliases(plan: EnginePlan, rows: number): boolean {
  const eb = plan.elementBytes;
  return plan.ops.some((op, i) => {
    if (op.type !== "paged_attention") return false;
    const rope = plan.ops.slice(0, i).reverse().find((o) => o.type === "rope_kv_write" && o.q === op.q);
    if (!rope || rope.type !== "rope_kv_write") return false;
    const q = plan.buffers[rope.qkv], o = plan.buffers[op.out];
    const qEnd = q.offset + rows * (op.numHeads + 2 * op.numKvHeads) * op.headDim * eb, oEnd = o.offset + rows * op.numHeads * op.headDim * eb;
    return q.offset < oEnd && o.offset < qEnd;
  });
}

// ---- plans alone: launch counts, fallbacks ---------------------------------------------------------

/** A LaunchEnv over made-up addresses (plans only: nothing runs). */
function planEnv(plan: EnginePlan, fusedDecode: boolean, elem: "bf16" | "f32" = "bf16"): LaunchEnv {
  return namedPlanEnv(plan, { fusedDecode, elem });
}

const decodeShape = (T: number, numSplits = 64): StepShape => ({
  numTokens: T,
  numSeqs: T,
  numRows: T,
  attention: { kind: "decode", numSplits, splitSize: 2048 },
  sample: true,
});

test("llama-3.2-1b plan: one-sequence decode step 166 launches unfused, 84 fused (5 a layer + 4)", () => {
  // The network alone (no weights): the plan the engine of bench/RESULTS.md "Issue 16, session 3" runs.
  const plan = bareLlamaPlan(LLAMA_3_2_1B_CONFIG);
  const unfused = planLaunches(planEnv(plan, false), decodeShape(1));
  const fused = planLaunches(planEnv(plan, true), decodeShape(1));
  assert.equal(unfused.length, 166);
  assert.equal(fused.length, 84);
  assert.deepEqual(shape(fused), fullyFused(16, 64, false, 4));
  // Per layer: 10 launches → 5.
  const perLayer = (ls: Launch[], l: number): number =>
    ls.filter((x) => x.kind === "kernel" && (x.args.includes(BigInt(1n << 44n) + BigInt(l << 20)) || false)).length;
  assert.equal(perLayer(fused, 3), 1, "one launch reads layer 3's KV cache (decode_attention)");
  assert.equal(perLayer(unfused, 3), 2, "rope_kv_write and paged_attention_decode");
  // The GEMVs read their input once per row: x of the fused o_proj is attention's output, y the residual.
  const o = fused.find((l) =>
    l.kind === "kernel" && l.op === plan.ops.findIndex((op) => op.type === "linear" && op.weight === "layers.3.o_proj.weight")
  ) as KernelLaunch;
  assert.equal(o.args[3], (1n << 36n) + BigInt(plan.buffers.hidden.offset));
  // Eight sequences: every fused launch still keeps its outputs off the memory its blocks read.
  for (const T of [2, 3, 4, 8]) {
    const ls = planLaunches(planEnv(plan, true), decodeShape(T));
    assert.ok(ls.length < planLaunches(planEnv(plan, false), decodeShape(T)).length, `T=${T}: fewer launches`);
    for (const l of ls) {
      if (l.kind !== "kernel") continue;
      const A = l.args as (bigint & number)[];
      const overlaps = (x: bigint, xb: number, y: bigint, yb: number): boolean => x < y + BigInt(yb) && y < x + BigInt(xb);
      if (l.kernel.startsWith("gemv_fused")) {
        const [x, , , y, , , m, n, k, mode] = A;
        if (mode !== 3) assert.ok(!overlaps(x, m * k * 2, y, m * (mode === 2 ? n / 2 : n) * 2), `T=${T} op ${l.op} (${l.kernel} mode ${mode}): y overlaps x`);
      }
      if (l.kernel.startsWith("decode_attention")) {
        const [qkv, out] = A, nH = A[13], nKV = A[14], hd = 64;
        assert.ok(!overlaps(qkv, T * (nH + 2 * nKV) * hd * 2, out, T * nH * hd * 2), `T=${T} op ${l.op}: decode_attention out overlaps qkv`);
      }
    }
  }
});

test("decode fusion falls back: unknown ops, quantized linears, f32 plans, other head dims, prefill and mixed steps", () => {
  const { bf16 } = engines(FUSED_MODELS[0].raw, 11);
  const plan = bf16.plan;
  const same = (p: EnginePlan, s: StepShape, what: string, elem: "bf16" | "f32" = "bf16"): void => {
    assert.deepEqual(planLaunches(planEnv(p, true, elem), s), planLaunches(planEnv(p, false, elem), s), what);
  };
  assert.ok(planLaunches(planEnv(plan, true), decodeShape(1)).length < planLaunches(planEnv(plan, false), decodeShape(1)).length, "the plan fuses");
  // An op the pass does not know (a made-up type here): nothing fuses.
  const i = plan.ops.findIndex((op) => op.type === "linear" && op.weight === "layers.0.o_proj.weight");
  const withUnknown: EnginePlan = {
    ...plan,
    ops: [...plan.ops.slice(0, i + 1), { type: "not_an_op", x: (plan.ops[i] as { out: string }).out } as unknown as Op, ...plan.ops.slice(i + 1)],
  };
  for (const T of [1, 3, 8]) same(withUnknown, decodeShape(T), `unknown op, ${T} sequence(s)`);
  // A quantized o_proj: that linear and its residual add stay unfused, the rest still fuses.
  const q = plan.ops[i] as Extract<Op, { type: "linear" }>;
  const quant: EnginePlan = { ...plan, ops: plan.ops.map((op, j) => (j === i ? { ...q, weightFormat: { format: "uint4", groupSize: 32, scales: "s" } } : op)) };
  for (const T of [1, 3]) {
    const f = planLaunches(planEnv(quant, true), decodeShape(T)), u = planLaunches(planEnv(quant, false), decodeShape(T));
    assert.deepEqual(f.filter((l) => l.op === i), u.filter((l) => l.op === i), `quantized linear, ${T} sequence(s): its launch unchanged`);
    assert.deepEqual(f.filter((l) => l.op === i + 1).map(kernelOf), ["add_rmsnorm_bf16"], "its residual add + norm stays one add_rmsnorm launch");
    assert.ok(f.length < u.length && f.some((l) => kernelOf(l) === "gemv_fused_norm_bf16"), "the other linears fuse");
  }
  // Steps that are not decode steps of ≤ 8 sequences with the split decode kernels.
  same(plan, { numTokens: 5, numSeqs: 2, numRows: 2, attention: { kind: "prefill" }, sample: true }, "prefill");
  same(plan, { numTokens: 3, numSeqs: 3, numRows: 3, attention: { kind: "prefill" }, sample: true }, "one token each, prefill attention");
  same(plan, { numTokens: 3, numSeqs: 3, numRows: 3, attention: { kind: "generic" }, sample: true }, "generic attention");
  // More than 8 sequences: no GEMV fusion (cuBLASLt), only the attention fusion where outputs allow.
  const nine = planLaunches(planEnv(plan, true), decodeShape(9));
  assert.ok(!nine.some((l) => kernelOf(l).startsWith("gemv")), "9 sequences: no GEMV kernels");
  // Without the split counters the pass stays off.
  const noCounters = { ...planEnv(plan, true), decodeCounters: undefined };
  assert.deepEqual(planLaunches(noCounters, decodeShape(1)), planLaunches(planEnv(plan, false), decodeShape(1)), "no decodeCounters");
  // float32 plans (the fused kernels are bf16 only).
  const { f32 } = engines(FUSED_MODELS[0].raw, 11);
  for (const T of [1, 3, 8]) same(f32.plan, decodeShape(T), `float32 plan, ${T} sequence(s)`, "f32");
  // Head dim 32 (no decode_attention instantiation): the GEMV fusions apply, RoPE stays its own launch.
  const hd32 =
    engines({ ...SMALL, architectures: ["LlamaForCausalLM"], model_type: "llama", num_attention_heads: 2, num_key_value_heads: 2, head_dim: 32 }, 3).bf16.plan;
  const l32 = planLaunches(planEnv(hd32, true), decodeShape(1)).map(kernelOf);
  assert.ok(l32.includes("rope_kv_write_bf16") && !l32.some((k) => k.startsWith("decode_attention")) && l32.includes("gemv_fused_norm_bf16"), l32.join(" "));
});

test("decode fusion in a sharded plan (one rank): the linears an all_reduce reads keep their launch, the rest fuses; same bits as unfused", () => {
  const model = randomModel(FUSED_MODELS[0].raw, 11, true, FUSED_MODELS[0].weightScale);
  const sharded = shardEngine(buildSync(model, { ...BUILD, dtype: "bfloat16" }), 1);
  model.close();
  const plan = sharded.plan, L = plan.attributes.numLayers, V = plan.attributes.vocabSize;
  for (const T of [1, 3]) {
    const f = planLaunches(planEnv(plan, true), decodeShape(T)), u = planLaunches(planEnv(plan, false), decodeShape(T));
    const k = shape(f);
    assert.ok(f.length < u.length, `${T} sequence(s): ${f.length} launches fused vs ${u.length}`);
    assert.equal(k.filter((x) => x === "nccl_all_reduce").length, 2 * L, "every all_reduce still runs");
    assert.ok(!k.includes("gemv_fused_bf16/1"), "no residual epilogue on a linear whose output is all-reduced first");
    assert.ok(k.includes("gemv_fused_bf16/2") && k.some((x) => x.startsWith("decode_attention")), k.join(" "));
    // Each all_reduce follows the plain GEMV of the linear it reads.
    f.forEach((l, n) => {
      if (kernelOf(l) === "nccl_all_reduce") assert.match(kernelOf(f[n - 1]), /^gemv_bf16$/, `launch before all_reduce ${n}`);
    });
  }
  const fused = new FakeCudaSession(sharded, 40, 132, false, { fusedDecode: true });
  const plain = new FakeCudaSession(sharded, 40, 132, false);
  const seqs = [5, 3, 7].map((n, s) => ({
    ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
    pos: 0,
    blocks: [s * 8 + 3, s * 8 + 1, s * 8 + 6],
  }));
  let inp = step(seqs, 4);
  for (let t = 0; t < 4; t++) {
    const got = fused.run(inp), ref = plain.run(inp);
    sameBits(got.logits, ref.logits, `step ${t}: fused vs unfused logits`);
    assert.deepEqual(Array.from(got.ids), Array.from(ref.ids), `step ${t}: ids`);
    seqs.forEach((s, r) => {
      s.pos += s.ids.length;
      s.ids = [got.ids[r]];
    });
    inp = step(seqs, 4);
  }
  assert.ok(shape(fused.lastLaunches).includes("gemv_fused_bf16/2"), "the decode steps ran fused");
  sharded.dispose();
});

test.skipIf("shared/models/stories260k is missing", !fs.existsSync(`${storiesDir}/config.json`))(
  "stories260k (head dim 8, generic attention): the fusion does not apply",
  () => {
    const model = AutoModelForCausalLM.fromHuggingFace(storiesDir);
    const engine = buildSync(model, { ...BUILD, dtype: "bfloat16", maxSeqLen: 96 });
    model.close();
    for (const T of [1, 3, 8]) {
      const s: StepShape = { numTokens: T, numSeqs: T, numRows: T, attention: { kind: "generic" }, sample: true };
      const f = planLaunches(planEnv(engine.plan, true), s);
      assert.deepEqual(f, planLaunches(planEnv(engine.plan, false), s), `${T} sequence(s)`);
      assert.ok(f.some((l) => kernelOf(l) === "paged_attention_generic_bf16"));
    }
  },
);

test("decodeLogitsTuned: only the lm_head of decode steps of more than 8 sequences leaves the pinned cuBLASLt algorithm", () => {
  const plan = bareLlamaPlan(LLAMA_3_2_1B_CONFIG);
  const env = (decodeLogitsTuned: boolean): LaunchEnv => ({ ...planEnv(plan, true), batchAttention: true, batchAttention2: true, decodeLogitsTuned });
  const big: StepShape = { numTokens: 64, numSeqs: 64, numRows: 64, attention: { kind: "decode", numSplits: 2, splitSize: 256 }, sample: true };
  const gemms = (ls: Launch[]) =>
    ls.filter((l) => l.kind === "gemm").map((l) => (l.kind === "gemm" ? `${l.n}x${l.k}:${l.invariant ? "pinned" : "tuned"}` : ""));
  const off = gemms(planLaunches(env(false), big)), on = gemms(planLaunches(env(true), big));
  assert.equal(off.at(-1), `${LLAMA_3_2_1B_CONFIG.vocab_size}x2048:pinned`);
  assert.equal(on.at(-1), `${LLAMA_3_2_1B_CONFIG.vocab_size}x2048:tuned`);
  assert.deepEqual(on.slice(0, -1), off.slice(0, -1), "the layers' linears: already the per-M tuned algorithms");
  assert.ok(off.slice(0, -1).every((g) => g.endsWith(":tuned")));
  for (const shape of [decodeShape(8), { numTokens: 40, numSeqs: 2, numRows: 2, attention: { kind: "prefill" as const }, sample: true }]) {
    assert.deepEqual(planLaunches(env(true), shape), planLaunches(env(false), shape), `${shape.numTokens} tokens: unchanged`);
  }
});

test("programmatic dependent launch: only a fused decode step's waiting kernels get pdl, and nothing else changes", () => {
  const { bf16 } = engines(FUSED_MODELS[0].raw, 11);
  const plan = bf16.plan;
  const withPdl = (p: EnginePlan, fused: boolean): LaunchEnv => ({ ...planEnv(p, fused), pdl: true });
  const strip = (ls: Launch[]): Launch[] =>
    ls.map((l) => (l.kind === "kernel" ? { ...l, pdl: undefined } : l)).map((l) =>
      JSON.parse(JSON.stringify(l, (_k, v) => typeof v === "bigint" ? `${v}n` : v))
    );
  for (const T of [1, 3, 8]) {
    const on = planLaunches(withPdl(plan, true), decodeShape(T)), off = planLaunches(planEnv(plan, true), decodeShape(T));
    assert.deepEqual(strip(on), strip(off), `T=${T}: same launches apart from the flag`);
    assert.ok(off.every((l) => l.kind !== "kernel" || !l.pdl), "pdl off: no launch flagged");
    const flagged = on.filter((l): l is KernelLaunch => l.kind === "kernel" && !!l.pdl).map((l) => l.kernel.replace(/_(bf16|f32)(_(m|hd)\d+)?$/, ""));
    const plain = on.filter((l): l is KernelLaunch => l.kind === "kernel" && !l.pdl).map((l) => l.kernel);
    assert.deepEqual([...new Set(flagged)].sort(), ["decode_attention_g4", "gather_rows", "gemv_fused", "gemv_fused_norm", "sample"], `T=${T}: ${flagged}`);
    assert.deepEqual(
      plain.map((n) => n.replace(/_m\d$/, "")),
      ["embedding_bf16", "gemv_fused_norm_bf16"],
      "the embedding and the launch after it stay ordinary",
    );
  }
  // Not a fused decode step: no launch is flagged even with pdl asked for.
  const prefill = planLaunches(withPdl(plan, true), { numTokens: 5, numSeqs: 2, numRows: 2, attention: { kind: "prefill" }, sample: true });
  assert.ok(prefill.every((l) => l.kind !== "kernel" || !l.pdl), "prefill: none flagged");
  assert.ok(planLaunches(withPdl(plan, false), decodeShape(1)).every((l) => l.kind !== "kernel" || !l.pdl), "unfused decode: none flagged");
  // A sharded plan: the launch after an NCCL all-reduce (an ordinary kernel of NCCL's) stays ordinary.
  const model = randomModel(FUSED_MODELS[0].raw, 11, true, FUSED_MODELS[0].weightScale);
  const sharded = shardEngine(buildSync(model, { ...BUILD, dtype: "bfloat16" }), 1).plan;
  model.close();
  const tp = planLaunches(withPdl(sharded, true), decodeShape(1));
  const afterReduce = tp.filter((_, i) => i > 0 && tp[i - 1].kind === "kernel" && (tp[i - 1] as KernelLaunch).kernel === "nccl_all_reduce");
  assert.ok(afterReduce.length > 0 && afterReduce.every((l) => l.kind !== "kernel" || !l.pdl), "no pdl right after an all_reduce");
  assert.ok(tp.some((l) => l.kind === "kernel" && l.pdl), "the rest of the sharded step still uses pdl");
});

/** A step's launches as JSON with the PDL flag (and the PDL entry point of RoPE + KV write) taken out. */
function stripPdl(ls: Launch[]): string[] {
  return ls.map((l) =>
    JSON.stringify(
      l.kind === "kernel" && l.kernel.startsWith("rope_kv_write_pdl")
        ? { ...l, pdl: undefined, kernel: "rope_kv_write_bf16" }
        : l.kind === "kernel"
        ? { ...l, pdl: undefined }
        : l,
      (_k, v) => typeof v === "bigint" ? `${v}n` : v,
    )
  );
}

test("batchDecodePdl: a decode step of more than 8 sequences flags prefillPdl's kernels (after GEMMs too); 8-sequence and prefill steps unchanged", () => {
  const plan = bareLlamaPlan(LLAMA_3_2_1B_CONFIG);
  const env = (on: boolean): LaunchEnv => ({ ...planEnv(plan, true), batchAttention: true, batchAttention4: true, ...(on ? { batchDecodePdl: true } : {}) });
  const pdlOf = (ls: Launch[]): boolean[] => ls.map((l) => l.kind === "kernel" && !!l.pdl);
  const on = planLaunches(env(true), decodeShape(64, 1)), off = planLaunches(env(false), decodeShape(64, 1));
  assert.deepEqual(stripPdl(on), stripPdl(off), "the same launches apart from the flag");
  const gained = on.filter((l, i): l is KernelLaunch => l.kind === "kernel" && !!l.pdl && !(off[i] as KernelLaunch).pdl);
  const families = [...new Set(gained.map((l) => l.kernel.replace(/_(bf16|f32)(_(m|hd)\d+)?$/, "")))].sort();
  assert.ok(families.includes("add_rmsnorm") && families.includes("silu_mul") && families.includes("sample"), `flagged: ${families.join(", ")}`);
  assert.ok(gained.length >= 16 * 2, `${gained.length} launches gained pdl`);
  assert.ok(on[0].kind === "kernel" && !on[0].pdl, "the first launch stays ordinary");
  for (const l of gained) assert.ok(isPrefillPdlKernel(l.kernel), `${l.kernel} waits at its entry`);
  // 8 sequences (the GEMV decode path) and a prefill step: the flag changes nothing.
  assert.deepEqual(pdlOf(planLaunches(env(true), decodeShape(8, 1))), pdlOf(planLaunches(env(false), decodeShape(8, 1))));
  const prefill: StepShape = { numTokens: 256, numSeqs: 2, numRows: 2, attention: { kind: "prefill" }, sample: true };
  assert.deepEqual(pdlOf(planLaunches(env(true), prefill)), pdlOf(planLaunches(env(false), prefill)));
});

test("prefillPdl: a prefill step's waiting kernels get pdl (never the first launch, never a GEMM), decode steps unchanged", () => {
  const plan = bareLlamaPlan(LLAMA_3_2_1B_CONFIG);
  const env = (on: boolean): LaunchEnv => ({ ...planEnv(plan, true), wgmmaPrefill: true, gemmResidual: true, ...(on ? { prefillPdl: true } : {}) });
  const prefill: StepShape = { numTokens: 2048, numSeqs: 1, numRows: 1, attention: { kind: "prefill" }, sample: true };
  const on = planLaunches(env(true), prefill), off = planLaunches(env(false), prefill);
  assert.deepEqual(stripPdl(on), stripPdl(off), "the same launches apart from the flag");
  assert.ok(off.every((l) => l.kind !== "kernel" || !l.pdl), "off: none flagged");
  const flagged = on.filter((l): l is KernelLaunch => l.kind === "kernel" && !!l.pdl).map((l) => l.kernel.replace(/_(bf16|f32)(_(m|hd)\d+)?$/, ""));
  assert.deepEqual([...new Set(flagged)].sort(), ["flash_prefill_wg", "gather_rows", "rmsnorm", "rope_kv_write_pdl", "sample", "silu_mul"]);
  // Per layer its two norms, RoPE + KV write, attention, SiLU·mul; the final norm, the logits row's gather, the sampler.
  assert.equal(flagged.length, 16 * 5 + 3);
  assert.ok(on[0].kind === "kernel" && !on[0].pdl && on[0].kernel === "embedding_bf16", "the embedding stays ordinary");
  // Decode steps (fused or not) ignore it.
  for (const fused of [true, false]) {
    const d = (p: boolean): Launch[] => planLaunches({ ...planEnv(plan, fused), ...(p ? { prefillPdl: true } : {}) }, decodeShape(1));
    assert.deepEqual(stripPdl(d(true)), stripPdl(d(false)));
    assert.deepEqual(d(true).map((l) => l.kind === "kernel" && !!l.pdl), d(false).map((l) => l.kind === "kernel" && !!l.pdl), `fused ${fused}`);
  }
});
