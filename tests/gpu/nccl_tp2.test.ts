/**
 * Tensor parallelism over two GPUs (issue 18; needs a host with >= 2 GPUs and NCCL, skipped with the
 * reason otherwise): a TP=2 engine against the TP=1 engine of the same checkpoint — prefill logits
 * within bf16 tolerance, greedy ids on a few prompts, batch-1 decode tokens/s of both printed.
 *
 *   LLMRT_TP_MODEL=DIR (default: models/kjv-llama)  LLMRT_TP_DTYPE=bfloat16|float32 (default bfloat16)
 *   NCCL_NVLS_ENABLE=0 bun test tests/gpu/nccl_tp2.test.ts
 */
import process from "node:process";
import { assert, test } from "../harness.ts";
import { AutoModelForCausalLM, buildSync, Session } from "../../mod.ts";
import type { Engine } from "../../lib/builder/engine.ts";
import { CudaDevice } from "../../lib/cuda/device.ts";
import { ncclVersion } from "../../lib/cuda/nccl.ts";
import type { TpSession } from "../../lib/runtime/tp_session.ts";
import { gpuProbe, noGpuReason, step } from "./gpu.ts";

let reason = noGpuReason;
if (!reason) {
  const n = CudaDevice.count();
  if (n < 2) reason = `needs 2 GPUs, found ${n}`;
  else {
    try {
      ncclVersion();
    } catch (e) {
      reason = `no NCCL: ${(e as Error).message.split("\n")[0]}`;
    }
  }
}
const tp2Test = test.skipIf(reason, !gpuProbe.ok || reason !== "");
const MODEL = process.env.LLMRT_TP_MODEL ?? new URL("../../models/kjv-llama/", import.meta.url).pathname;
const DTYPE = (process.env.LLMRT_TP_DTYPE ?? "bfloat16") as "bfloat16" | "float32";

function greedy(s: Session, prompt: number[], n: number, vocab: number): { ids: number[]; first: Float32Array; tokensPerS: number } {
  using kv = s.createKvCache(Math.ceil((prompt.length + n) / s.tokensPerBlock) + 1);
  const blocks = Array.from({ length: Math.ceil((prompt.length + n) / s.tokensPerBlock) }, (_, i) => i);
  const out = { sampledIds: new Int32Array(1), logits: new Float32Array(vocab) };
  s.run(step(prompt, 0, blocks), out, kv);
  const first = out.logits.slice();
  const ids = [out.sampledIds[0]];
  const decode = { sampledIds: out.sampledIds };
  let t0 = 0;
  for (let i = 1; i < n; i++) {
    if (i === 8) t0 = performance.now();
    s.run(step([ids[i - 1]], prompt.length + i - 1, blocks), decode, kv);
    ids.push(out.sampledIds[0]);
  }
  return { ids, first, tokensPerS: (n - 8) / ((performance.now() - t0) / 1000) };
}

function buildFor(tp: number): Engine {
  const model = AutoModelForCausalLM.fromHuggingFace(MODEL, { dtype: DTYPE });
  try {
    return buildSync(model, { backend: "cuda", dtype: DTYPE, maxBatchSize: 8, maxNumTokens: 512, maxSeqLen: 512, tensorParallelSize: tp });
  } finally {
    model.close();
  }
}

tp2Test("tp2: TP=2 over two GPUs matches TP=1 (logits within tolerance, greedy ids) and reports decode tokens/s", () => {
  const prompts = [[1, 450, 3186, 338], [1, 15043, 29892, 920, 526, 366], [1, 29871, 13, 1576, 4996, 17354, 1701, 29916]];
  const N = 128;
  const one = buildFor(1), two = buildFor(2);
  const V = one.plan.attributes.vocabSize;
  const clip = (p: number[]): number[] => p.map((t) => t % V);
  const s1 = Session.fromSerializedEngine(one, { backend: "cuda" });
  const r1 = prompts.map((p) => greedy(s1, clip(p), N, V));
  s1.dispose();
  const s2 = Session.fromSerializedEngine(two, { backend: "cuda" });
  assert.equal((s2.impl as TpSession).worldSize, 2);
  const r2 = prompts.map((p) => greedy(s2, clip(p), N, V));
  s2.dispose();
  one.dispose();
  two.dispose();
  const tol = DTYPE === "float32" ? 1e-4 : 2e-2;
  for (let i = 0; i < prompts.length; i++) {
    let num = 0, den = 0;
    for (let j = 0; j < V; j++) (num += (r1[i].first[j] - r2[i].first[j]) ** 2), (den += r1[i].first[j] ** 2);
    const rel = Math.sqrt(num / den);
    const same = r2[i].ids.findIndex((t, k) => t !== r1[i].ids[k]);
    console.log(
      `prompt ${i}: prefill logits rel L2 ${rel.toExponential(2)}; greedy ids equal for ${same < 0 ? N : same} of ${N}; decode TP=1 ${
        r1[i].tokensPerS.toFixed(1)
      } tok/s, TP=2 ${r2[i].tokensPerS.toFixed(1)} tok/s (${(r2[i].tokensPerS / r1[i].tokensPerS).toFixed(2)}x)`,
    );
    assert.ok(rel < tol, `prompt ${i}: logits rel L2 ${rel}`);
    assert.deepEqual(r2[i].ids.slice(0, 8), r1[i].ids.slice(0, 8), `prompt ${i}: first greedy ids`);
  }
}, 600_000);
