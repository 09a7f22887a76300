/**
 * Session 12 helper tput: the first error of an LLM run with the session options of the environment (bench/throughput.ts's
 * `await using` turns a failure into a bare SuppressedError): 64 × (128 in, 8 out) greedy on MODEL, every nested error printed.
 *
 *   bun tools/gpu/s12_tput_probe.ts MODEL
 */
import process from "node:process";
import { LLM } from "../../lib/llmapi/llm.ts";

const show = (e: unknown, depth = 0): void => {
  const pad = "  ".repeat(depth);
  if (e instanceof Error) {
    console.log(`${pad}${e.name}: ${e.message}`);
    console.log(`${pad}${(e.stack ?? "").split("\n").slice(1, 8).join(`\n${pad}`)}`);
    const x = e as Error & { error?: unknown; suppressed?: unknown; cause?: unknown };
    if (x.error !== undefined) show(x.error, depth + 1);
    if (x.suppressed !== undefined) show(x.suppressed, depth + 1);
    if (x.cause !== undefined) show(x.cause, depth + 1);
  } else console.log(`${pad}${String(e)}`);
};
let llm: LLM | undefined;
try {
  llm = await LLM.create({
    model: process.argv[2],
    backend: "cuda",
    dtype: "bfloat16",
    skipTokenizerInit: true,
    cacheEngine: false,
    buildConfig: { maxBatchSize: 64, maxNumTokens: 8192, maxSeqLen: 288, maxInputLen: 128, tokensPerBlock: 32 },
    kvCacheConfig: { maxTokens: 65 * 288, enableBlockReuse: false },
  });
  const prompts = Array.from({ length: 64 }, (_, s) => Array.from({ length: 128 }, (_, j) => (s * 131 + j * 7 + 1) % 32000));
  const outs = await llm.generate(prompts, { maxTokens: 8, temperature: 0, ignoreEos: true }, { useTqdm: false });
  console.log(`probe ok: ${outs.length} outputs, first ids ${outs[0].outputs[0].tokenIds.join(",")}`);
} catch (e) {
  console.log("probe failed:");
  show(e);
}
try {
  await llm?.[Symbol.asyncDispose]();
} catch (e) {
  console.log("dispose failed:");
  show(e);
}
process.exit(0);
