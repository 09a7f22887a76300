/**
 * GPU: decodeArgmax (session 12): the lm_head GEMV with the greedy argmax folded in (gemv_fused{_norm}_amax, u64 keys
 * by atomicMax) and sample_amax_f32 give sample_f32's greedy ids on logits with a tie at the top, a NaN row, the tie's
 * first row NaN, and every logit NaN; the keys are left zero for the next step.
 */
import { assert } from "../harness.ts";
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { device, gpuTest, seededUniform } from "./gpu.ts";

const FUSED = ["ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "ptr", "i64"] as const;

/** bf16 bits of `f` (round to nearest even). */
function toBf16(f: Float32Array): Uint16Array {
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length), out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
  return out;
}

gpuTest("gemv_fused{_norm}_amax + sample_amax_f32: sample_f32's greedy ids (ties to the lowest index, NaN rows never win, all NaN → 0), keys zeroed", () => {
  const d = device();
  const names = ["gemv_fused_amax_bf16_m1", "gemv_fused_amax_bf16_m2", "gemv_fused_norm_amax_bf16_m1", "gemv_fused_norm_amax_bf16_m2"];
  using mod = loadKernelFile(d, "gemv.cu", { options: ["-DLLMRT_SELECT=1", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
  using smod = loadKernelFile(d, "sampling.cu", { options: ["-DLLMRT_SELECT=1", "-DLLMRT_K_sample_f32=1", "-DLLMRT_K_sample_amax_f32=1"] });
  const SAMPLE = ["ptr", "i32", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr"] as const;
  const sampleF32 = smod.kernel("sample_f32", SAMPLE), sampleAmax = smod.kernel("sample_amax_f32", [...SAMPLE, "ptr"]);
  using stream = d.createStream();
  const n = 16003, k = 2048;
  const x = toBf16(seededUniform(11, 2 * k, -1, 1));
  using xd = d.alloc(x.byteLength);
  xd.copyFromHost(x);
  using normW = d.alloc(k * 2);
  normW.copyFromHost(toBf16(seededUniform(12, k, 0.5, 1.5)));
  using W = d.alloc(n * k * 2);
  using logits = d.alloc(2 * n * 4);
  using keys = d.alloc(2 * 64 * 8); // u64 [rows, 64]
  keys.fill(0);
  // per-row sampling params, all greedy: temperature 0, topK 0, topP 1, minP 0, seed, step
  using params = d.alloc(6 * 2 * 4);
  params.copyFromHost(new Uint32Array([0, 0, 0, 0, 0x3f800000, 0x3f800000, 0, 0, 1, 2, 3, 4]));
  const p = (i: number): bigint => params.ptr + BigInt(i * 8);
  using ids = d.alloc(2 * 4);
  let want: number[] = [];
  const run = (w: Uint16Array, label: string): void => {
    W.copyFromHost(w);
    for (const name of names) {
      const m = Number(name.at(-1));
      for (const kern of [sampleF32, sampleAmax]) {
        mod.kernel(name, FUSED).launch(Math.ceil(n / 8), 256, [xd, W, 0n, logits, normW, 1e-5, m, n, k, 3, keys, 0n], { stream });
        const args = [logits, n, p(0), p(1), p(2), p(3), p(4), p(5), ids];
        if (kern === sampleAmax) sampleAmax.launch(m, 512, [...args, keys], { stream });
        else sampleF32.launch(m, 512, args, { stream });
        stream.synchronize();
        const got = new Int32Array(m);
        ids.copyToHost(got);
        if (kern === sampleF32) {
          keys.fill(0); // sample_f32 leaves the GEMV's keys behind
          want = [...got];
        } else {
          assert.deepEqual([...got], want, `${label} ${name}: sample_amax_f32 vs sample_f32`);
          const left = new BigUint64Array(2 * 64);
          keys.copyToHost(left);
          assert.ok(left.every((v) => v === 0n), `${label} ${name}: ${left.filter((v) => v !== 0n).length} keys left non-zero`);
        }
      }
    }
  };
  const w = toBf16(seededUniform(13, n * k, -0.05, 0.05));
  // rows 5000 and 9001: the same weights, aligned with x (the largest logits, tied): the lower index wins
  const top = new Uint16Array(k);
  for (let i = 0; i < k; i++) top[i] = x[i] & 0x8000 ? 0xbd4c : 0x3d4c; // ∓0.05
  w.set(top, 5000 * k);
  w.set(top, 9001 * k);
  w.fill(0x7fc0, 12000 * k, 12001 * k); // a NaN row
  run(w, "tie");
  w.fill(0x7fc0, 5000 * k, 5001 * k); // the first of the tie NaN: 9001 wins
  run(w, "NaN");
  w.fill(0x7fc0); // every logit NaN: id 0
  run(w, "all NaN");
});
