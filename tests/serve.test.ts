// llmrt serve driven by the official `openai` client over HTTP on 127.0.0.1 (ephemeral ports), on the
// CPU backend with the embedded kjv-llama model and ../shared/models/stories260k.
import OpenAI from "openai";
import { LLM } from "../mod.ts";
import { type RunningServer, startServer } from "../lib/serve/server.ts";
import { metricValue } from "../bench/serve_load.ts";
import { Histogram, Registry } from "prom-client";
import { TokenHistogram } from "../lib/serve/metrics.ts";
import { assert, sharedDir, test } from "./harness.ts";

const KJV = new URL("../models/kjv-llama/", import.meta.url).pathname;
const MODEL = "kjv-llama";
/** vLLM's extra field, which the openai types do not list. */
const IGNORE_EOS: object = { ignore_eos: true };

const llm = await LLM.create({ model: KJV, backend: "cpu", cacheEngine: false });
const server = await startServer({ llm, port: 0, modelName: MODEL });
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });

async function status(p: Promise<unknown>): Promise<{ status: number; error: { message: string; type: string; param: string | null; code: string | null } }> {
  try {
    await p;
  } catch (e) {
    const err = e as { status: number; error: { message: string; type: string; param: string | null; code: string | null } };
    return { status: err.status, error: err.error };
  }
  throw new Error("expected the request to fail");
}

