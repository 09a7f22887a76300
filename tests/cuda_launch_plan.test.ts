// The CUDA launch plan and step staging, checked without a GPU: a fake device address space and a
// TypeScript stand-in for every kernel (the CPU reference kernels, reading and writing through the
// launch arguments' addresses) run the launch table the CUDA session would run, eagerly and as a
// padded decode bucket; the logits and sampled ids must equal the CPU session's. This checks the
// argument wiring (addresses, strides, row counts, grids, the staging layout) against every
// kernel's signature — not the kernels' arithmetic (tools/cuda-kernel-check does that).
import * as fs from "node:fs";
import * as K from "../lib/backends/cpu/kernels.ts";
import { sampleRow, type SamplingInputs } from "../lib/ir/sampling.ts";
import {
  bucketFor, chooseAttention, decodeBuckets, decodeSplit, graphDecodeSplit, kernelSignature, type KernelLaunch, type Launch,
  type LaunchEnv, MAX_DECODE_SPLITS, planLaunches,
} from "../lib/backends/cuda/launch_plan.ts";
import { isDecodeStep, packStep, stagingLayout, stagingPointers } from "../lib/backends/cuda/step_staging.ts";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import { parsePretrainedConfig } from "../lib/models/config.ts";
import { AutoModelForCausalLM, LlamaForCausalLM, type WeightSource } from "../lib/models/llama.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import type { StepInputs } from "../lib/ir/step_io.ts";
import process from "node:process";
import { assert, sharedDir, test } from "./harness.ts";

const storiesDir = `${process.env.LLMRT_MODELS ?? `${sharedDir}models`}/stories260k`;

// ---- a fake device: regions at distinct addresses ----------------------------------------------

class FakeMemory {
  readonly regions: { base: bigint; buf: ArrayBuffer }[] = [];
  #next = 1n << 32n;
  alloc(bytes: number): bigint {
    const base = this.#next;
    this.regions.push({ base, buf: new ArrayBuffer(Math.ceil(bytes / 8) * 8) });
    this.#next += BigInt(Math.ceil((bytes + 4096) / (1 << 20)) * (1 << 20));
    return base;
  }
  #find(p: bigint, bytes: number): { buf: ArrayBuffer; off: number } {
    for (const r of this.regions) {
      if (p >= r.base && p + BigInt(bytes) <= r.base + BigInt(r.buf.byteLength)) return { buf: r.buf, off: Number(p - r.base) };
    }
    throw new RangeError(`fake device: [${p.toString(16)}, +${bytes}) is outside every allocation`);
  }
  /** Bytes left in the region from `p` on. */
  left(p: bigint): number {
    for (const r of this.regions) if (p >= r.base && p < r.base + BigInt(r.buf.byteLength)) return r.buf.byteLength - Number(p - r.base);
    throw new RangeError(`fake device: ${p.toString(16)} is outside every allocation`);
  }
  f32(p: bigint, n: number): Float32Array {
    const { buf, off } = this.#find(p, n * 4);
    assert.equal(off % 4, 0, "f32 alignment");
    return new Float32Array(buf, off, n);
  }
  i32(p: bigint, n: number): Int32Array {
    const { buf, off } = this.#find(p, n * 4);
    return new Int32Array(buf, off, n);
  }
  u32(p: bigint, n: number): Uint32Array {
    const { buf, off } = this.#find(p, n * 4);
    return new Uint32Array(buf, off, n);
  }
  f64(p: bigint, n: number): Float64Array {
    const { buf, off } = this.#find(p, n * 8);
    return new Float64Array(buf, off, n);
  }
  bytes(p: bigint, n: number): Uint8Array {
    const { buf, off } = this.#find(p, n);
    return new Uint8Array(buf, off, n);
  }
}

// ---- stand-ins for the kernels (float32 engines) -----------------------------------------------

/** Checks a launch against its kernel's signature: argument count and kinds, grid sanity. */
function checkSignature(l: KernelLaunch): void {
  const sig = kernelSignature(l.kernel);
  assert.equal(l.args.length, sig.params.length, `${l.kernel}: ${l.args.length} args, signature has ${sig.params.length}`);
  l.args.forEach((a, i) => {
    const kind = sig.params[i];
    if (kind === "ptr" || kind === "i64") assert.equal(typeof a, "bigint", `${l.kernel} arg ${i} (${kind}) must be a bigint`);
    else assert.ok(typeof a === "number" && Number.isFinite(a), `${l.kernel} arg ${i} (${kind}) must be a finite number, got ${a}`);
    if (kind === "i32") assert.ok(Number.isInteger(a), `${l.kernel} arg ${i} (i32) must be an integer, got ${a}`);
  });
  for (const g of l.grid) assert.ok(Number.isInteger(g) && g >= 1 && g <= 65535 * 32768, `${l.kernel}: grid ${l.grid}`);
  assert.ok(l.grid[1] <= 65535 && l.grid[2] <= 65535, `${l.kernel}: grid y/z ${l.grid}`);
  assert.ok(l.block >= 32 && l.block <= 1024 && l.block % 32 === 0, `${l.kernel}: block ${l.block}`);
}

