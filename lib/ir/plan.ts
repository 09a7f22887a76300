import { FormatError, InternalError, showValue } from "../util/errors.ts";
import type { ActivationDecl, Network, NetworkAttributes, Op } from "./network.ts";

/** An activation placed in the step arena. */
export interface PlannedBuffer extends ActivationDecl {
  /** Byte offset in the activation arena. */
  readonly offset: number;
  /** Bytes reserved: width × row capacity × element size, 256-aligned. */
  readonly bytes: number;
}

/**
 * The static plan an engine runs: ops in order, every activation at a fixed arena offset sized for
 * the optimization profile. Backends turn it into kernel launches (CUDA) or loops (CPU).
 */
export interface EnginePlan {
  readonly ops: readonly Op[];
  readonly buffers: Readonly<Record<string, PlannedBuffer>>;
  /** Arena size in bytes. */
  readonly arenaBytes: number;
  /** Rows of a "tokens" activation: the profile's maxNumTokens. */
  readonly maxTokens: number;
  /** Rows of a "seqs" activation (logit rows per step). */
  readonly maxSeqs: number;
  /** Bytes of one activation element. */
  readonly elementBytes: number;
  readonly attributes: NetworkAttributes;
}

const ALIGN = 256;
const alignUp = (n: number, a = ALIGN): number => Math.ceil(n / a) * a;

/** Names of the activations an op reads and writes. */
export function opTensors(op: Op): { reads: string[]; writes: string[] } {
  switch (op.type) {
    case "embedding":
      return { reads: [], writes: [op.out] };
    case "rmsnorm":
      return { reads: [op.x], writes: [op.out] };
    case "add_rmsnorm":
      return { reads: [op.x, op.residual], writes: [op.residual, op.out] };
    case "linear":
      return { reads: [op.x], writes: [op.out] };
    case "qk_norm":
      return { reads: [op.qkv], writes: [op.qkv] };
    case "rope_kv_write":
      return { reads: [op.qkv], writes: [op.q] };
    case "paged_attention":
      return { reads: [op.q], writes: [op.out] };
    case "silu_mul":
      return { reads: [op.gateUp], writes: [op.out] };
    case "add":
      return { reads: [op.x, op.out], writes: [op.out] };
    case "gather_rows":
      return { reads: [op.x], writes: [op.out] };
    case "sample":
      return { reads: [op.logits], writes: [] };
    case "all_reduce":
      return { reads: [op.x], writes: [op.x] };
    case "all_gather":
      return { reads: [op.x], writes: [op.out] };
  }
}

/**
 * Fusion pass: `add(x → h)` followed by `rmsnorm(h) → y` becomes one `add_rmsnorm`
 * (one read of the residual stream instead of two).
 */
