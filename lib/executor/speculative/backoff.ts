/**
 * Adaptive drafting: a sequence whose drafts keep being rejected stops drafting for a while. A verify
 * step costs more than a decode step (k + 1 rows instead of one, and for DraftTarget the draft
 * model's forwards too), so drafts that never pan out make speculation slower than plain decoding —
 * session 6 measured NGram at 0.69× plain on a workload where 2% of drafts were accepted. After
 * `missesBeforePause` verify steps in a row that accept none of a sequence's drafts, that sequence
 * decodes without drafts for 1 step, then 2, 4, … up to `maxPause` steps before it drafts again; one
 * accepted draft token resets it. Output does not change: verification is exact whether or not a step
 * drafts; only when drafts are proposed does.
 *
 * @example
 * ```ts
 * const b = new DraftBackoff();
 * const seq = {};
 * b.record(seq, 4, 0); b.record(seq, 4, 0); // two verify steps, nothing accepted
 * b.shouldDraft(seq); // false: this step decodes without drafts
 * b.shouldDraft(seq); // true: drafting resumes (the next miss pauses 2 steps)
 * ```
 */
export class DraftBackoff {
  readonly #state = new WeakMap<object, { misses: number; skip: number }>();

  constructor(readonly missesBeforePause = 2, readonly maxPause = 32) {}

  /** Whether `key` may draft this step; a paused key counts one step of its pause down. */
  shouldDraft(key: object): boolean {
    const s = this.#state.get(key);
    if (!s || s.skip === 0) return true;
    s.skip--;
    return false;
  }

  /** Records one verify step of `key`: `drafted` tokens proposed, `accepted` of them kept. */
  record(key: object, drafted: number, accepted: number): void {
    if (drafted <= 0) return;
    let s = this.#state.get(key);
    if (accepted > 0) {
      if (s) s.misses = s.skip = 0;
      return;
    }
    if (!s) this.#state.set(key, s = { misses: 0, skip: 0 });
    s.misses++;
    const over = s.misses - this.missesBeforePause;
    if (over >= 0) s.skip = Math.min(this.maxPause, 2 ** over);
  }
}