interface Geo { S: number; T: number; starts: Int32Array; pos: Int32Array; tables: Int32Array; stride: number }

function runLaunches(mem: FakeMemory, launches: readonly Launch[], env: LaunchEnv): void {
  const a = env.plan.attributes;
  const geo = (pos: bigint, starts: bigint, tables: bigint, T: number, S: number, stride: number): Geo => ({
    S, T, stride, starts: mem.i32(starts, S + 1), pos: mem.i32(pos, T), tables: mem.i32(tables, S * stride),
  });
  const layer = (kv: bigint, bs: number, nKV: number, hd: number): K.LayerCache => ({ data: mem.f32(kv, mem.left(kv) / 4), blockSize: bs, numKvHeads: nKV, headDim: hd });
  // Per token, as the kernels do: its sequence is the largest s with seqStarts[s] <= t (seqOfToken).
  const perToken = (g: Geo, fn: (one: K.BatchGeometry) => void): void => {
    for (let t = 0; t < g.T; t++) {
      let lo = 0, hi = g.S;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (g.starts[mid] <= t) lo = mid;
        else hi = mid;
      }
      fn({ numSeqs: 1, seqStarts: Int32Array.of(t, t + 1), positions: g.pos, blockTables: g.tables.subarray(lo * g.stride, (lo + 1) * g.stride), maxBlocksPerSeq: g.stride });
    }
  };
  for (let li = 0; li < launches.length; li++) {
    const l = launches[li];
    if (l.kind === "gemm") {
      assert.equal(l.dtype, "fp32");
      const x = mem.f32(l.a, l.m * l.k), w = mem.f32(l.b, l.n * l.k), d = mem.f32(l.d, l.m * l.n);
      K.linear(x, w, l.bias ? mem.f32(l.bias, l.n) : null, l.m, l.n, l.k, d);
      continue;
    }
    checkSignature(l);
    const A = l.args as (bigint & number)[];
    const name = l.kernel.replace(/_hd\d+$/, "");
    switch (name) {
      case "embedding_f32": {
        const [ids, table, out, T, H, V] = A;
        assert.equal(l.grid[0], T);
        K.embedding(mem.i32(ids, T), T, mem.f32(table, V * H), H, V, mem.f32(out, T * H));
        break;
      }
      case "rmsnorm_f32": {
        const [x, w, out, rows, H, eps] = A;
        assert.equal(l.grid[0], rows);
        K.rmsnorm(mem.f32(x, rows * H), mem.f32(w, H), eps, rows, H, mem.f32(out, rows * H));
        break;
      }
      case "add_rmsnorm_f32": {
        const [x, res, w, out, rows, H, eps] = A;
        K.addRmsnorm(mem.f32(x, rows * H), mem.f32(res, rows * H), mem.f32(w, H), eps, rows, H, mem.f32(out, rows * H));
        break;
      }
      case "add_inplace_f32": {
        const [x, out, n] = A;
        const nn = Number(n);
        K.addInPlace(mem.f32(x, nn), mem.f32(out, nn), nn);
        break;
      }
      case "silu_mul_f32": {
        const [gu, out, T, I] = A;
        assert.equal(l.grid[1], T);
        assert.ok(l.grid[0] * 256 * 4 >= I, "silu_mul grid covers the width");
        K.siluMul(mem.f32(gu, T * 2 * I), mem.f32(out, T * I), T, I);
        break;
      }
      case "gather_rows_f32": {
        const [x, rows, out, R, width] = A;
        const r = mem.i32(rows, R);
        const xRows = Math.max(...r) + 1;
        K.gatherRows(mem.f32(x, xRows * width), r, R, width, mem.f32(out, R * width));
        break;
      }
      case "qk_norm_f32": {
        const [qkv, qw, kw, T, nH, nKV, hd, eps] = A;
        assert.equal(l.grid[1], T);
        assert.ok(l.grid[0] * 4 >= nH + nKV);
        K.qkNorm(mem.f32(qkv, T * (nH + 2 * nKV) * hd), mem.f32(qw, hd), mem.f32(kw, hd), eps, T, nH, nKV, hd);
        break;
      }
      case "rope_kv_write_f32": {
        const [qkv, q, kv, pos, starts, tables, invFreq, scaling, T, S, nH, nKV, hd, bs, stride] = A;
        assert.equal(l.grid[0], T);
        const g = geo(pos, starts, tables, T, S, stride);
        const x = mem.f32(qkv, T * (nH + 2 * nKV) * hd), qo = mem.f32(q, T * nH * hd), c = layer(kv, bs, nKV, hd), inv = Array.from(mem.f64(invFreq, hd / 2));
        perToken(g, (one) => K.ropeKvWrite(x, qo, c, one, inv, scaling, nH, nKV, hd));
        break;
      }
      case "paged_attention_decode_f32": {
        const [q, out, kv, pos, starts, tables, pO, pML, T, S, nH, nKV, bs, stride, scale, window, splitSize] = A;
        const hd = a.headDim;
        const g = geo(pos, starts, tables, T, S, stride);
        const numSplits = l.grid[2];
        for (let t = 0; t < T; t++) {
          const span = window > 0 ? Math.min(g.pos[t] + 1, window) : g.pos[t] + 1;
          assert.ok(numSplits * splitSize >= span, `decode splits ${numSplits} × ${splitSize} do not cover ${span} keys`);
        }
        assert.ok(numSplits <= MAX_DECODE_SPLITS);
        assert.equal(splitSize % 32, 0);
        if (numSplits > 1) {
          mem.f32(pO, T * nH * numSplits * hd); // the workspace must hold the step
          mem.f32(pML, T * nH * numSplits * 2);
          const next = launches[li + 1];
          assert.ok(next?.kind === "kernel" && next.kernel === "paged_attention_decode_reduce_f32", "split decode is followed by its reduce");
        }
        assert.equal(l.grid[0], nKV * Math.ceil(nH / nKV / 8));
        const qv = mem.f32(q, T * nH * hd), ov = mem.f32(out, T * nH * hd), c = layer(kv, bs, nKV, hd);
        perToken(g, (one) => K.pagedAttention(qv, ov, c, one, nH, nKV, hd, scale, window));
        break;
      }
      case "paged_attention_decode_reduce_f32": {
        const [, , out, T, nH, hd, splits] = A;
        assert.equal(l.block, hd);
        assert.equal(splits, (launches[li - 1] as KernelLaunch).grid[2]);
        mem.f32(out, T * nH * hd);
        break; // the stand-in decode wrote `out` already
      }
      case "paged_attention_prefill_f32":
      case "paged_attention_generic_f32": {
        const generic = name === "paged_attention_generic_f32";
        const [q, out, kv, pos, starts, tables, T, S, nH, nKV] = A;
        const hd = generic ? A[10] : a.headDim;
        const [bs, stride, scale, window] = generic ? A.slice(11) : A.slice(10);
        const g = geo(pos, starts, tables, T, S, stride);
        if (generic) assert.ok(l.grid[0] * 4 >= nH && l.grid[1] === T);
        else assert.ok(l.grid[0] >= Math.ceil(T / 16) + S && l.grid[1] === nH);
        const qv = mem.f32(q, T * nH * hd), ov = mem.f32(out, T * nH * hd), c = layer(kv, bs, nKV, hd);
        perToken(g, (one) => K.pagedAttention(qv, ov, c, one, nH, nKV, hd, scale, window));
        break;
      }
      case "sample_f32": {
        const [logits, V, temp, topK, topP, minP, seed, step, outIds] = A;
        const R = l.grid[0];
        const p: SamplingInputs = {
          temperature: mem.f32(temp, R), topK: mem.i32(topK, R), topP: mem.f32(topP, R), minP: mem.f32(minP, R), seed: mem.u32(seed, 2 * R), step: mem.i32(step, R),
        };
        const lg = mem.f32(logits, R * V), ids = mem.i32(outIds, R);
        for (let r = 0; r < R; r++) ids[r] = sampleRow(lg, r * V, V, p, r);
        break;
      }
      default:
        throw new Error(`no stand-in for kernel ${l.kernel}`);
    }
  }
}

