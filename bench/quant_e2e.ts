/**
 * Weight-only quantized CUDA engines end to end (issue 12), beside the bf16 engine of the same
 * checkpoint in the same run: batch-1 decode tokens/s and its share of the bandwidth the engine's
 * bytes allow (the weights each step reads ÷ the copy ceiling of bench/copy_bandwidth.ts measured here), and the
 * last-position logits of each quantized engine against a bf16 engine built from its own
 * dequantized weights (the kernels' error, apart from the quantization's), plus the argmax.
 *
 * Each row prints as soon as it is measured (the speed row before the reference engine is built, so a
 * run cut short on llama-3.1-8b still has its tokens/s); `--no-ref` skips the dequantized reference engine (a second
 * build: minutes on llama-3.1-8b); the GEMM-path comparison (see run) costs one extra prefill.
 *
 *   bun bench/quant_e2e.ts --model DIR [--algos W4A16,W8A16] [--group-size 128] [--decode 128] [--no-ref]
 *       [--prequantized DIR,DIR] [--quant-pdl] [--ab quantPdl] [--set quantPdl=1] [--profile-decode]
 *
 * --prequantized: engines of pre-quantized checkpoints of the same model (AWQ / GPTQ layouts, e.g. written by
 * tools/quant-packers/pack_awq_torch.py) beside the --algos ones (`--algos ""`: none), each with its load time.
 * --quant-pdl: each quantized engine runs off, on, off, on with SessionOptions.quantPdl (programmatic dependent
 * launch of the quantized GEMVs): the ids and logits must be the same bits, and the rows give both speeds.
 * --ab KEY: the same off/on/off/on comparison for CUDA session flag KEY (e.g. quantPdl, quantTailNorm; --ab-reps 1: off/on;
 * --ab-on-first: on/off/...); each run's tokens/s prints as it is measured; --set fixes session
 * options for every run (KEY=1 / KEY=0).
 * --profile-decode: after each engine's timed steps, one more decode step's graph replay time and its launches one by
 * one (Session.cuda.profileDecodeStep): summed by kernel, and the linears' launches summed by layer role (qkv, o,
 * gate_up, down, lm_head) with the weight bytes they read as a share of the copy ceiling.
 * --marginals: with --profile-decode, each part's cost inside the step's graph (Session.cuda.timeDecodeLaunches): the graph
 * replay of the whole step minus that of the step without the part's launches, and the part's launches alone in a graph
 * (parts: a linear role, act quantization included, else the kernel; the steps missing launches compute garbage).
 * --ab defines --ab-defines "FILE:-DNAME=V,-DNAME2=V2;FILE2:...": the off/on comparison of harness -D options for those
 * kernel files (compile_pool.ts setHarnessDefines; the "on" sessions compile them) instead of a session flag.
 * --ab-then KEY2[,KEY3...]: after the --ab runs, one more per key with KEY and the keys up to it on (tok/s and logits vs the on run's).
 * --skip-bf16: no bf16 engine (its build and run; the copy ceiling from a bare device); the "vs bf16" columns are left empty.
 * --synthetic-lm-head: with --synthetic-nvfp4, a second NVFP4 engine whose lm_head is NVFP4 too (untied models; random codes).
 * --synthetic-w4 / --synthetic-w8: weight-only engines of random codes in the layouts the pre-quantized checkpoints load
 * into (W4A16_AWQ: u4, --group-size scales + zero points, as openModel of a pack_awq_torch.py checkpoint gives; W8A16:
 * u8 per channel, symmetric), built in seconds (no packing, no TypeScript quantization): the same kernels and bytes as a
 * real checkpoint, for speed rows only (their logits mean nothing).
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import { LlamaForCausalLM, type WeightSource } from "../lib/models/llama.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { dequantize } from "../lib/quantization/packed.ts";
import { openModel, readHfQuantizationConfig } from "../lib/quantization/prequantized.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { OverlayWeightSource, QuantizedModel } from "../lib/quantization/quantized_model.ts";
import { QuantConfig } from "../lib/quantization/quant_config.ts";
import type { QuantizedTensor } from "../lib/quantization/packed.ts";
import { nvfp4GlobalScale } from "../lib/util/e2m1.ts";
import { E4M3_DECODE } from "../lib/util/e4m3.ts";
import { Session } from "../lib/runtime/session.ts";
import { CUDA_FLAG_NAMES } from "../lib/backends/cuda/session_flags.ts";
import { argmax, type DecodeRun, deviceWeightBytes, greedyStepper, launchTotals, prefillAndDecode, relL2 } from "./batch1.ts";
import type { CudaKvCache } from "../lib/backends/cuda/session.ts";
import type { Launch } from "../lib/backends/cuda/launch_plan.ts";
import { copyCeiling } from "./copy_bandwidth.ts";
import { setHarnessDefines } from "../lib/backends/cuda/compile_pool.ts";
import { CudaDevice } from "../lib/cuda/device.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string" },
    algos: { type: "string" },
    "group-size": { type: "string" },
    decode: { type: "string" },
    "cpu-dry-run": { type: "boolean" },
    "no-ref": { type: "boolean" },
    prequantized: { type: "string" },
    "quant-pdl": { type: "boolean" },
    ab: { type: "string" },
    "ab-reps": { type: "string" },
    "ab-on-first": { type: "boolean" },
    set: { type: "string" },
    "calib-tokens": { type: "string" },
    "synthetic-nvfp4": { type: "boolean" },
    "synthetic-lm-head": { type: "boolean" },
    "synthetic-w4": { type: "boolean" },
    "synthetic-w8": { type: "boolean" },
    "skip-bf16": { type: "boolean" },
    "ab-then": { type: "string" },
    "ab-defines": { type: "string" },
    "profile-decode": { type: "boolean" },
    marginals: { type: "boolean" },
  },
});
if (!values.model) throw new Error("usage: bun bench/quant_e2e.ts --model DIR [--algos W4A16,W8A16] [--group-size 128] [--decode 128]");
const modelDir = values.model;
const algos = (values.algos ?? "W4A16,W8A16").split(",").filter((a) => a !== "");
const groupSize = Number(values["group-size"] ?? 128);
const numDecode = Number(values.decode ?? 128);
// --cpu-dry-run: the same script on the CPU backend in float32 (checks the script, not the GPU).
const backend = values["cpu-dry-run"] ? "cpu" : "cuda";
const PROMPT = 128, BS = 32;
const maxSeqLen = Math.ceil((PROMPT + numDecode + 32) / BS) * BS;
let prompt: number[] = [];

/** Dequantized weights of a quantized model as a plain float source (the bf16 reference forward). */
class DequantizedSource implements WeightSource {
  constructor(readonly q: QuantizedModel) {}
  has(name: string): boolean {
    return this.q.weights.has(name);
  }
  readFloat32(name: string): Float32Array {
    const t = this.q.quantizedTensor(name);
    return t ? Float32Array.from(dequantize(t)) : this.q.weights.readFloat32(name);
  }
  info(name: string): { readonly shape: readonly number[]; readonly dtype?: string } {
    const t = this.q.quantizedTensor(name);
    return t ? { shape: [t.rows, t.cols], dtype: "F32" } : this.q.weights.info(name);
  }
  close(): void {}
}

