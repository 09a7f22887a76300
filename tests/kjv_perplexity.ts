/**
 * Held-out perplexity of the embedded model (models/kjv-llama) through promptLogprobs, shared by the
 * quantization suites: 5 windows of 256 tokens of lib/quantization/data/kjv_heldout.txt. Not a test file.
 */
import * as fs from "node:fs";
import { LLM, type RequestOutputData } from "../mod.ts";
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { assert } from "./harness.ts";

export const kjv: string = new URL("../models/kjv-llama/", import.meta.url).pathname;
const heldoutText = fs.readFileSync(new URL("../lib/quantization/data/kjv_heldout.txt", import.meta.url).pathname, "utf8");
const WINDOW = 256, WINDOWS = 5;
let heldout: number[][] | null = null;
const memo = new Map<string, Promise<number>>();

/**
 * exp(mean NLL) of every held-out token after the first of its window, through promptLogprobs. Computed once per
 * QuantConfig in a process: Bun runs every test file in one, so the suites share the float32 figure.
 */
export function kjvPerplexity(quantConfig?: QuantConfigInput): Promise<number> {
  const key = JSON.stringify(quantConfig ?? null);
  let p = memo.get(key);
  if (!p) memo.set(key, p = perplexityOf(quantConfig));
  return p;
}

async function perplexityOf(quantConfig?: QuantConfigInput): Promise<number> {
  if (!heldout) {
    const ids = LlmTokenizer.fromDir(kjv).encode(heldoutText);
    heldout = Array.from({ length: WINDOWS }, (_, i) => ids.slice(i * WINDOW, (i + 1) * WINDOW));
  }
  await using llm = await LLM.create({
    model: kjv,
    backend: "cpu",
    cacheEngine: false,
    gatherContextLogits: true,
    quantConfig,
    buildConfig: { maxBatchSize: WINDOWS, maxNumTokens: WINDOW * WINDOWS, maxSeqLen: 512 },
  });
  const outs = await llm.generate(heldout, { temperature: 0, maxTokens: 1, promptLogprobs: 0 }, { useTqdm: false }) as RequestOutputData[];
  let nll = 0, n = 0;
  for (const o of outs) {
    for (const e of o.promptLogprobs!.slice(1)) {
      nll -= e!.logprob;
      n++;
    }
  }
  assert.equal(n, WINDOWS * (WINDOW - 1));
  return Math.exp(nll / n);
}
