/**
 * GPU diagnosis of session 14's batch4 "graphs = eager" failures (bench/RESULTS.md, "Session 14 — closing call" and
 * "audit of prefillPdl"; skipped without a GPU): in the 3-process suite, a 12-sequence decode step's eager logits differed
 * from the graphs' at index 0. Two of tests/gpu/batch_attention4.test.ts's cases (hd128 G4 bf16 cache, hd64 G2 FP8 cache)
 * run the same 12-sequence prefill and decode 0 in six CUDA sessions and a CPU one:
 *   G graphs (switches as the environment sets them) · E eager · E+pdl / E-pdl eager with prefillPdl forced on / off ·
 *   Gnt / Ent graphs / eager with gemmTune off (each GEMM the heuristic's first pick: no timing under load).
 * Each session's KV cache is copied to the host after the prefill and after decode 0 and compared bitwise with G's (the
 * scratch block of dummy tokens left out). A decode step of 12 sequences replays G's 16-row graph bucket but runs 12 rows
 * eagerly, and decode linears of more than 8 rows are not batch-invariant (tuned per M, split-K allowed): the picks for
 * M 12 and 16, timed under load, may round differently. So the line also shows the timing cache's picks for those M.
 *
 * One line per case, `batch4 diag <case> | ...` (printed before any assertion):
 *   prefill kv: each session vs G ("all =" when every one is bitwise G's; else per session "=" or the first differing
 *     layer / block / sequence, the bytes that differ and the layers holding them)
 *   decode0 logits: the sessions grouped by equal bits, each group's rel L2 to the CPU and its first index differing from G's
 *   decode0 kv: the same after decode 0 — layer 0 differing means the step diverged by its first KV write (qkv GEMM / RoPE)
 *   picks: the timing cache's candidate index for each (n x k) at M 12 / 16 (non-invariant keys; "-" none; each indexes its
 *     own M's heuristic list, so compare runs, not the two)
 *   verdict: where the difference first appears
 * Fails only where bits must agree: the prefill's KV and logits of G / E / E+pdl / E-pdl, decode 0 of the three eager
 * sessions (one shape, one process's picks; prefillPdl touches prefill launches only) and accuracy against the CPU. Graphs
 * vs eager at decode 0 is reported, not asserted (batch_attention4.test.ts asserts it).
 */
import { join } from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { llmrtCacheDir, sha256Hex } from "../../ffi/cache.ts";
import { CublasLtGemm } from "../../lib/backends/cuda/gemm.ts";
import type { CudaKvCache } from "../../lib/backends/cuda/session.ts";
import type { CudaDevice } from "../../lib/cuda/device.ts";
import { Session } from "../../lib/runtime/session.ts";
import { relL2 } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { attentionEngines, attentionSequences, BLOCKS_PER_SEQ, LENS12, SMALL_LLAMA as RAW } from "./batch_attention_setup.ts";
import { gpuTest } from "./gpu.ts";

const CASES = [
  { name: "hd128 G4, bf16 cache", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, fp8: false },
  { name: "hd64 G2, FP8 cache", raw: { ...RAW, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64 }, fp8: true },
];
const SESSIONS = [
  { id: "G", flags: {} },
  { id: "E", flags: { cudaGraphs: false } },
  { id: "E+pdl", flags: { cudaGraphs: false, prefillPdl: true } },
  { id: "E-pdl", flags: { cudaGraphs: false, prefillPdl: false } },
  { id: "Gnt", flags: { gemmTune: false } },
  { id: "Ent", flags: { cudaGraphs: false, gemmTune: false } },
] as const;
/** Sessions whose prefill (KV and logits) and eager decode must agree bitwise. */
const STRICT = ["G", "E", "E+pdl", "E-pdl"];
const EAGER = ["E", "E+pdl", "E-pdl"];

/** The whole KV cache on the host (the session's stream is idle after `run`). */
function kvBytes(kv: CudaKvCache): Uint8Array {
  const out = new Uint8Array(kv.buffer.byteLength);
  kv.buffer.copyToHost(out);
  return out;
}

