// A model's generation_config.json sampling defaults (vLLM's --generation-config auto): parsing and
// validation, the precedence request > generation_config > library defaults, LLM.create's
// generationConfig option, the server's and CLI's --generation-config, and the engine directory
// round trip. Checkpoints are copies of stories260k / kjv-llama in temp dirs with their own file.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FormatError, LLM, readGenerationDefaults, SamplingParams } from "../mod.ts";
import { applyGenerationDefaults, parseGenerationDefaults } from "../lib/llmapi/generation_config.ts";
import { startServer } from "../lib/serve/server.ts";
import { parseArgs } from "../bin/cli/args.ts";
import { COMMANDS } from "../bin/commands/index.ts";
import { assert, isDeno, sharedDir, test, testLlm } from "./harness.ts";

const STORIES = `${sharedDir}models/stories260k`;
const KJV = new URL("../models/kjv-llama/", import.meta.url).pathname;
const cli = new URL("../bin/llmrt.ts", import.meta.url).pathname;
const proc = (globalThis as unknown as { process: { execPath: string; env: Record<string, string>; kill(pid: number, sig: string): void } }).process;

const tmp = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** A copy of `src` (a checkpoint) whose generation_config.json adds `sampling` to the original's end ids (a string: the file's text). */
function checkpointWith(src: string, sampling: Record<string, unknown> | string): string {
  const dir = tmp("llmrt-genconfig-");
  for (const f of fs.readdirSync(src)) {
    if (f !== "generation_config.json") fs.writeFileSync(path.join(dir, f), fs.readFileSync(path.join(src, f)));
  }
  const ids = JSON.parse(fs.readFileSync(path.join(src, "generation_config.json"), "utf8"));
  fs.writeFileSync(path.join(dir, "generation_config.json"), typeof sampling === "string" ? sampling : JSON.stringify({ ...ids, ...sampling }, null, 2));
  return dir;
}

const create = (model: string, o: Record<string, unknown> = {}): Promise<LLM> =>
  LLM.create({ model, ...testLlm, cacheEngine: false, buildConfig: { maxBatchSize: 8, maxNumTokens: 256, maxInputLen: 64, tokensPerBlock: 16 }, ...o });

test("generation_config.json: the sampling fields become SamplingParams defaults; unknown fields and nulls are ignored; do_sample false is greedy", () => {
  const file = "/m/generation_config.json";
  assert.deepEqual(parseGenerationDefaults({ bos_token_id: 1, eos_token_id: [2, 3], transformers_version: "4.46.0", _from_model_config: true }, file), {});
  assert.deepEqual(
    parseGenerationDefaults(
      {
        do_sample: true,
        temperature: 0.6,
        top_p: 0.9,
        top_k: 20,
        min_p: 0.05,
        repetition_penalty: 1.1,
        max_new_tokens: 2048,
        max_length: 4096,
        num_beams: 1,
        foo: { bar: [] },
      },
      file,
    ),
    { temperature: 0.6, topP: 0.9, topK: 20, minP: 0.05, repetitionPenalty: 1.1, maxTokens: 2048 },
  );
  // do_sample absent: the values apply (as vLLM does); null means absent (transformers writes null for unset fields).
  assert.deepEqual(parseGenerationDefaults({ temperature: 0.7, top_k: null, top_p: null }, file), { temperature: 0.7 });
  // do_sample false: greedy, whatever the file's sampling values (transformers ignores them then); other fields still apply.
  assert.deepEqual(parseGenerationDefaults({ do_sample: false, temperature: 0.6, top_p: 0.9, repetition_penalty: 1.2, max_new_tokens: 7 }, file), {
    temperature: 0,
    repetitionPenalty: 1.2,
    maxTokens: 7,
  });
  assert.deepEqual(parseGenerationDefaults({ temperature: 0 }, file), { temperature: 0 });
  assert.ok(Object.isFrozen(parseGenerationDefaults({ temperature: 0.5 }, file)));
  assert.deepEqual(readGenerationDefaults(tmp("llmrt-nogen-")), {}, "no file: no defaults");
  assert.deepEqual(readGenerationDefaults(STORIES), {}, "stories260k's file has end ids only");
  assert.deepEqual(readGenerationDefaults(KJV), {}, "kjv-llama's file has end ids only");
});

