/**
 * The executor's worker for bench/serve_overhead.ts --executor proxy: the real worker entry, with
 * the stand-in model step installed (its step time and vocabulary from LLMRT_STUB_STEP_MS /
 * LLMRT_STUB_VOCAB, set by the bench) before the first message is handled. Static imports only:
 * the entry must set its message handler while the module graph evaluates, or the init message
 * posted at once may find none.
 */
import process from "node:process";
import { fakeModelStep } from "./serve_overhead_stub.ts";
import "../lib/executor/worker_main.ts";

fakeModelStep(Number(process.env.LLMRT_STUB_STEP_MS ?? "0"), Number(process.env.LLMRT_STUB_VOCAB));
