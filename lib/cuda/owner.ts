/**
 * The ownership contract of every native handle: the release of one handle is a `Release`, kept
 * apart from the JS object that owns it so a FinalizationRegistry can run it when that object is
 * collected (a safety net only), and listed in its parent's `ReleaseSet` so a parent frees its
 * children before itself. `dispose()` runs it at most once.
 */
import process from "node:process";
import { DisposedError } from "../util/errors.ts";

/** One native handle's release. Holds no reference to the JS owner. */
export class Release {
  #fn: (() => void) | null;
  #parent: ReleaseSet | null;

  constructor(readonly what: string, fn: () => void, parent: ReleaseSet | null) {
    this.#fn = fn;
    this.#parent = parent;
    parent?.add(this);
  }

  /** True once released (by dispose, the parent, or the finalizer). */
  get done(): boolean {
    return this.#fn === null;
  }

  /** Releases the handle; later calls do nothing. Throws what the native free throws. */
  run(): void {
    const fn = this.#fn;
    if (!fn) return;
    this.#fn = null;
    this.#parent?.delete(this);
    this.#parent = null;
    fn();
  }
}

/** The children of one parent, released newest first. */
export class ReleaseSet {
  readonly #items = new Set<Release>();
  add(r: Release): void {
    this.#items.add(r);
  }
  delete(r: Release): void {
    this.#items.delete(r);
  }
  get size(): number {
    return this.#items.size;
  }
  /** Releases every child (newest first) and returns the errors raised on the way. */
  releaseAll(): unknown[] {
    const errors: unknown[] = [];
    for (const r of [...this.#items].reverse()) {
      try {
        r.run();
      } catch (e) {
        errors.push(e);
      }
    }
    return errors;
  }
}

const net = new FinalizationRegistry<Release>((r) => {
  try {
    r.run();
  } catch (e) {
    // A finalizer cannot throw to anyone; say so only when tracing native calls.
    if (process.env.LLMRT_TRACE_FFI) process.stderr.write(`[llmrt] finalizer release of ${r.what} failed: ${String(e)}\n`);
  }
});

/** Arms the finalizer net: if `owner` is collected undisposed, `r` runs. */
export function armFinalizer(owner: object, r: Release): void {
  net.register(owner, r, r);
}

/** Disarms the net for `r` (it was released explicitly). */
export function disarmFinalizer(r: Release): void {
  net.unregister(r);
}

export { DisposedError };

/**
 * Base of every owner of one native handle: holds its `Release`, arms the finalizer net, and gives
 * the idempotent `dispose()` / `[Symbol.dispose]` and the live check. A subclass calls `own()` once,
 * right after it has created the handle.
 */
export abstract class NativeOwner {
  #release: Release | null = null;

  protected constructor(readonly ownerName: string) {}

  /** Takes ownership of `release` and arms the finalizer net for it. */
  protected own(release: Release): void {
    this.#release = release;
    armFinalizer(this, release);
  }

  /** True once released (or never owned: the constructor failed). */
  get isDisposed(): boolean {
    return this.#release?.done ?? true;
  }

  /** Throws DisposedError when the handle is gone. */
  protected assertLive(): void {
    if (this.isDisposed) throw new DisposedError(this.ownerName);
  }

  /** Releases the handle (children first, where it has any). Idempotent. */
  dispose(): void {
    const r = this.#release;
    if (!r || r.done) return;
    disarmFinalizer(r);
    r.run();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
