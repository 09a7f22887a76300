/**
 * The CUDA launch plan of an engine step: every op of the engine plan turned into a kernel launch
 * (name, grid, block, arguments with resolved device addresses) or a cuBLASLt GEMM. Pure data and
 * arithmetic — no FFI — so the table can be built and checked on a machine without a GPU; the CUDA
 * session executes it eagerly (prefill, mixed steps) or captures it into a graph (decode buckets).
 * Kernel ABIs: lib/backends/cuda/kernels/README.md. Linear ops: linear_launch.ts; attention: attention_launch.ts; the sampler: sample_launch.ts.
 */
import { planDecodeFusion } from "./decode_fusion.ts";
import { fp8ActScale, fp8GemvStep, fp8QuantProducers, fp8ScratchLayout } from "./fp8_launch.ts";
import { InternalError } from "../../util/errors.ts";
import type { LastLayerRows } from "./last_layer_rows.ts";
import { isPdlKernel, isPrefillPdlKernel } from "./kernel_signatures.ts";
import { GEMV_MAX_ROWS, type KernelLaunch, type Launch, type LaunchEnv, NCCL_ALL_REDUCE, type StepShape } from "./launch_types.ts";
import { planLinear } from "./linear_launch.ts";
import { NVFP4_NORM_FAST_MAX, nvfp4ActArgs, nvfp4ActProducers } from "./lowbit_launch.ts";
import { decodeAttnQuantFits, planAttention, prefillOnFlashWg, shadowRope } from "./attention_launch.ts";
import { opReads, readerCounts } from "./op_reads.ts";
import { sampleLaunches } from "./sample_launch.ts";
import type { Op } from "../../ir/network.ts";
import type { StepCtx } from "./step_ctx.ts";

export * from "./attention_choice.ts";
export * from "./launch_types.ts";
export * from "./kernel_signatures.ts";
export * from "./sample_launch.ts";

const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/**
 * Every launch of one step, in op order. Rows: "tokens" activations have `numTokens` rows, "seqs"
 * activations (and logits) `numRows`.
 */