// ---- a fake CUDA session: the session's control flow over the fake device ----------------------

class FakeCudaSession {
  readonly mem = new FakeMemory();
  readonly env: LaunchEnv;
  readonly layout;
  readonly io: bigint;
  readonly decodeCap: number;
  readonly buckets: number[];
  readonly numBlocks: number;
  readonly maxSeqLen: number;
  graphSteps = 0;
  eagerSteps = 0;

  constructor(readonly engine: Engine, numBlocks: number, readonly sms = 132, planOnly = false) {
    const plan = engine.plan;
    if (!planOnly) assert.equal(plan.elementBytes, 4, "the stand-ins are float32");
    const a = plan.attributes;
    const mem = this.mem;
    const offsets = new Map<string, bigint>();
    for (const n of engine.tensorNames()) {
      const f = engine.readFloat32(n);
      const p = mem.alloc(f.byteLength);
      mem.f32(p, f.length).set(f);
      offsets.set(n, p);
    }
    const build = engine.config.build;
    this.maxSeqLen = build.maxSeqLen!;
    this.decodeCap = Math.min(plan.maxTokens, plan.maxSeqs, build.maxBatchSize * build.maxBeamWidth);
    this.buckets = decodeBuckets(this.decodeCap);
    this.numBlocks = numBlocks;
    const bs = build.tokensPerBlock;
    this.layout = stagingLayout(plan.maxTokens, plan.maxSeqs, Math.ceil(this.maxSeqLen / bs));
    this.io = mem.alloc(this.layout.words * 4);
    const invFreq = mem.alloc(8 * a.rope.invFreq.length);
    mem.f64(invFreq, a.rope.invFreq.length).set(a.rope.invFreq);
    const layerBytes = (numBlocks + 1) * 2 * bs * a.numKvHeads * a.headDim * 4;
    const attn = plan.ops.find((o) => o.type === "paged_attention")!;
    const nH = attn.type === "paged_attention" ? attn.numHeads : 0;
    this.env = {
      plan, elem: plan.elementBytes === 2 ? "bf16" : "f32", arena: mem.alloc(plan.arenaBytes), weight: (n) => offsets.get(n)!, logits: mem.alloc(plan.maxSeqs * a.vocabSize * 4),
      io: stagingPointers(this.layout, this.io), invFreq, kvBase: mem.alloc(a.numLayers * layerBytes), kvLayerBytes: layerBytes,
      partialO: mem.alloc(this.decodeCap * nH * MAX_DECODE_SPLITS * a.headDim * 4), partialML: mem.alloc(this.decodeCap * nH * MAX_DECODE_SPLITS * 8),
      tokensPerBlock: bs, blockStride: this.layout.blockStride, gemv: true,
    };
  }

