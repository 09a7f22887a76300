/**
 * Shared pieces of the CUDA launch-plan tests that run without a GPU (not a test file): launch
 * environments of distinct fake addresses (tests/quant_cuda_plan.test.ts, quant_fp8_cuda_plan.test.ts,
 * cuda_kernel_set.test.ts; by name for bare plans: cuda_launch_plan_fused.test.ts), and the small random Llama, engines and fused-vs-unfused decode schedule of
 * the quantized fused-plan tests on the fake device of tests/cuda_fake_device.ts
 * (quant_cuda_fused.test.ts, quant_fp8_cuda_fused.test.ts, quant_fp8_cuda_kv.test.ts).
 */
import type { KernelLaunch, LaunchEnv } from "../lib/backends/cuda/launch_plan.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import { type EnginePlan, fuseAddRmsnorm, planMemory } from "../lib/ir/plan.ts";
import { parsePretrainedConfig } from "../lib/models/config.ts";
import { LlamaForCausalLM } from "../lib/models/llama.ts";
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { type QuantizeOptions, quantizeSync } from "../lib/quantization/quantize.ts";
import { FakeCudaSession, type FakeSessionOptions, randomModel, step } from "./cuda_fake_device.ts";
import { assert } from "./harness.ts";

/**
 * A launch environment of distinct fake addresses (arena 2^36, logits 2^38, KV 2^39; step inputs,
 * scratch and counters small numbers) for planLaunches; `more` sets the weights' addresses and the
 * options that differ between tests (batchInvariant, fusedDecode, the quantized scratches).
 */
export function fakeLaunchEnv(engine: Engine, more: Pick<LaunchEnv, "weight" | "batchInvariant"> & Partial<LaunchEnv>): LaunchEnv {
  const io = {
    sampledIds: 1n,
    temperature: 2n,
    topK: 3n,
    topP: 4n,
    minP: 5n,
    seed: 6n,
    step: 7n,
    logitRows: 8n,
    seqStarts: 9n,
    tokenIds: 10n,
    positions: 11n,
    blockTables: 12n,
    maskIndex: 18n,
    logitPositions: 19n,
    logitSeqStarts: 20n,
  };
  return {
    plan: engine.plan,
    elem: "bf16",
    arena: 1n << 36n,
    logits: 1n << 38n,
    io,
    invFreq: 13n,
    kvBase: 1n << 39n,
    kvLayerBytes: 1 << 20,
    partialO: 14n,
    partialML: 15n,
    tokensPerBlock: 32,
    blockStride: 4,
    gemv: true,
    fusedDecode: false,
    decodeCounters: 16n,
    ...more,
  };
}

/**
 * A LaunchEnv over made-up addresses for a bare engine plan (plans only: nothing runs): every weight and step
 * input gets its own address by name (2^40 + i · 2^24), the KV cache starts at 2^44; bf16, GEMVs, batch-invariant.
 * `more` sets what differs between tests (fusedDecode, elem, pdl, …).
 */
export function namedPlanEnv(plan: EnginePlan, more: Partial<LaunchEnv> = {}): LaunchEnv {
  const names = new Map<string, bigint>();
  const p = (n: string): bigint => {
    if (!names.has(n)) names.set(n, (1n << 40n) + BigInt(names.size) * (1n << 24n));
    return names.get(n)!;
  };
  return {
    plan,
    elem: "bf16",
    arena: 1n << 36n,
    weight: (n) => p(`w:${n}`),
    logits: p("logits"),
    io: {
      sampledIds: p("ids"),
      temperature: p("t"),
      topK: p("k"),
      topP: p("p"),
      minP: p("mp"),
      seed: p("seed"),
      step: p("step"),
      logitRows: p("rows"),
      seqStarts: p("starts"),
      tokenIds: p("tok"),
      positions: p("pos"),
      blockTables: p("tables"),
      maskIndex: p("mask"),
      logitPositions: p("lpos"),
      logitSeqStarts: p("lstarts"),
    },
    invFreq: p("inv"),
    kvBase: 1n << 44n,
    kvLayerBytes: 1 << 20,
    partialO: p("po"),
    partialML: p("pml"),
    tokensPerBlock: 16,
    blockStride: 64,
    gemv: true,
    batchInvariant: true,
    fusedDecode: false,
    decodeCounters: p("counters"),
    ...more,
  };
}

/** llama-3.2-1b's config.json (shapes only: bareLlamaPlan builds its plan without weights). */
export const LLAMA_3_2_1B_CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 128256,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64,
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  hidden_act: "silu",
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  bos_token_id: 1,
  eos_token_id: 2,
};