/** "=" when `a` and `b` agree on every usable block, else the first differing layer / block / sequence and the bytes that differ. */
function kvDiff(a: Uint8Array, b: Uint8Array, kv: CudaKvCache): { text: string; layers: number[] } {
  let first = -1, bytes = 0;
  const layers: number[] = [];
  for (let l = 0; l < kv.geometry.numLayers; l++) {
    const base = l * kv.layerBytes, end = base + kv.scratchBlock * kv.blockBytes; // the scratch block is last
    let n = 0;
    for (let i = base; i < end; i++) {
      if (a[i] !== b[i]) {
        if (first < 0) first = i;
        n++;
      }
    }
    if (n > 0) layers.push(l);
    bytes += n;
  }
  if (first < 0) return { text: "=", layers };
  const l = Math.floor(first / kv.layerBytes), blk = Math.floor((first % kv.layerBytes) / kv.blockBytes);
  return { text: `L${l} blk ${blk} (seq ${Math.floor(blk / BLOCKS_PER_SEQ)}) ${bytes} B, layers ${layers.join("+")}`, layers };
}

/** The timing cache's picks at M 12 and 16 for the model's (n, k) pairs (what decode 0 ran, graphs and eager). */
function timingPicks(device: CudaDevice, shapes: Set<string>): string {
  const file = join(
    llmrtCacheDir(),
    "gemm",
    `timing-${sha256Hex(device.name, String(device.driverVersion), String(CublasLtGemm.version())).slice(0, 16)}.json`,
  );
  if (!existsSync(file)) return "no timing cache";
  let all: Record<string, number>;
  try {
    all = JSON.parse(readFileSync(file, "utf8")) as Record<string, number>;
  } catch {
    return "timing cache unreadable";
  }
  const by = new Map<string, string[]>();
  for (const [key, pick] of Object.entries(all)) {
    const m = /^[^i][^|]*\|(\d+)x(\d+)x(\d+)\|(.*)$/.exec(key); // not "inv:"
    if (!m || (m[1] !== "12" && m[1] !== "16") || !shapes.has(`${m[2]}x${m[3]}`)) continue;
    const k = `${m[2]}x${m[3]}${m[4].endsWith("|c") ? "c" : ""}`;
    by.set(k, [...(by.get(k) ?? ["-", "-"])]);
    by.get(k)![m[1] === "12" ? 0 : 1] = `${pick}`;
  }
  return [...by].sort().map(([k, [a, b]]) => `${k} ${a}/${b}`).join(", ") || "none at M 12 / 16";
}

