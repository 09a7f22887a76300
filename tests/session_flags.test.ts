// The CUDA session's switches (lib/backends/cuda/session_flags.ts CUDA_FLAGS): one table gives the session options
// schema its fields, the environment variables their meaning, and CudaSession / the tensor-parallel ranks their
// list. Checked without a GPU.
import { CUDA_FLAG_NAMES, CUDA_FLAGS, pickCudaFlags, resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { parseSessionOptions } from "../lib/runtime/session_options.ts";
import { assert, test } from "./harness.ts";

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};

/** Runs `fn` with every switch's environment variable unset, then `set` applied; restores them after. */
function withEnv(set: Record<string, string>, fn: () => void): void {
  const saved = Object.fromEntries(CUDA_FLAG_NAMES.map((k) => [CUDA_FLAGS[k].env, env[CUDA_FLAGS[k].env]]));
  try {
    for (const v of Object.keys(saved)) delete env[v];
    Object.assign(env, set);
    fn();
  } finally {
    for (const [v, x] of Object.entries(saved)) {
      if (x === undefined) delete env[v];
      else env[v] = x;
    }
  }
}

test("session options: every switch of the table resolves to its default when neither given nor in the environment", () => {
  withEnv({}, () => {
    const o = parseSessionOptions({});
    assert.equal(o.backend, "cpu");
    assert.equal(o.device, 0);
    for (const k of CUDA_FLAG_NAMES) assert.equal(o[k], CUDA_FLAGS[k].default === "engine" ? undefined : CUDA_FLAGS[k].default, k);
    // Defaults measured on an H200 (bench/RESULTS.md): batch2 and the split-row GEMVs on (session 8); split-K decode,
    // the fused quantized-KV decode attention, flash prefill over a quantized cache and the weight-only tail norm on
    // (session 9); graph splits off.
    assert.equal(o.batchAttention2, true);
    assert.equal(o.gemvSplitK, true);
    assert.equal(o.decodeSplitK, true);
    assert.equal(o.fp8DecodeAttention, true);
    assert.equal(o.fp8FlashPrefill, true);
    assert.equal(o.quantTailNorm, true);
    assert.equal(o.graphSplits, false);
    assert.equal(o.wgmmaPrefill, undefined, "wgmmaPrefill: the CUDA session decides per engine (head dims 64 and 128)");
    assert.equal(o.pruneLastLayer, true);
    // Session 10: the residual add in the o_proj / down GEMM epilogue and the wider GEMM tuning (same logits bits, H200).
    assert.equal(o.gemmResidual, true);
    assert.equal(o.gemmTuneWide, true);
    // Session 10: NVFP4 on the int8 tensor cores, batch2w for steps of >= 128 sequences, the FP8-KV split-K decode
    // attention and the shadow-writing RoPE on; the slower alternatives off.
    assert.equal(o.nvfp4Mma, true);
    assert.equal(o.batchAttention2Wide, true);
    assert.equal(o.fp8DecodeSk, true);
    assert.equal(o.fp8ShadowRope, true);
    // Session 11: the transposed batched decode attention, x loaded with the weights in the decode GEMVs, the tuned
    // lm_head of > 8-sequence steps and the FP8 prefill set on.
    for (const k of ["batchAttention4", "gemvXPre", "decodeLogitsTuned", "fp8GemmResidual", "fp8FreshPrompt", "fp8FlatQuant"] as const) {
      assert.equal(o[k], true, k);
    }
    for (const k of ["fp8AttnQuant", "fp8PruneLastLayer", "fp8FastSilu"] as const) assert.equal(o[k], true, k);
    // Session 14: prefillPdl on (the 8B's TTFT no slower in two same-job A/Bs, the 1B's 1-2% faster), then off again
    // (the closing GPU suite's batch4 "graphs = eager" failures with it on; session_flags.ts); session 15: on again (the
    // 3-process GPU suite passed with it on and off, the prefill KV bitwise alike).
    assert.equal(o.prefillPdl, true);
    // Session 14: the launch-list cache on (1B TTFT 128 -20%, 2048 -2.5%, same bits).
    assert.equal(o.prefillPlanCache, true);
    // Session 12: faster in same-job A/Bs on the H200 (FP8 512x +3.4%, NVFP4 8B +8% / +1.5%, int4 8B +3.9%): on.
    for (const k of ["quantGemvFast", "nvfp4GemvK32", "nvfp4NormFast", "fp8DecodeAttnQuant", "prefillTileScan"] as const) {
      assert.equal(o[k], true, k);
    }
    // Session 15: eager decode steps on their graph bucket's GEMM algorithms (graphs = eager bitwise, forced picks): on.
    assert.equal(o.eagerBucketGemm, true, "eagerBucketGemm");
    // Session 16: spans up to 256 keys in one decode_attention_sk split (1B batch 1 +6%, 8B +1.4%; bf16 KV only): on.
    assert.equal(o.decodeSkOneSplit, true, "decodeSkOneSplit");
    // Session 16: prefill graphs: off until an A/B on the device says otherwise.
    assert.equal(o.prefillGraphs, false, "prefillGraphs");
    // Session 16: the FP8-KV split-K decode attention's splits of >= 64 keys on (8B FP8 batch 1 +2.6% in one process);
    // fp8_gemvr (fp8GemvRow / fp8GemvRowNorm) off (qkv slower, o_proj within the noise).
    assert.equal(o.fp8DecodeSkSmall, true, "fp8DecodeSkSmall");
    assert.equal(o.fp8GemvRow, false, "fp8GemvRow");
    assert.equal(o.fp8GemvRowNorm, false, "fp8GemvRowNorm");
    // Session 19: quant_gemv_fastx pairs for u4 tailNorm (8B W4A16_AWQ batch 1 +3.4%, 1B +1.0%, logits bitwise equal): on.
    assert.equal(o.quantGemvPairX, true, "quantGemvPairX");
    // Session 19: the step staged by kernels from pinned host memory (1B batch 1 overlapped 811.0 -> 802.1 us a step, ids
    // identical) and PDL for the norms / SiLU-mul / sampler of > 8-sequence decode steps (1B 64-row graph -0.6%): on.
    assert.equal(o.zeroCopyStaging, true, "zeroCopyStaging");
    assert.equal(o.batchDecodePdl, true, "batchDecodePdl");
    // Session 19: batch4 steps on decode_attention_batch4x (the same bits; 8B FP8 512x +0.55%, 1B 64x +1.6% in one job): on.
    assert.equal(o.batchAttention4X, true, "batchAttention4X");
  });
});

