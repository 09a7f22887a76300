/**
 * GPU host: kernel units compiled by NVRTC workers while the calling thread is busy (a session starts
 * them before its weight upload, lib/backends/cuda/session.ts) give the same CUBINs as compiling on the
 * calling thread, and the workers really ran during the busy time.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileKernelUnits, kernelUnits, startKernelUnits } from "../../lib/backends/cuda/compile_pool.ts";
import { kernelSignature } from "../../lib/backends/cuda/kernel_signatures.ts";
import { assert } from "../harness.ts";
import { device, gpuTest } from "./gpu.ts";

gpuTest("startKernelUnits: workers compile while this thread works; finish() returns the same CUBINs as compiling here", () => {
  const arch = device().arch;
  const names = ["rmsnorm_bf16", "silu_mul_bf16", "embedding_bf16", "gemv_bf16_m1", "gemv_bf16_m2"];
  const units = kernelUnits(names, (n) => kernelSignature(n).file).map((u) => u.unit);
  assert.ok(units.length >= 2, `units: ${units.length}`);
  const dir = mkdtempSync(join(tmpdir(), "llmrt-pool-"));
  try {
    const t0 = performance.now();
    const pending = startKernelUnits(units, arch, { cacheDir: dir, workers: 4 });
    const started = performance.now() - t0;
    // Busy (as a weight upload is): the workers compile meanwhile.
    const busyUntil = performance.now() + 3000;
    let spins = 0;
    while (performance.now() < busyUntil) spins++;
    const t1 = performance.now();
    const { cubins, stats } = pending.finish();
    const waited = performance.now() - t1;
    assert.equal(stats.cacheHits, 0);
    assert.equal(stats.compiledInWorkers + stats.compiledHere, units.length);
    assert.ok(stats.workers >= 2, `workers started: ${stats.workers}`);
    assert.equal(stats.compiledInWorkers, units.length, "every unit compiled on a worker");
    const here = compileKernelUnits(units, arch, { cacheDir: null, workers: 1 });
    assert.equal(here.stats.compiledHere, units.length);
    units.forEach((u, i) => assert.deepEqual(cubins[i].cubin, here.cubins[i].cubin, `unit ${u.file} ${u.kernels?.join("+") ?? "(whole)"}`));
    console.log(`start ${started.toFixed(1)} ms, busy 3000 ms (${spins} spins), finish waited ${waited.toFixed(1)} ms for ${units.length} units`);
    // Compiling these units takes well under 3 s on a GPU host's cores: finish() should find them done.
    assert.ok(waited < 1000, `finish() waited ${waited.toFixed(0)} ms after 3 s of overlap`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
