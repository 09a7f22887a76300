// The CUDA launch plan and step staging, checked without a GPU: a fake device address space and a
// TypeScript stand-in for every kernel (the CPU reference kernels, reading and writing through the
// launch arguments' addresses) run the launch table the CUDA session would run, eagerly and as a
// padded decode bucket; the logits and sampled ids must equal the CPU session's. This checks the
// argument wiring (addresses, strides, row counts, grids, the staging layout) against every
// kernel's signature — not the kernels' arithmetic (tools/cuda-kernel-check does that).
import * as fs from "node:fs";
import { bucketFor, decodeBuckets, decodeSplit, graphDecodeSplit, kernelSignature, MAX_DECODE_SPLITS, planLaunches } from "../lib/backends/cuda/launch_plan.ts";
import { isDecodeStep, packStep, stagingLayout } from "../lib/backends/cuda/step_staging.ts";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import { AutoModelForCausalLM, type LlamaForCausalLM } from "../lib/models/llama.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import type { StepInputs } from "../lib/ir/step_io.ts";
import process from "node:process";
import { checkSignature, FakeCudaSession, maxRelDiff, randomModel, step } from "./cuda_fake_device.ts";
import { assert, sharedDir, test } from "./harness.ts";

const storiesDir = `${process.env.LLMRT_MODELS ?? `${sharedDir}models`}/stories260k`;

// ---- models ------------------------------------------------------------------------------------

const SMALL = { vocab_size: 101, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, max_position_embeddings: 256 };
const MODELS: { name: string; make: () => LlamaForCausalLM }[] = [
  {
    name: "qwen3 q/k norm, head dim 32 (tiled kernels)",
    make: () =>
      randomModel({ ...SMALL, architectures: ["Qwen3ForCausalLM"], model_type: "qwen3", num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32 }, 7),
  },
  {
    name: "llama q/k/v/o + mlp bias, head dim 64, G 4",
    make: () =>
      randomModel({
        ...SMALL,
        architectures: ["LlamaForCausalLM"],
        model_type: "llama",
        num_attention_heads: 4,
        num_key_value_heads: 1,
        head_dim: 64,
        attention_bias: true,
        mlp_bias: true,
      }, 11),
  },
  {
    name: "mistral sliding window 6, head dim 32",
    make: () =>
      randomModel(
        { ...SMALL, architectures: ["MistralForCausalLM"], model_type: "mistral", num_attention_heads: 2, num_key_value_heads: 2, sliding_window: 6 },
        13,
      ),
  },
  {
    name: "stories260k (head dim 8: generic kernel)",
    make: () => AutoModelForCausalLM.fromHuggingFace(storiesDir),
  },
];

function cudaEngine(make: () => LlamaForCausalLM, opts = {}): Engine {
  const model = make();
  try {
    return buildSync(model, { backend: "cuda", dtype: "float32", maxBatchSize: 6, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4, ...opts });
  } finally {
    model.close();
  }
}

