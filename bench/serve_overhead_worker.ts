/**
 * The executor's worker for bench/serve_overhead.ts --executor proxy: installs the stand-in model
 * step (its step time and vocabulary from LLMRT_STUB_STEP_MS / LLMRT_STUB_VOCAB, set by the bench),
 * then runs the real worker entry.
 */
import process from "node:process";
import { fakeModelStep } from "./serve_overhead_stub.ts";

fakeModelStep(Number(process.env.LLMRT_STUB_STEP_MS ?? "0"), Number(process.env.LLMRT_STUB_VOCAB));
await import("../lib/executor/worker_main.ts");
