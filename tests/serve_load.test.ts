// A CI-sized run of bench/serve_load.ts: concurrent streaming clients with mixed lengths against an
// in-process server; zero errors, and KV blocks back to the baseline afterwards.
import { LLM } from "../mod.ts";
import { startServer } from "../lib/serve/server.ts";
import { LOAD_PROMPTS, runLoad } from "../bench/serve_load.ts";
import { assert, test } from "./harness.ts";

test("serve load: 8 streaming clients for 1.5 s, zero errors, KV back to the baseline", async () => {
  const llm = await LLM.create({ model: new URL("../models/kjv-llama/", import.meta.url).pathname, backend: "cpu", cacheEngine: false });
  const server = await startServer({ llm, port: 0, modelName: "kjv" });
  try {
    const st = server.app.state;
    const kvBefore = st.kvBlocks().used;
    const r = await runLoad({ url: server.url, model: "kjv", concurrency: 8, durationS: 1.5, minTokens: 4, maxTokens: 24, prompts: LOAD_PROMPTS });
    assert.equal(r.errors, 0, r.errorSamples.join("; "));
    assert.ok(r.requests >= 8, `${r.requests} requests`);
    assert.ok(r.outputTokensPerS > 0 && r.ttftMs.p50 > 0 && r.itlMs.p50 > 0);
    assert.equal(st.numActive(), 0);
    assert.equal(st.kvBlocks().used, kvBefore, "KV blocks back to the baseline");
    const m = await st.metrics.text();
    assert.match(m, new RegExp(`^llmrt_requests_total\\{endpoint="completions",state="finished"\\} ${r.requests}$`, "m"));
  } finally {
    await server.close(1000);
    await llm.shutdown();
  }
});
