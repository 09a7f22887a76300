/**
 * Tensor-parallel sharding (Megatron layout): a built one-rank engine → `tp` rank engines.
 *
 * - q/k/v (fused qkv) and gate/up: column-parallel — each rank computes its heads / its slice of
 *   the intermediate width; no communication.
 * - o and down: row-parallel — each rank multiplies its input slice, then an `all_reduce` sums the
 *   partial outputs (the bias is kept on rank 0 only, so it is added once).
 * - KV heads split across ranks; with fewer KV heads than ranks each rank keeps the one KV head its
 *   query heads read (replicated).
 * - Embedding: replicated (every rank looks ids up in the whole table; no communication).
 * - LM head: vocab-parallel on the CPU — rank r computes logits for vocab rows [r·Vp, (r+1)·Vp)
 *   (the last shard padded with zero rows), then an `all_gather` assembles [seqs, vocab] on every
 *   rank; replicated on CUDA (every rank computes every logit from the whole LM head: no gather,
 *   fp32 logits straight into the sampler's buffer, at the cost of reading the LM head on each rank).
 *
 * Works on the fused plan and on raw weight bytes, so it is dtype-agnostic. Quantized weights are
 * not sharded yet (UnsupportedError).
 */
import { Network } from "../ir/network.ts";
import type { Op } from "../ir/network.ts";
import { type EnginePlan, planMemory } from "../ir/plan.ts";
import { UnsupportedError, ValidationError } from "../util/errors.ts";
import { Engine, type EngineConfig, type EngineTensor, type TpMapping } from "./engine.ts";

/** Rows of a weight (dim 0 ranges, concatenated) and optionally a column range (dim 1), plus zero padding rows. */
export interface WeightShard {
  readonly rows?: readonly (readonly [number, number])[];
  readonly cols?: readonly [number, number];
  readonly padRows?: number;
}

/** One rank's plan and where each of its weights comes from in the unsharded engine. */
export interface RankPlan {
  readonly plan: EnginePlan;
  /** rank weight name → (unsharded weight name, slice; none = copied whole). */
  readonly weights: ReadonlyMap<string, { readonly from: string; readonly shard?: WeightShard }>;
}

const LM_HEAD_SHARD = "lm_head.shard";
const LOGITS_SHARD = "logits.shard";

/** The split of a model over `tp` ranks; throws a ValidationError naming the dimension that does not divide. */
export function tpMapping(
  dims: { numHeads: number; numKvHeads: number; intermediateSize: number; vocabSize: number },
  tp: number,
  lmHead: TpMapping["lmHead"] = "vocab-parallel",
): TpMapping {
  const bad = (what: string, n: number): never => {
    throw new ValidationError(`BuildConfig.tensorParallelSize: ${tp} does not divide ${what} ${n}`, "BuildConfig.tensorParallelSize", tp);
  };
  if (dims.numHeads % tp !== 0) bad("the attention heads", dims.numHeads);
  if (dims.intermediateSize % tp !== 0) bad("the MLP intermediate size", dims.intermediateSize);
  const split = dims.numKvHeads % tp === 0;
  if (!split && tp % dims.numKvHeads !== 0) bad("(nor is it a multiple of) the KV heads", dims.numKvHeads);
  return {
    tpSize: tp,
    numHeadsPerRank: dims.numHeads / tp,
    numKvHeadsPerRank: split ? dims.numKvHeads / tp : 1,
    kvHeads: split ? "split" : "replicated",
    intermediatePerRank: dims.intermediateSize / tp,
    vocabPerRank: lmHead === "replicated" ? dims.vocabSize : Math.ceil(dims.vocabSize / tp),
    embedding: "replicated",
    lmHead,
  };
}

