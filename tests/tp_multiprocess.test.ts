/**
 * Tensor parallelism over OS processes on the CPU (issue 17 item 4): rank 0 in this process
 * (`tpMaster`), rank 1 a `llmrt tp-worker` child process joined over TCP on 127.0.0.1. TP=2 over
 * two processes gives TP=1's greedy ids and logits within 1e-5 on kjv-llama float32; a rank whose
 * process is killed mid-generation, one that never connects, one refused, and one holding another
 * engine all end in errors within seconds, never a hang.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assert, isDeno, test } from "./harness.ts";
import { AutoModelForCausalLM, build, Engine, LLM, ModelRunner } from "../mod.ts";
import { WorkerError } from "../lib/util/errors.ts";
import { freePort } from "./tp_ports.ts";

const KJV = new URL("../models/kjv-llama/", import.meta.url).pathname;
const CLI = new URL("../bin/llmrt.ts", import.meta.url).pathname;
const PROFILE = { maxBatchSize: 4, maxNumTokens: 128, maxSeqLen: 128, dtype: "float32" } as const;
const PROMPTS = [[0, 403, 407, 261, 378], [0, 55, 66, 77, 88, 99, 120]];
const NEW_TOKENS = 16;
const proc = (globalThis as unknown as { process: { execPath: string; env: Record<string, string> } }).process;
const tmp = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** A `llmrt tp-worker` child; `done` resolves with its exit code and output. */
function tpWorker(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<{ code: number | null; log: string }> } {
  const argv = isDeno ? ["run", "-A", CLI, "tp-worker", ...args] : [CLI, "tp-worker", ...args];
  const child = spawn(proc.execPath, argv, { env: { ...proc.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout!.on("data", (c: Uint8Array) => (log += new TextDecoder().decode(c)));
  child.stderr!.on("data", (c: Uint8Array) => (log += new TextDecoder().decode(c)));
  const done = new Promise<{ code: number | null; log: string }>((resolve) => child.on("close", (code) => resolve({ code, log })));
  return { child, done };
}

async function engineDirs(): Promise<{ one: string; two: string }> {
  const root = tmp("llmrt-tp-mp-");
  const model = AutoModelForCausalLM.fromHuggingFace(KJV);
  try {
    for (const [name, tp] of [["one", 1], ["two", 2]] as const) {
      const e = await build(model, { ...PROFILE, tensorParallelSize: tp });
      e.save(path.join(root, name));
      e.dispose();
    }
  } finally {
    model.close();
  }
  return { one: path.join(root, "one"), two: path.join(root, "two") };
}

function greedy(dir: string, tp?: { tpMaster: string; rendezvousTimeoutMs: number }): { ids: number[][]; logits: Float32Array[][] } {
  const engine = Engine.fromDir(dir);
  const runner = ModelRunner.fromEngine(engine, tp ? { tp } : {});
  try {
    const out = runner.generate(PROMPTS, { maxNewTokens: NEW_TOKENS, outputGenerationLogits: true });
    return { ids: out.outputIds, logits: out.generationLogits! };
  } finally {
    runner.session.dispose();
    engine.dispose();
  }
}

test("tp over processes: TP=2 as two OS processes (rank 1 a `llmrt tp-worker`) gives TP=1's greedy ids and logits within 1e-5", async () => {
  const { one, two } = await engineDirs();
  const master = `127.0.0.1:${await freePort()}`;
  const w = tpWorker(["--tp-master", master, "--rank", "1", "--tp", "2", "--model", two]);
  const t0 = Date.now();
  const got = greedy(two, { tpMaster: master, rendezvousTimeoutMs: 60_000 });
  const want = greedy(one);
  const { code, log } = await w.done;
  assert.equal(code, 0, `the rank 1 process exits 0 once rank 0 ends the session:\n${log}`);
  assert.match(log, /rank 1 of 2: engine opened/);
  assert.deepEqual(got.ids, want.ids, "TP=2 over processes: greedy ids differ from TP=1");
  let worst = 0;
  for (let s = 0; s < PROMPTS.length; s++) {
    for (let k = 0; k < NEW_TOKENS; k++) {
      const a = got.logits[s][k], b = want.logits[s][k];
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    }
  }
  console.log(`tp over 2 processes: max |logit diff| vs TP=1 ${worst.toExponential(2)}; ${Date.now() - t0} ms incl. rank 1's start`);
  assert.ok(worst < 1e-5, `logits: max |diff| ${worst} vs TP=1 (bound 1e-5)`);
}, 180_000);

test(
  "tp over processes: LLM.create({ tpMaster }) with rank 1 built from the checkpoint; killing rank 1's process mid-generation fails the request, never hangs",
  async () => {
    const master = `127.0.0.1:${await freePort()}`;
    const w = tpWorker(["--tp-master", master, "--rank", "1", "--model", KJV], { LLMRT_CACHE_DIR: tmp("llmrt-tp-cache-") });
    const opts = {
      model: KJV,
      backend: "cpu",
      dtype: "float32",
      cacheEngine: false,
      buildConfig: { maxBatchSize: 4, maxNumTokens: 128, maxSeqLen: 128 },
    } as const;
    let want: string;
    {
      await using llm = await LLM.create(opts);
      want = (await llm.generate("In the beginning", { maxTokens: 12, temperature: 0 })).outputs[0].text;
    }
    const llm = await LLM.create({ ...opts, tensorParallelSize: 2, tpMaster: master, tpRendezvousTimeoutMs: 60_000 });
    try {
      assert.equal(
        (await llm.generate("In the beginning", { maxTokens: 12, temperature: 0 })).outputs[0].text,
        want,
        "TP=2 over processes: TP=1's greedy text",
      );
      const t0 = Date.now();
      let outputs = 0;
      const failed = (async () => {
        for await (const _ of llm.generateAsync("And God said", { maxTokens: 100, temperature: 0, ignoreEos: true }, { streaming: true })) {
          if (++outputs === 3) w.child.kill("SIGKILL");
        }
      })();
      await assert.rejects(failed, (e: Error) => {
        console.log(`after ${outputs} outputs, rank 1 killed: ${e.name}: ${e.message}`);
        return /rank 1/.test(e.message);
      }, "the request in flight fails naming rank 1");
      assert.ok(outputs >= 3 && outputs < 100, `${outputs} outputs before the failure`);
      await assert.rejects(llm.generate("Again", { maxTokens: 4 }), /rank 1|tensor-parallel/, "later requests fail too");
      assert.ok(Date.now() - t0 < 30_000, `failed within ${Date.now() - t0} ms`);
      const { code } = await w.done;
      assert.notEqual(code, 0);
    } finally {
      await llm.shutdown();
    }
  },
  180_000,
);

test("tp over processes: a rank that never connects, one refused and one with another engine end the start with errors naming them", async () => {
  const { two } = await engineDirs();
  // Nobody comes: the rendezvous timeout ends the start.
  let master = `127.0.0.1:${await freePort()}`;
  let t0 = Date.now();
  assert.throws(() => greedy(two, { tpMaster: master, rendezvousTimeoutMs: 1500 }), (e: Error) => {
    assert.ok(e instanceof WorkerError, String(e));
    assert.match(e.message, /rank 1: it did not connect to --tp-master 127\.0\.0\.1:\d+ within 1500 ms/);
    return true;
  });
  assert.ok(Date.now() - t0 < 15_000, `gave up after ${Date.now() - t0} ms`);

  // A rank outside the group is refused (it exits 1 saying why); rank 0 still waits for rank 1 only.
  master = `127.0.0.1:${await freePort()}`;
  const bad = tpWorker(["--tp-master", master, "--rank", "3", "--model", two, "--connect-timeout", "60"]);
  assert.throws(() => greedy(two, { tpMaster: master, rendezvousTimeoutMs: 4000 }), /rank 1: it did not connect/);
  const refused = await bad.done;
  assert.equal(refused.code, 1, refused.log);
  assert.match(refused.log, /refused it: rank 3 outside \[1, 2\)/);

  // Rank 1 holds a differently built engine: refused by its fingerprint, the start fails.
  const other = tmp("llmrt-tp-other-");
  const model = AutoModelForCausalLM.fromHuggingFace(KJV);
  const e = await build(model, { ...PROFILE, maxSeqLen: 64, tensorParallelSize: 2 });
  e.save(other);
  e.dispose();
  model.close();
  master = `127.0.0.1:${await freePort()}`;
  const wrong = tpWorker(["--tp-master", master, "--rank", "1", "--model", other]);
  t0 = Date.now();
  assert.throws(() => greedy(two, { tpMaster: master, rendezvousTimeoutMs: 60_000 }), /engine differs from rank 0's/);
  assert.ok(Date.now() - t0 < 60_000);
  assert.equal((await wrong.done).code, 1);
}, 180_000);