test("session options: an environment variable flips its switch ('0' off, '1' on), a given option wins over it", () => {
  withEnv(
    { LLMRT_PDL: "0", LLMRT_DECODE_SK: "0", LLMRT_GRAPH_SPLITS: "1", LLMRT_BATCH_ATTENTION2: "0", LLMRT_GEMV_KS: "yes", LLMRT_WGMMA_PREFILL: "0" },
    () => {
      const o = parseSessionOptions({});
      assert.equal(o.wgmmaPrefill, false, "an engine-decided switch can be forced off");
      assert.equal(o.pdl, false);
      assert.equal(o.decodeSplitK, false);
      assert.equal(o.graphSplits, true);
      assert.equal(o.batchAttention2, false);
      assert.equal(o.gemvSplitK, true, "a value other than 0 / 1 leaves the default");
      assert.equal(parseSessionOptions({ pdl: true, decodeSplitK: true }).pdl, true);
      assert.equal(parseSessionOptions({ pdl: true, decodeSplitK: true }).decodeSplitK, true);
    },
  );
});

test("session options: unknown keys and non-boolean switches are refused with the field and value named", () => {
  assert.throws(() => parseSessionOptions({ cudaGraph: true } as never), /cudaGraph/);
  assert.throws(() => parseSessionOptions({ pdl: "yes" } as never), /pdl/);
  assert.throws(() => parseSessionOptions({ backend: "tpu" } as never), /backend/);
  // Session 11 removed these switches (measured slower than the defaults, bench/RESULTS.md): now unknown keys.
  for (const gone of ["batchAttention3", "batchGemm", "batchGemmPdl", "gemvDeepLoads", "sampleSplit", "quantGemv1", "fp8GemvSmem", "persistentDecode"]) {
    assert.throws(() => parseSessionOptions({ [gone]: true } as never), new RegExp(gone));
  }
  // Session 13 removed these (measured no faster or slower than the defaults in session 12, bench/RESULTS.md): unknown keys too.
  for (
    const gone of ["decodeArgmax", "quantGemvWide", "quantGemvNarrow", "nvfp4K32Norm", "nvfp4K32Silu", "nvfp4K32Deep", "decodeNormFold", "batchAttention4Deep"]
  ) {
    assert.throws(() => parseSessionOptions({ [gone]: true } as never), new RegExp(gone));
  }
  // Session 14 removed these (added in session 14 and measured no faster — batchAttention4Occupancy — or slower —
  // prefillRopeQ, RoPE of q in flash_prefill_wg's Q load — on the H200, bench/RESULTS.md "Session 14"): unknown keys too.
  for (const gone of ["batchAttention4Occupancy", "prefillRopeQ"]) {
    assert.throws(() => parseSessionOptions({ [gone]: true } as never), new RegExp(gone));
  }
  // Session 15 removed nvfp4K32X (its lean k32 GEMV loop the default since session 14, the old loop with it),
  // batchAttention4Serial (session 13's batch4 with a block's splits in turn: 0.991x in session 14) and nvfp4AttnAct
  // (decode_attention_sk writing o_proj's NVFP4 codes: no faster on the H200, 8B batch 1): unknown keys too.
  // Session 19 removed gemvNorm6 (qkv at 6 blocks an SM: −0.3 to −0.45% on the 8B graph in session 16, the size of an
  // A/A difference, no tokens/s gain): an unknown key too.
  for (const gone of ["nvfp4K32X", "batchAttention4Serial", "nvfp4AttnAct", "gemvNorm6"]) {
    assert.throws(() => parseSessionOptions({ [gone]: true } as never), new RegExp(gone));
  }
});

test("resolveCudaFlags / pickCudaFlags: the table's defaults without the environment; just the switches picked", () => {
  withEnv({ LLMRT_PDL: "0" }, () => {
    assert.equal(resolveCudaFlags({}).pdl, true, "CudaSession itself does not read the environment");
  });
  const all = resolveCudaFlags({ gemv: false });
  assert.equal(all.gemv, false);
  assert.ok(Object.isFrozen(all));
  const picked = pickCudaFlags({ ...all, backend: "cuda", device: 3 } as never);
  assert.deepEqual(Object.keys(picked).sort(), [...CUDA_FLAG_NAMES].sort());
  for (const f of Object.values(CUDA_FLAGS)) assert.match(f.env, /^LLMRT_[A-Z0-9_]+$/);
  assert.equal(new Set(Object.values(CUDA_FLAGS).map((f) => f.env)).size, CUDA_FLAG_NAMES.length, "one variable per switch");
});