/** The plan of rank `rank` of `m.tpSize`, from the unsharded plan. */
export function shardPlan(plan: EnginePlan, m: TpMapping, rank: number): RankPlan {
  const ops = plan.ops;
  const attn = ops.find((o) => o.type === "rope_kv_write");
  if (!attn || attn.type !== "rope_kv_write") throw new UnsupportedError("sharding: the plan has no attention");
  const { numHeads: nH, numKvHeads: nKV, headDim: hd } = attn;
  const V = plan.attributes.vocabSize, Vp = m.vocabPerRank;
  const nHl = m.numHeadsPerRank, nKVl = m.numKvHeadsPerRank;
  const I = ops.find((o) => o.type === "silu_mul")?.width ?? 0;
  const Il = m.intermediatePerRank;
  const kv0 = m.kvHeads === "split" ? rank * nKVl : Math.floor((rank * nHl) / (nH / nKV));

  const qkvNames = new Set(ops.flatMap((o) => (o.type === "rope_kv_write" || o.type === "qk_norm" ? [o.qkv] : [])));
  const attnOuts = new Set(ops.flatMap((o) => (o.type === "paged_attention" ? [o.out] : [])));
  const gateUps = new Set(ops.flatMap((o) => (o.type === "silu_mul" ? [o.gateUp] : [])));
  const acts = new Set(ops.flatMap((o) => (o.type === "silu_mul" ? [o.out] : [])));
  const logits = plan.attributes.logits;

  const weights = new Map<string, { from: string; shard?: WeightShard }>();
  const widths = new Map<string, number>();
  const out: Op[] = [];
  const qkvRows: [number, number][] = [
    [rank * nHl * hd, (rank + 1) * nHl * hd],
    [(nH + kv0) * hd, (nH + kv0 + nKVl) * hd],
    [(nH + nKV + kv0) * hd, (nH + nKV + kv0 + nKVl) * hd],
  ];
  const guRows: [number, number][] = [[rank * Il, (rank + 1) * Il], [I + rank * Il, I + (rank + 1) * Il]];
  const inCols: (w: number) => [number, number] = (w) => [rank * w, (rank + 1) * w];

  for (const op of ops) {
    switch (op.type) {
      case "linear": {
        if (op.weightFormat) {
          throw new UnsupportedError(
            `sharding: quantized weight '${op.weight}' (${op.weightFormat.format}) cannot be split across ranks yet`,
            "tensorParallelSize",
          );
        }
        if (qkvNames.has(op.out)) {
          const w = (nHl + 2 * nKVl) * hd;
          weights.set(op.weight, { from: op.weight, shard: { rows: qkvRows } });
          if (op.bias) weights.set(op.bias, { from: op.bias, shard: { rows: qkvRows } });
          widths.set(op.out, w);
          out.push({ ...op, outFeatures: w });
        } else if (gateUps.has(op.out)) {
          weights.set(op.weight, { from: op.weight, shard: { rows: guRows } });
          if (op.bias) weights.set(op.bias, { from: op.bias, shard: { rows: guRows } });
          widths.set(op.out, 2 * Il);
          out.push({ ...op, outFeatures: 2 * Il });
        } else if (attnOuts.has(op.x) || acts.has(op.x)) {
          const w = attnOuts.has(op.x) ? nHl * hd : Il;
          weights.set(op.weight, { from: op.weight, shard: { cols: inCols(w) } });
          const keepBias = op.bias !== undefined && rank === 0;
          if (keepBias) weights.set(op.bias!, { from: op.bias! });
          const { bias: _bias, ...rest } = op;
          out.push({ ...rest, ...(keepBias ? { bias: op.bias } : {}), inFeatures: w });
          out.push({ type: "all_reduce", x: op.out });
        } else if (op.out === logits && m.lmHead === "replicated") {
          out.push(op);
        } else if (op.out === logits) {
          const rows: [number, number] = [Math.min(V, rank * Vp), Math.min(V, (rank + 1) * Vp)];
          weights.set(LM_HEAD_SHARD, { from: op.weight, shard: { rows: [rows], padRows: Vp - (rows[1] - rows[0]) } });
          widths.set(LOGITS_SHARD, Vp);
          out.push({ ...op, weight: LM_HEAD_SHARD, out: LOGITS_SHARD, outFeatures: Vp });
          out.push({ type: "all_gather", x: LOGITS_SHARD, out: logits, width: Vp, outWidth: V });
        } else {
          throw new UnsupportedError(`sharding: linear '${op.weight}' has no tensor-parallel role`);
        }
        break;
      }
      case "qk_norm":
        out.push({ ...op, numHeads: nHl, numKvHeads: nKVl });
        break;
      case "rope_kv_write":
        widths.set(op.q, nHl * hd);
        out.push({ ...op, numHeads: nHl, numKvHeads: nKVl });
        break;
      case "paged_attention":
        widths.set(op.out, nHl * hd);
        out.push({ ...op, numHeads: nHl, numKvHeads: nKVl });
        break;
      case "silu_mul":
        widths.set(op.out, Il);
        out.push({ ...op, width: Il });
        break;
      case "all_reduce":
      case "all_gather":
        throw new UnsupportedError("sharding: the plan is sharded already");
      default:
        out.push(op);
    }
  }
  // Every other weight the rank reads is copied whole (norms, embedding table, q/k norms).
  const rankPlanStub = { ...plan, ops: out } as EnginePlan;
  for (const name of planWeightNames(rankPlanStub)) if (!weights.has(name)) weights.set(name, { from: name });

  const net = new Network();
  for (const b of Object.values(plan.buffers)) net.activation(b.name, widths.get(b.name) ?? b.width, b.rows);
  net.activation(LOGITS_SHARD, Vp, "seqs");
  const attributes = { ...plan.attributes, numKvHeads: nKVl };
  net.attributes = attributes;
  const profile = { maxTokens: plan.maxTokens, maxSeqs: plan.maxSeqs, elementBytes: plan.elementBytes };
  const { buffers, arenaBytes } = planMemory(net, out, profile);
  return { plan: { ops: out, buffers, arenaBytes, ...profile, attributes }, weights };
}

