/**
 * Admission: a submitted GenerationRequest checked against the executor's limits and turned into
 * the loop's RequestState (its sequence group, stop ids, bad words and, for beam search, the
 * search). A bad request throws a ValidationError naming the field; nothing is queued then.
 */
import { validatePromptIds } from "../runtime/prompt.ts";
import type { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import { ValidationError } from "../util/errors.ts";
import { initialBeamState } from "./beam_search.ts";
import type { ExecutorLimits, GenerationRequest } from "./config.ts";
import { checkId, needsHostProcessing, resolveBadWords } from "./logits_processor.ts";
import type { BeamRun, RequestState } from "./request_state.ts";
import type { GuidedRuntime } from "./guided/request.ts";
import { bannedAllowedIds, bannedAllowedIdsError } from "./row_checks.ts";
import { checkMinTokensRoom, type SamplingParams } from "./sampling_params.ts";
import { SequenceGroup } from "./sequence.ts";

/** What admission checks a request against, besides the limits. */
export interface AdmissionContext {
  readonly limits: ExecutorLimits;
  readonly tokenizer: LlmTokenizer | null;
  readonly enableChunkedPrefill: boolean;
  /** The engine keeps logits of every prompt position (BuildConfig.gatherContextLogits). */
  readonly gatherContextLogits: boolean;
  /** Most logits rows in one step. */
  readonly maxNumRows: number;
  /** End ids when a request names none (tokenizer stop ids and the model's eos ids). */
  readonly defaultEosIds: readonly number[];
  /** Compiles guidedDecoding constraints (a bad one throws here, at submission). */
  readonly guided: GuidedRuntime;
}

/**
 * Checks `request` and builds its state; `arrival` orders requests of equal priority.
 *
 * @example
 * ```ts
 * const st = admitRequest(ctx, 0, { promptTokenIds: [1, 403], samplingParams: new SamplingParams({}) }, 0);
 * scheduler.add(st.group);
 * ```
 */
export function admitRequest(ctx: AdmissionContext, id: number, request: GenerationRequest, arrival: number): RequestState {
  const p = request?.samplingParams;
  if (p === null || typeof p !== "object" || typeof p.seedWords !== "function") {
    throw new ValidationError("GenerationRequest.samplingParams: expected a SamplingParams", "samplingParams", p);
  }
  let ids = request.promptTokenIds;
  // The request shape first (it may come over the worker wire), then the prompt itself.
  if (!Array.isArray(ids) || ids.length === 0) {
    throw new ValidationError("GenerationRequest.promptTokenIds: expected a non-empty array of token ids", "promptTokenIds", ids);
  }
  if (p.truncatePromptTokens !== undefined && ids.length > p.truncatePromptTokens) ids = ids.slice(ids.length - p.truncatePromptTokens);
  const { maxSeqLen, maxBatchSize, maxNumTokens, numKvBlocks, tokensPerBlock } = ctx.limits;
  validatePromptIds(ids, ctx.limits, "promptTokenIds", "GenerationRequest.promptTokenIds");
  const len = ids.length;
  if (!ctx.enableChunkedPrefill && len > maxNumTokens) {
    throw new ValidationError(
      `GenerationRequest.promptTokenIds: prompt of ${len} tokens exceeds maxNumTokens ${maxNumTokens} and chunked prefill is off`,
      "promptTokenIds",
      len,
    );
  }
  if (Math.ceil((len + 1) / tokensPerBlock) > numKvBlocks) {
    throw new ValidationError(
      `GenerationRequest.promptTokenIds: prompt of ${len} tokens needs more than the KV cache's ${numKvBlocks} blocks of ${tokensPerBlock} tokens`,
      "promptTokenIds",
      len,
    );
  }
  const promptLogitsField = p.promptLogprobs !== undefined ? "promptLogprobs" : p.returnContextLogits ? "returnContextLogits" : null;
  if (promptLogitsField && !ctx.gatherContextLogits) {
    throw new ValidationError(
      `SamplingParams.${promptLogitsField}: needs logits of every prompt position, but the engine was built without gatherContextLogits; ` +
        "build it with BuildConfig.gatherContextLogits: true (LLM.create({ gatherContextLogits: true }))",
      promptLogitsField,
      p[promptLogitsField],
    );
  }
  const fanout = p.useBeamSearch ? p.beamWidth : p.bestOf;
  const fanoutField = p.useBeamSearch ? "beamWidth" : "bestOf";
  if (fanout > maxBatchSize) {
    throw new ValidationError(`SamplingParams.${fanoutField}: ${fanout} sequences exceed maxBatchSize ${maxBatchSize}`, fanoutField, fanout);
  }
  const tok = ctx.tokenizer;
  if (p.badWords.length > 0 && !tok) throw new ValidationError("SamplingParams.badWords: needs a tokenizer (skipTokenizerInit is set)", "badWords", p.badWords);
  const badWordIds = tok ? resolveBadWords(p.badWords, (s) => tok.encode(s, { addSpecialTokens: false })) : [];
  // An end or stop id outside the vocabulary could never be generated, so it would never end the request: name it.
  // badTokenIds, logitBias and allowedTokenIds index the logits row: refused here, before the request runs (the
  // logits processor checks them again where it indexes the row).
  const V = ctx.limits.vocabSize;
  checkVocabIds(p, V);
  if (p.endId !== undefined && p.endId >= V) {
    throw new ValidationError(`SamplingParams.endId: token id ${p.endId} is outside [0, ${V}) (a negative endId means no end id)`, "endId", p.endId);
  }
  const farStop = p.stopTokenIds.findIndex((t) => t >= V);
  if (farStop >= 0) {
    const t = p.stopTokenIds[farStop];
    throw new ValidationError(`SamplingParams.stopTokenIds[${farStop}]: token id ${t} is outside [0, ${V})`, `stopTokenIds[${farStop}]`, t);
  }
  const eosIds = p.endId !== undefined ? (p.endId >= 0 ? [p.endId] : []) : ctx.defaultEosIds;
  const banned = bannedAllowedIds(p, eosIds, badWordIds);
  if (banned) throw bannedAllowedIdsError(p, banned);
  // maxTokens beyond the room left is not refused: generation stops at maxSeqLen with finishReason "length".
  checkMinTokensRoom(p.minTokens, len, maxSeqLen);
  const priority = request.priority ?? 0;
  if (!Number.isFinite(priority)) throw new ValidationError(`GenerationRequest.priority: expected a finite number, got ${priority}`, "priority", priority);
  const group = new SequenceGroup(id, ids, { fanout, priority, arrival, isBeamSearch: p.useBeamSearch, wantsPromptLogits: promptLogitsField !== null });
  if (promptLogitsField && !ctx.enableChunkedPrefill) {
    const [from, to] = group.promptRowRange(group.seqs[0], 0, len);
    const rows = to - from + group.rowsFor(group.seqs[0]);
    if (rows > ctx.maxNumRows) {
      throw new ValidationError(
        `SamplingParams.${promptLogitsField}: a prompt of ${len} tokens needs ${rows} logits rows in one step, above the engine's ${ctx.maxNumRows}, and chunked prefill is off`,
        promptLogitsField,
        len,
      );
    }
  }
  const beam: BeamRun | null = p.useBeamSearch
    ? {
      state: initialBeamState(),
      seqs: [group.seqs[0]],
      pending: new Map(),
      pendingRaw: new Map(),
      generationLogits: p.returnGenerationLogits ? new Map<string, Float32Array[]>([["", []]]) : null,
      options: {
        beamWidth: p.beamWidth,
        maxTokens: Math.min(p.maxTokens, maxSeqLen - len),
        lengthPenalty: p.lengthPenalty,
        earlyStopping: p.earlyStopping,
        eosIds: [...(p.ignoreEos ? [] : eosIds), ...p.stopTokenIds],
      },
      nextIndex: 1,
      hypotheses: null,
    }
    : null;
  const host = needsHostProcessing(p) || (p.guidedDecoding !== undefined && ctx.guided.masksOnHost(p));
  return {
    id,
    request,
    params: p,
    // Frozen where logits processors see it (info.promptIds: host-processed and beam requests); freezing a 128-id
    // array costs ~20 µs in Bun (its elements move to a sparse map), ~10 ms a 512-request batch, so the rest get a
    // plain copy (typed readonly: RequestOutput.promptTokenIds).
    promptIds: host || beam ? Object.freeze([...ids]) : [...ids],
    group,
    streaming: request.streaming ?? false,
    eosIds,
    badWordIds,
    host,
    guided: ctx.guided.prepare(p, p.ignoreEos ? [] : eosIds, host),
    wantLogprobs: p.logprobs !== undefined || p.bestOf > p.n,
    wantGenerationLogits: p.returnGenerationLogits,
    promptLogprobs: p.promptLogprobs !== undefined ? [null] : null,
    contextLogits: p.returnContextLogits ? [] : null,
    outs: new Map(),
    beam,
  };
}

/** SamplingParams' token ids that index the logits row (logitBias keys, allowedTokenIds, badTokenIds) lie in [0, V). */
function checkVocabIds(p: SamplingParams, V: number): void {
  if (p.logitBias !== undefined) { for (const k of Object.keys(p.logitBias)) checkId(Number(k), V, `logitBias.${k}`); }
  p.allowedTokenIds?.forEach((id, j) => checkId(id, V, `allowedTokenIds[${j}]`));
  p.badTokenIds.forEach((id, j) => checkId(id, V, `badTokenIds[${j}]`));
}
