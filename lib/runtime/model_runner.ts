import { z } from "zod";
import type { SamplingInputs } from "../ir/sampling.ts";
import { splitSeed } from "../ir/sampling.ts";
import { Engine } from "../builder/engine.ts";
import { DisposedError, RequestFailedError, ValidationError } from "../util/errors.ts";
import { parseWith } from "../util/validate.ts";
import { defaultMaxInputLen, validatePromptIds } from "./prompt.ts";
import { type Backend, type KvCache, Session, type TpSessionOptions } from "./session.ts";
import { packStep } from "./step_packer.ts";

/** Sampling for a static batch (TensorRT-LLM's SamplingConfig, camelCase). */
export const SamplingConfigSchema = z.strictObject({
  /** Tokens to generate per sequence. */
  maxNewTokens: z.number().int().positive(),
  /** Stop when this id is sampled; -1 = none. @default the model's first eos id */
  endId: z.number().int().optional(),
  /** Id used to pad `outputIdsPadded`. @default endId */
  padId: z.number().int().optional(),
  /** More ids that stop a sequence. @default [] */
  stopTokenIds: z.array(z.number().int().nonnegative()).default([]),
  /** 0 = greedy. @default 0 */
  temperature: z.number().nonnegative().default(0),
  /** 0 = off. @default 0 */
  topK: z.number().int().nonnegative().default(0),
  /** @default 1 */
  topP: z.number().gt(0).lte(1).default(1),
  /** @default 0 */
  minP: z.number().min(0).lte(1).default(0),
  /** @default 0 */
  seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).default(0),
  /** Return each step's logits (the first is the prompt's last position). @default false */
  outputGenerationLogits: z.boolean().default(false),
});
export type SamplingConfigInput = z.input<typeof SamplingConfigSchema>;
export type SamplingConfig = z.output<typeof SamplingConfigSchema>;

/** Result of a static-batch generate. */
export interface GenerationOutput {
  /** Per sequence: prompt ids followed by generated ids (end id included when it stopped on it). */
  readonly outputIds: number[][];
  /** Per sequence: only the generated ids. */
  readonly newTokenIds: number[][];
  readonly finishReasons: ("stop" | "length")[];
  /** Per sequence, per generated token: logits [vocab] that produced it (when asked). */
  readonly generationLogits?: Float32Array[][];
}

export interface ModelRunnerOptions {
  /** @default "cpu" */
  readonly backend?: Backend;
  /** Cap on KV cache tokens; defaults to what the largest static batch needs. */
  readonly maxKvTokens?: number;
  /** Tensor-parallel session options (e.g. `tpMaster`: ranks in other processes). */
  readonly tp?: TpSessionOptions;
}

interface SeqState {
  readonly index: number;
  readonly tokens: number[];
  readonly promptLen: number;
  readonly blocks: number[];
  numComputed: number;
  finished: "stop" | "length" | null;
  logits: Float32Array[];
}

/**
 * Static-batch generation over a Session and a paged KV cache: every step packs prefill chunks
 * and decode tokens under the engine's maxNumTokens, samples on the backend, and stops each
 * sequence on its end id, a stop id, maxNewTokens or maxSeqLen.
 *
 * @example
 * ```ts
 * const runner = ModelRunner.fromDir("/tmp/stories-engine");
 * const out = runner.generate([[1, 403, 407, 261, 378]], { maxNewTokens: 32 });
 * console.log(out.newTokenIds[0]);
 * ```
 */
export class ModelRunner {
  #disposed = false;
  private constructor(readonly session: Session, readonly engine: Engine, readonly ownsEngine: boolean, readonly options: ModelRunnerOptions) {}

  /** Opens an engine directory and creates a session on it. */
  static fromDir(engineDir: string, options: ModelRunnerOptions = {}): ModelRunner {
    const engine = Engine.fromDir(engineDir);
    return new ModelRunner(Session.fromSerializedEngine(engine, { backend: options.backend, ...options.tp }), engine, true, options);
  }

  /** Creates a session on an engine the caller owns. */
  static fromEngine(engine: Engine, options: ModelRunnerOptions = {}): ModelRunner {
    return new ModelRunner(Session.fromSerializedEngine(engine, { backend: options.backend, ...options.tp }), engine, false, options);
  }

  get vocabSize(): number {
    return this.engine.plan.attributes.vocabSize;
  }