export function planLaunches(env: LaunchEnv, shape: StepShape): Launch[] {
  const { plan, elem } = env;
  const a = plan.attributes;
  const T = shape.numTokens, S = shape.numSeqs, R = shape.numRows;
  const V = elem === "bf16" ? 8 : 4; // elements per 16-byte vector
  const gemmType = elem === "bf16" ? "bf16" : "fp32";
  // Last-layer pruning (last_layer_rows.ts): from the last attention on, token-row activations hold the
  // logits rows only (gathered into env.lastLayerRows.scratch, or computed for those rows).
  const prune: LastLayerRows | undefined = shape.pruneRows && env.lastLayerRows && shape.attention.kind !== "decode" && !env.lora && R > 0 && R < T
    ? env.lastLayerRows.plan
    : undefined;
  let pruned = false;
  const remap = new Map<string, bigint>();
  const buf = (name: string): bigint => {
    const r = pruned ? remap.get(name) : undefined;
    if (r !== undefined) return r;
    const b = plan.buffers[name];
    if (!b) throw new InternalError(`launch plan: activation '${name}' has no buffer in the plan`);
    return env.arena + BigInt(b.offset);
  };
  const rowsOf = (name: string): number => (plan.buffers[name].rows === "tokens" && !pruned ? T : R);
  const widthOf = (name: string): number => plan.buffers[name].width;
  const kvLayer = (l: number): bigint => env.kvBase + BigInt(l) * BigInt(env.kvLayerBytes);
  const io = env.io;
  const out: Launch[] = [];
  const k = (op: number, kernel: string, grid: readonly [number, number, number], block: number, args: (bigint | number)[], sharedBytes = 0): void => {
    const l: KernelLaunch = pdlAfter(kernel) ? { kind: "kernel", op, kernel, grid, block, args, pdl } : { kind: "kernel", op, kernel, grid, block, args };
    out.push(sharedBytes > 0 ? { ...l, sharedBytes } : l);
  };
  // A quantized KV cache (FP8 e4m3 / INT8 bytes, per-(layer, k | v, kv head) scales): the _fp8kv / _int8kv
  // entry points, bf16 engines only.
  const kvFp8 = a.kvCache !== undefined;
  const kvTag = a.kvCache?.quantAlgo === "INT8" ? "int8kv_" : "fp8kv_";
  if (kvFp8 && (elem !== "bf16" || !env.kvScales)) {
    throw new InternalError(`launch plan: a ${a.kvCache!.quantAlgo} KV cache runs on bfloat16 engines with LaunchEnv.kvScales only`);
  }
  const kvScalesOf = (l: number): bigint => env.kvScales! + BigInt(l * 8 * a.numKvHeads);
  // Decode steps of up to 8 sequences (one token each) fold norms, epilogues and RoPE into fewer launches
  // (with a quantized KV cache RoPE + KV write keep their own launch unless fp8DecodeAttention folds them into
  // decode_attention_{fp8kv|int8kv}; decode steps of more than 8 sequences with an FP8 cache and batchAttention2
  // fold them into decode_attention_batch2_fp8kv).
  const batchFp8 = kvFp8 && a.kvCache!.quantAlgo === "FP8" && !!env.batchAttention && !!env.batchAttention2 && T > GEMV_MAX_ROWS;
  const fusedQuantKv = kvFp8 && !batchFp8 && !!env.fp8DecodeAttention;
  const fuse =
    !!env.fusedDecode && !env.lora && env.gemv && elem === "bf16" && T === S && T === R && shape.attention.kind === "decode" && env.decodeCounters !== undefined
      ? planDecodeFusion(
        plan,
        T,
        shape.attention.kind === "decode" && (!kvFp8 || batchFp8 || fusedQuantKv),
        (n) => n === a.logits,
        GEMV_MAX_ROWS,
        !!env.quantTailNorm && env.quantNormScratch !== undefined,
      )
      : undefined;
  // Fused decode steps: kernels that wait for their predecessor in code start early (programmatic dependent
  // launch), where that predecessor is such a kernel too (not the embedding, not an NCCL all-reduce).
  const pdl = !!fuse && !!env.pdl;
  const quantPdl = !!env.quantPdl;
  // FP8: norms / silu_mul that write the next linear's e4m3 rows themselves (LaunchEnv.fp8FusedQuant).
  const fq = fp8QuantProducers(
    plan,
    env,
    (i) => {
      const lin = plan.ops[i] as Extract<(typeof plan.ops)[number], { type: "linear" }>;
      // Past the cut of a pruned step token-row activations hold the logits rows only.
      const rows = prune && i > prune.cut && plan.buffers[lin.x].rows === "tokens" ? R : rowsOf(lin.x);
      return rows > 0 && !fp8GemvStep(lin, rows, env, T === S);
    },
    (i) => !!fuse && (fuse.skip.has(i) || fuse.normOnly.has(i) || fuse.norm.has(i) || fuse.epilogue.has(i) || fuse.attnQkv.has(i)),
    (j) => {
      const o = plan.ops[j];
      return o.type === "paged_attention" && prefillOnFlashWg(env, shape, kvFp8, o.headDim);
    },
    // fp8DecodeAttnQuant: decode_attention_batch4 over an e4m3 cache (its RoPE fused: touched by the decode fusion).
    (j) => {
      const o = plan.ops[j];
      return o.type === "paged_attention" && decodeAttnQuantFits(env, shape, kvFp8 ? kvTag : undefined, o.headDim, !!fuse?.attnQkv.has(j));
    },
  );
  const touchedByFuse = (i: number) => !!fuse && (fuse.skip.has(i) || fuse.normOnly.has(i) || fuse.norm.has(i) || fuse.epilogue.has(i) || fuse.attnQkv.has(i));
  // NVFP4 on nvfp4_mma.cu: norms / silu_mul that write the next GEMV's int8 codes themselves (LaunchEnv.nvfp4Mma).
  const nq = nvfp4ActProducers(plan, env, rowsOf, T === S, touchedByFuse);
  const nqArgs = (j: number) => nvfp4ActArgs(plan.ops[nq.get(j)!] as Extract<(typeof plan.ops)[number], { type: "linear" }>, env);
  /** The NVFP4 norm + act producer of a row of `hidden` (nvfp4NormFast: the 1024-thread form, same bytes) and its block size. */
  const nvfp4NormAct = (hidden: number): [string, number] =>
    env.nvfp4NormFast && hidden <= NVFP4_NORM_FAST_MAX ? ["nvfp4_rmsnorm_act_fast_bf16", 1024] : ["nvfp4_rmsnorm_act_bf16", 256];
  const preQuantized = new Set([...fq.values(), ...nq.values()]);
  /** The FP8 scratch's e4m3 rows and row scales (the producer's outputs), and the linear's static scale. */
  const fqArgs = (lin: number): [bigint, bigint, number] => {
    const layout = fp8ScratchLayout(plan);
    if (!env.fp8Scratch || !layout) throw new InternalError("launch plan: an FP8 linear needs LaunchEnv.fp8Scratch");
    return [env.fp8Scratch, env.fp8Scratch + BigInt(layout.scalesOffset), fp8ActScale(plan.ops[lin] as Extract<(typeof plan.ops)[number], { type: "linear" }>)];
  };
  const pdlAfter = (kernel: string): boolean => {
    const prev = out[out.length - 1];
    return pdl && isPdlKernel(kernel, quantPdl) && prev?.kind === "kernel" && isPdlKernel(prev.kernel, quantPdl);
  };
  const c: StepCtx = {
    env,
    shape,
    T,
    S,
    R,
    gemmType,
    buf,
    rowsOf,
    kvLayer,
    kvFp8,
    kvTag,
    kvScalesOf,
    fuse,
    pdl,
    preQuantized,
    pruned: () => pruned,
    out,
    k,
  };
  /** An RMSNorm (no residual add) quantizing for the next FP8 linear: fp8_rmsnorm_quant_bf16 add 0. */
  const normQuant = (i: number, x: bigint, w: bigint, rows: number, width: number, eps: number, [xq, rs, act]: [bigint, bigint, number]): void => {
    k(i, "fp8_rmsnorm_quant_bf16", [rows, 1, 1], 256, [x, 0n, w, 0n, xq, rs, rows, width, eps, act, 0]);
  };
  // gemmResidual (prefill and mixed steps): the op index whose residual add the previous linear's GEMM did.
  const residualInGemm = !!env.gemmResidual && shape.attention.kind !== "decode" && !env.lora;
  let addedByGemm = -1;
  plan.ops.forEach((op, i) => {
    if (prune && i === prune.cut) {
      for (const g of prune.gathers) {
        const dst = env.lastLayerRows!.scratch + BigInt(g.offset);
        k(i, `gather_rows_${elem}`, [R, 1, 1], 256, [buf(g.name), io.logitRows, dst, R, g.width]);
        remap.set(g.name, dst);
      }
      pruned = true;
    }
    if (pruned && prune!.aliases.has(i)) {
      remap.set((op as Extract<typeof op, { type: "gather_rows" }>).out, buf(prune!.aliases.get(i)!));
      return;
    }
    // Speculative verify steps: the KV write runs ahead of decode_attention (which rewrites its token's same bits).
    if (fuse?.skip.has(i) && !(shape.writeKvFirst && op.type === "rope_kv_write")) return;
    // A step with no logits rows (a prefill chunk that does not end its prompt) skips the row ops.
    if (
      R === 0 &&
      (op.type === "gather_rows" || op.type === "sample" || ((op.type === "rmsnorm" || op.type === "linear" || op.type === "add") && rowsOf(op.x) === 0))
    ) return;
    switch (op.type) {
      case "embedding":
        k(i, `embedding_${elem}`, [T, 1, 1], 256, [io.tokenIds, env.weight(op.table), buf(op.out), T, a.hiddenSize, a.vocabSize, 0n]);
        break;
      case "rmsnorm": {
        const rows = rowsOf(op.x);
        if (fq.has(i)) {
          normQuant(i, buf(op.x), env.weight(op.weight), rows, widthOf(op.x), op.eps, fqArgs(fq.get(i)!));
          break;
        }
        if (nq.has(i)) {
          const [xq, sx, a] = nqArgs(i);
          const [name, block] = nvfp4NormAct(widthOf(op.x));
          k(i, name, [rows, 1, 1], block, [buf(op.x), 0n, env.weight(op.weight), xq, sx, rows, widthOf(op.x), op.eps, a, 0]);
          break;
        }
        k(i, `rmsnorm_${elem}`, [rows, 1, 1], 256, [buf(op.x), env.weight(op.weight), buf(op.out), rows, widthOf(op.x), op.eps]);
        break;
      }
      case "add_rmsnorm": {
        const rows = rowsOf(op.x);
        if (fuse?.normOnly.has(i)) {
          k(i, `rmsnorm_${elem}`, [rows, 1, 1], 256, [buf(op.residual), env.weight(op.weight), buf(op.out), rows, widthOf(op.x), op.eps]);
          break;
        }
        if (addedByGemm === i) {
          if (fq.has(i)) {
            // fp8GemmResidual: the residual already holds the sum; only its norm, quantized for the next FP8 linear.
            normQuant(i, buf(op.residual), env.weight(op.weight), rows, widthOf(op.x), op.eps, fqArgs(fq.get(i)!));
            break;
          }
          k(i, `rmsnorm_${elem}`, [rows, 1, 1], 256, [buf(op.residual), env.weight(op.weight), buf(op.out), rows, widthOf(op.x), op.eps]);
          break;
        }
        if (fq.has(i)) {
          const [xq, rs, act] = fqArgs(fq.get(i)!);
          k(i, "fp8_rmsnorm_quant_bf16", [rows, 1, 1], 256, [
            buf(op.x),
            buf(op.residual),
            env.weight(op.weight),
            0n,
            xq,
            rs,
            rows,
            widthOf(op.x),
            op.eps,
            act,
            1,
          ]);
          break;
        }
        if (nq.has(i)) {
          const [xq, sx, a] = nqArgs(i);
          const [name, block] = nvfp4NormAct(widthOf(op.x));
          k(i, name, [rows, 1, 1], block, [buf(op.x), buf(op.residual), env.weight(op.weight), xq, sx, rows, widthOf(op.x), op.eps, a, 1]);
          break;
        }
        k(i, `add_rmsnorm_${elem}`, [rows, 1, 1], 256, [buf(op.x), buf(op.residual), env.weight(op.weight), buf(op.out), rows, widthOf(op.x), op.eps]);
        break;
      }
      case "linear": {
        const first = out.length;
        planLinear(c, op, i);
        const next = plan.ops[i + 1];
        const last = out.length - 1, g = out[last], q = out[first];
        // The GEMM alone, or (fp8GemmResidual) an FP8 GEMM after its input's quantize: the GEMM writes op.out last.
        const fp8 = !!env.fp8GemmResidual && g?.kind === "gemm" && g.dtype === "fp8e4m3" &&
          (last === first || (last === first + 1 && q.kind === "kernel" && q.kernel.startsWith("fp8_quantize_")));
        if (
          residualInGemm && (last === first || fp8) && g?.kind === "gemm" && (g.dtype === gemmType || fp8) && g.outDtype === gemmType && g.bias === null &&
          g.d === buf(op.out) && (next?.type === "add" || next?.type === "add_rmsnorm") && next.x === op.out && onlyReader(plan.ops, op.out, i + 1)
        ) {
          const residual = buf(next.type === "add" ? next.out : next.residual);
          out[last] = { ...g, d: residual, c: residual };
          addedByGemm = i + 1;
        }
        break;
      }
      case "qk_norm":
        k(i, `qk_norm_${elem}`, [cdiv(op.numHeads + op.numKvHeads, 4), T, 1], 128, [
          buf(op.qkv),
          env.weight(op.qWeight),
          env.weight(op.kWeight),
          T,
          op.numHeads,
          op.numKvHeads,
          op.headDim,
          op.eps,
        ]);
        break;
      case "rope_kv_write": {
        // fp8ShadowRope: the step's k / v rows into the bf16 shadow too (its attention converts only the other rows).
        const shadow = shadowRope(c, op.headDim);
        k(i, kvFp8 ? `rope_kv_write_${shadow ? "shadow_" : ""}${kvTag}bf16` : `rope_kv_write_${elem}`, [T, 1, 1], 128, [
          buf(op.qkv),
          buf(op.q),
          kvLayer(op.layer),
          io.positions,
          io.seqStarts,
          io.blockTables,
          env.invFreq,
          a.rope.attentionScaling,
          T,
          S,
          op.numHeads,
          op.numKvHeads,
          op.headDim,
          env.tokensPerBlock,
          env.blockStride,
          ...(kvFp8 ? [kvScalesOf(op.layer)] : []),
          ...(shadow ? [env.kvShadow!] : []),
        ]);
        break;
      }
      case "paged_attention":
        planAttention(c, op, i, fq.has(i) ? fqArgs(fq.get(i)!) : undefined);
        break;
      case "silu_mul":
        if (fq.has(i)) {
          const [xq, rs, act] = fqArgs(fq.get(i)!);
          // Rows: T, or the logits rows past a pruned step's cut. Static scales: fp8FastSilu (hardware exp / division) or
          // fp8FlatQuant (the same bytes), one 8-element chunk a thread.
          const rows = rowsOf(op.gateUp);
          const flat = act > 0 ? (env.fp8FastSilu ? "fast" : env.fp8FlatQuant ? "flat" : "") : "";
          if (flat) k(i, `fp8_silu_mul_quant_${flat}_bf16`, [cdiv(op.width, 2048), rows, 1], 256, [buf(op.gateUp), xq, rs, rows, op.width, act]);
          else k(i, "fp8_silu_mul_quant_bf16", [rows, 1, 1], 256, [buf(op.gateUp), xq, rs, rows, op.width, act]);
          break;
        }
        if (nq.has(i)) {
          const [xq, sx, a] = nqArgs(i);
          const rows = rowsOf(op.gateUp);
          k(i, "nvfp4_silu_mul_act_bf16", [Math.ceil(op.width / 1024), rows, 1], 256, [buf(op.gateUp), xq, sx, rows, op.width, a]);
          break;
        }
        k(i, `silu_mul_${elem}`, [cdiv(op.width, 256 * V), rowsOf(op.gateUp), 1], 256, [buf(op.gateUp), buf(op.out), rowsOf(op.gateUp), op.width]);
        break;
      case "add": {
        if (addedByGemm === i) break;
        const n = rowsOf(op.x) * widthOf(op.x);
        k(i, `add_inplace_${elem}`, [Math.max(1, Math.min(cdiv(n, 256 * V), 8192)), 1, 1], 256, [buf(op.x), buf(op.out), BigInt(n)]);
        break;
      }
      case "all_reduce":
        k(i, NCCL_ALL_REDUCE, [1, 1, 1], 1, [buf(op.x), rowsOf(op.x) * plan.buffers[op.x].width]);
        break;
      case "gather_rows":
        k(i, `gather_rows_${elem}`, [R, 1, 1], 256, [buf(op.x), io.logitRows, buf(op.out), R, widthOf(op.x)]);
        break;
      case "sample":
        if (shape.sample) {
          for (const l of sampleLaunches(env, R, false)) out.push(l.kind === "kernel" && pdlAfter(l.kernel) ? { ...l, pdl } : l);
        }
        break;
    }
    // Multi-LoRA: each token row's adapter delta added to the linear's output (token-row linears only).
    const table = op.type === "linear" && env.lora && plan.buffers[op.x].rows === "tokens" ? env.lora.table(op.weight) : undefined;
    if (table !== undefined && op.type === "linear") {
      const { K, tokenSlot, tmp, rankStride } = env.lora!;
      k(i, `lora_shrink_${elem}`, [T, K, 1], 256, [buf(op.x), T, op.inFeatures, tokenSlot, table, K, tmp, rankStride]);
      k(i, `lora_expand_${elem}`, [cdiv(op.outFeatures, 256), T, 1], 256, [buf(op.out), T, op.outFeatures, tokenSlot, table, K, tmp, rankStride]);
    }
  });
  const batchDecode = shape.attention.kind === "decode" && T > GEMV_MAX_ROWS;
  const planned = (env.prefillPdl && !fuse && shape.attention.kind !== "decode") || (env.batchDecodePdl && batchDecode) ? withPrefillPdl(out) : out;
  const pickM = shape.gemmPickRows;
  // An eager decode step: per-M tuned GEMMs take the algorithms of its graph bucket's (each of those GEMMs has pickM rows).
  return pickM ? planned.map((l) => l.kind === "gemm" && !l.invariant && l.m !== pickM ? { ...l, pickM } : l) : planned;
}

