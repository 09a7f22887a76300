/** The stand-in model step of bench/serve_overhead.ts (also installed in its executor worker). */
import { Session } from "../lib/runtime/session.ts";
import type { StepInputs, StepOutputs } from "../lib/ir/step_io.ts";

/**
 * Replaces every Session's step with a stand-in: token ids from a hash of (row, step), a spin of
 * `stepMs`. Returns a function that restores the real step and a counter of steps run.
 */
export function fakeModelStep(stepMs: number, vocabSize: number): { restore: () => void; steps: () => number; stepMs: () => number } {
  const real = Object.getOwnPropertyDescriptor(Session.prototype, "run")!;
  let n = 0, inStep = 0;
  Session.prototype.run = function (_inputs: StepInputs, outputs: StepOutputs): void {
    const t0 = performance.now();
    const ids = outputs.sampledIds!;
    let h = (n++ * 2654435761) >>> 0;
    for (let r = 0; r < ids.length; r++) {
      h = (Math.imul(h ^ (h >>> 15), 2246822519) + r) >>> 0;
      ids[r] = 3 + (h % (vocabSize - 3));
    }
    while (performance.now() - t0 < stepMs) { /* the device's share of a step */ }
    inStep += performance.now() - t0;
  };
  return { restore: () => Object.defineProperty(Session.prototype, "run", real), steps: () => n, stepMs: () => inStep };
}
