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
