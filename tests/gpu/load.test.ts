/**
 * GPU: LLM.create's load path on CUDA (issue 16 item 4). The weights go up through pinned staging
 * (the upload phase in loadStats covers every engine byte) from the engine built in memory (cold)
 * and read straight from the cached engine file (cache hit, CRC-32s checked on workers beside the
 * load); both give the same greedy ids, and a corrupt cached blob is rebuilt before anything runs.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { LLM } from "../../lib/llmapi/llm.ts";
import { formatLoadStats } from "../../lib/llmapi/progress.ts";
import { assert, sharedDir } from "../harness.ts";
import { blobOffset } from "../hostile/engine_edit.ts";
import { gpuTest } from "./gpu.ts";

const stories = `${sharedDir}models/stories260k`;
const greedy = { maxTokens: 8, temperature: 0 };

gpuTest("load: cold (memory engine) and cached (engine file) uploads through pinned staging give the same ids; a corrupt cached blob is rebuilt", async () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-gpu-load-"));
  const saved = process.env.LLMRT_CACHE_DIR;
  process.env.LLMRT_CACHE_DIR = cache;
  try {
    for (const dtype of ["float32"] as const) { // stories260k on CUDA is checked in float32 (tests/gpu/cuda_session.test.ts)
      const opts = {
        model: stories,
        backend: "cuda" as const,
        dtype,
        buildConfig: { maxBatchSize: 2, maxNumTokens: 256, maxSeqLen: 256, tokensPerBlock: 16 },
        kvCacheConfig: { maxTokens: 1024 },
      };
      const runs: (readonly number[])[] = [];
      let dir = "";
      for (const want of ["build+cache", "cache", "rebuilt"]) {
        if (want === "rebuilt") {
          const file = path.join(dir, "rank0.engine");
          const bytes = fs.readFileSync(file);
          bytes[blobOffset(file, "layers.2.qkv.weight") + 33] ^= 0x04;
          fs.writeFileSync(file, bytes);
        }
        const llm = await LLM.create(opts);
        const s = llm.loadStats;
        assert.equal(s.source, want, formatLoadStats(s));
        const up = s.phases.find((p) => p.name === "upload (pinned)");
        const engineBytes = llm.engine.tensorNames().reduce((a, n) => a + llm.engine.tensorInfo(n).bytes, 0);
        assert.ok(up && up.bytes! >= engineBytes, `${dtype} ${want}: upload ${up?.bytes} bytes for an engine of ${engineBytes}: ${formatLoadStats(s)}`);
        runs.push((await llm.generate([1, 403, 407], greedy, { useTqdm: false })).outputs[0].tokenIds);
        await llm.shutdown();
        dir = llm.engineDir!;
      }
      assert.deepEqual(runs[1], runs[0], `${dtype}: cached = cold`);
      assert.deepEqual(runs[2], runs[0], `${dtype}: rebuilt = cold`);
    }
  } finally {
    if (saved === undefined) delete process.env.LLMRT_CACHE_DIR;
    else process.env.LLMRT_CACHE_DIR = saved;
    fs.rmSync(cache, { recursive: true, force: true });
  }
});
