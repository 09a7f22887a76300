/** Steps of `LLM.create`'s load (lib/llmapi/llm.ts): background cache writes, the parallel check of a cached engine, the host weights' release. */
import process from "node:process";
import type { Engine } from "../builder/engine.ts";
import { LlmrtError } from "../util/errors.ts";
import type { LoadTimer } from "./progress.ts";

/**
 * Waits for background cache writes; a failed one is reported on stderr (the engine in memory is
 * fine, the cache entry is just not there). Returns the directories that were not written.
 */
export async function settleWrites(writes: readonly { dir: string | null; written: Promise<void> }[]): Promise<(string | null)[]> {
  const failed: (string | null)[] = [];
  for (const w of writes) {
    try {
      await w.written;
    } catch (e) {
      failed.push(w.dir);
      process.stderr.write(`llmrt: the engine cache entry ${w.dir} was not written (${(e as Error).message}); the next load builds again\n`);
    }
  }
  return failed;
}

/**
 * Starts the parallel CRC-32 check of a cached engine's blobs (its reads then go unchecked); the
 * promise rejects with a FormatError for a corrupt blob. Where workers cannot run, the blobs are
 * checked on this thread instead, once the load has yielded.
 */
export function checkInBackground(engine: Engine, timer: LoadTimer): Promise<void> {
  const t0 = performance.now();
  const threads = Math.max(1, Math.min(8, ((globalThis.navigator as { hardwareConcurrency?: number } | undefined)?.hardwareConcurrency ?? 2) - 1));
  let started: Promise<number>;
  try {
    started = engine.verifyInBackground(threads);
  } catch (e) {
    started = Promise.reject(e);
  }
  const name = `cache verify (${threads} worker${threads > 1 ? "s" : ""}, beside the load)`;
  const checked = started.then(
    (ms) => timer.add(name, ms),
    (e) => {
      if (e instanceof LlmrtError && e.kind === "format") throw e;
      engine.verify(); // no workers here: the same check on this thread
      timer.add("cache verify (no workers: after the load)", performance.now() - t0);
    },
  );
  checked.catch(() => {}); // awaited by the caller; never unhandled meanwhile
  return checked;
}

/**
 * Lets go of the host weights of engines built in memory once they are on the device (or the
 * proxy's worker loaded them): `engines[i]` reads from `writes[i].dir` from then on where that
 * cache entry was written, else its weights are gone (Engine.releaseHostWeights).
 */
export function releaseHostWeights(engines: readonly (Engine | null)[], writes: readonly { dir: string | null }[], failed: readonly (string | null)[]): void {
  engines.forEach((e, i) => e?.releaseHostWeights(writes[i] && !failed.includes(writes[i].dir) ? writes[i].dir : null));
}