for (const m of MODELS) {
  const hasModel = !m.name.startsWith("stories") || fs.existsSync(`${storiesDir}/config.json`);
  test.skipIf("shared/models/stories260k is missing", !hasModel)(`launch plan on a fake device equals the CPU session: ${m.name}`, () => {
    const engine = cudaEngine(m.make);
    const cpu = new CpuSession(engine);
    const numBlocks = 40;
    const kv = cpu.createKvCache(numBlocks);
    const fake = new FakeCudaSession(engine, numBlocks);
    const V = engine.plan.attributes.vocabSize;
    const maxBlocks = 30; // != the device stride (96 / 4 = 24): re-strided rows
    const perm = Array.from({ length: numBlocks }, (_, i) => (i * 17 + 3) % numBlocks);
    const seqs = [
      { ids: [1, 5, 9, 33, 2, 7, 8, 21, 14, 3, 60], blocks: perm.slice(0, 8) },
      { ids: [4, 4, 90], blocks: perm.slice(8, 16) },
      { ids: [100, 1, 2, 3, 4, 5, 6], blocks: perm.slice(16, 24) },
    ];
    const compare = (what: string, inp: StepInputs, graphs: boolean) => {
      const want = { sampledIds: new Int32Array(inp.logitRows.length), logits: new Float32Array(inp.logitRows.length * V) };
      cpu.run(inp, want, kv);
      const got = fake.run(inp, graphs);
      const rel = maxRelDiff(got.logits, want.logits);
      assert.ok(rel < 1e-5, `${what}: logits differ (max rel ${rel.toExponential(2)})`);
      assert.deepEqual(Array.from(got.ids), Array.from(want.sampledIds), `${what}: sampled ids`);
      // The usable blocks hold exactly the CPU cache (dummy tokens touch only the scratch block).
      const env = fake.env;
      kv.layers.forEach((cpuLayer, l) => {
        const dev = fake.mem.f32(env.kvBase + BigInt(l * env.kvLayerBytes), cpuLayer.length);
        for (let i = 0; i < cpuLayer.length; i++) if (dev[i] !== cpuLayer[i]) assert.fail(`${what}: KV layer ${l} element ${i}: ${dev[i]} vs ${cpuLayer[i]}`);
      });
      return want.sampledIds;
    };
    // A first chunk with no logits rows, then prefill of all three (tiled prefill / generic), then a chunked continuation.
    const chunk0 = step([{ ids: seqs[0].ids.slice(0, 4), pos: 0, blocks: seqs[0].blocks }], maxBlocks);
    const noRows = { ...chunk0, logitRows: new Int32Array(0), sampling: undefined };
    const cpuOut = {};
    cpu.run(noRows, cpuOut, kv);
    fake.run(noRows);
    compare("prefill", step(seqs.map((s) => ({ ids: s.ids.slice(0, -2), pos: 0, blocks: s.blocks })), maxBlocks), true);
    compare("mixed (chunk + chunk + chunk)", step(seqs.map((s) => ({ ids: s.ids.slice(-2), pos: s.ids.length - 2, blocks: s.blocks })), maxBlocks), true);
    // Decode steps: padded to a bucket (3 → 4, dummy rows in the scratch block), eager split-K, and 1 → bucket 1.
    let pos = seqs.map((s) => s.ids.length);
    let last = [7, 8, 9];
    for (let i = 0; i < 6; i++) {
      const graphs = i % 2 === 0;
      const ids = compare(
        `decode ${i} (${graphs ? "bucket" : "eager"})`,
        step(seqs.map((s, j) => ({ ids: [last[j]], pos: pos[j], blocks: s.blocks })), maxBlocks),
        graphs,
      );
      last = Array.from(ids);
      pos = pos.map((p) => p + 1);
    }
    compare("decode, one sequence", step([{ ids: [last[1]], pos: pos[1], blocks: seqs[1].blocks }], maxBlocks), true);
    // Logits-only step (no sampling inputs): padded rows default to greedy.
    const noSample = step(seqs.map((s, j) => ({ ids: [last[j]], pos: pos[j], blocks: s.blocks })), maxBlocks, false);
    const want = { logits: new Float32Array(3 * V) };
    cpu.run(noSample, want, kv);
    assert.ok(maxRelDiff(fake.run(noSample).logits, want.logits) < 1e-5, "logits-only decode step");
    assert.ok(fake.graphSteps >= 4 && fake.eagerSteps >= 5, `graph ${fake.graphSteps} / eager ${fake.eagerSteps} steps`);
  });
}