  run(inp: StepInputs, graphs = true): { ids: Int32Array; logits: Float32Array } {
    const T = inp.tokenIds.length, S = inp.seqStarts.length - 1, R = inp.logitRows.length;
    const host = new ArrayBuffer(this.layout.words * 4);
    const i32 = new Int32Array(host), f32 = new Float32Array(host), u32 = new Uint32Array(host);
    let launches: Launch[];
    const decode = graphs && T <= this.decodeCap && isDecodeStep(inp);
    if (decode) {
      const bucket = bucketFor(T, this.buckets);
      const a = this.env.plan.attributes;
      const words = packStep(this.layout, i32, f32, u32, inp, { bucket, scratchBlock: this.numBlocks });
      this.mem.bytes(this.io, words * 4).set(new Uint8Array(host, 0, words * 4));
      const attn = this.env.plan.ops.find((o) => o.type === "paged_attention") as { numHeads: number; numKvHeads: number; headDim: number };
      const attention = [32, 64, 128].includes(a.headDim)
        ? { kind: "decode" as const, ...graphDecodeSplit(bucket, a.numKvHeads, attn.numHeads / attn.numKvHeads, this.maxSeqLen, "f32", this.sms) }
        : { kind: "generic" as const };
      launches = planLaunches(this.env, { numTokens: bucket, numSeqs: bucket, numRows: bucket, attention, sample: true });
      this.graphSteps++;
    } else {
      const words = packStep(this.layout, i32, f32, u32, inp, null);
      this.mem.bytes(this.io, words * 4).set(new Uint8Array(host, 0, words * 4));
      let maxAtt = 1;
      for (const p of inp.positions) maxAtt = Math.max(maxAtt, p + 1);
      const attention = chooseAttention(this.env.plan, "f32", T, S, maxAtt, this.decodeCap, this.sms);
      launches = planLaunches(this.env, { numTokens: T, numSeqs: S, numRows: R, attention, sample: true });
      this.eagerSteps++;
    }
    runLaunches(this.mem, launches, this.env);
    const V = this.env.plan.attributes.vocabSize;
    return { ids: this.mem.i32(this.env.io.sampledIds, R).slice(), logits: this.mem.f32(this.env.logits, R * V).slice() };
  }
}

