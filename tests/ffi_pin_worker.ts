/** Worker fixture of tests/ffi_pin.test.ts: opens the library named in the first message through llmrt's FFI layer. */
import { openPath } from "../ffi/runtime.ts";

self.onmessage = (e: MessageEvent<string>) => {
  const lib = openPath(e.data, { BZ2_bzlibVersion: { args: [], returns: "handle" } });
  lib.symbols.BZ2_bzlibVersion();
  self.postMessage("opened");
};