test("decode split heuristics cover the attended span and stay within the workspace", () => {
  for (const elem of ["bf16", "f32"] as const) {
    const tile = elem === "bf16" ? 64 : 32;
    for (const T of [1, 3, 32, 64, 256]) {
      for (const len of [1, 2, 63, 64, 65, 1000, 4096, 131072]) {
        const s = decodeSplit(T, 8, 4, len, elem, 132);
        assert.ok(
          s.numSplits >= 1 && s.numSplits <= MAX_DECODE_SPLITS && s.numSplits * s.splitSize >= len && s.splitSize % tile === 0,
          `${elem} T=${T} len=${len}: ${JSON.stringify(s)}`,
        );
        assert.ok((s.numSplits - 1) * s.splitSize < len, "no empty trailing split");
      }
    }
    for (const B of decodeBuckets(64)) {
      for (const maxSeqLen of [64, 512, 4096, 131072]) {
        const s = graphDecodeSplit(B, 8, 4, maxSeqLen, elem, 132);
        assert.ok(
          s.numSplits >= 1 && s.numSplits <= MAX_DECODE_SPLITS && s.numSplits * s.splitSize >= maxSeqLen && s.splitSize >= 128 && s.splitSize % tile === 0,
          `graph ${elem} B=${B} ${maxSeqLen}: ${JSON.stringify(s)}`,
        );
      }
    }
  }
  assert.equal(kernelSignature("gemv_bf16_m4").file, "gemv.cu");
  assert.equal(kernelSignature("paged_attention_prefill_mma_bf16_hd64").params.length, 14);
  assert.deepEqual(decodeBuckets(64), [1, 2, 4, 8, 16, 32, 64]);
  assert.deepEqual(decodeBuckets(6), [1, 2, 4, 6]);
  assert.equal(bucketFor(3, decodeBuckets(6)), 4);
  assert.equal(bucketFor(5, decodeBuckets(6)), 6);
  assert.throws(() => bucketFor(7, decodeBuckets(6)), RangeError);
});

test("staging layout: segments aligned, in order, block tables last; packing pads a decode bucket", () => {
  const L = stagingLayout(100, 6, 24);
  const o = L.offsets;
  const names = Object.keys(o) as (keyof typeof o)[];
  assert.equal(names[0], "sampledIds");
  assert.equal(o.sampledIds, 0);
  for (const n of names) assert.equal(o[n] % 64, 0, n);
  assert.equal(Math.max(...names.map((n) => o[n])), o.blockTables);
  assert.ok(L.words >= o.blockTables + 6 * 24);
  const host = new ArrayBuffer(L.words * 4);
  const i32 = new Int32Array(host).fill(-1), f32 = new Float32Array(host), u32 = new Uint32Array(host);
  const inp = step([{ ids: [5], pos: 9, blocks: [3, 4, 5] }, { ids: [6], pos: 0, blocks: [7] }], 30);
  assert.ok(isDecodeStep(inp));
  const words = packStep(L, i32, f32, u32, inp, { bucket: 4, scratchBlock: 99 });
  assert.equal(words, o.blockTables + 4 * 24);
  assert.deepEqual(Array.from(i32.subarray(o.tokenIds, o.tokenIds + 4)), [5, 6, 0, 0]);
  assert.deepEqual(Array.from(i32.subarray(o.positions, o.positions + 4)), [9, 0, 0, 0]);
  assert.deepEqual(Array.from(i32.subarray(o.seqStarts, o.seqStarts + 5)), [0, 1, 2, 3, 4]);
  assert.deepEqual(Array.from(i32.subarray(o.logitRows, o.logitRows + 4)), [0, 1, 2, 3]);
  assert.deepEqual(Array.from(i32.subarray(o.blockTables, o.blockTables + 3)), [3, 4, 5]);
  assert.equal(i32[o.blockTables + 24], 7);
  assert.equal(i32[o.blockTables + 48], 99);
  assert.equal(i32[o.blockTables + 72], 99);
  assert.deepEqual(Array.from(f32.subarray(o.temperature, o.temperature + 4)), [0, Math.fround(0.8), 0, 0]);
  assert.deepEqual(Array.from(f32.subarray(o.topP, o.topP + 4)), [Math.fround(0.9), Math.fround(0.9), 1, 1]);
  assert.ok(!isDecodeStep(step([{ ids: [5, 6], pos: 0, blocks: [1] }], 4)));
});

