/**
 * Batch-1 decode: what a step costs outside its CUDA graph. In one process, per engine (one per --max-seq-lens value,
 * the same checkpoint): the graph replayed back to back, the synced loop (`Session.run`), the overlapped loop as the
 * executor runs it (`Session.launch`, the token forwarded on the device) and the same without forwarding (the token
 * given by the host: no device-to-device copy a step), each a step period in µs at 129..(128 + decode) keys, with the
 * host's time inside `launch` and `wait`. Then the stream's small copies alone (host → device 256 B, device → device
 * 4 B, device → host 4 B; µs each on the GPU timeline, 500 back to back).
 *
 *   bun bench/step_loop.ts --model DIR [--max-seq-lens 320,2112] [--decode 128] [--reps 3] [--zero-copy off|on|ab]
 *
 * --zero-copy: the session option zeroCopyStaging (stage_in / stage_out kernels instead of the step's stream copies; default:
 * the session's default); `ab`: one session each way over the same engine, measured in turn every rep, greedy ids compared.
 *
 * LLMRT_BENCH_JSON=FILE also writes the numbers as JSON.
 */
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import type { CudaKvCache } from "../lib/backends/cuda/session.ts";
import { Session } from "../lib/runtime/session.ts";
import { deviceWeightBytes, greedyStepper } from "./batch1.ts";
import { copyCeiling } from "./copy_bandwidth.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string" },
    "max-seq-lens": { type: "string" },
    decode: { type: "string" },
    reps: { type: "string" },
    "zero-copy": { type: "string" },
  },
});
if (!values.model) throw new Error("usage: bun bench/step_loop.ts --model DIR [--max-seq-lens 320,2112] [--decode 128] [--reps 3]");
const lens = (values["max-seq-lens"] ?? "320,2112").split(",").map(Number);
const numDecode = Number(values.decode ?? 128);
const reps = Number(values.reps ?? 3);
const zc = values["zero-copy"];
if (zc !== undefined && !["off", "on", "ab"].includes(zc)) throw new Error(`--zero-copy: expected off, on or ab, got ${JSON.stringify(zc)}`);
const variants: (boolean | undefined)[] = zc === "ab" ? [false, true] : zc === undefined ? [undefined] : [zc === "on"];
const bs = 32;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const us = (ms: number): string => (ms * 1000).toFixed(1);
const results: Record<string, unknown>[] = [];
let ceilingBps = 0;

/** One session of `engine` (zeroCopyStaging `zero`) after a 128-token prompt, and its timed loops. */
function runner(engine: ReturnType<typeof buildSync>, maxSeqLen: number, zero: boolean | undefined) {
  const session = Session.fromSerializedEngine(engine, { backend: "cuda", ...(zero === undefined ? {} : { zeroCopyStaging: zero }) });
  const cuda = session.cuda!;
  const kv = session.createKvCache(maxSeqLen / bs + 1);
  const stepOf = greedyStepper(Int32Array.from({ length: maxSeqLen / bs }, (_, i) => i));
  const out = { sampledIds: new Int32Array(1) };
  const prompt = Array.from({ length: 128 }, (_, i) => (i * 7919) % 30000);
  session.run(stepOf(prompt, 0), out, kv);
  const first = out.sampledIds[0];
  session.run(stepOf([first], 128), out, kv); // the bucket-1 graph
  const graphMs = cuda.profileDecodeStep(stepOf([first], 128 + numDecode / 2), kv as CudaKvCache, 50).graphMs;
  const synced = (): number => {
    let last = first;
    const t = performance.now();
    for (let i = 0; i < numDecode; i++) {
      session.run(stepOf([last], 128 + i), out, kv);
      last = out.sampledIds[0];
    }
    return (performance.now() - t) / numDecode;
  };
  // forward: the executor's form (token ids forwarded on the device); else the host gives a fixed token (no D2D copy).
  const overlapped = (forward: boolean): { ms: number; launchMs: number; waitMs: number; ids: number[] } => {
    const bufs = [new Int32Array(1), new Int32Array(1)];
    const ids: number[] = [];
    let launchMs = 0, waitMs = 0;
    let prev = session.launch(stepOf([first], 128), { sampledIds: bufs[0] }, kv);
    const t = performance.now();
    for (let i = 1; i <= numDecode; i++) {
      const a = performance.now();
      const inp = forward ? { ...stepOf([0], 128 + i), forwardedTokens: { from: prev, rows: Int32Array.of(0) } } : stepOf([first], 128 + i);
      const cur = session.launch(inp, { sampledIds: bufs[i % 2] }, kv);
      const b = performance.now();
      prev.wait();
      ids.push(bufs[(i - 1) % 2][0]);
      waitMs += performance.now() - b;
      launchMs += b - a;
      prev = cur;
    }
    prev.wait();
    ids.push(bufs[numDecode % 2][0]);
    return { ms: (performance.now() - t) / numDecode, launchMs: launchMs / numDecode, waitMs: waitMs / numDecode, ids };
  };
  const runs = { synced: [] as number[], fwd: [] as number[], fixed: [] as number[], fwdLaunch: [] as number[], fwdWait: [] as number[] };
  let ids: number[] = [];
  const rep = (): void => {
    runs.synced.push(synced());
    const f = overlapped(true);
    ids = f.ids;
    runs.fwd.push(f.ms);
    runs.fwdLaunch.push(f.launchMs);
    runs.fwdWait.push(f.waitMs);
    runs.fixed.push(overlapped(false).ms);
  };
  const copies = () => cuda.timeDecodeStepCopies(stepOf([first], 128 + numDecode / 2), kv as CudaKvCache, 100);
  return { session, cuda, graphMs, runs, rep, copies, ids: () => ids };
}

