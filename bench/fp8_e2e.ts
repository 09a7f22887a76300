/**
 * FP8 CUDA engines end to end (issue 14), beside the bf16 engine of the same checkpoint in the same run:
 * batch-1 decode tokens/s and its share of the bandwidth the engine's bytes allow (the weights each
 * step reads ÷ the copy ceiling of bench/copy_bandwidth.ts measured here), time to first token of a long prompt (one prefill
 * step plus sampling, best of 3 after a warm-up), and the prefill / decode-step logits against the
 * bf16 engine (the CPU-emulation comparison runs on kjv-llama in tests/gpu/fp8_cuda.test.ts).
 *
 *   bun bench/fp8_e2e.ts --model DIR [--algos FP8,FP8_PER_CHANNEL_PER_TOKEN] [--decode 128] [--ttft 2048] [--calib 8]
 *       [--packed DIR,DIR] [--variants default,pdl,fast,all] [--profile] [--profile-decode] [--skip-bf16]
 *
 * --profile: the long prompt's prefill step once more, launch by launch (Session.cuda.profileEagerStep), top kernels.
 * --profile-decode: after the timed steps, one more decode step's graph replay time and its launches one by one
 * (Session.cuda.profileDecodeStep), summed by kernel.
 * --skip-bf16: no bf16 engine (its build and run); the "vs bf16" columns are left empty.
 *
 * --packed: pre-quantized FP8 checkpoints of the same model (tools/quant-packers/pack_fp8_torch.py) loaded as they
 * are, instead of (--algos none) or besides quantize() in TypeScript (minutes for an 8B model).
 * --variants default,pdl,fast: each packed engine runs once per variant of the session options (pdl: fp8Pdl;
 * fast: fp8FastAccum + fp8FusedQuant + fp8InvariantBuckets; gemv1: fp8Gemv1; gemv16: fp8Gemv1 off (the 16-row GEMV);
 * all: fast and gemv1; attn: fp8DecodeAttention, the fused decode attention over the quantized KV cache; attnflash: attn and
 * fp8FlashPrefill, the bf16 flash prefill kernels over a dequantized shadow layer; sk: fp8DecodeSk, the split-K tensor-core
 * decode attention over the e4m3 cache; shadow: fp8ShadowRope, prefill KV writes fill the shadow layer, kv_dequant only the
 * rest; s10: sk + shadow; s11: session 11's same-bytes prefill switches fp8GemmResidual, fp8FreshPrompt, fp8FlatQuant,
 * fp8AttnQuant, fp8PruneLastLayer; s11fast: s11 + fp8FastSilu; row / rownorm / rowall: fp8GemvRow / fp8GemvRowNorm / both;
 * small / nosmall: fp8DecodeSkSmall on / off; smallrow: small + row),
 * one row each (a name may repeat: default,rowall,default,rowall alternates them in one process).
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import type { LlamaForCausalLM } from "../lib/models/llama.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { openModel } from "../lib/quantization/prequantized.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { Session } from "../lib/runtime/session.ts";
import type { SessionOptions } from "../lib/runtime/session_options.ts";
import type { CudaKvCache } from "../lib/backends/cuda/session.ts";
import { argmax, type DecodeRun, deviceWeightBytes, greedyStepper, launchTotals, prefillAndDecode, relL2 } from "./batch1.ts";
import { copyCeiling } from "./copy_bandwidth.ts";
import { CudaDevice } from "../lib/cuda/device.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string" },
    algos: { type: "string" },
    decode: { type: "string" },
    ttft: { type: "string" },
    calib: { type: "string" },
    packed: { type: "string" },
    variants: { type: "string" },
    profile: { type: "boolean" },
    "profile-decode": { type: "boolean" },
    "skip-bf16": { type: "boolean" },
  },
});
if (!values.model) throw new Error("usage: bun bench/fp8_e2e.ts --model DIR [--algos FP8,FP8_PER_CHANNEL_PER_TOKEN] [--decode 128] [--ttft 2048] [--calib 8]");
const algos = (values.algos === "none" ? [] : (values.algos ?? "FP8,FP8_PER_CHANNEL_PER_TOKEN").split(",")) as ("FP8" | "FP8_PER_CHANNEL_PER_TOKEN")[];
const packed = values.packed ? values.packed.split(",") : [];
const VARIANTS: Record<string, SessionOptions> = {
  default: {},
  pdl: { fp8Pdl: true },
  fast: { fp8FastAccum: true, fp8FusedQuant: true, fp8InvariantBuckets: true },
  gemv1: { fp8Gemv1: true },
  gemv16: { fp8Gemv1: false },
  all: { fp8Gemv1: true, fp8FastAccum: true, fp8FusedQuant: true, fp8InvariantBuckets: true },
  attn: { fp8DecodeAttention: true },
  attnflash: { fp8DecodeAttention: true, fp8FlashPrefill: true },
  sk: { fp8DecodeSk: true },
  shadow: { fp8ShadowRope: true },
  s10: { fp8DecodeSk: true, fp8ShadowRope: true },
  s11: { fp8GemmResidual: true, fp8FreshPrompt: true, fp8FlatQuant: true, fp8AttnQuant: true, fp8PruneLastLayer: true },
  // Session 16: one-token FP8 GEMVs of <= 4096 in-features on fp8_gemvr (one row a warp, short-lived blocks): o_proj
  // (row), qkv with its RMSNorm prologue (rownorm), both (rowall).
  row: { fp8GemvRow: true },
  rownorm: { fp8GemvRowNorm: true },
  rowall: { fp8GemvRow: true, fp8GemvRowNorm: true },
  // Session 16: decode_attention_sk_fp8kv splits of at least 64 keys (fp8DecodeSkSmall); with o_proj on fp8_gemvr.
  small: { fp8DecodeSkSmall: true },
  nosmall: { fp8DecodeSkSmall: false }, // session 15's default attention splits (fp8DecodeSkSmall is on since session 16)
  smallrow: { fp8DecodeSkSmall: true, fp8GemvRow: true },
  s11fast: {
    fp8GemmResidual: true,
    fp8FreshPrompt: true,
    fp8FlatQuant: true,
    fp8AttnQuant: true,
    fp8PruneLastLayer: true,
    fp8FastSilu: true,
  },
};
const variants = (values.variants ?? "default").split(",");
for (const v of variants) if (!VARIANTS[v]) throw new Error(`--variants: ${v} is not one of ${Object.keys(VARIANTS).join(", ")}`);
const numDecode = Number(values.decode ?? 128);
const TTFT = Number(values.ttft ?? 2048);
const calibTokens = Number(values.calib ?? 8);
const PROMPT = 128, BS = 32;
const maxSeqLen = Math.ceil((Math.max(TTFT, PROMPT + numDecode + 16) + 1) / BS) * BS;

function build(model: LlamaForCausalLM): Engine {
  return buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 1, maxNumTokens: Math.max(TTFT, PROMPT), maxSeqLen, tokensPerBlock: BS });
}

interface RunResult extends DecodeRun {
  readonly ttftMs: number;
  /** --profile: the long prompt's prefill launches one by one (events), summed by kernel, and their total. */
  readonly prefillProfile?: string;
  /** --profile-decode: a decode step's graph time and its launches one by one, summed by kernel. */
  readonly decodeProfile?: string;
}