function build(model: LlamaForCausalLM): Engine {
  return buildSync(model, {
    backend,
    dtype: backend === "cuda" ? "bfloat16" : "float32",
    maxBatchSize: 1,
    maxNumTokens: PROMPT,
    maxSeqLen,
    tokensPerBlock: BS,
  });
}

/**
 * prefillAndDecode, plus `gemmLogits`: the first decode step's logits recomputed by the multi-row path
 * (prompt[0, 120) then a 9-row step prompt[120, 128) + prompt[5], whose linears run cuBLASLt GEMMs: on a
 * quantized engine over the weights dequantized to bf16, i.e. the dequantized forward; on the bf16 engine
 * the same GEMMs, the floor of the decode-vs-GEMM-path difference).
 */
/** Session options of every run (--set). */
const fixed: Record<string, boolean> = Object.fromEntries(
  (values.set ?? "").split(",").filter((kv) => kv !== "").map((kv) => [kv.split("=")[0], kv.split("=")[1] === "1"]),
);
const abKey = values.ab ?? (values["quant-pdl"] ? "quantPdl" : undefined);
// --ab defines: the "on" runs' sessions compile the kernel files of --ab-defines with its -D options.
const abDefines: ReadonlyMap<string, readonly string[]> = new Map(
  (values["ab-defines"] ?? "").split(";").filter((f) => f.includes(":")).map((f) => [f.split(":")[0], f.split(":")[1].split(",").filter((d) => d !== "")]),
);
if (abKey === "defines" && abDefines.size === 0) throw new Error(`--ab defines needs --ab-defines "FILE:-DNAME=V,..."`);
if (abKey !== undefined && abKey !== "defines" && !(CUDA_FLAG_NAMES as readonly string[]).includes(abKey)) {
  throw new Error(`--ab: a CUDA session flag (${CUDA_FLAG_NAMES.join(", ")}), got ${abKey}`);
}

