// decodeL2Prefetch (issue 16 item 1, session 10), checked without a GPU on a weightless llama-3.2-1b plan: with
// LaunchEnv.decodeL2PrefetchBytes each layer's o_proj GEMV (gemv_fused, residual epilogue) gets the start of the same
// layer's gate_up weight and the byte count as its prefetch arguments; no other launch changes; without it every
// gemv_fused prefetch argument stays 0. The timing: bench/decode_pdl.ts --ab '{"decodeL2Prefetch":true}'.
import { type KernelLaunch, type LaunchEnv, planLaunches, type StepShape } from "../lib/backends/cuda/launch_plan.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { bareLlamaPlan, LLAMA_3_2_1B_CONFIG, namedPlanEnv } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const shape: StepShape = { numTokens: 1, numSeqs: 1, numRows: 1, attention: { kind: "decode", numSplits: 64, splitSize: 2048 }, sample: true };
const kernels = (env: LaunchEnv): KernelLaunch[] => planLaunches(env, shape).filter((l): l is KernelLaunch => l.kind === "kernel");

test("decodeL2Prefetch: each o_proj GEMV prefetches its layer's gate_up weight; nothing else changes", () => {
  const plan = bareLlamaPlan(LLAMA_3_2_1B_CONFIG);
  const base = namedPlanEnv(plan, { fusedDecode: true, pdl: true });
  const mb = 16 * 2 ** 20;
  const env = { ...base, decodeL2PrefetchBytes: mb };
  const off = kernels(base), on = kernels(env);
  assert.equal(on.length, off.length);
  let prefetching = 0;
  on.forEach((l, i) => {
    const o = off[i];
    assert.equal(l.kernel, o.kernel);
    const gu = on.slice(i + 1).find((x) => x.kernel.startsWith("gemv_fused"));
    if (l.kernel === "gemv_fused_bf16_m1" && l.args[9] === 1 && gu?.args[9] === 2) {
      // o_proj (residual epilogue) followed by the layer's gate_up (SiLU·mul epilogue, mode 2).
      assert.equal(l.args[10], gu.args[1]); // prefetch = the gate_up weight's address
      assert.equal(l.args[11], BigInt(mb));
      assert.equal(o.args[10], 0n);
      assert.equal(o.args[11], 0n);
      assert.deepEqual(l.args.slice(0, 10), o.args.slice(0, 10));
      prefetching++;
    } else {
      assert.deepEqual(l.args, o.args);
    }
  });
  assert.equal(prefetching, plan.attributes.numLayers);
  for (const l of off) if (l.kernel.startsWith("gemv_fused")) assert.equal(l.args[10], 0n);
});

test("decodeL2Prefetch: capped at the gate_up weight's size; the switch is off by default", () => {
  const plan = bareLlamaPlan(LLAMA_3_2_1B_CONFIG);
  const env = namedPlanEnv(plan, { fusedDecode: true, pdl: true, decodeL2PrefetchBytes: 2 ** 40 });
  const o = kernels(env).find((l) => l.kernel === "gemv_fused_bf16_m1" && l.args[11] !== 0n)!;
  assert.equal(o.args[11], BigInt(2 * 8192 * 2048 * 2)); // llama-3.2-1b gate_up: [16384, 2048] bf16
  assert.equal(resolveCudaFlags({}).decodeL2Prefetch, false);
});