async function post(s: RunningServer, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return await fetch(`${s.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("serve: /v1/models lists the served model; an unknown model is 404; /health is ok", async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
  assert.equal((await client.models.retrieve(MODEL)).id, MODEL);
  const r = await status(client.completions.create({ model: "gpt-4", prompt: "hi", max_tokens: 2 }));
  assert.equal(r.status, 404);
  assert.equal(r.error.code, "model_not_found");
  assert.equal(r.error.param, "model");
  const h = await fetch(`${server.url}/health`);
  assert.equal(h.status, 200);
  assert.deepEqual(await h.json(), { status: "ok" });
});

test("serve: greedy completion equals LLM.generate, with usage", async () => {
  const direct = await llm.generate("In the beginning", { maxTokens: 24, temperature: 0 });
  const c = await client.completions.create({ model: MODEL, prompt: "In the beginning", max_tokens: 24, temperature: 0 });
  assert.equal(c.object, "text_completion");
  assert.equal(c.choices.length, 1);
  assert.equal(c.choices[0].text, direct.outputs[0].text);
  assert.equal(c.choices[0].finish_reason, direct.outputs[0].finishReason);
  assert.deepEqual(c.usage, {
    prompt_tokens: direct.promptTokenIds.length,
    completion_tokens: direct.outputs[0].tokenIds.length,
    total_tokens: direct.promptTokenIds.length + direct.outputs[0].tokenIds.length,
  });
});

test("serve: streamed completion deltas concatenate to the non-streamed text; include_usage; echo", async () => {
  const body = { model: MODEL, prompt: "And God said", max_tokens: 30, temperature: 0 } as const;
  const whole = await client.completions.create(body);
  const stream = await client.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage = null;
  let finish = null;
  let chunks = 0;
  for await (const ch of stream) {
    chunks++;
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks > 3, `streamed in ${chunks} chunks`);
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
  const echoed = await client.completions.create({ ...body, echo: true });
  assert.equal(echoed.choices[0].text, `And God said${whole.choices[0].text}`);
  // The raw stream ends with data: [DONE].
  const raw = await (await post(server, "/v1/completions", { ...body, max_tokens: 3, stream: true })).text();
  assert.ok(raw.endsWith("data: [DONE]\n\n"), raw.slice(-80));
});

test("serve: chat completion uses the chat template; streamed deltas concatenate to it", async () => {
  const messages = [{ role: "system" as const, content: "Answer as the scriptures do." }, {
    role: "user" as const,
    content: "Who made the heaven and the earth?",
  }];
  const tmpl = llm.tokenizer!.applyChatTemplate(messages, { addGenerationPrompt: true });
  const direct = await llm.generate(llm.tokenizer!.encode(tmpl, { addSpecialTokens: false }), { maxTokens: 24, temperature: 0 });
  const c = await client.chat.completions.create({ model: MODEL, messages, max_completion_tokens: 24, temperature: 0 });
  assert.equal(c.object, "chat.completion");
  assert.equal(c.choices[0].message.role, "assistant");
  assert.equal(c.choices[0].message.content, direct.outputs[0].text);
  assert.equal(c.usage?.prompt_tokens, direct.promptTokenIds.length);
  assert.equal(c.usage?.completion_tokens, direct.outputs[0].tokenIds.length);
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 24,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let role = null;
  let usage = null;
  for await (const ch of stream) {
    if (ch.usage) usage = ch.usage;
    for (const d of ch.choices) {
      role ??= d.delta.role ?? null;
      text += d.delta.content ?? "";
    }
  }
  assert.equal(role, "assistant");
  assert.equal(text, c.choices[0].message.content);
  assert.deepEqual(usage, c.usage);
});

test("serve: n: 2 returns two seeded samples, indexed, with usage over both", async () => {
  const body = { model: MODEL, prompt: "In the beginning", max_tokens: 16, temperature: 1, seed: 7, n: 2 } as const;
  const a = await client.completions.create(body);
  assert.deepEqual(a.choices.map((c) => c.index), [0, 1]);
  assert.notEqual(a.choices[0].text, a.choices[1].text);
  assert.equal(a.usage?.completion_tokens, 32);
  const b = await client.completions.create(body);
  assert.deepEqual(b.choices.map((c) => c.text), a.choices.map((c) => c.text), "the same seed gives the same samples");
  const neg = await client.completions.create({ ...body, seed: -7 });
  assert.equal(neg.choices.length, 2, "a negative seed is accepted");
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: 8,
    temperature: 1,
    seed: 3,
    n: 2,
    stream: true,
  });
  const texts = ["", ""];
  for await (const ch of stream) for (const d of ch.choices) texts[d.index] += d.delta.content ?? "";
  assert.ok(texts[0].length > 0 && texts[1].length > 0);
});

test("serve: a batch of prompts (text and token ids) gives one choice per prompt and n, indexed prompt-major", async () => {
  const ids = llm.tokenizer!.encode("And God said");
  const c = await client.completions.create({ model: MODEL, prompt: ["In the beginning", "And God said"], max_tokens: 6, temperature: 0 });
  assert.deepEqual(c.choices.map((x) => x.index), [0, 1]);
  const one = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 6, temperature: 0 });
  assert.equal(one.choices[0].text, c.choices[1].text, "token ids and text give the same completion");
  assert.equal(c.usage?.prompt_tokens, llm.tokenizer!.encode("In the beginning").length + ids.length);
  const n2 = await client.completions.create({ model: MODEL, prompt: ["In the beginning", "And God said"], max_tokens: 4, temperature: 1, seed: 5, n: 2 });
  assert.deepEqual(n2.choices.map((x) => x.index), [0, 1, 2, 3]);
  assert.equal(n2.usage?.completion_tokens, 16);
});

test("serve: stop strings end the text before the stop, finish_reason stop", async () => {
  const whole = (await client.completions.create({ model: MODEL, prompt: "In the beginning", max_tokens: 40, temperature: 0 })).choices[0].text;
  const stop = whole.slice(12, 16);
  const cut = whole.indexOf(stop);
  assert.ok(cut > 0, `stop ${JSON.stringify(stop)} in ${JSON.stringify(whole)}`);
  const c = await client.completions.create({ model: MODEL, prompt: "In the beginning", max_tokens: 40, temperature: 0, stop: [stop, "zzzz"] });
  assert.equal(c.choices[0].text, whole.slice(0, cut));
  assert.equal(c.choices[0].finish_reason, "stop");
});

test("serve: logprobs (completions and chat) are the chosen token's, with top alternatives", async () => {
  const c = await client.completions.create({ model: MODEL, prompt: "In the beginning", max_tokens: 8, temperature: 0, logprobs: 3 });
  const lp = c.choices[0].logprobs!;
  assert.equal(lp.tokens!.length, 8);
  assert.equal(lp.tokens!.join(""), c.choices[0].text);
  for (let i = 0; i < 8; i++) {
    const top = Object.values(lp.top_logprobs![i]);
    assert.ok(top.length >= 1 && top.length <= 3);
    assert.ok(lp.token_logprobs![i] <= 0);
    assert.ok(Math.abs(Math.max(...top) - lp.token_logprobs![i]) < 1e-6, "greedy picks the most likely token");
  }
  assert.deepEqual(lp.text_offset!.slice(0, 2), [0, lp.tokens![0].length]);
  // Streamed, each chunk carries the logprobs of its own tokens.
  const streamed = await client.completions.create({ model: MODEL, prompt: "In the beginning", max_tokens: 8, temperature: 0, logprobs: 3, stream: true });
  const tokens: string[] = [];
  const values: number[] = [];
  for await (const ch of streamed) {
    for (const x of ch.choices) {
      tokens.push(...(x.logprobs?.tokens ?? []));
      values.push(...(x.logprobs?.token_logprobs ?? []));
    }
  }
  assert.deepEqual(tokens, lp.tokens);
  assert.deepEqual(values, lp.token_logprobs);
  const ch = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: 5,
    temperature: 0,
    logprobs: true,
    top_logprobs: 2,
  });
  const content = ch.choices[0].logprobs!.content!;
  assert.equal(content.length, 5);
  assert.equal(content.map((t) => t.token).join(""), ch.choices[0].message.content);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 2);
    assert.equal(t.top_logprobs[0].logprob, t.logprob);
    assert.deepEqual(t.bytes, [...new TextEncoder().encode(t.token)]);
  }
});

test("serve: structured output: response_format (json_schema, json_object) and vLLM's guided_choice / guided_regex", async () => {
  const schema = { type: "object", properties: { answer: { enum: ["yes", "no"] } }, required: ["answer"], additionalProperties: false };
  const messages = [{ role: "user" as const, content: "Is the earth the LORD's?" }];
  const c = await client.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 40,
    temperature: 0,
    response_format: { type: "json_schema", json_schema: { name: "a", schema } },
  });
  assert.equal(c.choices[0].finish_reason, "stop");
  assert.ok(["yes", "no"].includes(JSON.parse(c.choices[0].message.content!).answer), c.choices[0].message.content!);
  let streamed = "";
  const st = await client.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 40,
    temperature: 0,
    stream: true,
    response_format: { type: "json_schema", json_schema: { name: "a", schema } },
  });
  for await (const ch of st) streamed += ch.choices[0]?.delta.content ?? "";
  assert.equal(streamed, c.choices[0].message.content);
  const o = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 60, temperature: 0, response_format: { type: "json_object" } });
  if (o.choices[0].finish_reason === "stop") assert.equal(typeof JSON.parse(o.choices[0].message.content!), "object");
  const choice = await client.completions.create({
    model: MODEL,
    prompt: "The answer is",
    max_tokens: 10,
    temperature: 0,
    ...({ guided_choice: ["Moses", "Aaron"] } as object),
  });
  assert.ok(["Moses", "Aaron"].includes(choice.choices[0].text), choice.choices[0].text);
  const rx = await client.completions.create({
    model: MODEL,
    prompt: "In the year",
    max_tokens: 10,
    temperature: 0,
    ...({ guided_regex: " [0-9]{3}" } as object),
  });
  assert.match(rx.choices[0].text, /^ [0-9]{3}$/);
  const two = await status(client.completions.create({ model: MODEL, prompt: "x", ...({ guided_regex: "a", guided_choice: ["b"] } as object) }));
  assert.equal(two.status, 400);
  assert.equal(two.error.param, "guided_choice");
  const bad = await status(client.completions.create({ model: MODEL, prompt: "x", ...({ guided_regex: "(" } as object) }));
  assert.equal(bad.status, 400);
  assert.equal(bad.error.param, "guided_regex");
  const xml = await status(client.chat.completions.create({ model: MODEL, messages, response_format: { type: "xml" } as unknown as { type: "text" } }));
  assert.equal(xml.status, 400);
  assert.equal(xml.error.param, "response_format.type");
});

test("serve: invalid bodies are 400 in OpenAI's error shape, naming the field", async () => {
  const t = await status(client.completions.create({ model: MODEL, prompt: "hi", temperature: -1 }));
  assert.equal(t.status, 400);
  assert.equal(t.error.param, "temperature");
  assert.equal(t.error.type, "invalid_request_error");
  assert.match(t.error.message, /temperature/);
  const m = await status(client.chat.completions.create({ model: MODEL, messages: [] }));
  assert.equal(m.status, 400);
  assert.equal(m.error.param, "messages");
  const n = await status(client.completions.create({ model: MODEL, prompt: "hi", n: 2, temperature: 0 }));
  assert.equal(n.status, 400, "n > 1 needs sampling");
  assert.equal(n.error.param, "n");
  const r = await post(server, "/v1/completions", "{not json");
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.code, "invalid_json");
  const lb = await status(client.completions.create({ model: MODEL, prompt: "hi", logit_bias: { "x": 1 } }));
  assert.equal(lb.status, 400);
  // The message names the key and what a key must be (param logit_bias, as SamplingParams.logitBias; was logit_bias.x with "Invalid key in record, got 1").
  assert.equal(lb.error.param, "logit_bias");
  assert.match(lb.error.message, /^logit_bias: key "x" is not a token id: a key must be a token id in decimal.*, got \{"x":1\}$/);
  // JSON's 1e400 parses as Infinity: the message shows it (JSON.stringify wrote null).
  const inf = await (await post(server, "/v1/completions", `{"model": "${MODEL}", "prompt": "hi", "max_tokens": 1e400}`)).json();
  assert.equal(inf.error.param, "max_tokens");
  assert.match(inf.error.message, /got Infinity$/);
  const mt = await status(client.completions.create({ model: MODEL, prompt: "hi", max_tokens: 10_000 }));
  assert.equal(mt.status, 400);
  assert.equal(mt.error.param, "max_tokens");
  const nf = await fetch(`${server.url}/v1/nothing`);
  assert.equal(nf.status, 404);
  assert.equal((await nf.json()).error.code, "not_found");
});

test("serve: a prompt over the engine's limit is 413", async () => {
  const r = await status(client.completions.create({ model: MODEL, prompt: Array.from({ length: 600 }, () => 100), max_tokens: 4 }));
  assert.equal(r.status, 413);
  assert.equal(r.error.code, "context_length_exceeded");
  assert.equal(r.error.param, "prompt");
  const long = "And it came to pass ".repeat(400);
  const c = await status(client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: long }] }));
  assert.equal(c.status, 413);
  assert.equal(c.error.param, "messages");
  // A huge text prompt is refused before it is tokenized.
  const huge = "x".repeat(llm.maxPromptBytes + 1);
  const t0 = performance.now();
  const h = await status(client.completions.create({ model: MODEL, prompt: ["hi", huge], max_tokens: 4 }));
  assert.equal(h.status, 413);
  assert.equal(h.error.param, "prompt.1");
  assert.match(h.error.message, /bytes exceeds this server's limit/);
  assert.ok(performance.now() - t0 < 2000);
  const body = await post(server, "/v1/completions", JSON.stringify({ model: MODEL, prompt: "y".repeat(9 * 2 ** 20) }));
  assert.equal(body.status, 413);
  assert.equal((await body.json()).error.code, "body_too_large");
});

test("serve: a client that disconnects mid-stream aborts its request; KV blocks return at once", async () => {
  const st = server.app.state;
  const before = await (await fetch(`${server.url}/metrics`)).text();
  const ac = new AbortController();
  const res = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, prompt: "In the beginning", max_tokens: 480, temperature: 0.8, ignore_eos: true, stream: true }),
    signal: ac.signal,
  });
  const reader = res.body!.getReader();
  await reader.read();
  await reader.read();
  assert.equal(st.numActive(), 1);
  assert.ok(st.kvBlocks().used > 0);
  ac.abort();
  await reader.cancel().catch(() => {});
  await waitFor("the request to end", () => st.numActive() === 0);
  assert.equal(st.kvBlocks().used, 0, "KV blocks back to zero");
  const after = await (await fetch(`${server.url}/metrics`)).text();
  const aborted = (t: string): number => metricValue(t, "llmrt_requests_total", 'endpoint="completions",state="aborted"') || 0;
  assert.equal(aborted(after), aborted(before) + 1);
  const generated = metricValue(after, "llmrt_generation_tokens_total") - metricValue(before, "llmrt_generation_tokens_total");
  assert.ok(generated < 480, `stopped early (${generated} tokens)`);
});

test(
  "serve: a non-streaming client that disconnects aborts its request too (Deno: request.signal)",
  async () => {
    const st = server.app.state;
    const ac = new AbortController();
    const p = fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, prompt: "In the beginning", max_tokens: 480, temperature: 0.8, ignore_eos: true }),
      signal: ac.signal,
    }).catch(() => "aborted");
    await waitFor("the request to start", () => st.kvBlocks().used > 0);
    ac.abort();
    assert.equal(await p, "aborted");
    await waitFor("the request to end", () => st.numActive() === 0, 2000);
    assert.equal(st.kvBlocks().used, 0);
  },
);

test("serve: /metrics counters move with requests", async () => {
  const scrape = async (): Promise<string> => await (await fetch(`${server.url}/metrics`)).text();
  const a = await scrape();
  await client.completions.create({ model: MODEL, prompt: "In the beginning", max_tokens: 5, temperature: 0 });
  await status(client.completions.create({ model: MODEL, prompt: "hi", top_p: 0 }));
  const b = await scrape();
  const d = (name: string, labels = ""): number => (metricValue(b, name, labels) || 0) - (metricValue(a, name, labels) || 0);
  assert.equal(d("llmrt_requests_total", 'endpoint="completions",state="finished"'), 1);
  assert.equal(d("llmrt_requests_total", 'endpoint="completions",state="rejected"'), 1);
  assert.equal(d("llmrt_prompt_tokens_total"), 4);
  assert.equal(d("llmrt_generation_tokens_total"), 5);
  assert.equal(d("llmrt_time_to_first_token_seconds_count"), 1);
  assert.equal(d("llmrt_inter_token_latency_seconds_count"), 4);
  assert.equal(d("llmrt_http_responses_total", 'route="/v1/completions",status="400"'), 1);
  assert.match(b, /^llmrt_kv_cache_blocks\{state="free"\} \d+$/m);
  assert.match(b, /^llmrt_requests_running 0$/m);
  assert.match(b, /^llmrt_requests_waiting 0$/m);
});

test("serve: --api-key needs the bearer key (401 without it); a full queue is 429 with Retry-After", async () => {
  const small = await LLM.create({ model: KJV, backend: "cpu", cacheEngine: false, maxBatchSize: 1 });
  const s = await startServer({ llm: small, port: 0, modelName: MODEL, apiKey: "sekret", maxQueue: 0 });
  try {
    const noKey = await post(s, "/v1/completions", { model: MODEL, prompt: "hi", max_tokens: 2 });
    assert.equal(noKey.status, 401);
    assert.equal((await noKey.json()).error.code, "invalid_api_key");
    const wrong = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "wrong", maxRetries: 0 });
    assert.equal((await status(wrong.models.list())).status, 401);
    const ok = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "sekret", maxRetries: 0 });
    assert.equal((await ok.models.list()).data[0].id, MODEL);
    assert.equal((await fetch(`${s.url}/health`)).status, 200, "/health needs no key");
    const long = await ok.completions.create({ model: MODEL, prompt: "In the beginning", max_tokens: 200, ...IGNORE_EOS, stream: true });
    const it = long[Symbol.asyncIterator]();
    await it.next();
    const full = await post(s, "/v1/completions", { model: MODEL, prompt: "hi", max_tokens: 2 }, { authorization: "Bearer sekret" });
    assert.equal(full.status, 429);
    assert.equal(full.headers.get("retry-after"), "1");
    assert.equal((await full.json()).error.code, "queue_full");
    long.controller.abort();
    await waitFor("the long request to end", () => s.app.state.numActive() === 0);
  } finally {
    await s.close(1000);
    await small.shutdown();
  }
});

test("serve: stories260k (no chat template) serves completions; chat is 400; close past its deadline aborts", async () => {
  const stories = await LLM.create({ model: `${sharedDir}models/stories260k`, backend: "cpu", cacheEngine: false });
  const s = await startServer({ llm: stories, port: 0, modelName: "stories" });
  try {
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "x", maxRetries: 0 });
    const out = await c.completions.create({ model: "stories", prompt: "Once upon a time", max_tokens: 12, temperature: 0 });
    assert.match(out.choices[0].text, /^, there was a little girl named Lily/);
    const r = await status(c.chat.completions.create({ model: "stories", messages: [{ role: "user", content: "hi" }] }));
    assert.equal(r.status, 400);
    assert.equal(r.error.code, "no_chat_template");
    // Shutdown past its deadline aborts what is still running: the stream ends with finish_reason "abort".
    const long = await c.completions.create({ model: "stories", prompt: "Once upon a time", max_tokens: 240, ...IGNORE_EOS, stream: true });
    const it = long[Symbol.asyncIterator]();
    await it.next();
    const closing = s.close(0);
    let finish = null;
    let n = 0;
    for (let x = await it.next(); !x.done; x = await it.next()) {
      finish = x.value.choices[0]?.finish_reason ?? finish;
      n++;
    }
    assert.equal(finish, "abort");
    await closing;
    assert.equal(s.app.state.numActive(), 0);
    assert.equal(s.app.state.kvBlocks().used, 0);
    assert.match(await s.app.state.metrics.text(), /^llmrt_requests_total\{endpoint="completions",state="aborted"\} 1$/m);
  } finally {
    await s.close(1000);
    await stories.shutdown();
  }
});

test("serve: with the executor in a Web Worker (--executor proxy) completions and streams match the in-process ones", async () => {
  const proxied = await LLM.create({ model: KJV, backend: "cpu", cacheEngine: false, executorMode: "proxy" });
  const s = await startServer({ llm: proxied, port: 0, modelName: MODEL });
  try {
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "x", maxRetries: 0 });
    const body = { model: MODEL, prompt: "And God said", max_tokens: 16, temperature: 0 } as const;
    const [mine, theirs] = await Promise.all([client.completions.create(body), c.completions.create(body)]);
    assert.equal(theirs.choices[0].text, mine.choices[0].text);
    let text = "";
    for await (const ch of await c.completions.create({ ...body, stream: true })) text += ch.choices[0]?.text ?? "";
    assert.equal(text, mine.choices[0].text);
    assert.equal(s.app.state.numActive(), 0);
  } finally {
    await s.close(1000);
    await proxied.shutdown();
  }
});

test("serve: graceful close lets a request in flight finish, refuses new ones", async () => {
  const st = server.app.state;
  const stream = await client.completions.create({ model: MODEL, prompt: "In the beginning", max_tokens: 40, temperature: 0, ...IGNORE_EOS, stream: true });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  const closing = server.close(20_000);
  assert.equal(st.draining, true);
  const refused = await post(server, "/v1/completions", { model: MODEL, prompt: "hi" }).then((r) => r.status, () => "refused");
  assert.ok(refused === 503 || refused === "refused", String(refused));
  let finish = null;
  for (let r = await it.next(); !r.done; r = await it.next()) finish = r.value.choices[0]?.finish_reason ?? finish;
  assert.equal(finish, "length", "the request in flight finished");
  await closing;
  assert.equal(st.numActive(), 0);
  await llm.shutdown();
});

test("serve: the per-token ITL histogram renders as prom-client's Histogram does for the same observations", async () => {
  const a = new Registry(), b = new Registry();
  const ref = new Histogram({ name: "x_seconds", help: "h", buckets: [0.01, 0.1, 1], registers: [a] });
  const fast = new TokenHistogram({ name: "x_seconds", help: "h", buckets: [0.01, 0.1, 1], registry: b });
  for (const v of [0.005, 0.01, 0.05, 0.5, 3, 0.1]) {
    ref.observe(v);
    fast.observe(v);
  }
  ref.observe(0.02);
  ref.observe(0.02);
  fast.observe(0.02, 2);
  assert.equal(await b.metrics(), await a.metrics());
  assert.match(await b.metrics(), /^x_seconds_bucket\{le="0\.1"\} 6$/m);
});