for (const maxSeqLen of lens) {
  const m = AutoModelForCausalLM.fromHuggingFace(values.model, { dtype: "bfloat16" });
  const engine = buildSync(m, { backend: "cuda", maxBatchSize: 1, maxNumTokens: 128, maxSeqLen, tokensPerBlock: bs });
  m.close();
  const rs = variants.map((zero) => runner(engine, maxSeqLen, zero));
  const cuda = rs[0].cuda;
  if (ceilingBps === 0) ceilingBps = copyCeiling(cuda.device).bps;
  const stepBytes = deviceWeightBytes(engine);
  for (let r = 0; r < reps; r++) for (const x of rs) x.rep();
  if (maxSeqLen === lens[0]) {
    // The stream's small copies alone, on the GPU timeline (500 back to back between two events).
    const dev = cuda.device;
    using stream = dev.createStream();
    using host = dev.allocHost(4096);
    using buf = dev.alloc(4096);
    using e0 = dev.createEvent();
    using e1 = dev.createEvent();
    const n = 500;
    const time = (label: string, op: () => void): void => {
      for (let i = 0; i < 20; i++) op();
      e0.record(stream);
      for (let i = 0; i < n; i++) op();
      e1.record(stream);
      e1.synchronize();
      console.log(`${label}: ${(1000 * e1.elapsedSince(e0) / n).toFixed(2)} µs each (${n} back to back)`);
    };
    time("host → device 256 B", () => buf.copyFromHost(host.bytes.subarray(0, 256), { stream }));
    time("device → device 4 B", () => buf.copyFromDevice(buf, 4, { srcOffset: 1024, dstOffset: 0, stream }));
    time("device → host 4 B", () => buf.copyToHost(host.bytes.subarray(512, 516), { stream }));
    time("the three", () => {
      buf.copyFromHost(host.bytes.subarray(0, 256), { stream });
      buf.copyFromDevice(buf, 4, { srcOffset: 1024, dstOffset: 0, stream });
      buf.copyToHost(host.bytes.subarray(512, 516), { stream });
    });
  }
  const pct = (ms: number): string => (100 * stepBytes / (ms / 1000) / ceilingBps).toFixed(1);
  rs.forEach(({ runs, graphMs, copies }, v) => {
    const name = `maxSeqLen ${maxSeqLen}${zc === undefined ? "" : `, zeroCopyStaging ${variants[v] ? "on" : "off"}`}`;
    const c = copies();
    const row = {
      maxSeqLen,
      zeroCopyStaging: variants[v],
      graphUs: graphMs * 1000,
      syncedUs: median(runs.synced) * 1000,
      overlappedUs: median(runs.fwd) * 1000,
      overlappedFixedTokenUs: median(runs.fixed) * 1000,
      hostLaunchUs: median(runs.fwdLaunch) * 1000,
      hostWaitUs: median(runs.fwdWait) * 1000,
    };
    results.push({ ...row, copiesUs: Object.fromEntries(Object.entries(c).map(([k, x]) => [k, x * 1000])) });
    console.log(`${name}: graph replays with the step's stream copies (µs a step): ` + Object.entries(c).map(([k, x]) => `${k} ${us(x)}`).join(" | "));
    console.log(
      `${name}: graph ${us(graphMs)} µs (${pct(graphMs)}%) | synced ${us(median(runs.synced))} (${pct(median(runs.synced))}%) | ` +
        `overlapped ${us(median(runs.fwd))} (${pct(median(runs.fwd))}%) | overlapped, host token ${us(median(runs.fixed))} | ` +
        `host in launch ${us(median(runs.fwdLaunch))}, in wait ${us(median(runs.fwdWait))} µs a step [runs: synced ${runs.synced.map(us).join(" ")}; ` +
        `overlapped ${runs.fwd.map(us).join(" ")}; host token ${runs.fixed.map(us).join(" ")}]`,
    );
  });
  if (rs.length === 2) {
    const [a, b] = [rs[0].ids(), rs[1].ids()];
    const same = a.length === b.length && a.every((x, i) => x === b[i]);
    console.log(`maxSeqLen ${maxSeqLen}: overlapped greedy ids, zeroCopyStaging off vs on: ${same ? "identical" : "DIFFER"} (${a.length} steps)`);
  }
  for (const x of rs) x.session.dispose();
}

console.log(`copy ceiling ${(ceilingBps / 1e12).toFixed(3)} TB/s`);
if (process.env.LLMRT_BENCH_JSON) fs.writeFileSync(process.env.LLMRT_BENCH_JSON, JSON.stringify({ ceilingBps, results }, null, 1));
