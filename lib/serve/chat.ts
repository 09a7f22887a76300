/** POST /v1/chat/completions: the conversation rendered with the tokenizer's chat template. */
import type { RequestOutputData } from "./deps.ts";
import { HttpError } from "./errors.ts";
import { checkModel, responseId, sseResponseOf, tokenizerOf, warnIgnored } from "./common.ts";
import { checkLengths, checkPromptBytes, Generation, samplingParams } from "./generation.ts";
import {
  CHAT_UNSUPPORTED,
  type ChatRequest,
  ChatRequestSchema,
  ignoredFields,
  parseBody,
  priorityOf,
  refuseUnsupported,
  requestFields,
  toSamplingInput,
} from "./protocol.ts";
import type { ServeState } from "./state.ts";

interface TopLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}
interface ChatLogprobs {
  content: (TopLogprob & { top_logprobs: TopLogprob[] })[];
  refusal: null;
}

const utf8 = new TextEncoder();

function entry(state: ServeState, id: number, logprob: number): TopLogprob {
  const token = state.tokenText(id);
  return { token, logprob, bytes: [...utf8.encode(token)] };
}

function chatLogprobs(state: ServeState, o: RequestOutputData["outputs"][number], from: number, to: number): ChatLogprobs | null {
  if (!o.logprobs) return null;
  const content: ChatLogprobs["content"] = [];
  for (let k = from; k < to && k < o.logprobs.length; k++) {
    const lp = o.logprobs[k];
    content.push({ ...entry(state, o.tokenIds[k], lp.logprob), top_logprobs: lp.top.map((a) => entry(state, a.id, a.logprob)) });
  }
  return { content, refusal: null };
}

/** The prompt text of a conversation (the tokenizer's chat template, opening the assistant's turn). */
function renderPrompt(state: ServeState, b: ChatRequest): string {
  const tok = tokenizerOf(state);
  if (!tok.hasChatTemplate) {
    throw new HttpError(
      400,
      `messages: the model ${JSON.stringify(state.modelName)} has no chat template; use /v1/completions`,
      "invalid_request_error",
      "messages",
      "no_chat_template",
    );
  }
  const messages = b.messages.map((m) => ({ ...m, content: m.content ?? "" }));
  try {
    return tok.applyChatTemplate(messages, { addGenerationPrompt: b.add_generation_prompt ?? true, extra: b.chat_template_kwargs ?? undefined });
  } catch (e) {
    throw new HttpError(400, `messages: the chat template failed: ${(e as Error).message}`, "invalid_request_error", "messages", "chat_template_error");
  }
}

/** Handles one chat completions request. `signal` aborts it when the client goes away. */
export async function chatCompletions(state: ServeState, body: unknown, signal: AbortSignal, arrival: number): Promise<Response> {
  let g: Generation;
  let stream: boolean;
  let includeUsage: boolean;
  try {
    const b = parseBody(ChatRequestSchema, body);
    warnIgnored(state, "chat/completions", ignoredFields(ChatRequestSchema, body));
    const lora = checkModel(state, b.model);
    refuseUnsupported(b, CHAT_UNSUPPORTED);
    if (b.top_logprobs != null && !b.logprobs) {
      throw new HttpError(400, "top_logprobs: needs logprobs: true", "invalid_request_error", "top_logprobs", "invalid_value");
    }
    for (const [i, m] of b.messages.entries()) {
      if (typeof m.content === "string") checkPromptBytes(state, m.content, `messages.${i}.content`);
    }
    // All of them too, before the template renders them (it writes every content into the prompt).
    checkPromptBytes(state, b.messages.map((m) => m.content ?? "").join(""), "messages");
    const text = renderPrompt(state, b);
    checkPromptBytes(state, text, "messages");
    let ids = tokenizerOf(state).encode(text, { addSpecialTokens: b.add_special_tokens ?? false });
    if (b.truncate_prompt_tokens != null && ids.length > b.truncate_prompt_tokens) ids = ids.slice(ids.length - b.truncate_prompt_tokens);
    const prompts = [{ ids, text }];
    const maxTokensField = b.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens";
    const given = b.max_completion_tokens ?? b.max_tokens ?? undefined;
    // Absent: the room left in the context, at most the model's generation_config.json max_new_tokens (as vLLM).
    const maxTokens = given ?? Math.max(1, Math.min(state.llm.generationDefaults.maxTokens ?? Infinity, state.limits.maxSeqLen - ids.length));
    checkLengths(state, prompts, maxTokens, b.min_tokens ?? 0, "messages", maxTokensField, given != null);
    const rename = { ...requestFields(b), max_tokens: maxTokensField, logprobs: "top_logprobs" };
    const params = samplingParams(toSamplingInput(b, maxTokens, b.logprobs ? b.top_logprobs ?? 0 : undefined), rename);
    stream = b.stream ?? false;
    includeUsage = b.stream_options?.include_usage ?? false;
    g = new Generation(state, "chat", prompts, params, arrival, lora, priorityOf(b));
    g.start(rename);
  } catch (e) {
    state.metrics.requests.inc({ endpoint: "chat", state: "rejected" });
    throw e;
  }
  g.abortOn(signal);
  const id = responseId("chatcmpl");
  const created = Math.floor(Date.now() / 1000);
  const model = state.modelName;
  if (!stream) {
    await g.run();
    const finals = g.finals();
    const choices = [...finals[0].outputs].sort((a, b) => a.index - b.index).map((o) => ({
      index: o.index,
      message: { role: "assistant", content: o.text },
      logprobs: chatLogprobs(state, o, 0, o.tokenIds.length),
      finish_reason: o.finishReason,
      stop_reason: o.stopReason ?? null,
    }));
    return Response.json({ id, object: "chat.completion", created, model, choices, usage: g.usage(finals) });
  }
  const n = g.n;
  const head = JSON.stringify({ id, object: "chat.completion.chunk", created, model }).slice(0, -1) + ',"choices":';
  const tail = includeUsage ? ',"usage":null}' : "}";
  const chunk = (choices: unknown[]): string => head + JSON.stringify(choices) + tail;
  const emitted = new Map<number, number>();
  const finished = new Set<number>();
  return sseResponseOf(g, {
    start(send): void {
      send(chunk(Array.from({ length: n }, (_, k) => ({ index: k, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }))));
    },
    event(ev): string | null {
      const choices: unknown[] = [];
      for (const c of ev.out.outputs) {
        if (finished.has(c.index)) continue;
        const from = emitted.get(c.index) ?? 0;
        const to = c.tokenIds.length;
        const text = c.textDiff ?? "";
        if (text.length === 0 && to === from && c.finishReason === null) continue;
        emitted.set(c.index, to);
        if (c.finishReason !== null) finished.add(c.index);
        choices.push({
          index: c.index,
          delta: text.length > 0 ? { content: text } : {},
          logprobs: chatLogprobs(state, c, from, to),
          finish_reason: c.finishReason,
          stop_reason: c.stopReason ?? null,
        });
      }
      return choices.length > 0 ? chunk(choices) : null;
    },
    end(send): void {
      if (includeUsage) send(JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [], usage: g.usage(g.finals()) }));
    },
  });
}
