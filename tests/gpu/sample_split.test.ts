/**
 * GPU: sample_split_f32 (sampleSplit, session 17: a greedy row's argmax over gridDim.y blocks, the last block merging their
 * u64 keys) against sample_f32 (one block a row): the same ids for greedy rows — random rows, ties at the top (lowest
 * index wins), a -0 / +0 tie, NaN entries, an all-NaN row (id 0), an all -inf row, a maximum in the last element, vocabs
 * not a multiple of 4 (the scalar path) or of the split — at 1, 16, 32 and 64 blocks; sampled rows (temperature > 0)
 * through block 0's sample_f32 path; the counters left zero (a second launch gives the same ids).
 */
import { assert } from "../harness.ts";
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { device, gpuTest, seededUniform } from "./gpu.ts";

const SAMPLE = ["ptr", "i32", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr"] as const;
const SPLIT = [...SAMPLE, "ptr", "ptr"] as const;

gpuTest("sample_split_f32: the ids of sample_f32 (greedy: ties, -0, NaN, -inf, ragged vocab; sampled rows), counters left zero", () => {
  const d = device();
  using mod = loadKernelFile(d, "sampling.cu", { options: ["-DLLMRT_SELECT=1", "-DLLMRT_K_sample_f32=1", "-DLLMRT_K_sample_split_f32=1"] });
  const one = mod.kernel("sample_f32", SAMPLE), split = mod.kernel("sample_split_f32", SPLIT);
  using stream = d.createStream();
  let cases = 0;
  for (const V of [128256, 32000, 1001, 37]) {
    const rows: Float32Array[] = [];
    const r0 = seededUniform(V, V, -10, 10);
    rows.push(r0);
    const tie = seededUniform(V + 1, V, -10, 10);
    tie[V - 1] = 20, tie[Math.floor(V / 3)] = 20, tie[Math.floor(V / 2)] = 20; // the lowest of three equal maxima
    rows.push(tie);
    const zeros = new Float32Array(V).fill(-1);
    zeros[V - 2] = 0, zeros[Math.floor(V / 5)] = -0; // -0 ties with +0: the lower index
    rows.push(zeros);
    const nan = seededUniform(V + 2, V, -10, 10);
    for (let i = 0; i < V; i += 3) nan[i] = NaN;
    rows.push(nan);
    rows.push(new Float32Array(V).fill(NaN)); // all NaN: id 0
    rows.push(new Float32Array(V).fill(-Infinity)); // all -inf: id 0 (the lowest index of the equal maxima)
    const last = seededUniform(V + 3, V, -10, 10);
    last[V - 1] = 50;
    rows.push(last);
    rows.push(seededUniform(V + 4, V, -10, 10)); // sampled (temperature 0.7)
    const R = rows.length;
    using logits = d.alloc(R * V * 4);
    const host = new Float32Array(R * V);
    rows.forEach((r, i) => host.set(r, i * V));
    logits.copyFromHost(host);
    using temp = d.alloc(R * 4);
    temp.copyFromHost(Float32Array.from({ length: R }, (_, r) => (r === R - 1 ? 0.7 : 0)));
    using topK = d.alloc(R * 4);
    topK.fill(0);
    using topP = d.alloc(R * 4);
    topP.copyFromHost(new Float32Array(R).fill(0.9));
    using minP = d.alloc(R * 4);
    minP.fill(0);
    using seed = d.alloc(2 * R * 4);
    seed.copyFromHost(Uint32Array.from({ length: 2 * R }, (_, i) => i * 7 + 1));
    using step = d.alloc(R * 4);
    step.copyFromHost(Int32Array.from({ length: R }, (_, r) => r));
    using ids = d.alloc(R * 4);
    using part = d.alloc(R * 64 * 8);
    using ctr = d.alloc(R * 4);
    ctr.fill(0);
    const args = [logits, V, temp, topK, topP, minP, seed, step, ids] as const;
    const read = (): number[] => {
      stream.synchronize();
      const h = new Int32Array(R);
      ids.copyToHost(h);
      return [...h];
    };
    ids.fill(0xff, { stream });
    one.launch([R, 1, 1], 512, [...args], { stream });
    const want = read();
    assert.equal(want[rows.length - 4], 0, "sample_f32: an all-NaN row takes id 0");
    for (const S of [1, 16, 32, 64]) {
      for (let rep = 0; rep < 2; rep++) {
        ids.fill(0xff, { stream });
        split.launch([R, S, 1], 512, [...args, part, ctr], { stream });
        assert.deepEqual(read(), want, `vocab ${V}, ${S} blocks, launch ${rep + 1}`);
        const c = new Int32Array(R);
        ctr.copyToHost(c);
        assert.ok(c.every((x) => x === 0), `vocab ${V}, ${S} blocks: counters left ${c}`);
        cases++;
      }
    }
  }
  console.log(`sample_split_f32: ${cases} launches (4 vocabs, 1-64 blocks, 8 rows each) the ids of sample_f32`);
});
