/**
 * The FP8 prefill quantizers (issue 14; kernels/fp8_gemv.cu) at llama-3.1-8b's prefill shapes, their loops against the
 * _vec entry points (CudaSessionOptions.fp8VecQuant): add_rmsnorm + quantize (H 4096: x, residual in, residual, e4m3
 * out), rmsnorm + quantize, silu·mul + quantize (I 14336), quantize (o_proj's input), `--rows` rows, static scales.
 * Checks that both write the same bytes (e4m3 rows, row scales, residual), then times each in a graph of launches
 * cycling through buffer sets past the L2 (≥ 256 MB), µs per launch and the bytes moved against a device copy measured
 * in this process.
 *
 *   bun bench/fp8_quant_vec.ts [--rows 2048]
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { loadKernelFile } from "../lib/backends/cuda/compiler.ts";
import { fp8SiluQuantThreads } from "../lib/backends/cuda/fp8_launch.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import { copyBandwidth } from "./copy_bandwidth.ts";

const { values } = parseArgs({ args: process.argv.slice(2), options: { rows: { type: "string" } } });
const R = Number(values.rows ?? 2048), H = 4096, I = 14336, EPS = 1e-5;
const P = "ptr", N = "i32", F = "f32";

const dev = CudaDevice.open(0);
const copy = copyBandwidth(dev);
console.log(`GPU ${dev.name}; copy ${(copy / 1e12).toFixed(3)} TB/s; ${R} rows`);
using mod = loadKernelFile(dev, "fp8_gemv.cu");
using stream = dev.createStream();
using e0 = dev.createEvent();
using e1 = dev.createEvent();

interface Case {
  readonly name: string;
  /** Bytes one launch moves (reads + writes of DRAM). */
  readonly bytes: number;
  /** Input / output bytes of one buffer set. */
  readonly inBytes: number;
  readonly outBytes: number;
  readonly params: readonly ("ptr" | "i32" | "f32")[];
  readonly kernels: readonly { readonly name: string; readonly threads: number }[];
  /** Launch arguments for a set's input base and output base. */
  readonly args: (inp: bigint, out: bigint) => (bigint | number)[];
}
const cases: Case[] = [
  {
    name: `add_rmsnorm + quantize ${R}x${H}`,
    bytes: R * H * 7,
    inBytes: R * H * 4 + H * 2,
    outBytes: R * H + R * 4,
    params: [P, P, P, P, P, P, N, N, F, F, N],
    kernels: [{ name: "fp8_rmsnorm_quant_bf16", threads: 256 }, { name: "fp8_rmsnorm_quant_vec_bf16", threads: 256 }],
    args: (inp, out) => [inp, inp + BigInt(R * H * 2), inp + BigInt(R * H * 4), 0n, out, out + BigInt(R * H), R, H, EPS, 0.05, 1],
  },
  {
    name: `rmsnorm + quantize ${R}x${H}`,
    bytes: R * H * 3,
    inBytes: R * H * 2 + H * 2,
    outBytes: R * H + R * 4,
    params: [P, P, P, P, P, P, N, N, F, F, N],
    kernels: [{ name: "fp8_rmsnorm_quant_bf16", threads: 256 }, { name: "fp8_rmsnorm_quant_vec_bf16", threads: 256 }],
    args: (inp, out) => [inp, 0n, inp + BigInt(R * H * 2), 0n, out, out + BigInt(R * H), R, H, EPS, 0.05, 0],
  },
  {
    name: `silu_mul + quantize ${R}x${I}`,
    bytes: R * I * 5,
    inBytes: R * I * 4,
    outBytes: R * I + R * 4,
    params: [P, P, P, N, N, F],
    kernels: [{ name: "fp8_silu_mul_quant_bf16", threads: 256 }, { name: "fp8_silu_mul_quant_vec_bf16", threads: fp8SiluQuantThreads(I) }],
    args: (inp, out) => [inp, out, out + BigInt(R * I), R, I, 0.05],
  },
  {
    name: `quantize ${R}x${H}`,
    bytes: R * H * 3,
    inBytes: R * H * 2,
    outBytes: R * H + R * 4,
    params: [P, P, P, N, N, F],
    kernels: [{ name: "fp8_quantize_bf16", threads: 256 }, { name: "fp8_quantize_vec_bf16", threads: 256 }],
    args: (inp, out) => [inp, out, out + BigInt(R * H), R, H, 0.05],
  },
];

/** Random bf16 bits in [-4, 4) (xorshift), as 16-bit words. */
function randomBf16(n: number, seed: number): Uint16Array {
  const u = new Uint16Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const f = ((s >>> 0) / 4294967296) * 8 - 4;
    u[i] = new Uint32Array(new Float32Array([f]).buffer)[0] >>> 16;
  }
  return u;
}

console.log("| case | kernel | threads | µs | GB/s | % of copy | same bytes as the loops |");
console.log("| --- | --- | ---: | ---: | ---: | ---: | --- |");
for (const c of cases) {
  const setBytes = c.inBytes + c.outBytes;
  const sets = Math.max(2, Math.ceil((256 << 20) / setBytes));
  using inp = dev.alloc(c.inBytes * sets);
  using out = dev.alloc(c.outBytes * sets);
  const init = randomBf16(c.inBytes / 2, 7);
  for (let s = 0; s < sets; s++) inp.copyFromHost(init, { offset: s * c.inBytes });
  const input0 = new Uint8Array(c.inBytes);
  inp.copyToHost(input0);
  const outputs: Uint8Array[] = [];
  for (const k of c.kernels) {
    const kern = mod.kernel(k.name, c.params);
    // Check: set 0 from the same input (the residual is written in place: restore it first).
    inp.copyFromHost(input0);
    out.fill(0, { stream });
    stream.synchronize();
    kern.launch(R, k.threads, c.args(inp.ptr, out.ptr));
    const o = new Uint8Array(c.outBytes + c.inBytes);
    const ob = new Uint8Array(c.outBytes), ib = new Uint8Array(c.inBytes);
    out.copyToHost(ob);
    inp.copyToHost(ib);
    o.set(ob);
    o.set(ib, c.outBytes);
    outputs.push(o);
    const launches = sets * 2;
    const g = stream.capture((st) => {
      for (let r = 0; r < launches; r++) {
        const s = r % sets;
        kern.launch(R, k.threads, c.args(inp.ptr + BigInt(s * c.inBytes), out.ptr + BigInt(s * c.outBytes)), { stream: st });
      }
    });
    g.launch(stream);
    stream.synchronize();
    const ts: number[] = [];
    for (let r = 0; r < 5; r++) {
      e0.record(stream);
      g.launch(stream);
      e1.record(stream);
      e1.synchronize();
      ts.push(e1.elapsedSince(e0));
    }
    g.dispose();
    const us = (ts.sort((a, b) => a - b)[2] * 1e3) / launches;
    const same = outputs.length === 1 ? "—" : outputs[0].every((b, i) => b === o[i]) ? "yes" : "NO";
    console.log(
      `| ${c.name} | ${k.name} | ${k.threads} | ${us.toFixed(2)} | ${(c.bytes / us / 1e3).toFixed(0)} | ${
        ((100 * c.bytes) / (us * 1e-6) / copy).toFixed(1)
      }% | ${same} |`,
    );
  }
}
