/**
 * The on-disk engine cache of `LLM.create`: one directory per (checkpoint content, build options,
 * engine format version) under `<cache root>/engines/`, where the cache root is the one every llmrt
 * cache shares (`llmrtCacheDir()`: `LLMRT_CACHE_DIR`, else `XDG_CACHE_HOME/llmrt`, else
 * `~/.cache/llmrt`).
 *
 * Concurrency: an engine is written into a directory of its own (`<key>.tmp-<pid>-<random>`) and
 * published by one `rename` onto `<key>`; a process that loses the race (the rename fails because
 * the winner's directory is there) drops its copy and opens the winner's. Readers never see half an
 * engine. A cached engine that fails to open or verify (truncated, corrupt, an older format) is
 * moved aside and rebuilt.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { llmrtCacheDir } from "../../ffi/cache.ts";
import { type BuildConfigInput, parseBuildConfig } from "../builder/build_config.ts";
import { Engine } from "../builder/engine.ts";
import { ENGINE_FORMAT_VERSION } from "../builder/engine_format.ts";
import { LlmrtError, ValidationError } from "../util/errors.ts";
import type { LoadTimer } from "./progress.ts";

/** Root of llmrt's on-disk caches (the one resolver in ffi/cache.ts). */
export function cacheRoot(): string {
  return llmrtCacheDir();
}

/** Files of a checkpoint directory whose bytes are hashed whole (small: configs and tokenizers). */
const WHOLE_FILES = /\.(json|jinja|model|txt)$/;
/** A weight file up to this size is hashed whole; a bigger one by its header and sampled blocks. */
const FULL_HASH_BYTES = 64 << 20;
const SAMPLE_BLOCKS = 256;
const SAMPLE_BLOCK_BYTES = 64 << 10;

/**
 * A digest of a checkpoint's content: config/tokenizer files byte for byte; each .safetensors file's
 * size and header, plus all of its data up to 64 MiB, else 256 evenly spaced 64 KiB blocks (16 MiB
 * read however big the file). A file replaced with the same size and modification time but other
 * weights changes the digest; an edit confined to bytes between sampled blocks of a big file does
 * not (documented limit: the digest must stay cheap for 100 GB checkpoints).
 */
export function checkpointDigest(modelDir: string): string {
  const h = createHash("sha256");
  for (const f of fs.readdirSync(modelDir).sort()) {
    const file = path.join(modelDir, f);
    const st = fs.statSync(file);
    if (!st.isFile()) continue;
    if (WHOLE_FILES.test(f)) {
      h.update(`${f}\0${st.size}\0`);
      h.update(fs.readFileSync(file));
    } else if (f.endsWith(".safetensors")) {
      h.update(`${f}\0${st.size}\0`);
      hashWeightFile(h, file, st.size);
    }
  }
  return h.digest("hex");
}

function hashWeightFile(h: ReturnType<typeof createHash>, file: string, size: number): void {
  const fd = fs.openSync(file, "r");
  try {
    const read = (pos: number, len: number): Uint8Array => {
      const buf = new Uint8Array(Math.max(0, Math.min(len, size - pos)));
      let done = 0;
      while (done < buf.length) {
        const n = fs.readSync(fd, buf, done, buf.length - done, pos + done);
        if (n <= 0) break;
        done += n;
      }
      return buf.subarray(0, done);
    };
    if (size <= FULL_HASH_BYTES) {
      h.update(read(0, size));
      return;
    }
    const lenBytes = read(0, 8);
    const headerLen = lenBytes.length === 8 ? Number(new DataView(lenBytes.buffer, lenBytes.byteOffset).getBigUint64(0, true)) : 0;
    h.update(read(0, 8 + Math.min(headerLen, FULL_HASH_BYTES)));
    const stride = Math.floor((size - SAMPLE_BLOCK_BYTES) / (SAMPLE_BLOCKS - 1));
    for (let i = 0; i < SAMPLE_BLOCKS; i++) h.update(read(i * stride, SAMPLE_BLOCK_BYTES));
  } finally {
    fs.closeSync(fd);
  }
}

/** Source folders of the code that turns a checkpoint into an engine (relative to this file). */
const BUILDER_SOURCES = ["../builder", "../models", "../ir", "../quantization"];
let builderDigestMemo: string | null = null;

/**
 * A digest of the code that builds engines (the .ts sources of lib/builder, lib/models, lib/ir,
 * lib/quantization, read once per process): llmrt runs from source, so an engine cached by older
 * code (another default, another fusion) is rebuilt rather than served. Where the sources cannot
 * be read (a bundled build) it is empty and the format version alone keys the code.
 */