test("bf16 plans: decode-sized linears take the skinny-GEMM kernel, the lm_head and prefill linears cuBLASLt", () => {
  const model = MODELS[1].make(); // llama with biases, head dim 64
  const engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 8, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4 });
  model.close();
  const fake = new FakeCudaSession(engine, 8, 132, true);
  const linears = engine.plan.ops.map((op, i) => [op, i] as const).filter(([op]) => op.type === "linear");
  for (const [T, M] of [[1, 1], [2, 2], [3, 4], [8, 8], [9, 0]] as const) {
    const launches = planLaunches(fake.env, {
      numTokens: T,
      numSeqs: T,
      numRows: T,
      attention: { kind: "decode", numSplits: 2, splitSize: 128 },
      sample: true,
    });
    for (const [op, i] of linears) {
      if (op.type !== "linear") continue;
      const l = launches.find((x) => x.op === i)!;
      const isLogits = op.out === engine.plan.attributes.logits;
      if (M === 0 || isLogits) {
        assert.equal(l.kind, "gemm", `op ${i} T=${T}`);
        if (l.kind === "gemm") assert.equal(l.outDtype, isLogits ? "fp32" : "bf16");
        continue;
      }
      assert.ok(l.kind === "kernel" && l.kernel === `gemv_bf16_m${M}`, `op ${i} T=${T}: ${l.kind === "kernel" ? l.kernel : "gemm"}`);
      checkSignature(l);
      const [x, w, bias, y, m, n, k] = l.args;
      assert.equal(x, fake.env.arena + BigInt(engine.plan.buffers[op.x].offset));
      assert.equal(y, fake.env.arena + BigInt(engine.plan.buffers[op.out].offset));
      assert.equal(w, fake.env.weight(op.weight));
      assert.equal(bias, op.bias ? fake.env.weight(op.bias) : 0n);
      assert.deepEqual([m, n, k], [T, op.outFeatures, op.inFeatures]);
      assert.deepEqual(l.grid, [Math.ceil(op.outFeatures / 8), 1, 1]);
    }
  }
});

test("batch-invariant bf16 plans: the skinny-GEMM kernel only for decode steps, every prefill linear on cuBLASLt", () => {
  const model = MODELS[1].make();
  const engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 8, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4 });
  model.close();
  const fake = new FakeCudaSession(engine, 8, 132, true);
  const env = { ...fake.env, batchInvariant: true };
  const linears = engine.plan.ops.map((op, i) => [op, i] as const).filter(([op]) => op.type === "linear" && op.out !== engine.plan.attributes.logits);
  // [tokens, seqs, expected kernel]: a 5-token prompt alone (prefill) takes cuBLASLt, as it does inside a batch.
  for (
    const [T, S, want] of [[1, 1, "gemv_bf16_m1"], [3, 3, "gemv_bf16_m4"], [8, 8, "gemv_bf16_m8"], [5, 1, "gemm"], [8, 2, "gemm"], [9, 9, "gemm"]] as const
  ) {
    const attention = T === S ? { kind: "decode" as const, numSplits: 2, splitSize: 128 } : { kind: "prefill" as const };
    const launches = planLaunches(env, { numTokens: T, numSeqs: S, numRows: S, attention, sample: true });
    for (const [, i] of linears) {
      const l = launches.find((x) => x.op === i)!;
      assert.equal(l.kind === "gemm" ? "gemm" : l.kernel, want, `op ${i} T=${T} S=${S}`);
      // Decode steps beyond the skinny-GEMM kernel keep the per-M heuristic; prefill pins the algorithm.
      if (l.kind === "gemm") assert.equal(l.invariant, T !== S, `op ${i} T=${T} S=${S}: invariant`);
    }
    const lmHead = launches.find((x) => x.kind === "gemm" && x.outDtype === "fp32");
    assert.ok(lmHead && lmHead.kind === "gemm" && lmHead.invariant, `lm_head T=${T} S=${S}: pinned algorithm`);
    // Without the option, a 5-token prefill takes the skinny-GEMM kernel (8 rows or fewer).
    if (T === 5) {
      const plain = planLaunches(fake.env, { numTokens: T, numSeqs: S, numRows: S, attention, sample: true });
      assert.equal((plain.find((x) => x.op === linears[0][1]) as { kernel?: string }).kernel, "gemv_bf16_m8");
    }
  }
});
