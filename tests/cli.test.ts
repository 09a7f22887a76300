// The CLI (bin/llmrt.ts) as a user runs it: subprocesses under the current runtime.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type OptionSpec, parseArgs, UsageError } from "../bin/cli/args.ts";
import { COMMANDS } from "../bin/commands/index.ts";
import { assert, isDeno, sharedDir, test } from "./harness.ts";

const cli = new URL("../bin/llmrt.ts", import.meta.url).pathname;
const proc = (globalThis as unknown as { process: { execPath: string; env: Record<string, string> } }).process;
const STORIES = `${sharedDir}models/stories260k`;

function argvFor(args: string[]): string[] {
  return isDeno ? ["run", "-A", cli, ...args] : [cli, ...args];
}

function runCli(args: string[], env: Record<string, string> = {}, input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(proc.execPath, argvFor(args), { encoding: "utf8", env: { ...proc.env, ...env }, timeout: 120_000, input });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tmp = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

test("llmrt generate prints the greedy stories260k continuation and tokens/s; the engine is cached", () => {
  const cache = tmp("llmrt-cache-");
  const args = ["generate", "Once upon a time", "--model", STORIES, "--max-tokens", "20", "--temperature", "0", "--backend", "cpu"];
  const first = runCli(args, { LLMRT_CACHE_DIR: cache });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^Once upon a time, there was a little girl named Lily\. She loved to play/);
  assert.match(first.stderr, /tokens\/s/);
  const engines = fs.readdirSync(path.join(cache, "engines"));
  assert.equal(engines.length, 1);
  assert.ok(fs.existsSync(path.join(cache, "engines", engines[0], "rank0.engine")));
  const second = runCli(args, { LLMRT_CACHE_DIR: cache });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout, first.stdout);
});

test("llmrt generate with no --model uses the embedded kjv-llama model", () => {
  const r = runCli(["generate", "--max-tokens", "24"], { LLMRT_CACHE_DIR: tmp("llmrt-cache-") });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^In the beginning/);
  assert.match(r.stderr, /models\/kjv-llama\/ on (cpu|cuda): 4 prompt \+ 24 generated tokens .* tokens\/s/);
});

test("llmrt reports a bad model directory (exit 1) and bad options naming the flag and value (exit 2)", () => {
  const r = runCli(["generate", "hi", "--model", "/nonexistent/model"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /"\/nonexistent\/model" is not a model or engine directory/);
  const t = runCli(["generate", "hi", "--temperature", "-1"]);
  assert.equal(t.code, 2);
  assert.match(t.stderr, /^llmrt: --temperature: must be >= 0, got -1$/m);
  const u = runCli(["launch"]);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /unknown command "launch"; commands: generate, chat, serve, build, bench/);
});

test("CLI option validation names the flag and the value (each command's own option table)", () => {
  const options = (name: string): readonly OptionSpec[] => COMMANDS.find((c) => c.name === name)!.options;
  const cases: [string, string[], RegExp][] = [
    ["generate", ["hi", "--max-tokens", "lots"], /^--max-tokens: expected a number, got "lots"$/],
    ["generate", ["--top-p", "0"], /^--top-p: must be > 0, got 0$/],
    ["generate", ["--max-tokens", "1.5"], /^--max-tokens: expected an integer, got 1.5$/],
    ["generate", ["--backend", "tpu"], /^--backend: expected one of auto, cpu, cuda, got "tpu"$/],
    ["serve", ["--port", "70000"], /^--port: must be <= 65535, got 70000$/],
    ["serve", ["--max-queue", "-2"], /^--max-queue: must be >= 0, got -2$/],
    ["generate", ["--frobnicate"], /^unknown option --frobnicate for "generate" \(see llmrt generate --help\)$/],
    ["generate", ["--seed"], /^--seed: needs a value/],
    ["generate", ["--stream=maybe"], /^--stream: expected true or false, got "maybe"$/],
  ];
  for (const [cmd, args, re] of cases) {
    assert.throws(() => parseArgs(cmd, args, options(cmd)), (e: Error) => e instanceof UsageError && re.test(e.message), `${cmd} ${args.join(" ")}`);
  }
  const ok = parseArgs("generate", ["a", "--temperature=0.5", "b", "--stop", "x", "--stop", "y", "--stream"], options("generate"));
  assert.deepEqual(ok.positionals, ["a", "b"]);
  assert.equal(ok.values.temperature, 0.5);
  assert.deepEqual(ok.values.stop, ["x", "y"]);
  assert.equal(ok.values.stream, true);
  assert.equal(ok.values["max-tokens"], 128, "defaults applied");
});

