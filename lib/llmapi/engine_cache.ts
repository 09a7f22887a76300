import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { BuildConfigInput } from "../builder/build_config.ts";
import { ENGINE_FORMAT_VERSION } from "../builder/engine_format.ts";

/** Root of llmrt's on-disk caches: `LLMRT_CACHE_DIR`, else `~/.cache/llmrt`. */
export function cacheRoot(): string {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.LLMRT_CACHE_DIR || path.join(os.homedir(), ".cache", "llmrt");
}

/**
 * Directory of the cached engine for an HF checkpoint and build options. The key covers the
 * engine format version, the build options, config.json and each weight file's name, size and
 * modification time, so an edited checkpoint is rebuilt.
 */
export function engineCacheDir(modelDir: string, buildConfig: BuildConfigInput, dtype: string): string {
  const h = createHash("sha256");
  h.update(`llmrt-engine-v${ENGINE_FORMAT_VERSION}\n`);
  h.update(JSON.stringify({ buildConfig, dtype }));
  h.update(fs.readFileSync(path.join(modelDir, "config.json")));
  for (const f of fs.readdirSync(modelDir).sort()) {
    if (!f.endsWith(".safetensors") && !f.endsWith(".json")) continue;
    const st = fs.statSync(path.join(modelDir, f));
    h.update(`${f}:${st.size}:${st.mtimeMs}\n`);
  }
  return path.join(cacheRoot(), "engines", h.digest("hex").slice(0, 24));
}