test("generation_config.json: a bad sampling value is a FormatError naming the file, the field and the value", () => {
  const file = "/m/generation_config.json";
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ temperature: -0.5 }, "temperature", />=0, got -0\.5/],
    [{ temperature: "0.7" }, "temperature", /got "0\.7"/],
    [{ top_p: 0 }, "top_p", />0, got 0/],
    [{ top_p: 1.5 }, "top_p", /<=1, got 1\.5/],
    [{ top_k: 2.5 }, "top_k", /int.*got 2\.5/],
    [{ top_k: -1 }, "top_k", />=0, got -1/],
    [{ min_p: 2 }, "min_p", /<=1, got 2/],
    [{ repetition_penalty: 0 }, "repetition_penalty", />0, got 0/],
    [{ do_sample: "yes" }, "do_sample", /boolean.*got "yes"/],
    [{ max_new_tokens: 0 }, "max_new_tokens", />0, got 0/],
    [{ max_new_tokens: 1.5 }, "max_new_tokens", /got 1\.5/],
    [{ max_length: -1 }, "max_length", /got -1/],
  ];
  for (const [raw, field, re] of cases) {
    assert.throws(
      () => parseGenerationDefaults({ eos_token_id: 2, ...raw }, file),
      (e: unknown) => {
        assert.ok(e instanceof FormatError, `${JSON.stringify(raw)}: ${e}`);
        assert.equal(e.path, file);
        assert.equal(e.field, field);
        assert.deepEqual(e.value, raw[field]);
        assert.ok(e.message.startsWith(`${file}: ${field}: `), e.message);
        assert.match(e.message, re);
        return true;
      },
    );
  }
  assert.throws(() => parseGenerationDefaults([1], file), /generation_config\.json: expected a JSON object, got \[1\]/);
  const bad = checkpointWith(STORIES, "{ temperature: 0.5");
  assert.throws(() => readGenerationDefaults(bad), (e: unknown) => e instanceof FormatError && /generation_config\.json: not valid JSON/.test(e.message));
  // JSON's 1e999 is Infinity: refused.
  assert.throws(() => readGenerationDefaults(checkpointWith(STORIES, '{"temperature": 1e999}')), /temperature: .*got Infinity/);
});

test("applyGenerationDefaults: request > generation_config > library defaults (an explicit temperature 0 included)", () => {
  const d = { temperature: 0.6, topP: 0.9, topK: 20, repetitionPenalty: 1.1, maxTokens: 64 };
  const empty = applyGenerationDefaults(SamplingParams.from(undefined), d);
  assert.equal(empty.temperature, 0.6);
  assert.equal(empty.topP, 0.9);
  assert.equal(empty.topK, 20);
  assert.equal(empty.minP, 0, "not in the file: the library default");
  assert.equal(empty.repetitionPenalty, 1.1);
  assert.equal(empty.maxTokens, 64);
  const greedy = applyGenerationDefaults(new SamplingParams({ temperature: 0, maxTokens: 8 }), d);
  assert.equal(greedy.temperature, 0, "the request's explicit greedy temperature wins");
  assert.equal(greedy.maxTokens, 8);
  assert.equal(greedy.topP, 0.9, "fields the request left unset are filled");
  assert.ok(greedy.isGreedy);
  const plain = applyGenerationDefaults(SamplingParams.from({ topP: 1, temperature: undefined, stop: ["\n"] }), d);
  assert.equal(plain.topP, 1, "an explicit library-default value wins too");
  assert.equal(plain.temperature, 0.6, "undefined counts as unset");
  assert.deepEqual(plain.stop, ["\n"]);
  // Nothing to fill, or no defaults: the same object.
  const full = new SamplingParams({ temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1, maxTokens: 5 });
  assert.equal(applyGenerationDefaults(full, d), full);
  assert.equal(applyGenerationDefaults(empty, {}), empty);
  // A request's input is copied: editing it afterwards changes nothing.
  const stop = ["a"];
  const p = new SamplingParams({ stop });
  stop.push("b");
  assert.deepEqual(applyGenerationDefaults(p, d).stop, ["a"]);
  // Defaults never make a valid request invalid: beam search uses no sampling field; several sampled
  // sequences keep sampling; a maxTokens below the request's minTokens is not applied.
  const beams = applyGenerationDefaults(new SamplingParams({ useBeamSearch: true, beamWidth: 2 }), d);
  assert.equal(beams.topK, 0);
  assert.equal(beams.topP, 1);
  assert.equal(beams.maxTokens, 64);
  assert.equal(beams.repetitionPenalty, 1.1);
  const n2 = applyGenerationDefaults(new SamplingParams({ n: 2 }), { temperature: 0, topK: 1, maxTokens: 4 });
  assert.equal(n2.temperature, 1);
  assert.equal(n2.topK, 0);
  assert.equal(n2.maxTokens, 4);
  assert.equal(applyGenerationDefaults(new SamplingParams({ minTokens: 40, maxTokens: 50 }), { maxTokens: 10 }).maxTokens, 50);
  assert.equal(applyGenerationDefaults(new SamplingParams({ minTokens: 20 }), { maxTokens: 10 }).maxTokens, 32, "the library default stays");
});

