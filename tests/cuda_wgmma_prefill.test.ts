// Prefill attention on flash_prefill_wg (Hopper warpgroup MMAs; `wgmmaPrefill`, issue 16 item 2): bf16 plans at head dims
// 64 and 128 launch flash_prefill_wg_bf16_hd* with flashPrefillWgGeometry's grid, block and dynamic shared memory for
// prefill and mixed steps (decode steps keep the decode kernels; f32 plans and other head dims keep their kernels), and
// the step's logits and KV cache equal the default plan's on the fake device (tests/cuda_fake_device.ts, whose stand-ins
// compute what the kernels document). The kernel's arithmetic: tests/gpu/flash_prefill.test.ts and
// tools/cuda-kernel-check/flash_prefill.py on an sm_90 device.
import { flashPrefillWgGeometry, type KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { unitArch } from "../lib/backends/cuda/compiler.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits, sameKvCache } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

test("flashPrefillWgGeometry: the FW_ENTRY tilings (hd 64: 2 warpgroups, 64-key tiles, 3 stages; hd 128: 3 warpgroups, 64-key tiles, 3 stages); hd 64 / 128 only; flash_prefill_wg.cu compiles for sm_90a", () => {
  assert.deepEqual(flashPrefillWgGeometry(64), { rows: 128, threads: 256, sharedMem: (128 + 384) * 128 + 1024 });
  assert.deepEqual(flashPrefillWgGeometry(128), { rows: 192, threads: 384, sharedMem: (192 + 384) * 256 + 1024 });
  assert.ok(flashPrefillWgGeometry(128)!.sharedMem <= 227 * 1024, "within the H100/H200 per-block opt-in limit");
  assert.equal(flashPrefillWgGeometry(32), undefined);
  assert.equal(flashPrefillWgGeometry(96), undefined);
  assert.equal(unitArch("flash_prefill_wg.cu", "sm_90"), "sm_90a");
  assert.equal(unitArch("flash_prefill.cu", "sm_90"), "sm_90");
  assert.equal(unitArch("flash_prefill_wg.cu", "sm_89"), "sm_89");
});

const RAW = {
  vocab_size: 97,
  hidden_size: 256,
  intermediate_size: 384,
  num_hidden_layers: 2,
  max_position_embeddings: 512,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
};
for (const [hd, nH, nKV] of [[64, 4, 1], [128, 4, 2]]) {
  test(`wgmmaPrefill: head dim ${hd} prefill and mixed steps launch flash_prefill_wg_bf16_hd${hd}; logits and KV cache as the default plan's`, () => {
    const model = randomModel({ ...RAW, num_attention_heads: nH, num_key_value_heads: nKV, head_dim: hd }, 31 + hd, true, 0.15);
    let engine;
    try {
      engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 4, maxNumTokens: 256, maxSeqLen: 320, tokensPerBlock: 16 });
    } finally {
      model.close();
    }
    const numBlocks = 60, L = engine.plan.attributes.numLayers;
    const wg = new FakeCudaSession(engine, numBlocks, 132, false, { wgmmaPrefill: true });
    const ref = new FakeCudaSession(engine, numBlocks, 132, false, {});
    const V = engine.plan.attributes.vocabSize;
    const seqs = [150, 7, 1].map((n, s) => ({
      ids: Array.from({ length: n }, (_, j) => (s * 13 + j * 5 + 2) % V),
      blocks: Array.from({ length: 20 }, (_, j) => s * 20 + j),
    }));
    const kinds = (f: FakeCudaSession): string[] =>
      f.lastLaunches.flatMap((l) => (l.kind === "kernel" && /attention|flash/.test(l.kernel) ? [(l as KernelLaunch).kernel] : []));
    const run = (what: string, inp: ReturnType<typeof step>, want: string): void => {
      const a = wg.run(inp, false), b = ref.run(inp, false);
      sameBits(a.logits, b.logits, `${what}: logits`);
      sameKvCache(wg, ref, L, what);
      assert.deepEqual([...new Set(kinds(wg))], [want], `${what}: attention launches`);
    };
    const wantWg = `flash_prefill_wg_bf16_hd${hd}`;
    run(
      "prefill",
      step([{ ids: seqs[0].ids.slice(0, 100), pos: 0, blocks: seqs[0].blocks }, { ids: seqs[1].ids.slice(0, 6), pos: 0, blocks: seqs[1].blocks }], 20),
      wantWg,
    );
    run(
      "mixed (a chunk past a cached prefix, one-token sequences)",
      step([
        { ids: seqs[0].ids.slice(100, 149), pos: 100, blocks: seqs[0].blocks },
        { ids: seqs[1].ids.slice(6, 7), pos: 6, blocks: seqs[1].blocks },
        { ids: seqs[2].ids, pos: 0, blocks: seqs[2].blocks },
      ], 20),
      wantWg,
    );
    const dec = step([{ ids: seqs[0].ids.slice(149), pos: 149, blocks: seqs[0].blocks }, { ids: [3], pos: 7, blocks: seqs[1].blocks }], 20);
    const a = wg.run(dec, false), b = ref.run(dec, false);
    sameBits(a.logits, b.logits, "decode: logits");
    assert.ok(!kinds(wg).some((k) => k.startsWith("flash_prefill_wg")), `decode steps keep the decode kernels: ${kinds(wg)}`);
  });
}

