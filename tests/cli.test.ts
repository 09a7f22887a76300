// The README's main-job path: bin/llmrt.ts generate, run as a subprocess under the current runtime.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assert, isDeno, sharedDir, test } from "./harness.ts";

const cli = new URL("../bin/llmrt.ts", import.meta.url).pathname;
const proc = (globalThis as unknown as { process: { execPath: string; env: Record<string, string> } }).process;

function runCli(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const argv = isDeno ? ["run", "-A", cli, ...args] : [cli, ...args];
  const r = spawnSync(proc.execPath, argv, { encoding: "utf8", env: { ...proc.env, ...env }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("llmrt generate prints the greedy stories260k continuation and tokens/s; the engine is cached", () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-cache-"));
  const args = ["generate", "Once upon a time", "--model", `${sharedDir}models/stories260k`, "--max-tokens", "20", "--temperature", "0", "--backend", "cpu"];
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
  const r = runCli(["generate", "--max-tokens", "24"], { LLMRT_CACHE_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-cache-")) });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^In the beginning/);
  assert.match(r.stderr, /models\/kjv-llama\/ on (cpu|cuda): 4 prompt \+ 24 generated tokens .* tokens\/s/);
});

test("llmrt reports a bad model directory and a bad option clearly, exit code 1", () => {
  const r = runCli(["generate", "hi", "--model", "/nonexistent/model"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /"\/nonexistent\/model" is not a model or engine directory/);
  const r2 = runCli(["generate", "hi", "--model", `${sharedDir}models/stories260k`, "--max-tokens", "lots"]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /--max-tokens: expected a number, got "lots"/);
});