/**
 * LaunchEnv.prefillPdl: the kernels of a prefill or mixed step that wait for their predecessor at their entry
 * (isPrefillPdlKernel) take programmatic dependent launch after any launch but an NCCL all-reduce, so their launch
 * overlaps the end of the GEMM or kernel before them (rope_kv_write_bf16 as rope_kv_write_pdl_bf16).
 */
function withPrefillPdl(out: Launch[]): Launch[] {
  return out.map((l, j) => {
    const prev = out[j - 1];
    const ok = j > 0 && l.kind === "kernel" && !l.pdl && isPrefillPdlKernel(l.kernel) && !(prev.kind === "kernel" && prev.kernel === NCCL_ALL_REDUCE);
    if (!ok) return l;
    // RoPE + KV write: the entry point that reads the step inputs (positions, block tables, cos/sin) before its wait.
    return { ...l, pdl: true, ...(l.kernel === "rope_kv_write_bf16" ? { kernel: "rope_kv_write_pdl_bf16" } : {}) };
  });
}

/** Whether op `reader` is the only op that reads activation `name` (gemmResidual: the linear's output is not kept). */
function onlyReader(ops: readonly Op[], name: string, reader: number): boolean {
  return readerCounts(ops)?.get(name) === 1 && (opReads(ops[reader]) ?? []).includes(name);
}
