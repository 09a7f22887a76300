// decodeNormFold (session 12, issue 16 item 3; lib/backends/cuda/norm_fold.ts): decode steps of more than 8 sequences on
// bf16 engines fold each RMSNorm into the linear after it. Checked without a GPU on the fake device
// (tests/cuda_fake_device.ts): which ops fold (the llama-3.2-1b plan: all 32 layer norms, the final norm stays), the
// launches of a 64-sequence step, and a small random Llama's logits with the fold vs the CPU session and vs the default
// plan (other roundings: W · diag(w) rounded to bf16 instead of the normed activation); steps of up to
// 8 sequences and prefill steps unchanged.
import { type Launch, planLaunches, type StepShape } from "../lib/backends/cuda/launch_plan.ts";
import { normFoldCandidates } from "../lib/backends/cuda/norm_fold.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { bareLlamaPlan, LLAMA_3_2_1B_CONFIG, namedPlanEnv, relL2, sameBits } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const name = (l: Launch): string => (l.kind === "gemm" ? "gemm" : l.kernel);

test("decodeNormFold: the llama-3.2-1b plan folds its 32 layer norms; a 64-sequence step launches no norm but the final one", () => {
  const plan = bareLlamaPlan(LLAMA_3_2_1B_CONFIG);
  const cands = normFoldCandidates(plan);
  assert.equal(cands.length, 32);
  assert.equal(cands.filter((c) => c.consumerKind === "attention").length, 16);
  const env = { ...namedPlanEnv(plan, { fusedDecode: true }), batchAttention: true, batchAttention2: true, batchAttention4: true, decodeLogitsTuned: true };
  const alt = env.weight("residualAlt");
  const folded = { ...env, normFold: true, foldedWeight: (n: string) => env.weight(`folded:${n}`), residualAlt: alt };
  const big: StepShape = { numTokens: 64, numSeqs: 64, numRows: 64, attention: { kind: "decode", numSplits: 2, splitSize: 256 }, sample: true };
  const on = planLaunches(folded, big), off = planLaunches(env, big);
  const count = (ls: Launch[], k: string) => ls.filter((l) => name(l) === k).length;
  assert.equal(count(off, "add_rmsnorm_bf16"), 31);
  assert.equal(count(on, "add_rmsnorm_bf16"), 0);
  assert.equal(count(on, "rmsnorm_bf16"), 1, "the final norm (the lm_head keeps its weight)");
  assert.equal(count(on, "add_inplace_bf16"), 0, "the last layer's add in the down GEMM");
  assert.equal(count(on, "silu_mul_rs_bf16"), 16);
  assert.equal(count(on, "decode_attention_batch4_rs_bf16_hd64"), 16);
  assert.equal(count(off, "rmsnorm_bf16") + count(off, "add_inplace_bf16"), 3);
  assert.equal(off.length - on.length, 33, `${off.length} → ${on.length} launches`);
  const hidden = env.arena + BigInt(plan.buffers.hidden.offset);
  // The residual stream alternates between its plan buffer and residualAlt: each o_proj / down GEMM adds C (the current
  // one) into D (the other), and the linears after it read D.
  let cur = hidden;
  for (const g of on) {
    if (g.kind !== "gemm") continue;
    const op = plan.ops[g.op] as { weight: string };
    if (/qkv|gate_up/.test(op.weight)) {
      assert.equal(g.a, cur, `${op.weight}: reads the residual stream`);
      assert.equal(g.b, env.weight(`folded:${op.weight}`), `${op.weight}: the folded weight`);
    } else if (/o_proj|down/.test(op.weight)) {
      const other = cur === hidden ? alt : hidden;
      assert.deepEqual([g.c, g.d], [cur, other], `${op.weight}: adds the residual out of place`);
      cur = other;
    }
  }
  assert.equal(cur, hidden, "32 adds: back in the plan buffer");
  // Steps of up to 8 sequences and prefill: unchanged.
  for (
    const shape of [{ ...big, numTokens: 8, numSeqs: 8, numRows: 8 }, {
      numTokens: 40,
      numSeqs: 2,
      numRows: 2,
      attention: { kind: "prefill" as const },
      sample: true,
    }]
  ) {
    assert.deepEqual(planLaunches(folded, shape), planLaunches(env, shape), `${shape.numTokens} tokens: unchanged`);
  }
  // batchAttention4Deep: the folded attention on decode_attention_batch4d_rs (128 threads).
  const deep = planLaunches({ ...folded, batchAttention4Deep: true }, big).filter((l) => l.kind === "kernel" && l.kernel.startsWith("decode_attention"));
  assert.ok(deep.length === 16 && deep.every((l) => l.kind === "kernel" && l.kernel === "decode_attention_batch4d_rs_bf16_hd64" && l.block === 128));
  // Without batch4 (batch2 attention) the qkv norms stay (as rmsnorm: the add in the GEMM), the MLP norms fold.
  const two = planLaunches({ ...folded, batchAttention4: false }, big);
  assert.equal(count(two, "rmsnorm_bf16"), 17);
  assert.equal(count(two, "silu_mul_rs_bf16"), 16);
});