  /** Generates for a static batch of prompts (token ids). */
  generate(batchInputIds: number[][], samplingConfig: SamplingConfigInput): GenerationOutput {
    if (this.#disposed) throw new DisposedError("ModelRunner");
    const sc = parseWith(SamplingConfigSchema, samplingConfig, "SamplingConfig");
    const build = this.engine.config.build;
    const maxSeqLen = this.session.maxSeqLen;
    const V = this.vocabSize;
    if (!Array.isArray(batchInputIds) || batchInputIds.length === 0) {
      throw new ValidationError("ModelRunner.generate: batchInputIds must be a non-empty array of token-id arrays", "batchInputIds", batchInputIds);
    }
    const limits = { vocabSize: V, maxInputLen: build.maxInputLen ?? defaultMaxInputLen(maxSeqLen), maxSeqLen };
    batchInputIds.forEach((ids, i) => validatePromptIds(ids, limits, `batchInputIds[${i}]`));
    const endId = sc.endId ?? this.engine.config.model.eosTokenIds[0] ?? -1;
    const stops = new Set(sc.stopTokenIds);
    if (endId >= 0) stops.add(endId);
    const bs = this.session.tokensPerBlock;

    // One contiguous run of blocks per sequence, enough for prompt + maxNewTokens (capped at maxSeqLen).
    let nextBlock = 0;
    const seqs: SeqState[] = batchInputIds.map((ids, index) => {
      const cap = Math.min(ids.length + sc.maxNewTokens, maxSeqLen);
      const n = Math.ceil(cap / bs);
      const blocks = Array.from({ length: n }, (_, i) => nextBlock + i);
      nextBlock += n;
      return { index, tokens: [...ids], promptLen: ids.length, blocks, numComputed: 0, finished: null, logits: [] };
    });
    if (this.options.maxKvTokens !== undefined && nextBlock * bs > this.options.maxKvTokens) {
      throw new ValidationError(
        `ModelRunner: the batch needs ${nextBlock * bs} KV tokens, above maxKvTokens ${this.options.maxKvTokens}`,
        "maxKvTokens",
        this.options.maxKvTokens,
      );
    }
    const kv: KvCache = this.session.createKvCache(nextBlock);
    const maxBlocks = Math.max(...seqs.map((s) => s.blocks.length));
    const maxRows = this.engine.plan.maxSeqs;

    try {
      while (seqs.some((s) => !s.finished)) {
        this.#step(seqs, sc, stops, kv, maxBlocks, maxRows, V, build.maxNumTokens, maxSeqLen);
      }
    } finally {
      kv.dispose();
    }
    return {
      outputIds: seqs.map((s) => s.tokens),
      newTokenIds: seqs.map((s) => s.tokens.slice(s.promptLen)),
      finishReasons: seqs.map((s) => s.finished!),
      ...(sc.outputGenerationLogits ? { generationLogits: seqs.map((s) => s.logits) } : {}),
    };
  }

  #step(
    seqs: SeqState[],
    sc: SamplingConfig,
    stops: Set<number>,
    kv: KvCache,
    maxBlocks: number,
    maxRows: number,
    V: number,
    tokenBudget: number,
    maxSeqLen: number,
  ): void {
    // Pack: each unfinished sequence contributes its uncomputed tokens, within the token budget.
    const chunks: { s: SeqState; from: number; to: number }[] = [];
    let budget = tokenBudget;
    for (const s of seqs) {
      if (s.finished || budget === 0 || chunks.length === maxRows) continue;
      const n = Math.min(s.tokens.length - s.numComputed, budget);
      chunks.push({ s, from: s.numComputed, to: s.numComputed + n });
      budget -= n;
    }
    const rowSeq = chunks.filter((c) => c.to === c.s.tokens.length).map((c) => c.s);
    const inputs = packStep(
      chunks.map((c) => ({
        tokenIds: c.s.tokens,
        start: c.from,
        numTokens: c.to - c.from,
        blockTable: c.s.blocks,
        logitPositions: c.to === c.s.tokens.length ? [c.to - 1] : [],
      })),
      maxBlocks,
    );
    const R = rowSeq.length;
    const sampling: SamplingInputs = {
      temperature: new Float32Array(R).fill(sc.temperature),
      topK: new Int32Array(R).fill(sc.topK),
      topP: new Float32Array(R).fill(sc.topP),
      minP: new Float32Array(R).fill(sc.minP),
      seed: new Uint32Array(2 * R),
      step: new Int32Array(R),
    };
    const [lo, hi] = splitSeed(sc.seed);
    rowSeq.forEach((s, r) => {
      sampling.seed[2 * r] = lo;
      sampling.seed[2 * r + 1] = hi;
      sampling.step[r] = s.tokens.length - s.promptLen;
    });
    const out = { sampledIds: new Int32Array(R), logits: sc.outputGenerationLogits ? new Float32Array(R * V) : undefined };
    this.session.run({ ...inputs, sampling }, out, kv);
    for (const c of chunks) c.s.numComputed = c.to;
    rowSeq.forEach((s, r) => {
      const id = out.sampledIds[r];
      if (id < 0 || id >= V) {
        throw new RequestFailedError(
          `ModelRunner.generate: sequence ${s.index} got no token at step ${
            s.tokens.length - s.promptLen
          }: its logits are not finite (NaN or infinite; check the weights)`,
        );
      }
      s.tokens.push(id);
      if (out.logits) s.logits.push(out.logits.slice(r * V, (r + 1) * V));
      const generated = s.tokens.length - s.promptLen;
      if (stops.has(id)) s.finished = "stop";
      else if (generated >= sc.maxNewTokens || s.tokens.length >= maxSeqLen) s.finished = "length";
    });
  }

  /** Releases the session (and the engine when this runner opened it). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.session.dispose();
    if (this.ownsEngine) this.engine.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
