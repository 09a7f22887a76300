/**
 * The one on-disk cache root of llmrt, shared by built engines (lib/llmapi/engine_cache.ts,
 * `<root>/engines/`), NVRTC CUBINs, the cuBLASLt timing cache and the C shim under Deno:
 * `$LLMRT_CACHE_DIR`, else `$XDG_CACHE_HOME/llmrt`, else `~/.cache/llmrt` (else a directory
 * under the system temp dir when there is no home). Every cache resolves its root here.
 */
import process from "node:process";
import { createHash } from "node:crypto";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** The cache root (not created). */
export function llmrtCacheDir(): string {
  if (process.env.LLMRT_CACHE_DIR) return process.env.LLMRT_CACHE_DIR;
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg) return join(xdg, "llmrt");
  let home = "";
  try {
    home = homedir();
  } catch {
    home = "";
  }
  return home ? join(home, ".cache", "llmrt") : join(tmpdir(), "llmrt-cache");
}

/** Hex SHA-256 of the parts, each followed by a NUL so ("ab","c") and ("a","bc") differ. */
export function sha256Hex(...parts: readonly (string | Uint8Array)[]): string {
  const h = createHash("sha256");
  for (const p of parts) {
    h.update(p);
    h.update("\0");
  }
  return h.digest("hex");
}

/** Writes `data` to `path` through a temporary file and a rename, so readers never see half a file. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}