export function fuseAddRmsnorm(ops: readonly Op[]): Op[] {
  const out: Op[] = [];
  for (let i = 0; i < ops.length; i++) {
    const a = ops[i], b = ops[i + 1];
    if (a.type === "add" && b?.type === "rmsnorm" && b.x === a.out) {
      out.push({ type: "add_rmsnorm", x: a.x, residual: a.out, weight: b.weight, eps: b.eps, out: b.out });
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/**
 * Places activations in one arena, reusing space between tensors whose lifetimes (first write to
 * last read, in op order) do not overlap. Greedy: largest first, lowest offset that fits.
 */
export function planMemory(
  net: Network,
  ops: readonly Op[],
  profile: { maxTokens: number; maxSeqs: number; elementBytes: number },
): { buffers: Record<string, PlannedBuffer>; arenaBytes: number } {
  const first = new Map<string, number>(), last = new Map<string, number>();
  ops.forEach((op, i) => {
    const { reads, writes } = opTensors(op);
    for (const t of [...reads, ...writes]) {
      if (!net.activations.has(t)) throw new InternalError(`plan: op ${op.type} uses undeclared activation '${t}'`);
      if (!first.has(t)) first.set(t, i);
      last.set(t, i);
    }
  });
  // The logits are read by the runtime after the last op.
  const logits = net.attributes?.logits;
  if (logits) last.set(logits, ops.length);
  // A backend may fold an op into its consumer (the CUDA decode step: RoPE + KV write into the
  // attention kernel, SiLU·mul into the gate/up GEMV). The folded launch reads the first op's input
  // while it writes the second's output, so that input lives until the consumer.
  const producer = new Map<string, number>();
  ops.forEach((op, i) => {
    for (const w of opTensors(op).writes) producer.set(w, i);
    let input: string | undefined;
    if (op.type === "paged_attention") {
      const r = producer.get(op.q);
      if (r !== undefined && ops[r].type === "rope_kv_write") input = (ops[r] as Extract<Op, { type: "rope_kv_write" }>).qkv;
    } else if (op.type === "silu_mul") {
      const g = producer.get(op.gateUp);
      if (g !== undefined && ops[g].type === "linear") input = (ops[g] as Extract<Op, { type: "linear" }>).x;
    }
    if (input !== undefined && (last.get(input) ?? -1) < i) last.set(input, i);
  });
  const items = [...first.keys()].map((name) => {
    const a = net.activations.get(name)!;
    const rows = a.rows === "tokens" ? profile.maxTokens : profile.maxSeqs;
    return { a, bytes: alignUp(a.width * rows * profile.elementBytes), start: first.get(name)!, end: last.get(name)! };
  }).sort((x, y) => y.bytes - x.bytes || x.start - y.start);
  const placed: { offset: number; bytes: number; start: number; end: number }[] = [];
  const buffers: Record<string, PlannedBuffer> = {};
  let arenaBytes = 0;
  for (const it of items) {
    const clashes = placed.filter((p) => p.start <= it.end && it.start <= p.end).sort((x, y) => x.offset - y.offset);
    let offset = 0;
    for (const p of clashes) {
      if (offset + it.bytes <= p.offset) break;
      offset = Math.max(offset, p.offset + p.bytes);
    }
    placed.push({ offset, bytes: it.bytes, start: it.start, end: it.end });
    buffers[it.a.name] = { ...it.a, offset, bytes: it.bytes };
    arenaBytes = Math.max(arenaBytes, offset + it.bytes);
  }
  return { buffers, arenaBytes };
}

/** What a plan must agree with: the model's dimensions (from the engine config) and its weights. */
export interface PlanExpectations {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Dtype every unquantized weight is stored in. */
  readonly weightDtype: string;
  /** A weight's stored dtype and shape, or undefined when the engine has no such tensor. */
  readonly tensor: (name: string) => { readonly dtype: string; readonly shape: readonly number[] } | undefined;
  /** The config's KV-cache quantization (`quant.kvCacheQuantAlgo`); the plan's `attributes.kvCache` must agree. */
  readonly kvCacheQuantAlgo?: string | null;
}

const OP_TYPES: ReadonlySet<string> = new Set([
  "embedding",
  "rmsnorm",
  "add_rmsnorm",
  "linear",
  "qk_norm",
  "rope_kv_write",
  "paged_attention",
  "silu_mul",
  "add",
  "gather_rows",
  "sample",
  "all_reduce",
  "all_gather",
]);
const STEP_INPUTS: ReadonlySet<string> = new Set(["tokenIds", "positions", "seqStarts", "contextLens", "blockTables", "lastTokenIdx"]);

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v > 0;
const isIndex = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Checks an engine plan read from a file against the model it claims to run: every op type known,
 * every activation planned inside the arena with the width the op needs, head counts, layer indices
 * and widths equal to the config's, every weight present with its shape and dtype. Throws a
 * `FormatError` naming `where`, the op and the expected vs found value.
 */
export function validatePlan(raw: unknown, x: PlanExpectations, where: string): EnginePlan {
  const bad = (msg: string): never => {
    throw new FormatError(`${where}: ${msg}`, where);
  };
  if (!isObj(raw)) return bad("the plan is not an object");
  const { ops, buffers, arenaBytes, maxTokens, maxSeqs, elementBytes, attributes } = raw;
  if (!Array.isArray(ops) || ops.length === 0) bad("plan.ops must be a non-empty array");
  if (!isObj(buffers)) bad("plan.buffers must be an object");
  for (const [k, v] of Object.entries({ arenaBytes, maxTokens, maxSeqs, elementBytes })) {
    if (!isCount(v)) bad(`plan.${k} must be a positive integer, got ${showValue(v)}`);
  }
  const bufs = buffers as Record<string, unknown>;
  const width = (name: unknown, ctx: string, rows?: "tokens" | "seqs"): number => {
    if (typeof name !== "string") return bad(`${ctx}: activation name must be a string, got ${showValue(name)}`);
    const b = bufs[name];
    if (!isObj(b)) return bad(`${ctx}: activation '${name}' is not planned`);
    if (!isCount(b.width) || (b.rows !== "tokens" && b.rows !== "seqs") || !isIndex(b.offset) || !isIndex(b.bytes)) {
      return bad(`plan.buffers['${name}'] is malformed (${showValue(b)})`);
    }
    const cap = (b.rows === "tokens" ? maxTokens as number : maxSeqs as number) * b.width * (elementBytes as number);
    if (b.bytes < cap || b.offset + b.bytes > (arenaBytes as number)) {
      bad(`plan.buffers['${name}']: ${b.bytes} bytes at offset ${b.offset} do not hold ${cap} bytes inside the ${arenaBytes}-byte arena`);
    }
    if (rows && b.rows !== rows) bad(`${ctx}: activation '${name}' has ${b.rows} rows, expected ${rows}`);
    return b.width;
  };
  const expectWidth = (name: unknown, want: number, ctx: string, rows?: "tokens" | "seqs"): void => {
    const w = width(name, ctx, rows);
    if (w !== want) bad(`${ctx}: activation '${String(name)}' is ${w} wide, expected ${want}`);
  };
  const weight = (name: unknown, shape: readonly number[] | null, ctx: string): void => {
    if (typeof name !== "string") return bad(`${ctx}: weight name must be a string, got ${showValue(name)}`);
    const t = x.tensor(name);
    if (!t) return bad(`${ctx}: weight '${name}' is missing from the engine`);
    if (shape && !sameShape(t.shape, shape)) bad(`${ctx}: weight '${name}' has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`);
    if (shape && t.dtype !== x.weightDtype) bad(`${ctx}: weight '${name}' is ${t.dtype}, expected ${x.weightDtype}`);
  };
  const heads = (o: Record<string, unknown>, ctx: string): void => {
    for (const [k, want] of [["numHeads", x.numHeads], ["numKvHeads", x.numKvHeads], ["headDim", x.headDim]] as const) {
      if (o[k] !== want) bad(`${ctx}: ${k} is ${showValue(o[k])}, the config says ${want}`);
    }
  };
  const layer = (o: Record<string, unknown>, ctx: string): number => {
    if (!isIndex(o.layer) || o.layer >= x.numLayers) bad(`${ctx}: layer ${showValue(o.layer)} is outside [0, ${x.numLayers})`);
    return o.layer as number;
  };
  const finite = (v: unknown, ctx: string, what: string, min = 0): void => {
    if (typeof v !== "number" || !Number.isFinite(v) || v < min) bad(`${ctx}: ${what} must be a finite number >= ${min}, got ${showValue(v)}`);
  };
  const { hiddenSize: H, vocabSize: V, numHeads: nH, numKvHeads: nKV, headDim: hd } = x;
  const qkvWidth = (nH + 2 * nKV) * hd;
  const attnLayers = new Set<number>(), ropeLayers = new Set<number>();
  let samples = 0;
  (ops as unknown[]).forEach((op, i) => {
    if (!isObj(op)) return bad(`plan.ops[${i}] is not an object`);
    const ctx = `plan.ops[${i}] (${showValue(op.type)})`;
    if (typeof op.type !== "string" || !OP_TYPES.has(op.type)) {
      bad(`plan.ops[${i}] has unknown op type ${showValue(op.type)} (known: ${[...OP_TYPES].join(", ")})`);
    }
    switch (op.type) {
      case "embedding":
        if (typeof op.ids !== "string" || !STEP_INPUTS.has(op.ids)) bad(`${ctx}: ids ${showValue(op.ids)} is not a step input`);
        weight(op.table, [V, H], ctx);
        expectWidth(op.out, H, ctx, "tokens");
        break;
      case "rmsnorm":
      case "add_rmsnorm": {
        const w = width(op.x, ctx);
        if (op.type === "add_rmsnorm") expectWidth(op.residual, w, ctx);
        expectWidth(op.out, w, ctx);
        weight(op.weight, [w], ctx);
        finite(op.eps, ctx, "eps");
        break;
      }
      case "linear": {
        if (!isCount(op.inFeatures) || !isCount(op.outFeatures)) bad(`${ctx}: inFeatures/outFeatures must be positive integers`);
        expectWidth(op.x, op.inFeatures as number, ctx);
        expectWidth(op.out, op.outFeatures as number, ctx);
        const fmt = op.weightFormat;
        if (fmt === undefined) {
          weight(op.weight, [op.outFeatures as number, op.inFeatures as number], ctx);
        } else {
          // Quantized: packed layout is the format's business; the weight and its scales must exist.
          if (!isObj(fmt)) bad(`${ctx}: weightFormat must be an object`);
          weight(op.weight, null, ctx);
          weight((fmt as Record<string, unknown>).scales, null, ctx);
        }
        if (op.bias !== undefined) weight(op.bias, [op.outFeatures as number], ctx);
        break;
      }
      case "qk_norm":
        heads(op, ctx);
        expectWidth(op.qkv, qkvWidth, ctx);
        weight(op.qWeight, [hd], ctx);
        weight(op.kWeight, [hd], ctx);
        finite(op.eps, ctx, "eps");
        break;
      case "rope_kv_write":
        heads(op, ctx);
        ropeLayers.add(layer(op, ctx));
        expectWidth(op.qkv, qkvWidth, ctx);
        expectWidth(op.q, nH * hd, ctx);
        break;
      case "paged_attention":
        heads(op, ctx);
        attnLayers.add(layer(op, ctx));
        expectWidth(op.q, nH * hd, ctx);
        expectWidth(op.out, nH * hd, ctx);
        finite(op.scale, ctx, "scale", Number.MIN_VALUE);
        if (!isIndex(op.window)) bad(`${ctx}: window must be a non-negative integer, got ${showValue(op.window)}`);
        break;
      case "silu_mul":
        if (op.width !== x.intermediateSize) bad(`${ctx}: width is ${showValue(op.width)}, the config says ${x.intermediateSize}`);
        expectWidth(op.gateUp, 2 * x.intermediateSize, ctx);
        expectWidth(op.out, x.intermediateSize, ctx);
        break;
      case "add":
        expectWidth(op.out, width(op.x, ctx), ctx);
        break;
      case "gather_rows":
        expectWidth(op.out, width(op.x, ctx, "tokens"), ctx, "seqs");
        break;
      case "sample":
        expectWidth(op.logits, V, ctx, "seqs");
        samples++;
        break;
      case "all_reduce":
        width(op.x, ctx);
        break;
      case "all_gather":
        if (!isCount(op.width) || !isCount(op.outWidth)) bad(`${ctx}: width/outWidth must be positive integers`);
        expectWidth(op.x, op.width as number, ctx);
        expectWidth(op.out, op.outWidth as number, ctx);
        break;
    }
  });
  for (let l = 0; l < x.numLayers; l++) {
    if (!attnLayers.has(l) || !ropeLayers.has(l)) bad(`layer ${l} of the config's ${x.numLayers} has no attention in the plan`);
  }
  if (samples !== 1) bad(`the plan must end in one sample op, found ${samples}`);
  if (!isObj(attributes)) return bad("plan.attributes must be an object");
  const attr = attributes as Record<string, unknown>;
  for (const [k, want] of [["numLayers", x.numLayers], ["numKvHeads", nKV], ["headDim", hd], ["vocabSize", V], ["hiddenSize", H]] as const) {
    if (attr[k] !== want) bad(`plan.attributes.${k} is ${showValue(attr[k])}, the config says ${want}`);
  }
  const rope = attr.rope;
  if (
    !isObj(rope) || !Array.isArray(rope.invFreq) || rope.invFreq.length !== hd / 2 || !rope.invFreq.every((f) => typeof f === "number" && Number.isFinite(f))
  ) {
    bad(`plan.attributes.rope.invFreq must be ${hd / 2} finite numbers`);
  }
  finite((rope as Record<string, unknown>).attentionScaling, "plan.attributes.rope", "attentionScaling");
  expectWidth(attr.logits, V, "plan.attributes.logits", "seqs");
  const kv = attr.kvCache;
  const kvAlgo = isObj(kv) ? kv.quantAlgo : null;
  if (kv !== undefined && (!isObj(kv) || (kvAlgo !== "FP8" && kvAlgo !== "INT8"))) {
    bad(`plan.attributes.kvCache.quantAlgo must be "FP8" or "INT8", got ${showValue(kvAlgo)}`);
  }
  if ((x.kvCacheQuantAlgo ?? null) !== kvAlgo) {
    bad(`plan.attributes.kvCache.quantAlgo is ${showValue(kvAlgo)}, the config's quant.kvCacheQuantAlgo is ${showValue(x.kvCacheQuantAlgo ?? null)}`);
  }
  if (isObj(kv)) {
    const sc = kv.scales, n = x.numLayers * 2 * nKV;
    if (!Array.isArray(sc) || sc.length !== n || !sc.every((v) => typeof v === "number" && Number.isFinite(v) && v > 0)) {
      bad(`plan.attributes.kvCache.scales must be ${n} positive finite numbers ([numLayers ${x.numLayers}, 2, numKvHeads ${nKV}])`);
    }
  }
  return raw as unknown as EnginePlan;
}