const RAW = {
  vocab_size: 101,
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  max_position_embeddings: 512,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
};

for (const hd of [64, 128]) {
  test(`decodeNormFold (hd ${hd}): 12-sequence decode steps near the CPU session as the default plan is, small steps unchanged`, () => {
    const raw = { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: hd };
    const model = randomModel(raw, 41, true, 0.15);
    const build = { backend: "cuda" as const, maxBatchSize: 16, maxNumTokens: 512, maxSeqLen: 96, tokensPerBlock: 4 };
    const bf16 = buildSync(model, { ...build, dtype: "bfloat16" });
    const f32 = buildSync(model, { ...build, backend: "cpu" });
    model.close();
    const V = RAW.vocab_size;
    const opts = { fusedDecode: true, batchAttention: true, batchAttention2: true, batchAttention4: true };
    const fold = new FakeCudaSession(bf16, 16 * 24, 132, false, { ...opts, decodeNormFold: true });
    const def = new FakeCudaSession(bf16, 16 * 24, 132, false, opts);
    const cpu = new CpuSession(f32);
    const kv = cpu.createKvCache(16 * 24);
    const lens = [40, 5, 3, 9, 2, 7, 4, 11, 6, 1, 8, 12];
    const seqs = lens.map((n, s) => ({
      ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
      blocks: Array.from({ length: 24 }, (_, j) => s * 24 + j),
    }));
    const pos = lens.map((n) => n - 1), last = seqs.map((s) => s.ids[s.ids.length - 1]);
    const report: string[] = [];
    const run = (what: string, which: number[], graphs: boolean, prefill = false): void => {
      const inp = prefill
        ? step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 24)
        : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), 24);
      const want = { sampledIds: new Int32Array(inp.logitRows.length), logits: new Float32Array(inp.logitRows.length * V) };
      cpu.run(inp, want, kv);
      const got = fold.run(inp, graphs), ref = def.run(inp, graphs);
      const folded = fold.lastLaunches.some((l) => l.kind === "kernel" && l.kernel.startsWith("silu_mul_rs"));
      assert.equal(folded, !prefill && which.length > 8, `${what}: folded`);
      if (!folded && what.startsWith("first")) sameBits(got.logits, ref.logits, `${what}: the default plan's bits`);
      const eF = relL2(got.logits, want.logits), eD = relL2(ref.logits, want.logits);
      report.push(`${what}: ${eF.toExponential(2)} (default ${eD.toExponential(2)})`);
      assert.ok(eF < 0.05 && eF < 2 * eD + 0.01, `${what}: folded ${eF} vs the CPU session, default ${eD}`);
      if (prefill) return;
      which.forEach((s, r) => {
        last[s] = want.sampledIds[r];
        pos[s]++;
      });
    };
    const all = lens.map((_, i) => i);
    run("first prefill", all, false, true);
    run("first decode: 4 sequences, graph", all.slice(0, 4), true);
    run("decode 0: 12 sequences, graph bucket 16", all, true);
    run("decode 1: 12 sequences, eager", all, false);
    run("decode 2: 9 sequences, graph", all.slice(0, 9), true);
    run("decode 3: 12 sequences, graph", all, true);
    console.log(`decodeNormFold hd ${hd} vs CPU: ${report.join("; ")}`);
    bf16.dispose();
    f32.dispose();
  });
}
