// The hostile-input suite (issue 11): a generated corpus of malformed configs, safetensors, engines,
// tokenizers, prompts, sampling fields and option objects. Every case must end in an LlmrtError of
// the right kind naming the file or field and the value, or in a correct result: never a crash, a
// hang or silent garbage. Runs in CI on Bun and Deno (tests/hostile/corpus.ts says how cases work).
import { LLM } from "../../lib/llmapi/llm.ts";
import { assert, runtimeName, sharedDir, test } from "../harness.ts";
import {
  configCases,
  engineCases,
  type HostileCase,
  optionCases,
  promptCases,
  runCase,
  safetensorsCases,
  samplingCases,
  tokenizerCases,
  wellFormed,
} from "./corpus.ts";
import { removeTempDirs, TINY, writeTiny } from "./fixtures.ts";

const stories = `${sharedDir}models/stories260k`;
const base = writeTiny({ tokenizerFrom: stories, config: (c) => Object.assign(c, { max_position_embeddings: 512 }) });
const V = TINY.V;
const llmOptions = { backend: "cpu" as const, cacheEngine: false, buildConfig: { maxBatchSize: 8, maxNumTokens: 256 } };

async function createAndGenerate(dir: string): Promise<unknown> {
  const llm = await LLM.create({ model: dir, ...llmOptions });
  try {
    return await llm.generate("Once upon a time", { maxTokens: 3, temperature: 0 }, { useTqdm: false });
  } finally {
    await llm.shutdown();
  }
}

let live: LLM | null = null;
async function liveLlm(): Promise<LLM> {
  live ??= await LLM.create({ model: base, ...llmOptions });
  return live;
}

let total = 0;
const started = performance.now();

async function runAll(category: string, cases: readonly HostileCase[]): Promise<void> {
  const t0 = performance.now();
  const failures: string[] = [];
  const gaps: string[] = [];
  for (const c of cases) {
    const why = await runCase(c);
    if (why && c.knownGap) gaps.push(`- ${c.name}: known gap (${c.knownGap}): ${why.slice(0, 300)}`);
    else if (why) failures.push(`- ${c.name}: ${why.slice(0, 600)}`);
    else if (c.knownGap) console.log(`hostile ${category}: '${c.name}' now holds; drop its knownGap`);
  }
  removeTempDirs([base]);
  total += cases.length;
  console.log(
    `hostile ${category} (${runtimeName}): ${cases.length} cases, ${failures.length} failed, ${gaps.length} known gaps, ${
      (performance.now() - t0).toFixed(0)
    } ms; ${total} cases in ${((performance.now() - started) / 1000).toFixed(1)} s so far`,
  );
  if (gaps.length) console.log(gaps.join("\n"));
  assert.equal(failures.length, 0, `${failures.length} of ${cases.length} ${category} cases failed:\n${failures.join("\n")}`);
}

test("hostile configs: every mutated config.json is an error naming the field and value, or builds", async () => {
  await runAll("configs", configCases(base));
});

test("hostile safetensors: every mutated model.safetensors is an error naming the file, or a request that fails with the reason", async () => {
  await runAll("safetensors", safetensorsCases(base, createAndGenerate));
});

test("hostile engines: flipped bytes, truncation, versions, config.json and plan edits are errors naming the file, or give the same ids", async () => {
  await runAll("engines", engineCases(base));
});

test("hostile tokenizers: every mutated tokenizer file is an error naming it, or generates", async () => {
  await runAll("tokenizers", tokenizerCases(base, createAndGenerate, wellFormed(V)));
});

test("hostile prompts: an error naming the prompt and value, or a well-formed result", async () => {
  const llm = await liveLlm();
  await runAll("prompts", promptCases(() => llm, V));
});

test("hostile sampling fields: every SamplingParams field with wrong types and ranges", async () => {
  const llm = await liveLlm();
  await runAll("sampling", samplingCases(() => llm, V));
});

test("hostile option objects: LLM.create, BuildConfig, generate and generateAsync options", async () => {
  const llm = await liveLlm();
  const create = async (o: unknown): Promise<unknown> => {
    const made = await LLM.create(o as never);
    await made.shutdown();
    return made;
  };
  try {
    await runAll("options", optionCases(base, () => llm, create));
  } finally {
    await live?.shutdown();
    live = null;
    removeTempDirs();
  }
});
