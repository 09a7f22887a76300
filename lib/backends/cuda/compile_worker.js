/**
 * Entry of one NVRTC compile worker (compile_pool.ts). It imports nothing at load: the first
 * message names the module that compiles (compile_pool.ts), the jobs and the shared control words;
 * the worker marks itself booted, loads that module and compiles jobs until none is left. A module
 * that fails to load is counted in the control words, so the caller stops waiting on this worker.
 */
// Plain JavaScript with no static imports: Deno type-checks a worker's static graph each time one
// starts; the compile code is checked with the library instead (deno check).
const ctx = globalThis;
const DONE = 1, BOOTED = 2, BOOT_FAILED = 3; // compile_pool.ts's control words

ctx.onmessage = (e) => {
  const { module, jobs, control } = e.data;
  const ctl = new Int32Array(control);
  Atomics.add(ctl, BOOTED, 1);
  import(module).then(
    (m) => {
      m.runCompileJobs(jobs, control);
      ctx.close();
    },
    () => {
      Atomics.add(ctl, BOOT_FAILED, 1);
      Atomics.notify(ctl, DONE);
    },
  );
};
