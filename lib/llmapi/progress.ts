/**
 * A small progress bar on stderr for `LLM.generate` (tqdm's role), drawn only on a TTY.
 */
import process from "node:process";

/** Where the bar draws. */
export interface ProgressStream {
  write(s: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/**
 * Counts finished requests and tokens; redraws at most every 100 ms.
 *
 * @example
 * ```ts
 * const bar = new ProgressBar(32, { enabled: true });
 * bar.update({ done: 1, inputTokens: 5, outputTokens: 20 });
 * bar.close();
 * ```
 */
export class ProgressBar {
  readonly #total: number;
  readonly #stream: ProgressStream;
  readonly #enabled: boolean;
  readonly #desc: string;
  readonly #t0 = performance.now();
  #last = 0;
  #done = 0;
  #in = 0;
  #out = 0;

  constructor(total: number, options: { enabled?: boolean; desc?: string; stream?: ProgressStream } = {}) {
    this.#total = total;
    this.#stream = options.stream ?? process.stderr;
    this.#enabled = (options.enabled ?? true) && this.#stream.isTTY === true;
    this.#desc = options.desc ?? "Processed prompts";
    this.#draw(true);
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Adds finished requests and their token counts. */
  update(delta: { done?: number; inputTokens?: number; outputTokens?: number }): void {
    this.#done += delta.done ?? 0;
    this.#in += delta.inputTokens ?? 0;
    this.#out += delta.outputTokens ?? 0;
    this.#draw(this.#done === this.#total);
  }

  /** Draws the final state and ends the line. */
  close(): void {
    if (!this.#enabled) return;
    this.#draw(true);
    this.#stream.write("\n");
  }

  #draw(force: boolean): void {
    if (!this.#enabled) return;
    const now = performance.now();
    if (!force && now - this.#last < 100) return;
    this.#last = now;
    const s = Math.max((now - this.#t0) / 1000, 1e-3);
    const width = 24;
    const filled = this.#total > 0 ? Math.round((width * this.#done) / this.#total) : width;
    const bar = "█".repeat(filled) + " ".repeat(width - filled);
    const pct = this.#total > 0 ? Math.floor((100 * this.#done) / this.#total) : 100;
    const line = `${this.#desc}: ${String(pct).padStart(3)}%|${bar}| ${this.#done}/${this.#total} ` +
      `[${s.toFixed(1)}s, ${(this.#in / s).toFixed(1)} in tok/s, ${(this.#out / s).toFixed(1)} out tok/s]`;
    this.#stream.write(`\r${line}\x1b[K`);
  }
}

/** One timed phase of `LLM.create`: its name, wall milliseconds and, where it moved weights, the bytes. */
export interface LoadPhase {
  /** "cache key", "read", "build", "cache write", "open", "upload", "session", ... */
  readonly name: string;
  readonly ms: number;
  readonly bytes?: number;
}

/**
 * How `LLM.create` got its engine and where the time went (`llm.loadStats`).
 * `source`: "engine" (an engine directory), "cache" (the engine cache held it), "build" (built from
 * the checkpoint, no cache), "build+cache" (built and written to the cache), "rebuilt" (the cached
 * engine was corrupt: discarded, rebuilt and cached again).
 */
export interface LoadStats {
  readonly source: "engine" | "cache" | "build" | "build+cache" | "rebuilt";
  readonly totalMs: number;
  /** In the order they ran; "upload" is the part of "session" that copied the weights to the device. */
  readonly phases: readonly LoadPhase[];
}

/**
 * Times the phases of loading a model.
 *
 * @example
 * ```ts
 * const timer = new LoadTimer();
 * const engine = timer.time("open", () => Engine.fromDir(dir));
 * console.log(formatLoadStats(timer.stats("engine")));
 * ```
 */
export class LoadTimer {
  readonly #t0 = performance.now();
  readonly #phases: LoadPhase[] = [];

  /** Runs `fn` as phase `name`. */
  time<T>(name: string, fn: () => T): T {
    const t = performance.now();
    try {
      return fn();
    } finally {
      this.add(name, performance.now() - t);
    }
  }

  /** Records a phase measured elsewhere. */
  add(name: string, ms: number, bytes?: number): void {
    this.#phases.push(bytes === undefined ? { name, ms } : { name, ms, bytes });
  }

  /** The phases so far and the time since the timer started. */
  stats(source: LoadStats["source"]): LoadStats {
    return { source, totalMs: performance.now() - this.#t0, phases: [...this.#phases] };
  }
}

/** One line: `cache key 0.01 s · read 1.20 s (2.47 GB, 2.06 GB/s) · ...`. */
export function formatLoadStats(s: LoadStats): string {
  return s.phases.map((p) => {
    const rate = p.bytes !== undefined && p.ms > 0 ? ` (${(p.bytes / 1e9).toFixed(2)} GB, ${(p.bytes / 1e6 / p.ms).toFixed(2)} GB/s)` : "";
    return `${p.name} ${(p.ms / 1000).toFixed(2)} s${rate}`;
  }).join(" · ");
}