/** The engine plan of a Llama-family config: the network alone, no weights (maxTokens 2048, 8 sequences, bf16). */
export function bareLlamaPlan(raw: Record<string, unknown>): EnginePlan {
  const c = parsePretrainedConfig(raw);
  const net = new LlamaForCausalLM(c, { has: () => false, readFloat32: () => new Float32Array(0), info: () => ({ shape: [] }), close() {} }).toNetwork();
  const ops = fuseAddRmsnorm(net.ops);
  const profile = { maxTokens: 2048, maxSeqs: 8, elementBytes: 2 };
  return { ops, ...planMemory(net, ops, profile), ...profile, attributes: net.attributes! };
}

/** ‖got − want‖₂ / ‖want‖₂. */
export function relL2(got: Float32Array, want: Float32Array): number {
  let d = 0, w = 0;
  for (let i = 0; i < want.length; i++) {
    d += (got[i] - want[i]) ** 2;
    w += want[i] ** 2;
  }
  return Math.sqrt(d / w);
}

/**
 * The small random Llama of the quantized fused-plan tests: in-features 128 / 256 (whole u4 / u8
 * superchunks and 64-column FP8 chunks), out-features multiples of 16; biases everywhere.
 */
export function quantTestLlama(vocabSize: number): Record<string, unknown> {
  return {
    vocab_size: vocabSize,
    hidden_size: 128,
    intermediate_size: 256,
    num_hidden_layers: 2,
    max_position_embeddings: 256,
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 64,
    attention_bias: true,
    mlp_bias: true,
  };
}
/** The small random Llama of the quantized GPU session tests (tests/gpu/quant_gemm, quant_gemv_pairx): every linear a fusable uint4 GEMV. */
export const W4_GPU_LLAMA = {
  vocab_size: 211,
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  max_position_embeddings: 512,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 64,
} as const;
/** Build limits of the quantized fused-plan tests (8 sequences of up to 160 tokens, blocks of 4). */
export const QUANT_TEST_BUILD = { maxBatchSize: 8, maxNumTokens: 128, maxSeqLen: 160, tokensPerBlock: 4 } as const;

/** The random model of `raw` quantized by `qc`, built as a bf16 CUDA engine and a float32 CPU engine. */
export function quantEngines(
  raw: Record<string, unknown>,
  seed: number,
  qc: QuantConfigInput,
  weightScale?: number,
  options?: QuantizeOptions,
): { bf16: Engine; f32: Engine } {
  const model = randomModel(raw, seed, true, weightScale);
  const q = quantizeSync(model, qc, options);
  const bf16 = buildSync(q, { ...QUANT_TEST_BUILD, backend: "cuda", dtype: "bfloat16" });
  const f32 = buildSync(q, { ...QUANT_TEST_BUILD, backend: "cpu", dtype: "float32" });
  q.close();
  model.close();
  return { bf16, f32 };
}

/** One step of the schedule: the fused and unfused fake devices' results and the CPU session's. */
export interface FusedStep {
  readonly what: string;
  readonly prefill: boolean;
  readonly got: { ids: Int32Array; logits: Float32Array };
  readonly ref: { ids: Int32Array; logits: Float32Array };
  readonly want: { sampledIds: Int32Array; logits: Float32Array };
}