// ---- models ------------------------------------------------------------------------------------

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s / 4294967296) * 2 - 1;
  };
}

/** A random in-memory checkpoint of a small Llama-family config. */
function randomModel(raw: Record<string, unknown>, seed: number): LlamaForCausalLM {
  const c = parsePretrainedConfig({ hidden_act: "silu", rms_norm_eps: 1e-6, rope_theta: 10000, torch_dtype: "float32", bos_token_id: 1, eos_token_id: 2, ...raw });
  const net = new LlamaForCausalLM(c, { has: () => false, readFloat32: () => new Float32Array(0), info: () => ({ shape: [] }), close() {} }).toNetwork();
  const r = rng(seed);
  const tensors = new Map<string, Float32Array>();
  const q = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim;
  const shapes = new Map<string, number[]>();
  for (const w of net.weights.values()) {
    const cols = w.shape.length === 2 ? w.shape[1] : 1;
    for (const s of w.source) {
      if (tensors.has(s)) continue;
      // Rows of each fused part: q | k | v, gate | up; single sources take the whole shape.
      const rows = w.source.length === 1 ? w.shape[0] : /q_proj/.test(s) ? q : /[kv]_proj/.test(s) ? kv : c.intermediateSize;
      const norm = s.includes("norm");
      tensors.set(s, Float32Array.from({ length: rows * cols }, () => (norm ? 1 + 0.2 * r() : 0.3 * r())));
      shapes.set(s, w.shape.length === 2 ? [rows, cols] : [rows]);
    }
  }
  const ws: WeightSource = {
    has: (n) => tensors.has(n),
    readFloat32: (n) => tensors.get(n)!,
    info: (n) => ({ shape: shapes.get(n)! }),
    close() {},
  };
  return new LlamaForCausalLM(c, ws);
}

const SMALL = { vocab_size: 101, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, max_position_embeddings: 256 };
const MODELS: { name: string; make: () => LlamaForCausalLM }[] = [
  {
    name: "qwen3 q/k norm, head dim 32 (tiled kernels)",
    make: () => randomModel({ ...SMALL, architectures: ["Qwen3ForCausalLM"], model_type: "qwen3", num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32 }, 7),
  },
  {
    name: "llama q/k/v/o + mlp bias, head dim 64, G 4",
    make: () => randomModel({ ...SMALL, architectures: ["LlamaForCausalLM"], model_type: "llama", num_attention_heads: 4, num_key_value_heads: 1, head_dim: 64, attention_bias: true, mlp_bias: true }, 11),
  },
  {
    name: "mistral sliding window 6, head dim 32",
    make: () => randomModel({ ...SMALL, architectures: ["MistralForCausalLM"], model_type: "mistral", num_attention_heads: 2, num_key_value_heads: 2, sliding_window: 6 }, 13),
  },
  {
    name: "stories260k (head dim 8: generic kernel)",
    make: () => AutoModelForCausalLM.fromHuggingFace(storiesDir),
  },
];

function cudaEngine(make: () => LlamaForCausalLM, opts = {}): Engine {
  const model = make();
  try {
    return buildSync(model, { backend: "cuda", dtype: "float32", maxBatchSize: 6, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4, ...opts });
  } finally {
    model.close();
  }
}

