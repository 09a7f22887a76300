// A stand-in executor worker for tests/executor_proxy.test.ts, in plain JavaScript so it starts without a
// type check: answers init (or fails it), holds requests, and crashes — an uncaught error, or a "fatal"
// report — when a request's prompt text asks for it.
const scope = globalThis;

scope.onmessage = (/** @type {MessageEvent} */ e) => {
  const m = e.data;
  if (m.type === "init") {
    if (m.init?.engineDir === "bad") {
      scope.postMessage({ type: "initError", error: { name: "FormatError", message: "simulated: engine cannot be read" } });
      return;
    }
    scope.postMessage({
      type: "ready",
      limits: { maxInputLen: 64, maxSeqLen: 128, maxBatchSize: 8, maxNumTokens: 64, vocabSize: 512, numKvBlocks: 16, tokensPerBlock: 8 },
    });
  } else if (m.type === "submit") {
    if (m.request?.prompt === "crash") throw new Error("simulated crash in the worker");
    if (m.request?.prompt === "fatal") scope.postMessage({ type: "fatal", error: { name: "Error", message: "simulated fatal report" } });
  } else if (m.type === "shutdown") {
    scope.postMessage({ type: "closed" });
  }
};
