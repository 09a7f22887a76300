// prefillRopeQ (session 14): prefill steps on flash_prefill_wg rotate q in the attention's Q load
// (flash_prefill_wg{t}_rq_bf16_hd*: q read from the qkv rows) and RoPE runs rope_kv_write_tab_bf16 (k / v into the cache,
// each token's cos / sin row into the q buffer). On the fake device (tests/cuda_fake_device.ts) the logits and KV cache
// are the default plan's bits; the last layer of a pruned step (its q rows gathered) and decode steps keep their kernels;
// with prefillPdl the new kernels take programmatic dependent launch. The kernels' arithmetic (the same expressions and
// rounding as rope_kv_write_bf16's vector path): tests/gpu/flash_prefill.test.ts, bench/prefill_ttft.ts (logits bitwise).
import type { KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits, sameKvCache } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const RAW = {
  vocab_size: 97,
  hidden_size: 256,
  intermediate_size: 384,
  num_hidden_layers: 3,
  max_position_embeddings: 512,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
};

for (const [hd, nH, nKV, scan, pdl] of [[64, 4, 1, true, false], [128, 4, 2, true, true], [64, 8, 2, false, true]] as const) {
  test(`prefillRopeQ: head dim ${hd}, ${nH}/${nKV} heads, tile scan ${scan}, prefillPdl ${pdl}: logits / KV as without it; which layers take it`, () => {
    const model = randomModel({ ...RAW, num_attention_heads: nH, num_key_value_heads: nKV, head_dim: hd }, 57 + hd + nH, true, 0.15);
    let engine;
    try {
      engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 4, maxNumTokens: 256, maxSeqLen: 320, tokensPerBlock: 16 });
    } finally {
      model.close();
    }
    const numBlocks = 64, L = engine.plan.attributes.numLayers, V = engine.plan.attributes.vocabSize;
    const opts = { wgmmaPrefill: true, prefillTileScan: scan, ...(pdl ? { prefillPdl: true } : {}) };
    const rq = new FakeCudaSession(engine, numBlocks, 132, false, { ...opts, prefillRopeQ: true });
    const ref = new FakeCudaSession(engine, numBlocks, 132, false, opts);
    const seqs = [200, 7, 1].map((n, s) => ({
      ids: Array.from({ length: n }, (_, j) => (s * 13 + j * 5 + 2) % V),
      blocks: Array.from({ length: 20 }, (_, j) => s * 20 + j),
    }));
    const named = (f: FakeCudaSession, re: RegExp): KernelLaunch[] => f.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && re.test(l.kernel));
    const run = (what: string, inp: ReturnType<typeof step>, ropeQLayers: number): void => {
      const a = rq.run(inp, false), b = ref.run(inp, false);
      sameBits(a.logits, b.logits, `${what}: logits`);
      sameKvCache(rq, ref, L, what);
      const tab = named(rq, /^rope_kv_write_tab_bf16$/), att = named(rq, /^flash_prefill_wgt?_rq_bf16_hd/);
      assert.equal(tab.length, ropeQLayers, `${what}: rope_kv_write_tab launches`);
      assert.equal(att.length, ropeQLayers, `${what}: _rq attention launches`);
      assert.equal(named(rq, /^rope_kv_write_(pdl_)?bf16$/).length, L - ropeQLayers, `${what}: the other layers' RoPE`);
      for (const l of att) assert.equal(l.kernel, `flash_prefill_wg${scan ? "t" : ""}_rq_bf16_hd${hd}`);
      for (const l of [...tab, ...att]) assert.equal(!!l.pdl, pdl, `${what}: ${l.kernel} pdl`);
    };
    const pruned = step(
      [{ ids: seqs[0].ids.slice(0, 150), pos: 0, blocks: seqs[0].blocks }, { ids: seqs[1].ids.slice(0, 6), pos: 0, blocks: seqs[1].blocks }],
      20,
    );
    run("prefill, last layer pruned", pruned, L - 1);
    const mixed = step([
      { ids: seqs[0].ids.slice(150, 199), pos: 150, blocks: seqs[0].blocks },
      { ids: seqs[1].ids.slice(6, 7), pos: 6, blocks: seqs[1].blocks },
      { ids: seqs[2].ids, pos: 0, blocks: seqs[2].blocks },
    ], 20);
    mixed.logitRows[1] = mixed.logitRows[0]; // rows not increasing: no pruning, every layer takes it
    run("mixed, not pruned", mixed, L);
    const dec = step([{ ids: seqs[0].ids.slice(199), pos: 199, blocks: seqs[0].blocks }, { ids: [3], pos: 7, blocks: seqs[1].blocks }], 20);
    run("decode", dec, 0);
  });
}
