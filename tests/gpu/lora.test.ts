/**
 * GPU: multi-LoRA on the CUDA session (issue 15 part 3). kjv-llama with a PEFT adapter on every
 * target module (tools/lora-packer), in one batch with a request without adapter: the adapter
 * request's logits equal the merged-weight model's (float32 and bfloat16 engines, each within its
 * precision), the other request's equal the base model's.
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

for (const [dtype, tol] of [["float32", 2e-3], ["bfloat16", 3e-2]] as const) {
  gpuTest(`kjv-llama ${dtype} on CUDA: a LoRA request equals the merged-weight model, a request without adapter in the same batch the base model`, async () => {
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
    const opts = { backend: "cuda", dtype, cacheEngine: false } as const;
    const run = async (model: string, lora: boolean) => {
      await using llm = await LLM.create({ model, ...opts, ...(lora ? { enableLora: true, maxLoras: 2, maxLoraRank: 8 } : {}) });
      if (!lora) return [(await llm.generate(PROMPT, PARAMS, { useTqdm: false })).outputs[0]];
      const a = llm.generateAsync(PROMPT, PARAMS, { loraRequest: { name: "all", path: adapter } });
      const b = llm.generateAsync(PROMPT, PARAMS);
      return [(await a.result()).outputs[0], (await b.result()).outputs[0]];
    };
    const [withAdapter, without] = await run(kjv, true);
    const [mergedOut] = await run(merged, false);
    const [baseOut] = await run(kjv, false);
    // Later rows follow each run's own tokens: compare the rows up to the first token that differs.
    const same = (x: readonly number[], y: readonly number[]): number => Math.max(1, x.findIndex((t, i) => t !== y[i]) + 1 || x.length);
    const nLora = same(withAdapter.tokenIds, mergedOut.tokenIds), nBase = same(without.tokenIds, baseOut.tokenIds);
    const dLora = relDiff(withAdapter.generationLogits!, mergedOut.generationLogits!, nLora);
    const dBase = relDiff(without.generationLogits!, baseOut.generationLogits!, nBase);
    const dEffect = relDiff(withAdapter.generationLogits!, baseOut.generationLogits!, 1);
    console.log(
      `kjv-llama ${dtype} CUDA LoRA: vs merged rel ${dLora.toExponential(2)} (${nLora} rows), base request vs base model rel ${
        dBase.toExponential(2)
      }, the adapter's own effect rel ${dEffect.toExponential(2)}; tokens ${withAdapter.tokenIds} / merged ${mergedOut.tokenIds}`,
    );
    assert.ok(dLora < tol, `LoRA vs merged: ${dLora}`);
    assert.ok(dBase < tol, `no adapter vs base: ${dBase}`);
    assert.ok(dEffect > 10 * dLora, "the adapter changes the logits well beyond the tolerance");
    fs.rmSync(tmp, { recursive: true, force: true });
  });
}
