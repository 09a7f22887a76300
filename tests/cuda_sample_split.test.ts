// sampleSplit (issue 16 item 1, session 10), checked without a GPU on a weightless llama-3.2-1b plan: which launches
// the switch changes and how. The kernel's arithmetic: tools/cuda-kernel-check/sample_split_emu.py (CPU emulation, the
// same ids as sample_f32); the engine with it on: bench/decode_pdl.ts --ab (logits compared bit for bit).
import { type KernelLaunch, planLaunches, SAMPLE_SPLIT_BLOCKS, type StepShape } from "../lib/backends/cuda/launch_plan.ts";
import { plannedKernels } from "../lib/backends/cuda/kernel_set.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { bareLlamaPlan, LLAMA_3_2_1B_CONFIG, namedPlanEnv } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const shape = (T: number): StepShape => ({ numTokens: T, numSeqs: T, numRows: T, attention: { kind: "decode", numSplits: 64, splitSize: 2048 }, sample: true });
const kernels = (ls: ReturnType<typeof planLaunches>): KernelLaunch[] => ls.filter((l): l is KernelLaunch => l.kind === "kernel");

test("sampleSplit: the sampler is sample_split_f32 over SAMPLE_SPLIT_BLOCKS blocks a row, sample_f32's arguments + its scratch", () => {
  const plan = bareLlamaPlan(LLAMA_3_2_1B_CONFIG);
  const split = { partV: 1n << 45n, partI: (1n << 45n) + 4096n, counters: (1n << 45n) + 8192n };
  for (const T of [1, 3]) {
    const off = kernels(planLaunches(namedPlanEnv(plan, { fusedDecode: true, pdl: true }), shape(T)));
    const on = kernels(planLaunches(namedPlanEnv(plan, { fusedDecode: true, pdl: true, sampleSplit: split }), shape(T)));
    const a = off[off.length - 1], b = on[on.length - 1];
    assert.equal(a.kernel, "sample_f32");
    assert.equal(b.kernel, "sample_split_f32");
    assert.deepEqual(b.grid, [T, SAMPLE_SPLIT_BLOCKS, 1]);
    assert.deepEqual(b.args, [...a.args, split.partV, split.partI, split.counters]);
    assert.equal(b.pdl, a.pdl);
    assert.equal(b.pdl, true);
    assert.deepEqual(on.slice(0, -1), off.slice(0, -1));
  }
  const env = namedPlanEnv(plan, { fusedDecode: true, pdl: true, sampleSplit: split });
  assert.ok(plannedKernels(env, 8).includes("sample_split_f32"));
  assert.equal(resolveCudaFlags({}).sampleSplit, false);
});
