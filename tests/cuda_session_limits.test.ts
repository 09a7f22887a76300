// CUDA session limits checked before any device work (so they run without a GPU): an engine whose steps
// could exceed CUDA's grid y limit (row kernels launch one block row per token) is refused at session
// creation, naming BuildConfig.maxNumTokens — not a CUDA_ERROR_INVALID_VALUE in the middle of a prefill
// (seen on an H200: llama-3.1-8b, 512 prompts of 128 tokens packed into one 65,536-token step).
import { CudaSession, MAX_GRID_Y } from "../lib/backends/cuda/session.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { ValidationError } from "../lib/util/errors.ts";
import { randomModel } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

const TINY = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  vocab_size: 64,
  max_position_embeddings: 128,
};

test("CUDA session: maxNumTokens above the grid y limit is refused before device work, naming the field", () => {
  const engine = buildSync(randomModel(TINY, 3), { backend: "cuda", dtype: "bfloat16", maxBatchSize: 4, maxNumTokens: MAX_GRID_Y + 1, maxSeqLen: 64 });
  assert.throws(
    () => new CudaSession(engine),
    (e: unknown) =>
      e instanceof ValidationError && e.field === "BuildConfig.maxNumTokens" && e.value === MAX_GRID_Y + 1 &&
      /65535/.test(e.message),
  );
});