/** A step of `seqs` = [(tokens, startPos)] with shuffled blocks; each sequence's last token is a logits row. */
function step(seqs: { ids: number[]; pos: number; blocks: number[] }[], maxBlocks: number, sampling = true): StepInputs {
  const T = seqs.reduce((a, s) => a + s.ids.length, 0);
  const tokenIds = new Int32Array(T), positions = new Int32Array(T), seqStarts = new Int32Array(seqs.length + 1);
  const blockTables = new Int32Array(seqs.length * maxBlocks).fill(-7), logitRows = new Int32Array(seqs.length);
  let t = 0;
  seqs.forEach((s, i) => {
    seqStarts[i] = t;
    s.ids.forEach((id, j) => {
      tokenIds[t] = id;
      positions[t++] = s.pos + j;
    });
    logitRows[i] = t - 1;
    blockTables.set(s.blocks, i * maxBlocks);
  });
  seqStarts[seqs.length] = t;
  const R = seqs.length;
  const sp: SamplingInputs | undefined = sampling
    ? {
      temperature: Float32Array.from({ length: R }, (_, r) => (r % 2 ? 0.8 : 0)), topK: new Int32Array(R).fill(0), topP: new Float32Array(R).fill(0.9),
      minP: new Float32Array(R), seed: Uint32Array.from({ length: 2 * R }, (_, i) => i * 7 + 1), step: Int32Array.from({ length: R }, (_, r) => r),
    }
    : undefined;
  return { tokenIds, positions, seqStarts, blockTables, maxBlocksPerSeq: maxBlocks, logitRows, sampling: sp };
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

for (const m of MODELS) {
  const hasModel = !m.name.startsWith("stories") || fs.existsSync(`${storiesDir}/config.json`);
  test.skipIf("shared/models/stories260k is missing", !hasModel)(`launch plan on a fake device equals the CPU session: ${m.name}`, () => {
    const engine = cudaEngine(m.make);
    const cpu = new CpuSession(engine);
    const numBlocks = 40;
    const kv = cpu.createKvCache(numBlocks);
    const fake = new FakeCudaSession(engine, numBlocks);
    const V = engine.plan.attributes.vocabSize;
    const maxBlocks = 30; // != the device stride (96 / 4 = 24): re-strided rows
    const perm = Array.from({ length: numBlocks }, (_, i) => (i * 17 + 3) % numBlocks);
    const seqs = [
      { ids: [1, 5, 9, 33, 2, 7, 8, 21, 14, 3, 60], blocks: perm.slice(0, 8) },
      { ids: [4, 4, 90], blocks: perm.slice(8, 16) },
      { ids: [100, 1, 2, 3, 4, 5, 6], blocks: perm.slice(16, 24) },
    ];
    const compare = (what: string, inp: StepInputs, graphs: boolean) => {
      const want = { sampledIds: new Int32Array(inp.logitRows.length), logits: new Float32Array(inp.logitRows.length * V) };
      cpu.run(inp, want, kv);
      const got = fake.run(inp, graphs);
      const rel = maxRelDiff(got.logits, want.logits);
      assert.ok(rel < 1e-5, `${what}: logits differ (max rel ${rel.toExponential(2)})`);
      assert.deepEqual(Array.from(got.ids), Array.from(want.sampledIds), `${what}: sampled ids`);
      // The usable blocks hold exactly the CPU cache (dummy tokens touch only the scratch block).
      const env = fake.env;
      kv.layers.forEach((cpuLayer, l) => {
        const dev = fake.mem.f32(env.kvBase + BigInt(l * env.kvLayerBytes), cpuLayer.length);
        for (let i = 0; i < cpuLayer.length; i++) if (dev[i] !== cpuLayer[i]) assert.fail(`${what}: KV layer ${l} element ${i}: ${dev[i]} vs ${cpuLayer[i]}`);
      });
      return want.sampledIds;
    };
    // A first chunk with no logits rows, then prefill of all three (tiled prefill / generic), then a chunked continuation.
    const chunk0 = step([{ ids: seqs[0].ids.slice(0, 4), pos: 0, blocks: seqs[0].blocks }], maxBlocks);
    const noRows = { ...chunk0, logitRows: new Int32Array(0), sampling: undefined };
    const cpuOut = {};
    cpu.run(noRows, cpuOut, kv);
    fake.run(noRows);
    compare("prefill", step(seqs.map((s) => ({ ids: s.ids.slice(0, -2), pos: 0, blocks: s.blocks })), maxBlocks), true);
    compare("mixed (chunk + chunk + chunk)", step(seqs.map((s) => ({ ids: s.ids.slice(-2), pos: s.ids.length - 2, blocks: s.blocks })), maxBlocks), true);
    // Decode steps: padded to a bucket (3 → 4, dummy rows in the scratch block), eager split-K, and 1 → bucket 1.
    let pos = seqs.map((s) => s.ids.length);
    let last = [7, 8, 9];
    for (let i = 0; i < 6; i++) {
      const graphs = i % 2 === 0;
      const ids = compare(`decode ${i} (${graphs ? "bucket" : "eager"})`, step(seqs.map((s, j) => ({ ids: [last[j]], pos: pos[j], blocks: s.blocks })), maxBlocks), graphs);
      last = Array.from(ids);
      pos = pos.map((p) => p + 1);
    }
    compare("decode, one sequence", step([{ ids: [last[1]], pos: pos[1], blocks: seqs[1].blocks }], maxBlocks), true);
    // Logits-only step (no sampling inputs): padded rows default to greedy.
    const noSample = step(seqs.map((s, j) => ({ ids: [last[j]], pos: pos[j], blocks: s.blocks })), maxBlocks, false);
    const want = { logits: new Float32Array(3 * V) };
    cpu.run(noSample, want, kv);
    assert.ok(maxRelDiff(fake.run(noSample).logits, want.logits) < 1e-5, "logits-only decode step");
    assert.ok(fake.graphSteps >= 4 && fake.eagerSteps >= 5, `graph ${fake.graphSteps} / eager ${fake.eagerSteps} steps`);
  });
}

test("decode split heuristics cover the attended span and stay within the workspace", () => {
  for (const elem of ["bf16", "f32"] as const) {
    const tile = elem === "bf16" ? 64 : 32;
    for (const T of [1, 3, 32, 64, 256]) {
      for (const len of [1, 2, 63, 64, 65, 1000, 4096, 131072]) {
        const s = decodeSplit(T, 8, 4, len, elem, 132);
        assert.ok(s.numSplits >= 1 && s.numSplits <= MAX_DECODE_SPLITS && s.numSplits * s.splitSize >= len && s.splitSize % tile === 0, `${elem} T=${T} len=${len}: ${JSON.stringify(s)}`);
        assert.ok((s.numSplits - 1) * s.splitSize < len, "no empty trailing split");
      }
    }
    for (const B of decodeBuckets(64)) {
      for (const maxSeqLen of [64, 512, 4096, 131072]) {
        const s = graphDecodeSplit(B, 8, 4, maxSeqLen, elem, 132);
        assert.ok(s.numSplits >= 1 && s.numSplits <= MAX_DECODE_SPLITS && s.numSplits * s.splitSize >= maxSeqLen && s.splitSize >= 128 && s.splitSize % tile === 0, `graph ${elem} B=${B} ${maxSeqLen}: ${JSON.stringify(s)}`);
      }
    }
  }
  assert.equal(kernelSignature("gemv_bf16_m4").file, "gemv.cu");
  assert.equal(kernelSignature("paged_attention_prefill_mma_bf16_hd64").params.length, 14);
  assert.deepEqual(decodeBuckets(64), [1, 2, 4, 8, 16, 32, 64]);
  assert.deepEqual(decodeBuckets(6), [1, 2, 4, 6]);
  assert.equal(bucketFor(3, decodeBuckets(6)), 4);
  assert.equal(bucketFor(5, decodeBuckets(6)), 6);
  assert.throws(() => bucketFor(7, decodeBuckets(6)), RangeError);
});

test("staging layout: segments aligned, in order, block tables last; packing pads a decode bucket", () => {
  const L = stagingLayout(100, 6, 24);
  const o = L.offsets;
  const names = Object.keys(o) as (keyof typeof o)[];
  assert.equal(names[0], "sampledIds");
  assert.equal(o.sampledIds, 0);
  for (const n of names) assert.equal(o[n] % 64, 0, n);
  assert.equal(Math.max(...names.map((n) => o[n])), o.blockTables);
  assert.ok(L.words >= o.blockTables + 6 * 24);
  const host = new ArrayBuffer(L.words * 4);
  const i32 = new Int32Array(host).fill(-1), f32 = new Float32Array(host), u32 = new Uint32Array(host);
  const inp = step([{ ids: [5], pos: 9, blocks: [3, 4, 5] }, { ids: [6], pos: 0, blocks: [7] }], 30);
  assert.ok(isDecodeStep(inp));
  const words = packStep(L, i32, f32, u32, inp, { bucket: 4, scratchBlock: 99 });
  assert.equal(words, o.blockTables + 4 * 24);
  assert.deepEqual(Array.from(i32.subarray(o.tokenIds, o.tokenIds + 4)), [5, 6, 0, 0]);
  assert.deepEqual(Array.from(i32.subarray(o.positions, o.positions + 4)), [9, 0, 0, 0]);
  assert.deepEqual(Array.from(i32.subarray(o.seqStarts, o.seqStarts + 5)), [0, 1, 2, 3, 4]);
  assert.deepEqual(Array.from(i32.subarray(o.logitRows, o.logitRows + 4)), [0, 1, 2, 3]);
  assert.deepEqual(Array.from(i32.subarray(o.blockTables, o.blockTables + 3)), [3, 4, 5]);
  assert.equal(i32[o.blockTables + 24], 7);
  assert.equal(i32[o.blockTables + 48], 99);
  assert.equal(i32[o.blockTables + 72], 99);
  assert.deepEqual(Array.from(f32.subarray(o.temperature, o.temperature + 4)), [0, Math.fround(0.8), 0, 0]);
  assert.deepEqual(Array.from(f32.subarray(o.topP, o.topP + 4)), [Math.fround(0.9), Math.fround(0.9), 1, 1]);
  assert.ok(!isDecodeStep(step([{ ids: [5, 6], pos: 0, blocks: [1] }], 4)));
});

test("bf16 plans: decode-sized linears take the skinny-GEMM kernel, the lm_head and prefill linears cuBLASLt", () => {
  const model = MODELS[1].make(); // llama with biases, head dim 64
  const engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 8, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4 });
  model.close();
  const fake = new FakeCudaSession(engine, 8, 132, true);
  const linears = engine.plan.ops.map((op, i) => [op, i] as const).filter(([op]) => op.type === "linear");
  for (const [T, M] of [[1, 1], [2, 2], [3, 4], [8, 8], [9, 0]] as const) {
    const launches = planLaunches(fake.env, { numTokens: T, numSeqs: T, numRows: T, attention: { kind: "decode", numSplits: 2, splitSize: 128 }, sample: true });
    for (const [op, i] of linears) {
      if (op.type !== "linear") continue;
      const l = launches.find((x) => x.op === i)!;
      const isLogits = op.out === engine.plan.attributes.logits;
      if (M === 0 || isLogits) {
        assert.equal(l.kind, "gemm", `op ${i} T=${T}`);
        if (l.kind === "gemm") assert.equal(l.outDtype, isLogits ? "fp32" : "bf16");
        continue;
      }
      assert.ok(l.kind === "kernel" && l.kernel === `gemv_bf16_m${M}`, `op ${i} T=${T}: ${l.kind === "kernel" ? l.kernel : "gemm"}`);
      checkSignature(l);
      const [x, w, bias, y, m, n, k] = l.args;
      assert.equal(x, fake.env.arena + BigInt(engine.plan.buffers[op.x].offset));
      assert.equal(y, fake.env.arena + BigInt(engine.plan.buffers[op.out].offset));
      assert.equal(w, fake.env.weight(op.weight));
      assert.equal(bias, op.bias ? fake.env.weight(op.bias) : 0n);
      assert.deepEqual([m, n, k], [T, op.outFeatures, op.inFeatures]);
      assert.deepEqual(l.grid, [Math.ceil(op.outFeatures / 8), 1, 1]);
    }
  }
});

