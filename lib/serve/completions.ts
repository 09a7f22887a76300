/** POST /v1/completions (OpenAI's legacy completions API, with vLLM's extra sampling fields). */
import type { RequestOutputData } from "./deps.ts";
import { HttpError } from "./errors.ts";
import { checkLengths, checkPromptBytes, Generation, type PreparedPrompt, samplingParams } from "./generation.ts";
import {
  COMPLETION_UNSUPPORTED,
  CompletionRequestSchema,
  ignoredFields,
  parseBody,
  priorityOf,
  refuseUnsupported,
  requestFields,
  toSamplingInput,
} from "./protocol.ts";
import { checkModel, responseId, sseResponseOf, tokenizerOf, warnIgnored } from "./common.ts";
import type { ServeState } from "./state.ts";

/** OpenAI's completion logprobs object. */
interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

function preparePrompts(
  state: ServeState,
  prompt: string | string[] | number[] | number[][],
  truncate: number | undefined,
  echo: boolean,
  addSpecialTokens: boolean,
): PreparedPrompt[] {
  const tok = tokenizerOf(state);
  const list: (string | number[])[] = typeof prompt === "string"
    ? [prompt]
    : prompt.length > 0 && typeof prompt[0] === "number"
    ? [prompt as number[]]
    : prompt as (string | number[])[];
  state.admit(list.length); // before tokenizing them all (start() admits again, for the queue at that time)
  const vocab = state.llm.executor.limits.vocabSize;
  return list.map((p, i): PreparedPrompt => {
    let ids: number[];
    if (typeof p === "string") {
      checkPromptBytes(state, p, list.length > 1 ? `prompt.${i}` : "prompt");
      ids = tok.encode(p, { addSpecialTokens });
      if (truncate !== undefined && ids.length > truncate) ids = ids.slice(ids.length - truncate);
      return { ids, text: p };
    }
    const bad = p.findIndex((t) => t >= vocab);
    if (bad >= 0) {
      throw new HttpError(
        400,
        `prompt: token id ${p[bad]} is outside the vocabulary [0, ${vocab})`,
        "invalid_request_error",
        list.length > 1 ? `prompt.${i}.${bad}` : `prompt.${bad}`,
        "invalid_value",
      );
    }
    ids = [...p];
    const text = echo ? tok.decode(ids, { skipSpecialTokens: false }) : ""; // only echo shows it
    if (truncate !== undefined && ids.length > truncate) ids = ids.slice(ids.length - truncate);
    return { ids, text };
  });
}

function logprobsOf(state: ServeState, o: RequestOutputData["outputs"][number], from: number, to: number, offset0: number): CompletionLogprobs | null {
  if (!o.logprobs) return null;
  const res: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let offset = offset0;
  for (let k = from; k < to && k < o.logprobs.length; k++) {
    const t = state.tokenText(o.tokenIds[k]);
    res.tokens.push(t);
    res.token_logprobs.push(o.logprobs[k].logprob);
    res.top_logprobs.push(Object.fromEntries(o.logprobs[k].top.map((a) => [state.tokenText(a.id), a.logprob])));
    res.text_offset.push(offset);
    offset += t.length;
  }
  return res;
}

