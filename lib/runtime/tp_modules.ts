/**
 * Where the tensor-parallel workers' code lives: the worker entry (tp_worker.js, started from a
 * blob URL) and the modules it loads by URL (a rank: tp_rank.ts; rank 0's `--tp-master` hub:
 * tp_hub.ts). Apart from tp_wire.ts so the URLs make no import cycle with the modules they name.
 */
import * as fs from "node:fs";
import { fileURLToPath } from "node:url";

/** The module each rank worker loads (tp_rank.ts; checked with the library by `deno check`). */
export const RANK_MODULE: string = new URL("./tp_rank.ts", import.meta.url).href;
/** The module the hub worker loads (tp_hub.ts). */
export const HUB_MODULE: string = new URL("./tp_hub.ts", import.meta.url).href;

let workerUrlCache: string | null = null;

/**
 * The rank worker's entry (tp_worker.js) as a blob URL. Deno (with type checking on, as under
 * `deno test`) re-checks the whole module graph of the process each time a worker starts from a
 * file, 10+ seconds per rank; a blob entry with no static imports starts at once, and the rank
 * code it imports (by a URL it is sent) was checked with the library.
 */
export function rankWorkerUrl(): string {
  if (workerUrlCache) return workerUrlCache;
  const src = fs.readFileSync(fileURLToPath(new URL("./tp_worker.js", import.meta.url).href), "utf8");
  workerUrlCache = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  return workerUrlCache;
}