test("LLM.create generationConfig: 'none' (the default) ignores the file, 'auto' fills what requests leave unset", async () => {
  const dir = checkpointWith(STORIES, { do_sample: false, max_new_tokens: 5, repetition_penalty: 1.0 });
  const prompt = "Once upon a time";
  const plain = await create(dir);
  const auto = await create(dir, { generationConfig: "auto" });
  try {
    assert.deepEqual(plain.generationDefaults, {});
    assert.deepEqual(auto.generationDefaults, { temperature: 0, repetitionPenalty: 1, maxTokens: 5 });
    const lib = await plain.generate(prompt, { seed: 3 });
    assert.equal(lib.outputs[0].tokenIds.length, 32, "the library default maxTokens");
    const greedy5 = await plain.generate(prompt, { temperature: 0, maxTokens: 5 });
    const filled = await auto.generate(prompt);
    assert.deepEqual(filled.outputs[0].tokenIds, greedy5.outputs[0].tokenIds, "greedy, 5 tokens: the file's defaults");
    assert.deepEqual((await auto.generateAsync(prompt).result()).outputs[0].tokenIds, greedy5.outputs[0].tokenIds, "generateAsync too");
    // Explicit values win: a sampled request stays sampled, its maxTokens holds (plain object or SamplingParams).
    const sampled = await auto.generate(prompt, new SamplingParams({ temperature: 1, seed: 3, maxTokens: 12 }));
    assert.deepEqual(sampled.outputs[0].tokenIds, (await plain.generate(prompt, { temperature: 1, seed: 3, maxTokens: 12 })).outputs[0].tokenIds);
    const [a, b] = await auto.generate([prompt, prompt], [{ maxTokens: 2 }, { temperature: 1, seed: 3 }]);
    assert.deepEqual(a.outputs[0].tokenIds, greedy5.outputs[0].tokenIds.slice(0, 2));
    assert.deepEqual(b.outputs[0].tokenIds, (await plain.generate(prompt, { temperature: 1, seed: 3, maxTokens: 5 })).outputs[0].tokenIds);
  } finally {
    await plain.shutdown();
    await auto.shutdown();
  }
});

test("LLM.create generationConfig 'auto' with the executor in a Web Worker (executorMode proxy) gives the in-process output", async () => {
  const dir = checkpointWith(STORIES, { temperature: 0, max_new_tokens: 5 });
  const prompt = "Once upon a time";
  const inproc = await create(dir, { generationConfig: "auto", executorMode: "inprocess" });
  const proxy = await create(dir, { generationConfig: "auto", executorMode: "proxy" });
  try {
    assert.deepEqual(proxy.generationDefaults, inproc.generationDefaults);
    const want = await inproc.generate(prompt);
    assert.equal(want.outputs[0].tokenIds.length, 5, "the file's max_new_tokens");
    assert.deepEqual((await proxy.generate(prompt)).outputs[0].tokenIds, want.outputs[0].tokenIds);
    assert.deepEqual((await proxy.generateAsync(prompt).result()).outputs[0].tokenIds, want.outputs[0].tokenIds, "generateAsync too");
    const sampled = { temperature: 1, seed: 3 };
    assert.deepEqual((await proxy.generate(prompt, sampled)).outputs[0].tokenIds, (await inproc.generate(prompt, sampled)).outputs[0].tokenIds);
  } finally {
    await inproc.shutdown();
    await proxy.shutdown();
  }
});

test("LLM.create generationConfig: a bad value fails 'auto' with a FormatError naming it; 'none' does not read it; the option is validated", async () => {
  const dir = checkpointWith(STORIES, { temperature: -1 });
  await assert.rejects(create(dir, { generationConfig: "auto" }), (e: unknown) => {
    assert.ok(e instanceof FormatError, String(e));
    assert.equal(e.path, path.join(dir, "generation_config.json"));
    assert.equal(e.field, "temperature");
    assert.equal(e.value, -1);
    return true;
  });
  const none = await create(dir, { generationConfig: "none" });
  await none.shutdown();
  await assert.rejects(create(STORIES, { generationConfig: "vllm" }), /LLM\.create options\.generationConfig: .*got "vllm"/);
});

