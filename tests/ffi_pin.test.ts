/**
 * Deno unloads the libraries a Web Worker opened when the worker ends; NCCL's proxy threads, started by
 * ncclCommInitRank inside a tensor-parallel rank worker, then ran unmapped code and the process
 * segfaulted (the whole of tests/gpu in one Deno process, issue 16 item 6). llmrt's FFI layer pins
 * every library it opens under Deno (RTLD_NODELETE): a library opened in a worker through it stays
 * mapped after the worker ends. Checked with a small system library (libbz2) nothing else loads.
 */
import { existsSync } from "node:fs";
import { assert, isDeno, test } from "./harness.ts";
import { isLibraryLoadedDeno } from "../ffi/runtime.ts";

const LIB = "libbz2.so.1";
const present = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib/aarch64-linux-gnu", "/usr/lib"]
  .some((d) => existsSync(`${d}/${LIB}`));
const reason = !isDeno ? "Deno only (Bun keeps a worker's libraries mapped)" : !present ? `${LIB} is not installed here` : "";

test.skipIf(reason, reason !== "")("ffi: a library a Worker opened through llmrt's FFI stays mapped after the Worker ends (Deno)", async () => {
  assert.equal(isLibraryLoadedDeno(LIB), false, `${LIB} must not be loaded before the test for it to mean anything`);
  const w = new Worker(new URL("./ffi_pin_worker.ts", import.meta.url), { type: "module" });
  try {
    await new Promise<void>((resolve, reject) => {
      w.onmessage = () => resolve();
      w.onerror = (e) => reject(new Error(`worker failed: ${e.message}`));
      w.postMessage(LIB);
    });
  } finally {
    w.terminate();
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(isLibraryLoadedDeno(LIB), true, `${LIB} was unloaded when its worker ended (the pin is missing)`);
});
