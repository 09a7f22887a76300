/**
 * Shared set-up of the GPU tests of the many-sequence decode attention kernels (batch_attention2, batch_attention4):
 * a small random Llama (bf16-exact weights) built as a bf16 CUDA engine and a float32 CPU engine, with an FP8 KV cache
 * or not, and sequences of assorted lengths whose prefill and decode steps those tests run. Not a test file.
 */
import { buildSync } from "../../lib/builder/builder.ts";
import type { Engine } from "../../lib/builder/engine.ts";
import type { StepInputs } from "../../lib/ir/step_io.ts";
import { quantizeSync } from "../../lib/quantization/quantize.ts";
import { randomModel, step } from "../cuda_fake_device.ts";

/** The model's config but its attention heads (num_attention_heads, num_key_value_heads, head_dim). */
export const SMALL_LLAMA = {
  vocab_size: 211,
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  max_position_embeddings: 1024,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
} as const;

/** Lengths 1 .. 530 (sequence 0 spans two 256-key splits and more). */
export const LENS12: readonly number[] = [530, 1, 17, 64, 200, 3, 129, 255, 256, 31, 90, 300];

/** KV blocks of 16 tokens each sequence owns (640 positions). */
export const BLOCKS_PER_SEQ = 40;

/**
 * The bf16 CUDA engine and the float32 CPU engine of a random model of `raw` (weights from `seed`), its KV cache
 * quantized to FP8 (calibrated on 64 tokens) when `fp8`; both engines close with `using`.
 */
export function attentionEngines(
  raw: Record<string, unknown>,
  seed: number,
  fp8: boolean,
  shape: { maxBatchSize: number; maxNumTokens: number },
): { engine: Engine; cpuEngine: Engine } & Disposable {
  const model = randomModel(raw, seed, true, 0.15);
  const V = SMALL_LLAMA.vocab_size;
  const calibration = [Array.from({ length: 64 }, (_, i) => (i * 29 + 5) % V)];
  const q = fp8 ? quantizeSync(model, { kvCacheQuantAlgo: "FP8" }, { calibration }) : model;
  const full = { ...shape, maxSeqLen: BLOCKS_PER_SEQ * 16, tokensPerBlock: 16 };
  const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", ...full });
  const cpuEngine = buildSync(q, { backend: "cpu", ...full });
  if (q !== model) q.close();
  model.close();
  return {
    engine,
    cpuEngine,
    [Symbol.dispose]() {
      engine[Symbol.dispose]();
      cpuEngine[Symbol.dispose]();
    },
  };
}

/**
 * Sequences of the given lengths (sequence s: ids (31 s + 7 j + 1) mod V, blocks s · BLOCKS_PER_SEQ ...) and the
 * steps over any subset of them: `prefill` (each whole prompt from position 0), `decode` (each sequence's last id at
 * its next position), `advance` (after a decode step: its sampled ids become the last ids).
 */
export function attentionSequences(lens: readonly number[], V: number): {
  prefill(which: number[]): StepInputs;
  decode(which: number[]): StepInputs;
  advance(which: number[], ids: Int32Array): void;
} {
  const seqs = lens.map((len, s) => ({
    ids: Array.from({ length: len }, (_, j) => (s * 31 + j * 7 + 1) % V),
    blocks: Array.from({ length: BLOCKS_PER_SEQ }, (_, j) => s * BLOCKS_PER_SEQ + j),
  }));
  const pos = lens.slice(), last = seqs.map((s) => s.ids[s.ids.length - 1]);
  return {
    prefill: (which) => step(which.map((s) => ({ ids: seqs[s].ids, pos: 0, blocks: seqs[s].blocks })), BLOCKS_PER_SEQ),
    decode: (which) => step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), BLOCKS_PER_SEQ),
    advance(which, ids) {
      which.forEach((s, r) => {
        last[s] = ids[r];
        pos[s]++;
      });
    },
  };
}