test("serve: a request's unset temperature and max_tokens take the model's defaults (generationConfig 'auto'); set ones win", async () => {
  const dir = checkpointWith(KJV, { temperature: 0, max_new_tokens: 6 });
  const llm = await create(dir, { generationConfig: "auto", buildConfig: undefined });
  const server = await startServer({ llm, port: 0, modelName: "kjv" });
  const post = async (route: string, body: Record<string, unknown>) => {
    const r = await fetch(`${server.url}/v1/${route}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "kjv", ...body }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    return await r.json() as { choices: { text?: string; message?: { content: string } }[]; usage: { completion_tokens: number } };
  };
  try {
    const greedy = await llm.generate("In the beginning", { temperature: 0, maxTokens: 6, ignoreEos: true });
    // No temperature, different seeds: greedy (the file's temperature 0), 6 tokens (its max_new_tokens, not OpenAI's 16).
    const c1 = await post("completions", { prompt: "In the beginning", seed: 1, ignore_eos: true });
    const c2 = await post("completions", { prompt: "In the beginning", seed: 2, ignore_eos: true });
    assert.equal(c1.usage.completion_tokens, 6);
    assert.equal(c1.choices[0].text, greedy.outputs[0].text);
    assert.equal(c2.choices[0].text, greedy.outputs[0].text);
    assert.equal((await post("completions", { prompt: "In the beginning", max_tokens: 3, ignore_eos: true })).usage.completion_tokens, 3);
    const sampled = await post("completions", { prompt: "In the beginning", max_tokens: 24, temperature: 1, seed: 7, ignore_eos: true });
    const direct = await llm.generate("In the beginning", { temperature: 1, seed: 7, maxTokens: 24, ignoreEos: true });
    assert.equal(sampled.choices[0].text, direct.outputs[0].text, "an explicit temperature wins");
    // Chat: max_tokens absent is the room left in the context, at most max_new_tokens.
    const chat = await post("chat/completions", { messages: [{ role: "user", content: "Who made the earth?" }], ignore_eos: true });
    assert.equal(chat.usage.completion_tokens, 6);
  } finally {
    await server.close(1000);
    await llm.shutdown();
  }
  // "none": OpenAI's defaults (16 completion tokens).
  const none = await create(dir, { buildConfig: undefined });
  const s2 = await startServer({ llm: none, port: 0, modelName: "kjv" });
  try {
    const r = await fetch(`${s2.url}/v1/completions`, { method: "POST", body: JSON.stringify({ model: "kjv", prompt: "In the beginning", ignore_eos: true }) });
    assert.equal(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 16);
  } finally {
    await s2.close(1000);
    await none.shutdown();
  }
});

function argvFor(args: string[]): string[] {
  return isDeno ? ["run", "-A", cli, ...args] : [cli, ...args];
}

function runCli(args: string[], env: Record<string, string>): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(proc.execPath, argvFor(args), { encoding: "utf8", env: { ...proc.env, ...env }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("llmrt generate --generation-config: auto (default) fills unset options and says so; given options win; none ignores the file", () => {
  const dir = checkpointWith(STORIES, { do_sample: false, max_new_tokens: 6 });
  const env = { LLMRT_CACHE_DIR: tmp("llmrt-cache-") };
  const base = ["generate", "Once upon a time", "--model", dir, "--backend", "cpu"];
  const auto = runCli(base, env);
  assert.equal(auto.code, 0, auto.stderr);
  assert.match(auto.stderr, /^llmrt: default sampling parameters from .*generation_config\.json: temperature=0, maxTokens=6 \(/m);
  assert.match(auto.stderr, /prompt \+ 6 generated tokens/);
  const explicit = runCli([...base, "--temperature", "0", "--max-tokens", "6", "--generation-config", "none"], env);
  assert.equal(explicit.code, 0, explicit.stderr);
  assert.equal(auto.stdout, explicit.stdout, "the file's greedy 6 tokens = --temperature 0 --max-tokens 6");
  assert.doesNotMatch(explicit.stderr, /default sampling parameters/);
  const given = runCli([...base, "--max-tokens", "3"], env);
  assert.match(given.stderr, /prompt \+ 3 generated tokens/, given.stderr);
  const bad = runCli([...base, "--generation-config", "vllm"], env);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--generation-config: expected one of auto, none, got "vllm"/);
  const serveOpts = COMMANDS.find((c) => c.name === "serve")!.options;
  assert.equal(parseArgs("serve", [], serveOpts).values["generation-config"], "auto", "serve defaults to auto, as vLLM's server");
  assert.equal(parseArgs("serve", ["--generation-config", "none"], serveOpts).values["generation-config"], "none");
});

test("llmrt serve applies the model's generation_config.json by default (--generation-config auto)", async () => {
  const dir = checkpointWith(STORIES, { do_sample: false, max_new_tokens: 5 });
  const child = spawn(proc.execPath, argvFor(["serve", "--model", dir, "--backend", "cpu", "--port", "0", "--served-model-name", "s"]), {
    env: { ...proc.env, LLMRT_CACHE_DIR: tmp("llmrt-cache-") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on("data", (d: Uint8Array) => {
        stderr += new TextDecoder().decode(d);
        const m = /at (http:\/\/\S+)/.exec(stderr);
        if (m) resolve(m[1]);
      });
      child.on("exit", () => reject(new Error(`serve exited early: ${stderr}`)));
    });
    assert.match(stderr, /default sampling parameters from .*generation_config\.json: temperature=0, maxTokens=5/);
    const r = await fetch(`${url}/v1/completions`, { method: "POST", body: JSON.stringify({ model: "s", prompt: "Once upon a time", ignore_eos: true }) });
    const j = await r.json() as { usage: { completion_tokens: number } };
    assert.equal(j.usage.completion_tokens, 5);
    proc.kill(child.pid!, "SIGTERM");
    assert.equal(await exited, 0, stderr);
  } finally {
    child.kill("SIGKILL");
  }
});

test("llmrt build: the engine directory carries the checkpoint's generation_config.json (also with --tokenizer) and runs with its defaults", async () => {
  const sampling = { do_sample: true, temperature: 0.7, top_k: 5, max_new_tokens: 9 };
  const dir = checkpointWith(STORIES, sampling);
  const build = COMMANDS.find((c) => c.name === "build")!;
  const out = path.join(tmp("llmrt-engine-"), "e");
  // --tokenizer: stories260k's own directory, whose generation_config.json has end ids only.
  const args = parseArgs("build", ["--model", dir, "--out", out, "--backend", "cpu", "--tokenizer", STORIES, "--max-batch-size", "4"], build.options);
  const log = console.log;
  console.log = () => {};
  try {
    assert.equal(await build.run(args), 0);
  } finally {
    console.log = log;
  }
  assert.equal(fs.readFileSync(path.join(out, "generation_config.json"), "utf8"), fs.readFileSync(path.join(dir, "generation_config.json"), "utf8"));
  assert.deepEqual(readGenerationDefaults(out), readGenerationDefaults(dir));
  const fromEngine = await create(out, { generationConfig: "auto", buildConfig: undefined });
  const fromCkpt = await create(dir, { generationConfig: "auto" });
  try {
    assert.deepEqual(fromEngine.generationDefaults, { temperature: 0.7, topK: 5, maxTokens: 9 });
    const e = await fromEngine.generate("Once upon a time", { seed: 11, ignoreEos: true });
    const c = await fromCkpt.generate("Once upon a time", { seed: 11, ignoreEos: true });
    assert.equal(e.outputs[0].tokenIds.length, 9);
    assert.deepEqual(e.outputs[0].tokenIds, c.outputs[0].tokenIds, "the engine samples as its checkpoint does");
  } finally {
    await fromEngine.shutdown();
    await fromCkpt.shutdown();
  }
  // A bad value is reported at build time (a warning: the file is copied as is).
  const badDir = checkpointWith(STORIES, { top_p: 7 });
  const errors: string[] = [];
  const err = console.error;
  console.error = (...a: unknown[]) => void errors.push(a.join(" "));
  console.log = () => {};
  try {
    assert.equal(await build.run(parseArgs("build", ["--model", badDir, "--out", path.join(tmp("llmrt-engine-"), "b"), "--backend", "cpu"], build.options)), 0);
  } finally {
    console.error = err;
    console.log = log;
  }
  assert.match(errors.join("\n"), /llmrt build: warning: .*generation_config\.json: top_p: .*got 7/);
});
