/**
 * prefillPlanCache: the launch lists of the last few eager steps, by step shape. An eager step's launches depend
 * only on the session (its plan, switches and buffers, fixed for its lifetime), the KV cache it runs on and its
 * StepShape (CudaSession.#eagerLaunches), so a step of a shape seen before reuses the list instead of planning
 * ~150 launches again on the host while the GPU waits for the first one (llama-3.2-1b prefill: ~50–80 µs). Pure:
 * no FFI.
 *
 * @example
 * ```ts
 * const cache = new LaunchCache(8);
 * cache.get(kv, shape, () => planLaunches(env, shape)); // planned
 * cache.get(kv, shape, () => planLaunches(env, shape)); // the same array, not planned
 * ```
 */
import type { Launch, StepShape } from "./launch_types.ts";

export class LaunchCache {
  readonly #lists = new Map<string, readonly Launch[]>();
  readonly #kvIds = new WeakMap<object, number>();
  #nextKv = 0;
  /** Lists planned (misses) and reused (hits) so far. */
  misses = 0;
  hits = 0;

  /** @param capacity lists kept (the least recently used one goes first). */
  constructor(readonly capacity: number) {}

  /** The launches of a step of `shape` on `kv`: the cached list, or `make()`'s (then kept). */
  get(kv: object, shape: StepShape, make: () => readonly Launch[]): readonly Launch[] {
    let id = this.#kvIds.get(kv);
    if (id === undefined) this.#kvIds.set(kv, id = this.#nextKv++);
    const key = `${id}|${shapeKey(shape)}`;
    const hit = this.#lists.get(key);
    if (hit) {
      this.hits++;
      this.#lists.delete(key); // re-inserted: most recently used last
      this.#lists.set(key, hit);
      return hit;
    }
    this.misses++;
    const list = make();
    this.#lists.set(key, list);
    if (this.#lists.size > this.capacity) this.#lists.delete(this.#lists.keys().next().value!);
    return list;
  }

  /** Forgets every list (an address the launch environment holds changed). */
  clear(): void {
    this.#lists.clear();
  }
}

/** Every field of a step shape (nested ones too), by name in sorted order: equal keys, equal shapes. */
export function shapeKey(s: StepShape): string {
  return JSON.stringify(sorted(s));
}

function sorted(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sorted);
  if (v === null || typeof v !== "object") return v;
  const o = v as Record<string, unknown>;
  return Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => [k, sorted(o[k])]);
}
