/**
 * GPU: multi-LoRA on the CUDA session (issue 15 part 3). kjv-llama with a PEFT adapter on every
 * target module (tools/lora-packer), in one batch with a request without adapter: the adapter
 * request's logits equal the merged-weight model's (float32: within 1e-4 relative; bfloat16: its
 * error against the float32 merged model is that of the bf16 merged model), the other request's
 * equal the base model's.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LLM } from "../../lib/llmapi/llm.ts";
import { mergePeftAdapter, packPeftAdapter } from "../../tools/lora-packer/pack.ts";
import { assert } from "../harness.ts";
import { gpuTest } from "./gpu.ts";

const kjv = new URL("../../models/kjv-llama/", import.meta.url).pathname;
const PROMPT = "And the LORD spake unto Moses, saying, Speak unto the children of Israel, and say unto them,";
const PARAMS = { maxTokens: 4, temperature: 0, ignoreEos: true, returnGenerationLogits: true };

/** max |a - b| over the first `steps` generation logits rows, relative to max |b|. */
function relDiff(a: readonly Float32Array[], b: readonly Float32Array[], steps: number): number {
  let d = 0, m = 0;
  for (let s = 0; s < steps; s++) {
    a[s].forEach((v, j) => {
      d = Math.max(d, Math.abs(v - b[s][j]));
      m = Math.max(m, Math.abs(b[s][j]));
    });
  }
  return d / m;
}

gpuTest(
  "kjv-llama on CUDA (float32, bfloat16): a LoRA request equals the merged-weight model, a request without adapter in the same batch the base model",
  async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-gpu-lora-"));
    const adapter = path.join(tmp, "all"), merged = path.join(tmp, "merged");
    packPeftAdapter(kjv, adapter, {
      rank: 8,
      alpha: 16,
      targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
      seed: 3,
      std: 0.08,
    });
    mergePeftAdapter(kjv, adapter, merged);
    const run = async (model: string, dtype: "float32" | "bfloat16", lora: boolean) => {
      await using llm = await LLM.create({
        model,
        backend: "cuda",
        dtype,
        cacheEngine: false,
        ...(lora ? { enableLora: true, maxLoras: 2, maxLoraRank: 8 } : {}),
      });
      if (!lora) return [(await llm.generate(PROMPT, PARAMS, { useTqdm: false })).outputs[0]];
      const a = llm.generateAsync(PROMPT, PARAMS, { loraRequest: { name: "all", path: adapter } });
      const b = llm.generateAsync(PROMPT, PARAMS);
      return [(await a.result()).outputs[0], (await b.result()).outputs[0]];
    };
    // Later rows follow each run's own tokens: compare rows up to the first token that differs.
    const rows = (x: readonly number[], y: readonly number[]): number => {
      const i = x.findIndex((t, j) => t !== y[j]);
      return i < 0 ? x.length : i + 1;
    };
    const [lora32, without32] = await run(kjv, "float32", true);
    const [merged32] = await run(merged, "float32", false);
    const [base32] = await run(kjv, "float32", false);
    const [lora16, without16] = await run(kjv, "bfloat16", true);
    const [merged16] = await run(merged, "bfloat16", false);
    const [base16] = await run(kjv, "bfloat16", false);
    const d32 = relDiff(lora32.generationLogits!, merged32.generationLogits!, rows(lora32.tokenIds, merged32.tokenIds));
    const b32 = relDiff(without32.generationLogits!, base32.generationLogits!, rows(without32.tokenIds, base32.tokenIds));
    const effect = relDiff(lora32.generationLogits!, base32.generationLogits!, 1);
    // bfloat16: the first row (the prompt's) against the float32 merged model, beside the bf16 merged model's own error.
    const e16 = relDiff(lora16.generationLogits!, merged32.generationLogits!, 1);
    const m16 = relDiff(merged16.generationLogits!, merged32.generationLogits!, 1);
    const b16 = relDiff(without16.generationLogits!, base16.generationLogits!, rows(without16.tokenIds, base16.tokenIds));
    console.log(
      `kjv-llama CUDA LoRA: float32 vs merged rel ${d32.toExponential(2)}, request without adapter vs base ${b32.toExponential(2)}, adapter effect ${
        effect.toExponential(2)
      }; bfloat16 LoRA vs float32 merged ${e16.toExponential(2)} (bf16 merged weights: ${m16.toExponential(2)}), without adapter vs base ${
        b16.toExponential(2)
      }; tokens f32 ${lora32.tokenIds} / merged ${merged32.tokenIds}, bf16 ${lora16.tokenIds} / merged ${merged16.tokenIds}`,
    );
    assert.ok(d32 < 1e-4, `float32 LoRA vs merged: ${d32}`);
    assert.ok(b32 < 1e-5, `float32 without adapter vs base: ${b32}`);
    assert.ok(effect > 0.1, "the adapter changes the logits");
    assert.ok(e16 < 3 * m16 + 1e-3, `bfloat16 LoRA error ${e16} vs the bf16 merged model's ${m16}`);
    assert.ok(b16 < 1e-2, `bfloat16 without adapter vs base: ${b16}`);
    fs.rmSync(tmp, { recursive: true, force: true });
  },
);
