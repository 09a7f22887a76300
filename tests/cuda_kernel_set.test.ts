// The kernels a CUDA session compiles up front (lib/backends/cuda/kernel_set.ts plannedKernels) must
// cover every kernel its launch plans launch: fake-device sessions (tests/cuda_fake_device.ts) of
// float32 and bf16 engines (tiled head dims 32/64/128, the generic kernel, fused decode on and off,
// batch invariance on and off) run prefill chunks with and without logits rows, mixed steps, decode
// steps eager and in graph buckets and logits-only steps; a launched kernel missing from the set
// fails. Also: the compile units of kernel_set's names (compile_pool.ts kernelUnits) — one per kernel
// of a file with LLMRT_KERNEL guards, and each such kernel guarded under its own name.
import * as fs from "node:fs";
import process from "node:process";
import { isSelectable, kernelUnits, unitName } from "../lib/backends/cuda/compile_pool.ts";
import { kernelsDir, kernelSource } from "../lib/backends/cuda/compiler.ts";
import { plannedKernels } from "../lib/backends/cuda/kernel_set.ts";
import { kernelSignature, NCCL_ALL_REDUCE, planLaunches, type StepShape } from "../lib/backends/cuda/launch_plan.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM, type LlamaForCausalLM } from "../lib/models/llama.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { fakeLaunchEnv } from "./cuda_fake_plans.ts";
import { assert, sharedDir, test } from "./harness.ts";

const storiesDir = `${process.env.LLMRT_MODELS ?? `${sharedDir}models`}/stories260k`;
const SMALL = { vocab_size: 101, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, max_position_embeddings: 256 };
const llama = (heads: number, kv: number, hd: number, extra: Record<string, unknown> = {}) => () =>
  randomModel({
    ...SMALL,
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    num_attention_heads: heads,
    num_key_value_heads: kv,
    head_dim: hd,
    ...extra,
  }, 5);
const MODELS: { name: string; make: () => LlamaForCausalLM; needs?: string }[] = [
  { name: "llama head dim 64, G 4, biases", make: llama(4, 1, 64, { attention_bias: true, mlp_bias: true }) },
  {
    name: "qwen3 q/k norm head dim 128",
    make: () =>
      randomModel({ ...SMALL, architectures: ["Qwen3ForCausalLM"], model_type: "qwen3", num_attention_heads: 4, num_key_value_heads: 2, head_dim: 128 }, 7),
  },
  { name: "llama head dim 32 (kjv-llama's)", make: llama(8, 2, 32) },
  { name: "stories260k (head dim 8: generic kernel)", make: () => AutoModelForCausalLM.fromHuggingFace(storiesDir), needs: `${storiesDir}/config.json` },
];