test("llmrt --help lists the commands; llmrt <command> --help lists its options", () => {
  const h = runCli(["--help"]);
  assert.equal(h.code, 0);
  for (const c of ["generate", "chat", "serve", "build", "bench"]) assert.match(h.stdout, new RegExp(`^  ${c} `, "m"));
  const s = runCli(["serve", "--help"]);
  assert.equal(s.code, 0);
  assert.match(s.stdout, /^usage: llmrt serve/);
  for (
    const o of [
      "--model DIR",
      "--host",
      "--port",
      "--api-key",
      "--backend",
      "--max-batch-size",
      "--max-seq-len",
      "--max-num-tokens",
      "--max-queue",
      "--served-model-name",
      "--tokenizer DIR",
    ]
  ) {
    assert.ok(s.stdout.includes(o), `serve --help mentions ${o}`);
  }
  const none = runCli([]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /usage: llmrt <command>/);
});

test("llmrt build copies the tokenizer files, so generate --model ENGINE_DIR works; --tokenizer serves a bare engine", () => {
  const out = path.join(tmp("llmrt-engine-"), "stories");
  const b = runCli(["build", "--model", STORIES, "--out", out, "--backend", "cpu", "--max-batch-size", "4"]);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /tokenizer files copied: tokenizer\.json, tokenizer_config\.json/);
  for (const f of ["config.json", "rank0.engine", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]) {
    assert.ok(fs.existsSync(path.join(out, f)), f);
  }
  const args = ["generate", "Once upon a time", "--max-tokens", "12", "--temperature", "0", "--backend", "cpu"];
  const g = runCli([...args, "--model", out]);
  assert.equal(g.code, 0, g.stderr);
  assert.match(g.stdout, /^Once upon a time, there was a little girl named Lily/);
  // A bare engine (no tokenizer files) says what to do, and works with --tokenizer.
  fs.rmSync(path.join(out, "tokenizer.json"));
  const bare = runCli([...args, "--model", out]);
  assert.equal(bare.code, 1);
  assert.match(bare.stderr, /has no tokenizer\.json; pass --tokenizer DIR/);
  const withTok = runCli([...args, "--model", out, "--tokenizer", STORIES]);
  assert.equal(withTok.code, 0, withTok.stderr);
  assert.equal(withTok.stdout, g.stdout);
});

test("llmrt chat streams replies, keeps the conversation and forgets it on /reset", () => {
  const env = { LLMRT_CACHE_DIR: tmp("llmrt-cache-") };
  const opts = ["chat", "--max-tokens", "12", "--temperature", "0", "--backend", "cpu"];
  const r = runCli(opts, env, "Who made the earth?\nAnd the sea?\n/reset\nAnd the sea?\n");
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  assert.equal(lines[2], "[conversation reset]");
  assert.ok(lines[0].length > 0 && lines[1].length > 0 && lines[3].length > 0);
  // The same question alone (after /reset) answers as a fresh conversation does, and differs from
  // the answer that had the first turn as context.
  const fresh = runCli(opts, env, "And the sea?\n");
  assert.equal(fresh.stdout.split("\n")[0], lines[3]);
  assert.notEqual(lines[1], lines[3]);
});

test("llmrt bench throughput and latency print a table or JSON", () => {
  const args = ["--model", STORIES, "--backend", "cpu", "--num-requests", "4", "--input-len", "16", "--output-len", "8"];
  const t = runCli(["bench", "throughput", ...args]);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /^output tokens\/s\s+\d+/m);
  assert.match(t.stdout, /^TTFT ms p50 \/ p90 \/ p99\s+[\d.]+ \/ [\d.]+ \/ [\d.]+$/m);
  const l = runCli(["bench", "latency", ...args, "--json"]);
  assert.equal(l.code, 0, l.stderr);
  const j = JSON.parse(l.stdout);
  assert.equal(j.workload, "latency");
  assert.equal(j.numRequests, 4);
  assert.ok(j.outputTokensPerS > 0 && j.ttftMs.p50 > 0 && j.itlMs.p50 > 0);
});

test("llmrt serve answers over HTTP and exits 0 on SIGTERM after finishing the request in flight", async () => {
  const child = spawn(
    proc.execPath,
    argvFor(["serve", "--model", STORIES, "--backend", "cpu", "--port", "0", "--served-model-name", "stories", "--api-key", "k"]),
    {
      env: { ...proc.env, LLMRT_CACHE_DIR: tmp("llmrt-cache-") },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on("data", (d: Uint8Array) => {
      stderr += new TextDecoder().decode(d);
      const m = /at (http:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]);
    });
    child.on("exit", () => reject(new Error(`serve exited early: ${stderr}`)));
  });
  try {
    const headers = { "content-type": "application/json", authorization: "Bearer k" };
    const res = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify({ model: "stories", prompt: "Once upon a time", max_tokens: 64, temperature: 0, stream: true }),
    });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let body = (await reader.read()).value ?? "";
    // process.kill, not child.kill: Deno's child_process then reports the exit as the signal's.
    (globalThis as unknown as { process: { kill(pid: number, sig: string): void } }).process.kill(child.pid!, "SIGTERM");
    for (let r = await reader.read(); !r.done; r = await reader.read()) body += r.value;
    assert.ok(body.endsWith("data: [DONE]\n\n"));
    assert.match(body, /"finish_reason":"length"/, "the request in flight finished");
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /SIGTERM: draining/);
  } finally {
    child.kill("SIGKILL");
  }
});