function run(engine: Engine, prompt: number[], long: number[], options: SessionOptions = {}): RunResult {
  using session = Session.fromSerializedEngine(engine, { ...options, backend: "cuda" });
  const kv = session.createKvCache(maxSeqLen / BS + 1);
  const step = greedyStepper(Int32Array.from({ length: maxSeqLen / BS }, (_, i) => i));
  const sampled = new Int32Array(1);
  // Time to first token: the long prompt's prefill and its sampled id back on the host (warm-up, then best of 3).
  let ttftMs = Infinity;
  for (let r = 0; r < 4; r++) {
    const t0 = performance.now();
    session.run(step(long, 0), { sampledIds: sampled }, kv);
    if (r > 0) ttftMs = Math.min(ttftMs, performance.now() - t0);
  }
  let prefillProfile: string | undefined;
  if (values.profile) {
    const p = session.cuda!.profileEagerStep(step(long, 0), kv as CudaKvCache);
    const sum = p.launches.reduce((a, l) => a + l.ms, 0);
    const top = [...launchTotals(p.launches)].sort((a, b) => b[1].ms - a[1].ms).slice(0, 10);
    prefillProfile = `${TTFT}-token prefill, ${p.launches.length} launches, ${sum.toFixed(2)} ms eager: ${
      top.map(([n, e]) => `${n} ×${e.n} ${e.ms.toFixed(2)}`).join(", ")
    }`;
  }
  const r = prefillAndDecode(session, kv, step, engine.plan.attributes.vocabSize, prompt, numDecode);
  let decodeProfile: string | undefined;
  if (values["profile-decode"]) {
    const p = session.cuda!.profileDecodeStep(step([r.ids[r.ids.length - 1]], PROMPT + 9 + numDecode), kv as CudaKvCache, 20);
    const sum = p.launches.reduce((a, l) => a + l.ms, 0);
    const top = [...launchTotals(p.launches)].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12);
    decodeProfile = `decode step at ${PROMPT + 9 + numDecode}: graph ${p.graphMs.toFixed(3)} ms; ${p.launches.length} launches one by one ${
      sum.toFixed(3)
    } ms: ${top.map(([n, e]) => `${n} ×${e.n} ${(e.ms * 1e3).toFixed(0)} µs`).join(", ")}`;
  }
  kv.dispose();
  return { ...r, ttftMs, prefillProfile, decodeProfile };
}