for (const m of MODELS) {
  for (const dtype of ["bfloat16", "float32"] as const) {
    test.skipIf("shared/models/stories260k is missing", !!m.needs && !fs.existsSync(m.needs))(
      `planned kernels cover every launch: ${m.name}, ${dtype}`,
      () => {
        const model = m.make();
        const engine = buildSync(model, { backend: "cuda", dtype, maxBatchSize: 12, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4 });
        model.close();
        const elemOk = dtype === "float32" || engine.plan.attributes.headDim % 8 === 0; // bf16 stand-ins need 16-byte rows
        for (const fusedDecode of [true, false]) {
          for (const batchInvariant of [true, false]) {
            const fake = new FakeCudaSession(engine, 48, 132, !elemOk, { fusedDecode, batchInvariant });
            const planned = new Set(plannedKernels(fake.env, fake.decodeCap));
            const seen = new Set<string>();
            const run = (inp: ReturnType<typeof step>, graphs = true): void => {
              fake.run(inp, graphs);
              for (const l of fake.lastLaunches) if (l.kind === "kernel" && l.kernel !== NCCL_ALL_REDUCE) seen.add(l.kernel);
            };
            const blocks = (s: number) => Array.from({ length: 24 }, (_, i) => (s * 4 + i) % 48);
            const lens = [9, 3, 14, 2, 5, 7, 4, 6, 3, 4, 2, 5];
            // A chunk without logits rows, prefill of several prompts, a mixed continuation.
            const chunk = step([{ ids: [1, 2, 3, 4], pos: 0, blocks: blocks(0) }], 24);
            run({ ...chunk, logitRows: new Int32Array(0), sampling: undefined });
            run(step(lens.map((n, s) => ({ ids: Array.from({ length: n }, (_, i) => (i * 7 + s) % 100), pos: 0, blocks: blocks(s) })), 24));
            run(step([{ ids: [5, 6], pos: 9, blocks: blocks(0) }, { ids: [7], pos: 3, blocks: blocks(1) }], 24));
            // Decode steps of 1..12 sequences, graph buckets and eager, long and short contexts; logits-only.
            for (const n of [1, 2, 3, 5, 8, 9, 12]) {
              for (const graphs of [true, false]) {
                run(step(lens.slice(0, n).map((l, s) => ({ ids: [s + 1], pos: l + (s === 0 ? 70 : 0), blocks: blocks(s) })), 24), graphs);
              }
            }
            run(step([{ ids: [3], pos: 4, blocks: blocks(2) }], 24, false), false);
            const missing = [...seen].filter((k) => !planned.has(k));
            assert.deepEqual(missing, [], `fused ${fusedDecode}, invariant ${batchInvariant}: launched but not planned`);
            for (const k of planned) kernelSignature(k); // every planned name is a known kernel
            assert.ok(planned.has("apply_token_mask"), "guided decoding's mask kernel is planned");
          }
        }
      },
    );
  }
}