test("batch-invariant bf16 plans: the skinny-GEMM kernel only for decode steps, every prefill linear on cuBLASLt", () => {
  const model = MODELS[1].make();
  const engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 8, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4 });
  model.close();
  const fake = new FakeCudaSession(engine, 8, 132, true);
  const env = { ...fake.env, batchInvariant: true };
  const linears = engine.plan.ops.map((op, i) => [op, i] as const).filter(([op]) => op.type === "linear" && op.out !== engine.plan.attributes.logits);
  // [tokens, seqs, expected kernel]: a 5-token prompt alone (prefill) takes cuBLASLt, as it does inside a batch.
  for (const [T, S, want] of [[1, 1, "gemv_bf16_m1"], [3, 3, "gemv_bf16_m4"], [8, 8, "gemv_bf16_m8"], [5, 1, "gemm"], [8, 2, "gemm"], [9, 9, "gemm"]] as const) {
    const attention = T === S ? { kind: "decode" as const, numSplits: 2, splitSize: 128 } : { kind: "prefill" as const };
    const launches = planLaunches(env, { numTokens: T, numSeqs: S, numRows: S, attention, sample: true });
    for (const [, i] of linears) {
      const l = launches.find((x) => x.op === i)!;
      assert.equal(l.kind === "gemm" ? "gemm" : l.kernel, want, `op ${i} T=${T} S=${S}`);
      // Decode steps beyond the skinny-GEMM kernel keep the per-M heuristic; prefill pins the algorithm.
      if (l.kind === "gemm") assert.equal(l.invariant, T !== S, `op ${i} T=${T} S=${S}: invariant`);
    }
    const lmHead = launches.find((x) => x.kind === "gemm" && x.outDtype === "fp32");
    assert.ok(lmHead && lmHead.kind === "gemm" && lmHead.invariant, `lm_head T=${T} S=${S}: pinned algorithm`);
    // Without the option, a 5-token prefill takes the skinny-GEMM kernel (8 rows or fewer).
    if (T === 5) {
      const plain = planLaunches(fake.env, { numTokens: T, numSeqs: S, numRows: S, attention, sample: true });
      assert.equal((plain.find((x) => x.op === linears[0][1]) as { kernel?: string }).kernel, "gemv_bf16_m8");
    }
  }
});