/** Fails unless `a` and `b` have the same length and the same bits (−0 ≠ 0, NaN payloads compared). */
export function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i}: ${a[i]} vs ${b[i]}`);
}

/** Fails unless the fused and unfused logits have the same bits and the sampled ids are equal. */
export function sameAsUnfused(s: FusedStep): void {
  sameBits(s.got.logits, s.ref.logits, `${s.what}: fused vs unfused logits`);
  assert.deepEqual(Array.from(s.got.ids), Array.from(s.ref.ids), `${s.what}: fused vs unfused ids`);
}

/** Fails unless the first `numLayers` KV cache layers of the two fake sessions hold the same bytes. */
export function sameKvCache(fused: FakeCudaSession, plain: FakeCudaSession, numLayers: number, what: string): void {
  const kvBytes = numLayers * fused.env.kvLayerBytes;
  const kf = fused.mem.bytes(fused.env.kvBase, kvBytes), kp = plain.mem.bytes(plain.env.kvBase, kvBytes);
  for (let i = 0; i < kvBytes; i++) if (kf[i] !== kp[i]) assert.fail(`${what}: fused vs unfused KV cache byte ${i}`);
}

/**
 * bf16 activations on the fake device vs the float32 CPU session: e4m3 keeps 3 mantissa bits, so an
 * activation that bf16 rounding moves across an e4m3 rounding boundary changes by 1/16. On the random
 * model of quantTestLlama (weights ±0.1) that leaves the logits 4.5-7.6e-2 apart (relative L2; measured), about FP8's own
 * distance from the unquantized model; a wrong scale, row or epilogue would be far beyond it.
 */
export const FP8_LOGITS_TOL = 0.12;
/** KV cache blocks of runFusedSchedule's sessions (8 sequences of 8 blocks). */
export const FUSED_NUM_BLOCKS = 64;

/** How runFusedSchedule checks each step and names the decode kernels it collects. */
export interface FusedScheduleChecks {
  /** Fused vs unfused logits and ids of one step (before the KV caches are compared bit for bit). */
  readonly unfused: (s: FusedStep) => void;
  /** Fused logits vs the CPU session's (after the KV caches). */
  readonly cpu: (s: FusedStep) => void;
  /** The name a decode launch of the fused plan adds to `kernels` (e.g. with its mode argument). */
  readonly label: (l: KernelLaunch) => string;
  /** The token fed to row `r`'s sequence in the next decode step (default: the fused plan's sample). */
  readonly next?: (s: FusedStep, r: number) => number;
  /** More launch-plan options of the fused session besides `fusedDecode` (e.g. fp8DecodeAttention, quantTailNorm). */
  readonly fusedOptions?: FakeSessionOptions;
  /** Whether the two KV caches must hold the same bytes after each step (default true; false for a fused plan that rounds otherwise). */
  readonly kvSame?: boolean;
  /** SMs of both fake devices (default 132; fewer: launch plans of big models' shapes on a small model). */
  readonly sms?: number;
}

/**
 * Runs prefill and decode steps of 1..8 sequences (graph buckets and eager steps) of `bf16` on two fake
 * devices, `fusedDecode` on and off, and of `f32` on a CPU session; checks every step (`checks`, and
 * that the two KV caches hold the same bytes and fused decode steps take fewer launches). Returns the
 * fused session and the kernels its decode and prefill steps launched.
 */
export function runFusedSchedule(
  bf16: Engine,
  f32: Engine,
  checks: FusedScheduleChecks,
): { fused: FakeCudaSession; kernels: Set<string>; prefillKernels: Set<string> } {
  const numBlocks = FUSED_NUM_BLOCKS, maxBlocks = 40, V = bf16.plan.attributes.vocabSize;
  const fused = new FakeCudaSession(bf16, numBlocks, checks.sms ?? 132, false, { ...checks.fusedOptions, fusedDecode: true });
  const plain = new FakeCudaSession(bf16, numBlocks, checks.sms ?? 132, false, {});
  const cpu = new CpuSession(f32);
  const kv = cpu.createKvCache(numBlocks);
  const lens = [9, 5, 3, 7, 2, 6, 4, 8];
  const seqs = lens.map((n, s) => ({
    ids: Array.from({ length: n }, (_, j) => (s * 37 + j * 11 + 3) % V),
    blocks: Array.from({ length: 8 }, (_, b) => s * 8 + b),
  }));
  const pos = lens.map((n) => n - 1), last = seqs.map((s) => s.ids[s.ids.length - 1]);
  const kernels = new Set<string>(), prefillKernels = new Set<string>();
  const run = (what: string, which: number[], graphs: boolean, prefill = false): void => {
    const inp = prefill
      ? step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), maxBlocks)
      : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), maxBlocks);
    const want = { sampledIds: new Int32Array(inp.logitRows.length), logits: new Float32Array(inp.logitRows.length * V) };
    cpu.run(inp, want, kv);
    const got = fused.run(inp, graphs), ref = plain.run(inp, graphs);
    const s: FusedStep = { what, prefill, got, ref, want };
    checks.unfused(s);
    if (checks.kvSame !== false) sameKvCache(fused, plain, bf16.plan.attributes.numLayers, what);
    checks.cpu(s);
    if (prefill) {
      for (const l of fused.lastLaunches) if (l.kind === "kernel") prefillKernels.add(l.kernel);
      return;
    }
    assert.ok(
      fused.lastLaunches.length < plain.lastLaunches.length,
      `${what}: ${fused.lastLaunches.length} fused launches vs ${plain.lastLaunches.length}`,
    );
    for (const l of fused.lastLaunches) if (l.kind === "kernel") kernels.add(checks.label(l));
    which.forEach((seq, r) => {
      last[seq] = checks.next ? checks.next(s, r) : got.ids[r];
      pos[seq]++;
    });
  };
  run("prefill", [], false, true);
  const schedule: [number[], boolean][] = [[[0, 1, 2, 3, 4, 5, 6, 7], true], [[0, 1, 2], true], [[3], true], [[0, 4, 5], false], [[6, 7], true], [
    [1],
    false,
  ]];
  schedule.forEach(([which, graphs], i) => run(`decode ${i}: ${which.length} sequence(s) (${graphs ? "graph bucket" : "eager"})`, which, graphs));
  return { fused, kernels, prefillKernels };
}