test("compile units: one per kernel of a guarded file, whole small files, each guarded kernel under its own name", () => {
  const names = ["gemv_fused_norm_bf16_m4", "gemv_bf16_m1", "paged_attention_decode_bf16_hd64", "rmsnorm_bf16", "add_rmsnorm_bf16", "sample_f32"];
  const units = kernelUnits(names, (k) => kernelSignature(k).file);
  const byName = new Map(units.map((u) => [unitName(u.unit), u]));
  assert.deepEqual([...byName.keys()].sort(), [
    "gemv.cu:gemv_bf16_m1",
    "gemv.cu:gemv_fused_norm_bf16_m4",
    "paged_attention.cu:paged_attention_decode_bf16_hd64",
    "rmsnorm.cu",
    "sampling.cu:sample_f32",
  ]);
  assert.deepEqual(byName.get("rmsnorm.cu")!.forKernels, ["add_rmsnorm_bf16", "rmsnorm_bf16"]);
  assert.equal(byName.get("rmsnorm.cu")!.unit.kernels, null);
  for (const f of ["gemv.cu", "paged_attention.cu", "decode_attention.cu", "decode_attention_batch.cu", "sampling.cu"]) assert.ok(isSelectable(f), f);
  assert.ok(!isSelectable("rmsnorm.cu"));
  // Every entry point of a guarded file sits under `#if LLMRT_KERNEL(<its name>)`.
  for (const f of fs.readdirSync(kernelsDir).filter((f) => f.endsWith(".cu"))) {
    if (!isSelectable(f)) continue;
    const lines = kernelSource(f).split("\n");
    lines.forEach((line, i) => {
      const entry = /^(?:extern "C" __global__ void (?:__launch_bounds__\([^)]*\) )?(\w+)\(|(?:PA_\w+|GEMV\w*|DECODE_FUSED)\((\w+),|DECODE_BATCH\((\d+)\))/
        .exec(
          line,
        );
      if (!entry || line.startsWith("#define")) return;
      const name = entry[1] ?? entry[2] ?? `decode_attention_batch_bf16_hd${entry[3]}`;
      assert.equal(lines[i - 1], `#if LLMRT_KERNEL(${name})`, `${f}:${i + 1} ${name}`);
    });
  }
});

// Quantized engines (weight-only int, FP8): the same coverage, on a launch environment of fake addresses.
const kjvDir = new URL("../models/kjv-llama/", import.meta.url).pathname;
for (
  const qc of [
    { quantAlgo: "W4A16", groupSize: 64 },
    { quantAlgo: "FP8" },
    { quantAlgo: "FP8", kvCacheQuantAlgo: "FP8" },
    {
      quantAlgo: "W4A16",
      groupSize: 64,
      kvCacheQuantAlgo: "INT8",
    },
    { quantAlgo: "W8A8_SQ_PER_CHANNEL" },
    { quantAlgo: "NVFP4" },
  ] as const
) {
  test(`planned kernels cover every launch: kjv-llama ${qc.quantAlgo}${"kvCacheQuantAlgo" in qc ? ` + ${qc.kvCacheQuantAlgo} KV cache` : ""}`, () => {
    const q = quantizeSync(AutoModelForCausalLM.fromHuggingFace(kjvDir), qc, { maxCalibrationTokens: 64 });
    const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 16, maxNumTokens: 64, maxSeqLen: 128 });
    q.close();
    const names = engine.tensorNames();
    let next = 1n << 40n;
    const addr = new Map<string, bigint>();
    // NVFP4: also with nvfp4Mma (kernels/nvfp4_mma.cu, its producers and the 16-warp GEMV for few row tiles).
    const modes = ([true, false] as const).flatMap((bi) => (qc.quantAlgo === "NVFP4" ? [[bi, false], [bi, true]] : [[bi, false]]) as [boolean, boolean][]);
    for (const [batchInvariant, mma] of modes) {
      const env = fakeLaunchEnv(engine, {
        ...(mma ? { nvfp4Mma: true, nvfp4GemvBlocks: 264 } : {}),
        weight: (n) => {
          assert.ok(names.includes(n), `weight ${n}`);
          if (!addr.has(n)) addr.set(n, next += 1n << 20n);
          return addr.get(n)!;
        },
        batchInvariant,
        fusedDecode: true,
        quantScratch: 17n << 32n,
        fp8Scratch: 18n << 32n,
        kvScales: 19n << 32n,
        lowbitScratch: 20n << 32n,
      });
      const planned = new Set(plannedKernels(env, 16));
      const seen = new Set<string>();
      const shapes: StepShape[] = [];
      for (const T of [1, 2, 3, 4, 5, 8, 9, 16]) {
        for (const numSplits of [1, 2]) {
          shapes.push({ numTokens: T, numSeqs: T, numRows: T, attention: { kind: "decode", numSplits, splitSize: 64 }, sample: true });
        }
      }
      for (const [T, S, R] of [[6, 1, 1], [6, 1, 0], [40, 3, 3], [64, 2, 1], [20, 20, 20]]) {
        shapes.push({ numTokens: T, numSeqs: S, numRows: R, attention: { kind: "prefill" }, sample: R > 0 });
      }
      for (const s of shapes) for (const l of planLaunches(env, s)) if (l.kind === "kernel") seen.add(l.kernel);
      if ("kvCacheQuantAlgo" in qc) {
        const tag = qc.kvCacheQuantAlgo === "FP8" ? "fp8kv" : "int8kv";
        for (const k of [`rope_kv_write_${tag}_bf16`, `paged_attention_decode_${tag}_bf16_hd32`, `paged_attention_prefill_mma_${tag}_bf16_hd32`]) {
          assert.ok(seen.has(k) && planned.has(k), `${qc.kvCacheQuantAlgo} KV: ${k} launched and planned`);
        }
      }
      assert.deepEqual(
        [...seen].filter((k) => !planned.has(k)),
        [],
        `${qc.quantAlgo}, invariant ${batchInvariant}${mma ? ", nvfp4Mma" : ""}: launched but not planned`,
      );
      if (mma) assert.ok(seen.has("nvfp4_gemv_mma_w16_bf16_m1") && seen.has("nvfp4_rmsnorm_act_bf16"), [...seen].join(" "));
    }
  });
}