// prefillTileScan (flash_prefill_wgt_*): the grid covers S query tiles of the step's longest sequence each (fewer than
// ceil(T / BM) + S), at least every query tile (the fake device checks), in steps the session-12 A/Bs did not run: hundreds
// of sequences (the lookup past the block's threads: tools/cuda-kernel-check/emu/flash_wg_emu.py), prompts of exactly BM and BM + 1 tokens, a chunk
// continuing a prompt next to one-token rows and new prompts, a sequence with no tokens, the pruned last layer.
for (const [hd, nH, nKV] of [[64, 4, 1], [128, 4, 2]]) {
  test(`prefillTileScan: head dim ${hd}, 200-sequence prefill, mixed, empty-sequence and pruned steps; grid and logits / KV as without it`, () => {
    const model = randomModel({ ...RAW, num_attention_heads: nH, num_key_value_heads: nKV, head_dim: hd }, 41 + hd, true, 0.15);
    let engine;
    try {
      engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 200, maxNumTokens: 1152, maxSeqLen: 512, tokensPerBlock: 16 });
    } finally {
      model.close();
    }
    const BM = flashPrefillWgGeometry(hd)!.rows, L = engine.plan.attributes.numLayers, V = engine.plan.attributes.vocabSize;
    const S = 200, long = 3, maxBlocks = 32, numBlocks = long * maxBlocks + S + 4;
    const blocks = (s: number): number[] => s < long ? Array.from({ length: maxBlocks }, (_, j) => s * maxBlocks + j) : [long * maxBlocks + s];
    const ids = (s: number, n: number, from = 0): number[] => Array.from({ length: n }, (_, j) => (s * 13 + (from + j) * 5 + 2) % V);
    const scan = new FakeCudaSession(engine, numBlocks, 132, false, { wgmmaPrefill: true, prefillTileScan: true });
    const ref = new FakeCudaSession(engine, numBlocks, 132, false, { wgmmaPrefill: true });
    const run = (what: string, seqs: { ids: number[]; pos: number; blocks: number[] }[], pruned: boolean): void => {
      const inp = step(seqs, maxBlocks);
      if (!pruned) inp.logitRows[1] = inp.logitRows[0]; // rows not increasing: no pruning
      const a = scan.run(inp, false), b = ref.run(inp, false);
      sameBits(a.logits, b.logits, `${what}: logits`);
      sameKvCache(scan, ref, L, what);
      const longest = Math.max(...seqs.map((x) => x.ids.length)), T = inp.tokenIds.length, n = seqs.length;
      const fw = scan.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.startsWith("flash_prefill_wg"));
      assert.equal(fw.length, L, `${what}: ${fw.map((l) => l.kernel)}`);
      for (const [j, l] of fw.entries()) {
        assert.equal(l.kernel, `flash_prefill_wgt_bf16_hd${hd}`);
        // The last layer of a pruned step attends its logits rows only: the default bound over them.
        const want = pruned && j === L - 1 ? Math.ceil(n / BM) + n : Math.min(Math.ceil(T / BM) + n, n * Math.ceil(longest / BM));
        assert.equal(l.grid[1], want, `${what}: layer ${j} grid`);
      }
    };
    // Prompts of BM and BM + 1 tokens (one and two tiles), 2 BM - 1, and 197 prompts of 1-2 tokens.
    const lens = (s: number): number => [BM, BM + 1, 2 * BM - 1][s] ?? 1 + (s % 2);
    run("prefill", Array.from({ length: S }, (_, s) => ({ ids: ids(s, lens(s)), pos: 0, blocks: blocks(s) })), true);
    // A chunk continuing prompt 0, one token for every short prompt, prompt 1's next BM - 1 tokens, an empty sequence.
    const mixed = (empty: boolean) =>
      Array.from({ length: S }, (_, s) => {
        if (s === 0) return { ids: ids(0, 40, BM), pos: BM, blocks: blocks(0) };
        if (s === 1) return { ids: ids(1, BM - 1, BM + 1), pos: BM + 1, blocks: blocks(1) };
        if (s === 2) return { ids: empty ? [] : ids(2, 1, 2 * BM - 1), pos: 2 * BM - 1, blocks: blocks(2) };
        return { ids: ids(s, 1, lens(s)), pos: lens(s), blocks: blocks(s) };
      });
    run("mixed", mixed(false), true);
    run("mixed, not pruned", mixed(false), false);
    run("mixed, an empty sequence", mixed(true), false);
  });
}