/** Handles one completions request. `signal` aborts it when the client goes away. */
export async function completions(state: ServeState, body: unknown, signal: AbortSignal, arrival: number): Promise<Response> {
  let g: Generation;
  let stream: boolean;
  let includeUsage: boolean;
  let echo: boolean;
  try {
    const b = parseBody(CompletionRequestSchema, body);
    warnIgnored(state, "completions", ignoredFields(CompletionRequestSchema, body));
    const lora = checkModel(state, b.model);
    refuseUnsupported(b, COMPLETION_UNSUPPORTED);
    if (b.echo && b.logprobs != null) {
      throw new HttpError(
        400,
        "echo: echo with logprobs needs prompt logprobs, which this server does not compute",
        "invalid_request_error",
        "echo",
        "unsupported",
      );
    }
    const prompts = preparePrompts(state, b.prompt, b.truncate_prompt_tokens ?? undefined, b.echo ?? false, b.add_special_tokens ?? true);
    const longest = Math.max(...prompts.map((p) => p.ids.length));
    // Absent: the model's generation_config.json max_new_tokens, else OpenAI's 16, at most the room left in the context.
    const maxTokens = b.max_tokens ?? Math.max(1, Math.min(state.llm.generationDefaults.maxTokens ?? 16, state.limits.maxSeqLen - longest));
    checkLengths(state, prompts, maxTokens, b.min_tokens ?? 0, "prompt", "max_tokens", b.max_tokens != null);
    const rename = requestFields(b);
    const params = samplingParams(toSamplingInput(b, maxTokens, b.logprobs ?? undefined), rename);
    stream = b.stream ?? false;
    includeUsage = b.stream_options?.include_usage ?? false;
    echo = b.echo ?? false;
    g = new Generation(state, "completions", prompts, params, arrival, lora, priorityOf(b));
    g.start(rename);
  } catch (e) {
    state.metrics.requests.inc({ endpoint: "completions", state: "rejected" });
    throw e;
  }
  g.abortOn(signal);
  const id = responseId("cmpl");
  const created = Math.floor(Date.now() / 1000);
  const model = state.modelName;
  const n = g.n;
  if (!stream) {
    await g.run();
    const finals = g.finals();
    const choices = finals.flatMap((f, j) =>
      [...f.outputs].sort((a, b) => a.index - b.index).map((o) => {
        const prefix = echo ? g.prompts[j].text : "";
        return {
          index: j * n + o.index,
          text: prefix + o.text,
          logprobs: logprobsOf(state, o, 0, o.tokenIds.length, prefix.length),
          finish_reason: o.finishReason,
          stop_reason: o.stopReason ?? null,
        };
      })
    );
    return Response.json({ id, object: "text_completion", created, model, choices, usage: g.usage(finals) });
  }
  return streamCompletions(state, g, { id, created, model, echo, includeUsage });
}

function streamCompletions(
  state: ServeState,
  g: Generation,
  o: { id: string; created: number; model: string; echo: boolean; includeUsage: boolean },
): Response {
  const n = g.n;
  const emitted = new Map<number, number>(); // choice index → tokens sent
  const finished = new Set<number>();
  const textLen = new Map<number, number>();
  // Every chunk is this head, its choices, and this tail.
  const head = JSON.stringify({ id: o.id, object: "text_completion", created: o.created, model: o.model }).slice(0, -1) + ',"choices":';
  const tail = o.includeUsage ? ',"usage":null}' : "}";
  const chunk = (choices: unknown[]): string => head + JSON.stringify(choices) + tail;
  return sseResponseOf(g, {
    start(send): void {
      if (!o.echo) return;
      for (let j = 0; j < g.prompts.length; j++) {
        const text = g.prompts[j].text;
        send(chunk(Array.from({ length: n }, (_, k) => ({ index: j * n + k, text, logprobs: null, finish_reason: null }))));
        for (let k = 0; k < n; k++) textLen.set(j * n + k, text.length);
      }
    },
    event(ev): string | null {
      const choices: unknown[] = [];
      for (const c of ev.out.outputs) {
        const idx = ev.prompt * n + c.index;
        if (finished.has(idx)) continue;
        const from = emitted.get(idx) ?? 0;
        const to = c.tokenIds.length;
        const text = c.textDiff ?? "";
        if (text.length === 0 && to === from && c.finishReason === null) continue;
        const lp = logprobsOf(state, c, from, to, textLen.get(idx) ?? 0);
        emitted.set(idx, to);
        textLen.set(idx, (textLen.get(idx) ?? 0) + text.length);
        if (c.finishReason !== null) finished.add(idx);
        choices.push({ index: idx, text, logprobs: lp, finish_reason: c.finishReason, stop_reason: c.stopReason ?? null });
      }
      return choices.length > 0 ? chunk(choices) : null;
    },
    end(send): void {
      if (!o.includeUsage) return;
      send(JSON.stringify({ id: o.id, object: "text_completion", created: o.created, model: o.model, choices: [], usage: g.usage(g.finals()) }));
    },
  });
}