/** Cuts a row-major weight's bytes: the row ranges (concatenated), then a column range, then zero rows. */
export function sliceWeight(bytes: Uint8Array, shape: readonly number[], elementBytes: number, s: WeightShard): { bytes: Uint8Array; shape: number[] } {
  const rowsTotal = shape[0];
  const rowElems = shape.slice(1).reduce((a, b) => a * b, 1);
  const rows = s.rows ?? [[0, rowsTotal]];
  const [c0, c1] = s.cols ?? [0, rowElems];
  if (shape.length > 2 || (s.cols && shape.length !== 2)) throw new UnsupportedError(`sharding: cannot cut columns of a ${shape.length}-d weight`);
  for (const [a, b] of rows) {
    if (a < 0 || b > rowsTotal || a > b) throw new ValidationError(`sharding: rows [${a}, ${b}) outside a weight of ${rowsTotal} rows`);
  }
  if (c0 < 0 || c1 > rowElems || c0 > c1) throw new ValidationError(`sharding: columns [${c0}, ${c1}) outside a weight of ${rowElems} columns`);
  const outRowBytes = (c1 - c0) * elementBytes;
  const nRows = rows.reduce((a, [x, y]) => a + y - x, 0) + (s.padRows ?? 0);
  const out = new Uint8Array(nRows * outRowBytes);
  let o = 0;
  for (const [a, b] of rows) {
    if (c0 === 0 && c1 === rowElems) {
      out.set(bytes.subarray(a * outRowBytes, b * outRowBytes), o);
      o += (b - a) * outRowBytes;
      continue;
    }
    for (let r = a; r < b; r++, o += outRowBytes) out.set(bytes.subarray((r * rowElems + c0) * elementBytes, (r * rowElems + c1) * elementBytes), o);
  }
  const outShape = shape.length === 1 ? [nRows] : [nRows, c1 - c0];
  return { bytes: out, shape: outShape };
}

const ELEMENT_BYTES: Readonly<Record<string, number>> = { float32: 4, float16: 2, bfloat16: 2, F32: 4, F16: 2, BF16: 2 };

/**
 * Splits a one-rank engine built in memory into `tp` rank engines (`Engine.fromRanks`): config.json
 * records the mapping (numRanks, heads/KV heads/intermediate/vocab per rank); `save(dir)` writes
 * rank0.engine … rank<tp-1>.engine.
 *
 * @example
 * ```ts
 * const engine = await build(model, { tensorParallelSize: 2 }); // calls shardEngine
 * engine.save("/tmp/tp2"); // config.json, rank0.engine, rank1.engine
 * ```
 */
export function shardEngine(engine: Engine, tp: number): Engine {
  if (engine.config.numRanks !== 1) throw new UnsupportedError("shardEngine: the engine is sharded already");
  const m = engine.config.model;
  const attn = engine.plan.ops.find((o) => o.type === "rope_kv_write");
  const mapping = tpMapping(
    {
      numHeads: attn?.type === "rope_kv_write" ? attn.numHeads : m.numAttentionHeads,
      numKvHeads: attn?.type === "rope_kv_write" ? attn.numKvHeads : m.numKeyValueHeads,
      intermediateSize: engine.plan.ops.find((o) => o.type === "silu_mul")?.width ?? m.intermediateSize,
      vocabSize: engine.plan.attributes.vocabSize,
      // CUDA: every rank computes all logits (no gather, no layout change before the sampler).
    },
    tp,
    engine.config.build.backend === "cuda" ? "replicated" : "vocab-parallel",
  );
  const config: EngineConfig = { ...engine.config, numRanks: tp, mapping };
  const ranks: Engine[] = [];
  for (let r = 0; r < tp; r++) {
    const rp = shardPlan(engine.plan, mapping, r);
    const tensors: EngineTensor[] = [];
    const data = new Map<string, Uint8Array>();
    for (const [name, { from, shard }] of rp.weights) {
      const info = engine.tensorInfo(from);
      const es = ELEMENT_BYTES[info.dtype];
      if (shard && es === undefined) throw new UnsupportedError(`sharding: weight '${from}' is ${info.dtype}; only float weights can be split`);
      const src = engine.readTensor(from);
      const cut = shard ? sliceWeight(src, info.shape, es, shard) : { bytes: src, shape: [...info.shape] };
      tensors.push({ name, dtype: info.dtype, shape: cut.shape, bytes: cut.bytes.byteLength } as EngineTensor);
      data.set(name, cut.bytes);
    }
    ranks.push(Engine.fromMemory(config, rp.plan, tensors, data));
  }
  engine.dispose();
  return Engine.fromRanks(ranks);
}

/** Every weight name an engine plan reads. */
function planWeightNames(plan: EnginePlan): string[] {
  const names = new Set<string>();
  for (const op of plan.ops) {
    switch (op.type) {
      case "embedding":
        names.add(op.table);
        break;
      case "rmsnorm":
      case "add_rmsnorm":
        names.add(op.weight);
        break;
      case "linear":
        names.add(op.weight);
        if (op.bias) names.add(op.bias);
        if (op.weightFormat) { for (const t of [op.weightFormat.scales, op.weightFormat.zeros, op.weightFormat.preQuantScale]) if (t) names.add(t); }
        break;
      case "qk_norm":
        names.add(op.qWeight);
        names.add(op.kWeight);
        break;
      default:
        break;
    }
  }
  return [...names];
}