const base = AutoModelForCausalLM.fromHuggingFace(values.model, { dtype: "bfloat16" });
const vocab = Math.min(4000, base.config.vocabSize);
const prompt = Array.from({ length: PROMPT }, (_, i) => (i * 101 + 7) % vocab);
const long = Array.from({ length: TTFT }, (_, i) => (i * 37 + 3) % vocab);
const bf16 = values["skip-bf16"] ? null : build(base);
let copyBps: number;
{
  using dev = CudaDevice.open(0);
  copyBps = copyCeiling(dev).bps;
}
const ref: RunResult | null = bf16 ? run(bf16, prompt, long) : null;
console.log(
  `copy ceiling (bench/copy_bandwidth.ts) ${
    (copyBps / 1e12).toFixed(3)
  } TB/s; batch 1, prompt ${PROMPT}, ${numDecode} timed decode steps (graphs); TTFT: ${TTFT}-token prompt`,
);
console.log("| engine | weight GB read per step | decode tok/s | ms/step | % of bytes-allowed bandwidth | vs bf16 | TTFT ms | accuracy |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
/** One table row, printed as soon as it is measured. */
const line = (name: string, e: Engine, r: RunResult, extra: string): void => {
  const bytes = deviceWeightBytes(e);
  console.log(
    `| ${name} | ${(bytes / 1e9).toFixed(3)} | ${r.tokS.toFixed(1)} | ${r.stepMs.toFixed(3)} | ${(100 * r.tokS / (copyBps / bytes)).toFixed(1)}% | ${
      ref ? `${(r.tokS / ref.tokS).toFixed(2)}×` : "—"
    } | ${r.ttftMs.toFixed(2)} | ${extra} |`,
  );
  if (r.decodeProfile) console.log(`  ${name}: ${r.decodeProfile}`);
};
/** The comparison with the bf16 engine's logits ("" without it). */
const vsBf16 = (r: RunResult): string =>
  ref
    ? `vs bf16: prefill logits rel L2 ${relL2(r.logits, ref.logits).toExponential(2)} argmax ${
      argmax(r.logits) === argmax(ref.logits) ? "same" : "differs"
    }, decode-step rel L2 ${relL2(r.decodeLogits, ref.decodeLogits).toExponential(2)} argmax ${
      argmax(r.decodeLogits) === argmax(ref.decodeLogits) ? "same" : "differs"
    }; `
    : "";
if (bf16 && ref) {
  line("bf16", bf16, ref, "—");
  if (ref.prefillProfile) console.log(`  bf16: ${ref.prefillProfile}`);
  bf16.dispose();
}
for (const algo of algos) {
  const t0 = performance.now();
  const q = quantizeSync(base, { quantAlgo: algo }, { calibration: [long.slice(0, calibTokens)], maxCalibrationTokens: calibTokens });
  const qs = ((performance.now() - t0) / 1000).toFixed(1);
  const qe = build(q);
  const r = run(qe, prompt, long);
  line(
    algo === "FP8" ? "FP8 (per-tensor, static activations)" : "FP8_PER_CHANNEL_PER_TOKEN",
    qe,
    r,
    `${vsBf16(r)}quantize ${qs} s (${calibTokens} calibration tokens)`,
  );
  qe.dispose();
}
for (const dir of packed) {
  const t0 = performance.now();
  const q = openModel(dir, { dtype: "bfloat16" });
  const qe = build(q);
  const loadS = ((performance.now() - t0) / 1000).toFixed(1);
  const qc = qe.config.quant;
  let first: RunResult | null = null;
  for (const v of variants) {
    const r = run(qe, prompt, long, VARIANTS[v]);
    const same = (a: Float32Array, b: Float32Array): string => a.every((x, i) => Object.is(x, b[i])) ? "identical" : `rel L2 ${relL2(a, b).toExponential(2)}`;
    let common = 0;
    while (first && common < r.ids.length && r.ids[common] === first.ids[common]) common++;
    const vsFirst = first
      ? `; vs [${variants[0]}]: prefill ${same(r.logits, first.logits)}, decode ${
        same(r.decodeLogits, first.decodeLogits)
      }, greedy ids equal for ${common} of ${r.ids.length} steps`
      : "";
    first ??= r;
    line(
      `${dir.split("/").pop()} (${qc?.quantAlgo}${qc?.kvCacheQuantAlgo ? ` + ${qc.kvCacheQuantAlgo} KV` : ""})${v === "default" ? "" : ` [${v}]`}`,
      qe,
      r,
      `${vsBf16(r)}open + build ${loadS} s${vsFirst}`,
    );
    if (r.prefillProfile) console.log(`  ${dir.split("/").pop()} [${v}]: ${r.prefillProfile}`);
  }
  qe.dispose();
}