// --ab-then KEY2[,KEY3...]: one more run per key, each adding it to KEY and the keys before it.
const thenKeys = (values["ab-then"] ?? "").split(",").filter((k) => k !== "");
if (thenKeys.some((k) => !abKey || !(CUDA_FLAG_NAMES as readonly string[]).includes(k))) throw new Error(`--ab-then: CUDA session flags with --ab`);

function run(engine: Engine, ab?: boolean, then = 0): DecodeRun & { gemmLogits: Float32Array } {
  const thenOpts = Object.fromEntries(thenKeys.slice(0, then).map((k) => [k, true]));
  const opts = backend === "cpu" ? {} : { ...fixed, ...(ab === undefined || !abKey || abKey === "defines" ? {} : { [abKey]: ab }), ...thenOpts };
  if (abKey === "defines") setHarnessDefines(ab ? abDefines : new Map());
  const t0 = performance.now();
  using session = Session.fromSerializedEngine(engine, { backend, ...opts });
  if (values["profile-decode"]) console.log(`  session (upload, kernels) ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const kv = session.createKvCache(maxSeqLen / BS + 1);
  const step = greedyStepper(Int32Array.from({ length: maxSeqLen / BS }, (_, i) => i));
  const vocab = engine.plan.attributes.vocabSize;
  const r = prefillAndDecode(session, kv, step, vocab, prompt, numDecode);
  if (values["profile-decode"] && backend === "cuda") {
    console.log(profileDecode(engine, session, kv as CudaKvCache, step([r.ids[r.ids.length - 1]], PROMPT + 9 + numDecode)));
  }
  kv.dispose();
  const kv2 = session.createKvCache(maxSeqLen / BS + 1);
  const gemmLogits = new Float32Array(vocab), sampledIds = new Int32Array(1);
  session.run(step(prompt.slice(0, 120), 0), { sampledIds }, kv2);
  session.run(step([...prompt.slice(120), prompt[5]], 120), { logits: gemmLogits, sampledIds }, kv2);
  kv2.dispose();
  return { ...r, gemmLogits };
}

/** The bytes a linear's weights take on the device (bf16, or uint8 codes + their scales). */
function linearBytes(engine: Engine, op: Extract<Engine["plan"]["ops"][number], { type: "linear" }>): number {
  const elems = (n: string): number => engine.tensorInfo(n).shape.reduce((a, b) => a * b, 1);
  const info = engine.tensorInfo(op.weight);
  const f = op.weightFormat;
  const scaleBytes = f?.scales ? elems(f.scales) * (engine.tensorInfo(f.scales).dtype === "float32" ? 4 : 1) : 0;
  return elems(op.weight) * (info.dtype === "uint8" ? 1 : 2) + scaleBytes;
}

/**
 * --profile-decode: a decode step's graph time, its launches one by one summed by kernel, and the launches of each
 * linear role (the op's weight name without its layer index) with the weight bytes they read vs the copy ceiling.
 */
function profileDecode(engine: Engine, session: Session, kv: CudaKvCache, inp: ReturnType<ReturnType<typeof greedyStepper>>): string {
  const p = session.cuda!.profileDecodeStep(inp, kv, 20);
  const sum = p.launches.reduce((a, l) => a + l.ms, 0);
  const top = [...launchTotals(p.launches)].sort((a, b) => b[1].ms - a[1].ms).slice(0, 14);
  const roles = new Map<string, { ms: number; n: number; bytes: number; kernels: Set<string> }>();
  const counted = new Set<number>();
  let other = 0;
  for (const l of p.launches) {
    const op = engine.plan.ops[l.op];
    if (op?.type !== "linear") {
      other += l.ms;
      continue;
    }
    const role = op.weight.replace(/^.*layers\.\d+\./, "").replace(/\.weight$/, "");
    const e = roles.get(role) ?? { ms: 0, n: 0, bytes: 0, kernels: new Set<string>() };
    e.ms += l.ms;
    e.kernels.add(l.name);
    if (!counted.has(l.op)) {
      counted.add(l.op);
      e.n++;
      e.bytes += linearBytes(engine, op);
    }
    roles.set(role, e);
  }
  const gbs = (bytes: number, ms: number): string => `${(bytes / ms / 1e6).toFixed(0)} GB/s = ${((100 * bytes * 1e3) / (ms * copyBps)).toFixed(1)}%`;
  const lines = [...roles].map(([role, e]) =>
    `    ${role} ×${e.n}: ${(e.ms * 1e3).toFixed(0)} µs (${(e.ms * 1e3 / e.n).toFixed(1)} µs each), ${(e.bytes / 1e6).toFixed(1)} MB → ${
      gbs(e.bytes, e.ms)
    } of copy [${[...e.kernels].join(", ")}]`
  );
  const linMs = [...roles.values()].reduce((a, e) => a + e.ms, 0), linBytes = [...roles.values()].reduce((a, e) => a + e.bytes, 0);
  if (values.marginals) lines.push(graphMarginals(engine, session, kv, inp, roles));
  return [
    `  decode step at ${PROMPT + 9 + numDecode}: graph ${p.graphMs.toFixed(3)} ms; ${p.launches.length} launches one by one ${sum.toFixed(3)} ms: ${
      top.map(([n, e]) => `${n} ×${e.n} ${(e.ms * 1e3).toFixed(0)} µs`).join(", ")
    }`,
    `  linears (launches of the linear ops, act quantization included): ${(linMs * 1e3).toFixed(0)} µs for ${(linBytes / 1e9).toFixed(3)} GB → ${
      gbs(linBytes, linMs)
    } of copy; everything else ${(other * 1e3).toFixed(0)} µs`,
    ...lines,
  ].join("\n");
}

/** --marginals: each part's marginal and alone cost in a captured graph of the decode step (µs). */
function graphMarginals(
  engine: Engine,
  session: Session,
  kv: CudaKvCache,
  inp: ReturnType<ReturnType<typeof greedyStepper>>,
  roles: Map<string, { bytes: number }>,
): string {
  const cuda = session.cuda!;
  const part = (l: Launch): string => {
    const op = engine.plan.ops[l.op];
    if (op?.type === "linear") return op.weight.replace(/^.*layers\.\d+\./, "").replace(/\.weight$/, "");
    return l.kind === "kernel" ? l.kernel : (op?.type ?? "gemm");
  };
  let parts: string[] = [];
  const all = cuda.timeDecodeLaunches(inp, kv, (ls) => {
    parts = [...new Set(ls.map(part))];
    return [...ls];
  }, 15);
  const out = [`  graph marginals (step ${(all * 1e3).toFixed(1)} µs): part ×launches: marginal µs / alone µs [alone % of copy]`];
  let sum = 0;
  for (const p of parts) {
    let n = 0;
    const without = cuda.timeDecodeLaunches(inp, kv, (ls) => {
      n = ls.filter((l) => part(l) === p).length;
      return ls.filter((l) => part(l) !== p);
    }, 15);
    const alone = cuda.timeDecodeLaunches(inp, kv, (ls) => ls.filter((l) => part(l) === p), 15);
    sum += all - without;
    const bytes = roles.get(p)?.bytes ?? 0;
    out.push(
      `    ${p} ×${n}: ${((all - without) * 1e3).toFixed(1)} / ${(alone * 1e3).toFixed(1)}${
        bytes > 0 ? ` [${((100 * bytes * 1e3) / (alone * copyBps)).toFixed(1)}%]` : ""
      }`,
    );
  }
  out.push(`    sum of marginals ${(sum * 1e3).toFixed(1)} µs of ${(all * 1e3).toFixed(1)}`);
  return out.join("\n");
}

function ceilingBandwidth(engine: Engine | null): number {
  if (backend === "cpu") return NaN;
  if (!engine) {
    using dev = CudaDevice.open(0);
    return copyCeiling(dev).bps;
  }
  using session = Session.fromSerializedEngine(engine, { backend: "cuda" });
  return copyCeiling(session.cuda!.device).bps;
}

const base = AutoModelForCausalLM.fromHuggingFace(modelDir, backend === "cuda" ? { dtype: "bfloat16" } : {});
prompt = Array.from({ length: PROMPT }, (_, i) => (i * 101 + 7) % Math.min(4000, base.config.vocabSize));
const bf16 = values["skip-bf16"] ? null : build(base);
const copyBps = ceilingBandwidth(bf16);
const ref = bf16 ? run(bf16) : null;
const header = (): void => {
  console.log(
    `copy ceiling (bench/copy_bandwidth.ts) ${
      (copyBps / 1e12).toFixed(3)
    } TB/s; batch 1, prompt ${PROMPT}, ${numDecode} timed decode steps (graphs); session options ${JSON.stringify(fixed)}${abKey ? `, ${abKey} off/on` : ""}`,
  );
  console.log("| engine | weight GB read per step | decode tok/s | ms/step | % of bytes-allowed bandwidth | vs bf16 | correctness |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
};
const line = (name: string, e: Engine, r: DecodeRun, extra: string): void => {
  const bytes = deviceWeightBytes(e);
  const ceiling = copyBps / bytes;
  console.log(
    `| ${name} | ${(bytes / 1e9).toFixed(3)} | ${r.tokS.toFixed(1)} | ${r.stepMs.toFixed(3)} | ${(100 * r.tokS / ceiling).toFixed(1)}% | ${
      ref ? `${(r.tokS / ref.tokS).toFixed(2)}×` : "—"
    } | ${extra} |`,
  );
};
header();
if (bf16 && ref) line("bf16", bf16, ref, "—");
bf16?.dispose();
/** Whether two float arrays hold the same bits. */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.length === ub.length && ua.every((x, i) => x === ub[i]);
}

/** Runs a quantized engine (off/on/off/on under --quant-pdl) and prints its rows; returns its run. */
function measure(name: string, qe: Engine, prep: string): DecodeRun & { gemmLogits: Float32Array } {
  let rq: DecodeRun & { gemmLogits: Float32Array };
  let pdlNote = "";
  if (abKey) {
    const reps = Number(values["ab-reps"] ?? 2);
    // Each run's speed prints as soon as it is measured (a job cut short keeps what it has).
    const timed = (on: boolean): DecodeRun & { gemmLogits: Float32Array } => {
      const r = run(qe, on);
      console.log(`${name}: ${abKey} ${on ? "on" : "off"} ${r.tokS.toFixed(1)} tok/s`);
      return r;
    };
    // --ab-on-first: on/off/on/off (the rows below keep off/on pairs).
    const runs = Array.from({ length: reps }, () => (values["ab-on-first"] ? [timed(true), timed(false)].reverse() : [timed(false), timed(true)])).flat();
    const off = runs.filter((_, i) => i % 2 === 0), on = runs.filter((_, i) => i % 2 === 1);
    const idsSame = runs.every((r) => r.ids.every((x, i) => x === runs[0].ids[i]));
    const bits = runs.every((r) => sameBits(r.decodeLogits, runs[0].decodeLogits) && sameBits(r.logits, runs[0].logits));
    const tOff = Math.max(...off.map((r) => r.tokS)), tOn = Math.max(...on.map((r) => r.tokS));
    pdlNote = `; ${abKey} off ${off.map((r) => r.tokS.toFixed(1)).join(" / ")} vs on ${on.map((r) => r.tokS.toFixed(1)).join(" / ")} tok/s (best ${
      ((100 * (tOn - tOff)) / tOff).toFixed(1)
    }%), ids ${idsSame ? "equal" : "DIFFER"}, logits ${bits ? "bitwise equal" : "DIFFER"} off/on${
      bits
        ? ""
        : ` (decode-step rel L2 ${relL2(on[0].decodeLogits, off[0].decodeLogits).toExponential(2)}, argmax ${
          argmax(on[0].decodeLogits) === argmax(off[0].decodeLogits) ? "same" : "differs"
        }; prefill rel L2 ${relL2(on[0].logits, off[0].logits).toExponential(2)}; greedy ids equal ${
          ((i) => (i < 0 ? on[0].ids.length : i))(on[0].ids.findIndex((x, i) => x !== off[0].ids[i]))
        }/${on[0].ids.length})`
    }`;
    rq = [...(tOn >= tOff ? on : off)].sort((a, b) => b.tokS - a.tokS)[0];
    console.log(`${name}: ${abKey} ${idsSame && bits ? "OK" : "MISMATCH"}${pdlNote}`);
    for (let ti = 1; ti <= thenKeys.length; ti++) {
      const r = run(qe, true, ti);
      const same = r.ids.findIndex((x, i) => x !== on[0].ids[i]);
      console.log(
        `${name}: ${abKey} + ${thenKeys.slice(0, ti).join(" + ")} on ${r.tokS.toFixed(1)} tok/s (${abKey} on: ${tOn.toFixed(1)}, off: ${
          tOff.toFixed(1)
        }); logits vs ${abKey} on: ${
          sameBits(r.decodeLogits, on[0].decodeLogits) && sameBits(r.logits, on[0].logits)
            ? "bitwise equal"
            : `decode-step rel L2 ${relL2(r.decodeLogits, on[0].decodeLogits).toExponential(2)}, argmax ${
              argmax(r.decodeLogits) === argmax(on[0].decodeLogits) ? "same" : "differs"
            }`
        }; greedy ids equal ${same < 0 ? r.ids.length : same}/${r.ids.length}; vs off: decode-step rel L2 ${
          relL2(r.decodeLogits, off[0].decodeLogits).toExponential(2)
        }`,
      );
      if (r.tokS > rq.tokS) rq = r;
    }
  } else rq = run(qe);
  line(
    name,
    qe,
    rq,
    `decode-step logits vs the same engine's GEMM path (dequantized bf16 weights) rel L2 ${relL2(rq.decodeLogits, rq.gemmLogits).toExponential(2)}, argmax ${
      argmax(rq.decodeLogits) === argmax(rq.gemmLogits) ? "same" : "differs"
    }${
      ref
        ? ` (bf16 engine: ${relL2(ref.decodeLogits, ref.gemmLogits).toExponential(2)}); vs bf16: prefill logits rel L2 ${
          relL2(rq.logits, ref.logits).toExponential(2)
        }`
        : ""
    }; ${prep}${pdlNote}`,
  );
  return rq;
}

/** The dequantized-bf16 reference engine of `q` (unless --no-ref), compared with the quantized engine's run. */
function reference(name: string, q: QuantizedModel, rq: DecodeRun): void {
  if (values["no-ref"]) return;
  const deq = build(new LlamaForCausalLM(base.config, new DequantizedSource(q), base.options));
  const rd = run(deq);
  deq.dispose();
  const same = rq.ids.findIndex((x, i) => x !== rd.ids[i]);
  console.log(
    `${name} vs a bf16 engine of the dequantized weights: prefill logits rel L2 ${relL2(rq.logits, rd.logits).toExponential(2)}, argmax ${
      argmax(rq.logits) === argmax(rd.logits) ? "same" : "differs"
    }; decode-step logits rel L2 ${relL2(rq.decodeLogits, rd.decodeLogits).toExponential(2)}, argmax ${
      argmax(rq.decodeLogits) === argmax(rd.decodeLogits) ? "same" : "differs"
    }; greedy ids equal ${same < 0 ? rq.ids.length : same}/${rq.ids.length}; the reference engine ${rd.tokS.toFixed(1)} tok/s`,
  );
}

for (const algo of algos) {
  const t0 = performance.now();
  // --algos also takes the weight-and-activation formats NVFP4, W4A8_AWQ and W8A8_SQ_PER_CHANNEL (issue 14): symmetric,
  // calibrated on --calib-tokens tokens (default 64) of the embedded text; run them with --no-ref.
  const lowbit = algo === "NVFP4" || algo === "W4A8_AWQ" || algo === "W8A8_SQ_PER_CHANNEL";
  const perChannel = algo === "W8A16" || algo === "W8A8_SQ_PER_CHANNEL" || algo === "NVFP4" || groupSize === 0;
  const q = quantizeSync(base, {
    quantAlgo: algo as "W4A16",
    groupSize: perChannel ? undefined : groupSize,
    hasZeroPoint: algo !== "W8A16" && !lowbit,
  }, lowbit ? { maxCalibrationTokens: Number(values["calib-tokens"] ?? 64), calibrationSeqLen: 64 } : {});
  const qs = ((performance.now() - t0) / 1000).toFixed(1);
  const name = `${algo}${
    algo === "NVFP4" ? " (e2m1, e4m3 scales per 16)" : perChannel ? " per-channel" : lowbit ? ` g${groupSize}` : ` g${groupSize} + zero points`
  }`;
  const qe = build(q);
  const rq = measure(name, qe, `quantize ${qs} s`);
  qe.dispose();
  reference(name, q, rq);
}
for (const dir of (values.prequantized ?? "").split(",").filter((d) => d !== "")) {
  const t0 = performance.now();
  const q = openModel(dir, backend === "cuda" ? { dtype: "bfloat16" } : {});
  const loadS = (performance.now() - t0) / 1000;
  if (!(q instanceof QuantizedModel)) throw new Error(`--prequantized ${dir}: not a pre-quantized checkpoint`);
  const hq = readHfQuantizationConfig(dir)!;
  const qc = q.quantConfig;
  const name = `${qc.quantAlgo} (${hq.quant_method} ${hq.bits ?? 4}-bit checkpoint, ${
    qc.groupSize && qc.groupSize > 0 && hq.group_size !== -1 ? `g${qc.groupSize}` : "per-channel"
  }${qc.hasZeroPoint ? " + zero points" : ""})`;
  const t1 = performance.now();
  const qe = build(q);
  const buildS = (performance.now() - t1) / 1000;
  const rq = measure(name, qe, `load ${loadS.toFixed(1)} s + build ${buildS.toFixed(1)} s`);
  qe.dispose();
  reference(name, q, rq);
}

/**
 * An NVFP4 model of `base` with random codes and block scales in every decoder linear (a speed-only stand-in). The
 * codes and scales of a shape are drawn once and shared by every layer (seconds, not minutes, on llama-3.1-8b); each
 * layer's engine tensors are still its own device bytes, so a step reads as many bytes as a real checkpoint's.
 */
function syntheticNvfp4(base: LlamaForCausalLM, lmHead = false): QuantizedModel {
  const quantized = new Map<string, QuantizedTensor>();
  const byShape = new Map<string, { packed: Uint8Array; scales: Float32Array }>();
  let seed = 12345;
  const g = nvfp4GlobalScale(0.2), a = nvfp4GlobalScale(8);
  for (let l = 0; l < base.config.numHiddenLayers; l++) {
    for (const lin of ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]) {
      const name = `model.layers.${l}.${lin}.weight`, [N, K] = base.weights.info(name).shape;
      let data = byShape.get(`${lin} ${N}x${K}`);
      if (!data) {
        const packed = new Uint8Array((N * K) / 2), words = new Uint32Array(packed.buffer);
        for (let i = 0; i < words.length; i++) words[i] = seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        // Block scales 0.5 .. 1.875 (e4m3 bytes 0x30 .. 0x3f), exactly e4m3.
        const scales = new Float32Array((N * K) / 16);
        for (let i = 0; i < scales.length; i++) scales[i] = E4M3_DECODE[0x30 + ((i * 7) & 15)];
        data = { packed, scales };
        byShape.set(`${lin} ${N}x${K}`, data);
      }
      quantized.set(name, { bits: 4, rows: N, cols: K, groupSize: 16, ...data, zeros: null, format: "nvfp4", activationScale: a, globalScale: g });
    }
  }
  if (lmHead) {
    if (base.config.tieWordEmbeddings) throw new Error("--synthetic-lm-head: the lm_head is tied to the embeddings");
    const [N, K] = base.weights.info("lm_head.weight").shape;
    const packed = new Uint8Array((N * K) / 2), words = new Uint32Array(packed.buffer);
    for (let i = 0; i < words.length; i++) words[i] = seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const scales = new Float32Array((N * K) / 16);
    for (let i = 0; i < scales.length; i++) scales[i] = E4M3_DECODE[0x30 + ((i * 7) & 15)];
    quantized.set("lm_head.weight", {
      bits: 4,
      rows: N,
      cols: K,
      groupSize: 16,
      packed,
      scales,
      zeros: null,
      format: "nvfp4",
      activationScale: a,
      globalScale: g,
    });
  }
  return new QuantizedModel(base.config, new OverlayWeightSource(base.weights, new Map(), quantized), base.options, QuantConfig.from({ quantAlgo: "NVFP4" }));
}

/**
 * A weight-only model of `base` with random codes (bits 4: groups of `group` + zero points = W4A16_AWQ's loaded form;
 * bits 8: per channel, symmetric = W8A16's). As syntheticNvfp4, one draw per shape shared by every layer.
 */
function syntheticWeightOnly(base: LlamaForCausalLM, bits: 4 | 8, group: number): QuantizedModel {
  const quantized = new Map<string, QuantizedTensor>();
  const byShape = new Map<string, { packed: Uint8Array; scales: Float32Array; zeros: Uint8Array | null }>();
  let seed = 777;
  const rnd = (): number => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
  for (let l = 0; l < base.config.numHiddenLayers; l++) {
    for (const lin of ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]) {
      const name = `model.layers.${l}.${lin}.weight`, [N, K] = base.weights.info(name).shape;
      const G = bits === 4 ? group : K;
      let data = byShape.get(`${lin} ${N}x${K}`);
      if (!data) {
        const packed = new Uint8Array((N * K * bits) / 8), words = new Uint32Array(packed.buffer);
        for (let i = 0; i < words.length; i++) words[i] = rnd();
        const scales = new Float32Array((N * K) / G);
        // |w| ≤ 15 · 2e-3 (u4) / 128 · 2.5e-4 (u8): activations stay finite over 32 layers.
        for (let i = 0; i < scales.length; i++) scales[i] = (bits === 4 ? 2e-3 : 2.5e-4) * (0.5 + (rnd() % 1024) / 1024);
        const zeros = bits === 4 ? Uint8Array.from({ length: scales.length }, () => rnd() % 16) : null;
        data = { packed, scales, zeros };
        byShape.set(`${lin} ${N}x${K}`, data);
      }
      quantized.set(name, { bits, rows: N, cols: K, groupSize: G, ...data });
    }
  }
  const qc = bits === 4 ? QuantConfig.from({ quantAlgo: "W4A16_AWQ", groupSize: group, hasZeroPoint: true }) : QuantConfig.from({ quantAlgo: "W8A16" });
  return new QuantizedModel(base.config, new OverlayWeightSource(base.weights, new Map(), quantized), base.options, qc);
}

for (const bits of [4, 8] as const) {
  if (!values[`synthetic-w${bits}`]) continue;
  const t0 = performance.now();
  const qe = build(syntheticWeightOnly(base, bits, groupSize));
  const name = bits === 4
    ? `W4A16_AWQ g${groupSize} + zero points (synthetic random codes: speed only)`
    : "W8A16 per-channel (synthetic random codes: speed only)";
  measure(name, qe, `build ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  qe.dispose();
}

// --synthetic-nvfp4: an NVFP4 engine of random e2m1 codes and e4m3 block scales (no calibration, no TypeScript
// quantization of every weight: seconds on llama-3.2-1b) for its speed row only — its logits mean nothing.
if (values["synthetic-nvfp4"]) {
  const t0 = performance.now();
  const qe = build(syntheticNvfp4(base));
  measure("NVFP4 (synthetic random codes: speed only)", qe, `build ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  qe.dispose();
  if (values["synthetic-lm-head"]) {
    const t1 = performance.now();
    const qh = build(syntheticNvfp4(base, true));
    measure("NVFP4 + NVFP4 lm_head (synthetic random codes: speed only)", qh, `build ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    qh.dispose();
  }
}