export function builderDigest(): string {
  if (builderDigestMemo !== null) return builderDigestMemo;
  const h = createHash("sha256");
  try {
    for (const rel of BUILDER_SOURCES) {
      const dir = fileURLToPath(new URL(rel, import.meta.url).href);
      if (!fs.existsSync(dir)) continue;
      for (const f of fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith(".ts")).sort()) {
        h.update(`${rel}/${f}\0`);
        h.update(fs.readFileSync(path.join(dir, f)));
      }
    }
    builderDigestMemo = h.digest("hex");
  } catch {
    builderDigestMemo = "";
  }
  return builderDigestMemo;
}

/**
 * Directory of the cached engine for an HF checkpoint and build options. The key covers the engine
 * format version, the code that builds engines ({@link builderDigest}), the build options and the
 * checkpoint's content ({@link checkpointDigest}).
 */
export function engineCacheDir(modelDir: string, buildConfig: BuildConfigInput, dtype: string): string {
  const h = createHash("sha256");
  h.update(`llmrt-engine-v${ENGINE_FORMAT_VERSION}\n`);
  h.update(builderDigest());
  h.update(JSON.stringify({ buildConfig: parseBuildConfig(buildConfig), dtype })); // defaults filled: equal builds share an entry
  h.update(checkpointDigest(modelDir));
  return path.join(cacheRoot(), "engines", h.digest("hex").slice(0, 24));
}

/** What {@link loadOrBuildCachedEngine} needs. */
export interface CachedEngineRequest {
  /** The HF checkpoint directory. */
  readonly modelDir: string;
  readonly buildConfig: BuildConfigInput;
  readonly dtype: string;
  /** Builds the engine when the cache has none (or a broken one). */
  readonly build: () => Engine;
  /** Files of the checkpoint directory copied beside the engine (tokenizer files), when present. */
  readonly extraFiles?: readonly string[];
  /**
   * How a cached engine is checked before it is returned: "full" reads every blob and checks its
   * CRC-32 (a corrupt one is discarded and rebuilt here); "on-read" checks the header and tensor
   * table only, leaving the blobs' CRC-32s to the reads that load them (each read checks its
   * tensor): the caller must then discard ({@link discardCachedEngine}) and rebuild when loading
   * throws a FormatError. @default "full"
   */
  readonly verify?: "full" | "on-read";
  /**
   * Write a freshly built engine into the cache off the JavaScript thread: the result's `written`
   * settles once it is published (the engine directory exists only then). @default false
   */
  readonly writeInBackground?: boolean;
  /** Receives the phases: "cache key", "open", "cache verify", "cache write". */
  readonly timer?: LoadTimer;
}

/** What {@link loadOrBuildCachedEngine} returns. */
export interface CachedEngine {
  readonly engine: Engine;
  readonly engineDir: string;
  /** "cache": opened from the cache; "build+cache": built now and written to the cache. */
  readonly source: "cache" | "build+cache";
  /**
   * Settles when the cache entry is published (at once unless `writeInBackground`); rejects when
   * the write failed (the engine in memory is fine). The engine must outlive it.
   */
  readonly written: Promise<void>;
}

/**
 * Opens the cached engine of a checkpoint, or builds it and publishes it atomically. Safe with any
 * number of processes doing the same at once; a cached engine that is truncated or corrupt is
 * rebuilt (with `verify: "on-read"`, one whose blobs are corrupt is found by the caller's reads).
 *
 * @example
 * ```ts
 * const { engine, engineDir, written } = loadOrBuildCachedEngine({ modelDir, buildConfig: {}, dtype: "auto", build });
 * await written;
 * ```
 */
export function loadOrBuildCachedEngine(req: CachedEngineRequest): CachedEngine {
  const { dir, engine } = lookupCachedEngine(req);
  if (engine) return { engine, engineDir: dir, source: "cache", written: Promise.resolve() };
  return storeBuiltEngine(req, dir, req.build());
}

/**
 * The first half of {@link loadOrBuildCachedEngine}: the cache directory of the request and the
 * engine in it, opened and checked (null when absent or broken; a broken one is discarded).
 */
export function lookupCachedEngine(req: Omit<CachedEngineRequest, "build">): { dir: string; engine: Engine | null } {
  const timed = <T>(name: string, fn: () => T): T => req.timer ? req.timer.time(name, fn) : fn();
  const dir = timed("cache key", () => engineCacheDir(req.modelDir, req.buildConfig, req.dtype));
  return { dir, engine: openVerified(dir, req.verify ?? "full", timed) };
}

