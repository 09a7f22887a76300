/**
 * Batch-invariant GEMM routing (session 17, issue 16 item 5), no GPU: which calls the fixed-order kernel takes
 * (fixedGemmSupports), and the once-per-shape rule (routeFixedGemm) that sends a shape there only when cuBLASLt showed no
 * M-stable reference — never for a shape pinned unchecked (first seen in a stream capture), so a capture and the eager
 * steps take one route.
 */
import { fixedGemmSupports, routeFixedGemm } from "../lib/backends/cuda/fixed_gemm.ts";
import { assert, test } from "./harness.ts";

test("fixedGemmSupports: bf16 / fp16 linears (B [n, k]) writing their type or fp32, K % 8 = 0, 16-byte aligned", () => {
  assert.equal(fixedGemmSupports("bf16", "bf16", true, 8192, 256), true);
  assert.equal(fixedGemmSupports("bf16", "fp32", true, 2048, 16), true);
  assert.equal(fixedGemmSupports("fp16", "fp16", true, 264, 256), true);
  assert.equal(fixedGemmSupports("fp16", "fp32", true, 8, 16), true);
  assert.equal(fixedGemmSupports("bf16", "bf16", false, 8192, 256), false, "B stored [k, n]");
  assert.equal(fixedGemmSupports("bf16", "fp16", true, 8192, 256), false, "bf16 in, fp16 out");
  assert.equal(fixedGemmSupports("fp8e4m3", "bf16", true, 8192, 256), false, "fp8 stays on cuBLASLt");
  assert.equal(fixedGemmSupports("fp32", "fp32", true, 8192, 256), false, "fp32 stays on cuBLASLt");
  assert.equal(fixedGemmSupports("bf16", "bf16", true, 8196, 256), false, "K not a multiple of 8");
  assert.equal(fixedGemmSupports("bf16", "bf16", true, 8192, 8), false, "8-byte aligned");
});

test("routeFixedGemm: only shapes whose cuBLASLt references were checked and none M-stable (or none at all)", () => {
  assert.equal(routeFixedGemm(true, true, false), true, "checked, no stable reference");
  assert.equal(routeFixedGemm(true, true, null), true, "no non-split-K candidate");
  assert.equal(routeFixedGemm(true, true, true), false, "a stable reference: cuBLASLt");
  assert.equal(routeFixedGemm(true, true, undefined), false, "pinned unchecked (capture / fp32): cuBLASLt, the same route later");
  assert.equal(routeFixedGemm(false, true, false), false, "switched off");
  assert.equal(routeFixedGemm(true, false, false), false, "a call the kernel does not take");
});