for (const c of CASES) {
  gpuTest(`batch4 diag (${c.name}): 12-sequence prefill KV and decode 0 — graphs, eager, prefillPdl on / off, gemmTune off`, () => {
    const n = LENS12.length, V = RAW.vocab_size;
    using engines = attentionEngines(c.raw, 47, c.fp8, { maxBatchSize: 16, maxNumTokens: 2048 });
    const on = { backend: "cuda" as const, batchAttention2: true, batchAttention4: true };
    const sessions = SESSIONS.map((s) => ({ id: s.id, session: Session.fromSerializedEngine(engines.engine, { ...on, ...s.flags }) }));
    const cpu = Session.fromSerializedEngine(engines.cpuEngine, { backend: "cpu" });
    try {
      const kvs = sessions.map((s) => s.session.createKvCache(n * BLOCKS_PER_SEQ) as CudaKvCache);
      const kvC = cpu.createKvCache(n * BLOCKS_PER_SEQ);
      const seqs = attentionSequences(LENS12, V);
      const all = LENS12.map((_, i) => i);
      const bits = (x: Float32Array) => new Uint32Array(x.buffer);
      const firstDiff = (a: Float32Array, b: Float32Array) => bits(a).findIndex((v, i) => v !== bits(b)[i]);
      const step = (inp: ReturnType<typeof seqs.decode>) => {
        const gc = new Float32Array(n * V), ic = new Int32Array(n);
        cpu.run(inp, { logits: gc, sampledIds: ic }, kvC);
        const logits = sessions.map((s, i) => {
          const g = new Float32Array(n * V);
          s.session.run(inp, { logits: g, sampledIds: new Int32Array(n) }, kvs[i]);
          return g;
        });
        const kv = kvs.map(kvBytes);
        return { gc, logits, kv: sessions.map((_, i) => kvDiff(kv[i], kv[0], kvs[0])) };
      };
      const P = step(seqs.prefill(all));
      const D = step(seqs.decode(all));
      const idx = (id: string) => sessions.findIndex((s) => s.id === id);
      // decode 0: sessions grouped by equal logits bits.
      const groups: number[][] = [];
      sessions.forEach((_, i) => {
        const g = groups.find((g) => firstDiff(D.logits[i], D.logits[g[0]]) < 0);
        if (g) g.push(i);
        else groups.push([i]);
      });
      const groupText = groups.map((g) => {
        const d = firstDiff(D.logits[g[0]], D.logits[0]);
        return `{${g.map((i) => sessions[i].id).join(",")}} cpu ${relL2(D.logits[g[0]], D.gc).toExponential(2)}${
          d < 0 ? "" : ` @${d} vs G ${relL2(D.logits[g[0]], D.logits[0]).toExponential(2)}`
        }`;
      });
      const kvText = (d: typeof P.kv) => d.every((x) => x.text === "=") ? "all =" : sessions.slice(1).map((s, i) => `${s.id} ${d[i + 1].text}`).join("; ");
      const prefillKv = kvText(P.kv), decodeKv = kvText(D.kv);
      const H = c.raw.num_attention_heads, KV = c.raw.num_key_value_heads, hd = c.raw.head_dim, h = RAW.hidden_size, f = RAW.intermediate_size;
      const shapes = new Set([`${(H + 2 * KV) * hd}x${h}`, `${h}x${H * hd}`, `${2 * f}x${h}`, `${f}x${h}`, `${h}x${f}`, `${V}x${h}`]);
      const picks = timingPicks(sessions[0].session.cuda!.device, shapes);
      const prefillBad = STRICT.some((id) => P.kv[idx(id)].text !== "=" || firstDiff(P.logits[idx(id)], P.logits[0]) >= 0);
      const gE = firstDiff(D.logits[idx("E")], D.logits[0]), ntE = firstDiff(D.logits[idx("Ent")], D.logits[idx("Gnt")]);
      const eKv0 = D.kv[idx("E")].layers.includes(0);
      const verdict = prefillBad
        ? "KV / logits differ after the PREFILL"
        : gE < 0
        ? `decode 0 graphs = eager (tune off: ${ntE < 0 ? "=" : `@${ntE}`})`
        : `decode 0 only: prefill KV equal, graphs vs eager @${gE}, ${
          eKv0 ? "layer 0's new KV differs (qkv GEMM / RoPE of 12 vs 16 rows)" : "KV of layer 0 equal (later layers / logits)"
        }; ` +
          `tune off Gnt vs Ent ${ntE < 0 ? "= (points at the timed GEMM picks)" : `@${ntE} (not the timing alone)`}`;
      console.log(
        `batch4 diag ${c.name} | prefill kv vs G: ${prefillKv} | decode0 logits: ${groupText.join(" ")} | decode0 kv vs G: ${decodeKv} | ` +
          `picks M12/M16: ${picks} | verdict: ${verdict}`,
      );
      for (const id of STRICT.slice(1)) {
        assert.equal(P.kv[idx(id)].text, "=", `${id}: KV cache after the prefill differs from G's`);
        const d = firstDiff(P.logits[idx(id)], P.logits[0]);
        assert.equal(d, -1, `${id}: prefill logits differ from G's at ${d}`);
      }
      for (const id of EAGER.slice(1)) {
        const d = firstDiff(D.logits[idx(id)], D.logits[idx("E")]);
        assert.equal(d, -1, `${id}: decode 0 logits differ from E's at ${d} (eager sessions, one shape)`);
      }
      const bound = c.fp8 ? 0.08 : 0.05;
      sessions.forEach((s, i) => {
        for (const [what, g, want] of [["prefill", P.logits[i], P.gc], ["decode 0", D.logits[i], D.gc]] as const) {
          const e = relL2(g, want);
          assert.ok(e < bound && Number.isFinite(e), `${s.id} ${what}: logits rel L2 ${e} vs the CPU session`);
        }
      });
      assert.ok(sessions[0].session.cuda!.numGraphs >= 1, "G's decode step ran as a graph");
    } finally {
      for (const s of sessions) s.session.dispose();
      cpu.dispose();
    }
  }, 300_000);
}