/**
 * The second half of {@link loadOrBuildCachedEngine}: writes `engine` (just built) into the cache
 * directory `dir` from {@link lookupCachedEngine} and publishes it atomically (in the background
 * with `writeInBackground`). Disposes the engine if the write cannot start.
 */
export function storeBuiltEngine(req: Omit<CachedEngineRequest, "build">, dir: string, engine: Engine): CachedEngine {
  const timer = req.timer;
  const t0 = performance.now();
  let tmp = "";
  const finish = (): void => {
    for (const f of req.extraFiles ?? []) {
      const src = path.join(req.modelDir, f);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(tmp, f));
    }
    publish(tmp, dir);
    const bytes = engine.tensorNames().reduce((a, n) => a + engine.tensorInfo(n).bytes, 0);
    timer?.add(req.writeInBackground ? "cache write (background)" : "cache write", performance.now() - t0, bytes);
  };
  try {
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    sweepLeftovers(path.dirname(dir));
    tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    if (!req.writeInBackground) {
      try {
        engine.save(tmp);
        finish();
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
      return { engine, engineDir: dir, source: "build+cache", written: Promise.resolve() };
    }
    const saving = engine.saveAsync(tmp);
    const written = saving.then(finish).finally(() => fs.rmSync(tmp, { recursive: true, force: true }));
    written.catch(() => {}); // the caller awaits it; never an unhandled rejection meanwhile
    return { engine, engineDir: dir, source: "build+cache", written };
  } catch (e) {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    const error = e instanceof LlmrtError ? e : new ValidationError(
      `engine cache: cannot write ${JSON.stringify(dir)} (${(e as Error).message}); set LLMRT_CACHE_DIR to a writable directory or pass cacheEngine: false`,
      "LLMRT_CACHE_DIR",
      cacheRoot(),
    );
    if (req.writeInBackground) {
      // As a failed background write: the engine built is fine, the caller reports the entry unwritten.
      const written = Promise.reject(error);
      written.catch(() => {});
      return { engine, engineDir: dir, source: "build+cache", written };
    }
    engine.dispose();
    throw error;
  }
}

/**
 * Opens the engine in `dir` and checks it (`full`: every blob's CRC-32; `on-read`: header and table
 * only); null when absent. A broken one is moved aside (then rebuilt).
 */
function openVerified(dir: string, verify: "full" | "on-read", timed: <T>(name: string, fn: () => T) => T): Engine | null {
  if (!fs.existsSync(dir)) return null;
  let engine: Engine | null = null;
  try {
    engine = timed("open", () => Engine.fromDir(dir));
    if (verify === "full") timed("cache verify", () => engine!.verify());
    return engine;
  } catch (e) {
    engine?.dispose();
    // Unreadable, corrupt, or written by another llmrt (its config.json does not parse here): rebuild.
    // A ResourceError (too big for this machine) stands: a rebuild would not fit either.
    if (!(e instanceof LlmrtError && (e.kind === "format" || e.kind === "validation"))) throw e;
    discard(dir);
    return null;
  }
}

/** Discards the cache entry in `dir` (found corrupt while loading it): the next load rebuilds it. */
export function discardCachedEngine(dir: string): void {
  discard(dir);
}

/** Renames `tmp` onto `dir`; when another process published first, its engine stands. */
function publish(tmp: string, dir: string): void {
  try {
    fs.renameSync(tmp, dir);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== "ENOTEMPTY" && code !== "EEXIST" && code !== "EPERM" && code !== "EISDIR") throw e;
    if (!Engine.isEngineDir(dir)) throw e;
    // Lost the race: the winner's engine (same key, same content) is in place.
  }
}

/** Removes temp and discarded entries an interrupted process left behind, once they are an hour old. */
function sweepLeftovers(enginesDir: string): void {
  const cutoff = Date.now() - 3600_000;
  for (const f of fs.readdirSync(enginesDir)) {
    if (!/\.(tmp|bad)-\d+-/.test(f)) continue;
    const p = path.join(enginesDir, f);
    try {
      if (fs.statSync(p).mtimeMs < cutoff) fs.rmSync(p, { recursive: true, force: true });
    } catch {
      // gone already (another process swept it)
    }
  }
}

/** Moves a broken cache entry out of the way (atomically, so a concurrent reader sees it whole or not at all), then deletes it. */
function discard(dir: string): void {
  const aside = `${dir}.bad-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    fs.renameSync(dir, aside);
  } catch {
    return; // someone else moved it already
  }
  fs.rmSync(aside, { recursive: true, force: true });
}
