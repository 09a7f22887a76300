/**
 * GPU: silu_mul_split_bf16 (prefillMlpColChunks, session 16) against silu_mul_bf16, bit for bit: the same rows through
 * the fused [gate | up] layout (ldIn 2·inter, ldOut inter) and as column chunks of separate gate / up matrices written
 * into the chunks' columns of a wider output (ldIn = chunk width, ldOut = inter), widths with and without the 16-byte path.
 */
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { assert } from "../harness.ts";
import { device, gpuTest, seededUniform, toBf16Bits } from "./gpu.ts";

gpuTest("silu_mul_split_bf16: silu_mul_bf16's bits in the fused layout and as column chunks into a wider output", () => {
  const d = device();
  using mod = loadKernelFile(d, "silu_mul.cu");
  const silu = mod.kernel("silu_mul_bf16", ["ptr", "ptr", "i32", "i32"]);
  const split = mod.kernel("silu_mul_split_bf16", ["ptr", "ptr", "ptr", "i32", "i32", "i32", "i32"]);
  using stream = d.createStream();
  for (const [T, I, chunks] of [[37, 8192, 2], [5, 1000, 4], [3, 3072, 3]] as const) {
    const gu = Uint16Array.from(seededUniform(40 + I, T * 2 * I, -6, 6), toBf16Bits);
    using dGu = d.alloc(T * 2 * I * 2);
    using dWant = d.alloc(T * I * 2);
    using dGot = d.alloc(T * I * 2);
    dGu.copyFromHost(gu);
    silu.launch([Math.ceil(I / 2048), T, 1], 256, [dGu, dWant, T, I], { stream });
    const read = (b: typeof dGot): Uint16Array => {
      stream.synchronize();
      const h = new Uint16Array(T * I);
      b.copyToHost(h);
      return h;
    };
    const want = read(dWant);
    const same = (got: Uint16Array, what: string): void => {
      for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) assert.fail(`${what}: element ${i} (row ${Math.floor(i / I)}): ${got[i]} vs ${want[i]}`);
    };
    // The fused layout: gate = gateUp, up = gateUp + inter, row stride 2·inter.
    dGot.fill(0xff, { stream });
    split.launch([Math.ceil(I / 2048), T, 1], 256, [dGu, dGu.ptr + BigInt(I * 2), dGot, T, I, 2 * I, I], { stream });
    same(read(dGot), `T ${T} inter ${I}: fused layout`);
    // Column chunks: each chunk's gate and up columns copied into [T, wc] matrices, the result into the chunk's columns.
    const wc = Math.ceil(I / chunks);
    dGot.fill(0xff, { stream });
    for (let c = 0; c * wc < I; c++) {
      const w = Math.min(wc, I - c * wc);
      const g = new Uint16Array(T * w), u = new Uint16Array(T * w);
      for (let t = 0; t < T; t++) {
        g.set(gu.subarray(t * 2 * I + c * wc, t * 2 * I + c * wc + w), t * w);
        u.set(gu.subarray(t * 2 * I + I + c * wc, t * 2 * I + I + c * wc + w), t * w);
      }
      using dG = d.alloc(T * w * 2);
      using dU = d.alloc(T * w * 2);
      dG.copyFromHost(g, { stream });
      dU.copyFromHost(u, { stream });
      split.launch([Math.ceil(w / 2048), T, 1], 256, [dG, dU, dGot.ptr + BigInt(c * wc * 2), T, w, w, I], { stream });
      stream.synchronize();
    }
    same(read(dGot), `T ${T} inter ${I}: ${chunks} column chunks`);
  }
});
