// llmrt serve under hostile request bodies (the server's fetch handler in process, CPU backend, kjv-llama):
// every field a user sends is honoured or refused with a 400 naming it and the value — never silently
// dropped (a logit_bias key `__proto__`, empty stop strings, tool and audio fields, chat_template_kwargs
// the server sets itself) — and a failure found after submission still names the request field.
import { LLM } from "../mod.ts";
import { createServeApp } from "../lib/serve/app.ts";
import { ValidationError } from "../lib/util/errors.ts";
import { assert, test } from "./harness.ts";

const KJV = new URL("../models/kjv-llama/", import.meta.url).pathname;
const llm = await LLM.create({ model: KJV, backend: "cpu", cacheEngine: false });
const app = createServeApp({ llm, modelName: "kjv" });

const COMPLETION = { prompt: "In the beginning", max_tokens: 2, temperature: 0 };
const CHAT = { messages: [{ role: "user", content: "hi" }], max_tokens: 2, temperature: 0 };

interface Reply {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** POSTs `body` (a JSON text as is, or an object merged over the route's minimal request). */
async function post(route: "completions" | "chat/completions", body: string | object): Promise<Reply> {
  const text = typeof body === "string" ? body : JSON.stringify({ ...(route === "completions" ? COMPLETION : CHAT), ...body });
  const r = await app.fetch(new Request(`http://x/v1/${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: text }));
  const raw = await r.text();
  return { status: r.status, body: r.headers.get("content-type")?.startsWith("application/json") ? JSON.parse(raw) : raw };
}

/** Asserts a 400 whose param is `param` and whose message names it and shows `shown`. */
function refused(r: Reply, param: string, shown: string, code?: string): void {
  assert.equal(r.status, 400, `expected 400 for ${param}, got ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
  assert.equal(r.body.error.param, param);
  assert.ok(r.body.error.message.startsWith(`${param}: `), r.body.error.message);
  assert.ok(r.body.error.message.includes(shown), `${r.body.error.message} shows ${shown}`);
  if (code) assert.equal(r.body.error.code, code);
}

test("serve hostile: a failure found after submission (a grammar compiled late) names the request field", async () => {
  // The first guided request of a process may compile its grammar after submission: the failure
  // then comes from the run, and must still name guided_regex (not SamplingParams' guided_decoding).
  refused(await post("completions", { guided_regex: "(" }), "guided_regex", "Regex parsing error");
  refused(await post("completions", { guided_regex: "[" }), "guided_regex", "Regex");
});

test("serve hostile: a logit_bias key __proto__ is refused naming it, not silently dropped", async () => {
  // Written as JSON text: JSON.stringify of an object literal would not carry the key.
  const completion = `{"prompt": "In the beginning", "max_tokens": 2, "temperature": 0, "logit_bias": {"__proto__": 5, "7": 1}}`;
  refused(await post("completions", completion), "logit_bias", '"__proto__"');
  const chat = `{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "logit_bias": {"__proto__": -100}}`;
  refused(await post("chat/completions", chat), "logit_bias", '"__proto__"');
  // Other keys still apply.
  const r = await post("completions", { logit_bias: { "5": 100 } });
  assert.equal(r.status, 200);
  assert.equal(r.body.choices[0].text, llm.tokenizer!.decode([5, 5]));
});

test("serve hostile: chat_template_kwargs: __proto__ and the variables the server sets are refused", async () => {
  const proto = `{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "chat_template_kwargs": {"__proto__": {"x": 1}}}`;
  refused(await post("chat/completions", proto), "chat_template_kwargs", '"__proto__"');
  refused(await post("chat/completions", { chat_template_kwargs: { add_generation_prompt: false } }), "chat_template_kwargs.add_generation_prompt", "false");
  refused(await post("chat/completions", { chat_template_kwargs: { messages: [] } }), "chat_template_kwargs.messages", "[]");
  assert.equal((await post("chat/completions", { chat_template_kwargs: { enable_thinking: false } })).status, 200);
});

test("serve hostile: empty stop strings are refused (vLLM refuses them too), naming the entry", async () => {
  refused(await post("completions", { stop: "" }), "stop", '""');
  refused(await post("completions", { stop: ["\n", ""] }), "stop.1", '""');
  refused(await post("chat/completions", { stop: [""] }), "stop.0", '""');
  const many = Array.from({ length: 65 }, (_, i) => `s${i}`);
  refused(await post("completions", { stop: many }), "stop", "at most 64 strings");
  assert.equal((await post("completions", { stop: [] })).status, 200);
});

test("serve hostile: tool, function, audio and unimplemented vLLM fields are refused, their no-op values accepted", async () => {
  const chatCases: [string, unknown][] = [
    ["tools", [{ type: "function", function: { name: "f" } }]],
    ["tool_choice", "auto"],
    ["tool_choice", "required"],
    ["tool_choice", { type: "function", function: { name: "f" } }],
    ["functions", [{ name: "f" }]],
    ["function_call", "auto"],
    ["audio", { voice: "alloy", format: "wav" }],
    ["modalities", ["text", "audio"]],
    ["echo", true],
    ["continue_final_message", true],
    ["chat_template", "{{ messages }}"],
    ["prompt_logprobs", 1],
    ["return_tokens_as_token_ids", true],
  ];
  for (const [field, value] of chatCases) {
    refused(await post("chat/completions", { [field]: value }), field, JSON.stringify(value).slice(0, 20), "unsupported");
  }
  for (const [field, value] of [["suffix", "x"], ["prompt_logprobs", 0], ["guided_whitespace_pattern", " "]] as const) {
    refused(await post("completions", { [field]: value }), field, JSON.stringify(value), "unsupported");
  }
  const noOps = { tools: [], tool_choice: "none", functions: [], modalities: ["text"], echo: false, chat_template: null };
  assert.equal((await post("chat/completions", noOps)).status, 200);
  assert.equal((await post("completions", { suffix: "" })).status, 200);
});

test("serve hostile: stream_options without stream is refused (as OpenAI and vLLM do)", async () => {
  refused(await post("completions", { stream_options: { include_usage: true } }), "stream_options", "include_usage");
  refused(await post("chat/completions", { stream: false, stream_options: { include_usage: false } }), "stream_options", "include_usage");
});

test("serve hostile: content parts other than text are refused naming the part; text parts join", async () => {
  const image = { messages: [{ role: "user", content: [{ type: "text", text: "hi" }, { type: "image_url", image_url: { url: "x" } }] }] };
  refused(await post("chat/completions", image), "messages.0.content.1.type", '"image_url"');
  refused(await post("chat/completions", { messages: [{ role: "user", content: [{ type: "text" }] }] }), "messages.0.content.0.text", "nothing");
  refused(await post("chat/completions", { messages: [{ role: "user", content: 5 }] }), "messages.0.content", "5");
  const parts = await post("chat/completions", { messages: [{ role: "user", content: [{ type: "text", text: "h" }, { type: "text", text: "i" }] }] });
  const whole = await post("chat/completions", {});
  assert.equal(parts.status, 200);
  assert.deepEqual(parts.body.usage, whole.body.usage);
  assert.equal(parts.body.choices[0].message.content, whole.body.choices[0].message.content);
});

test("serve hostile: a sequence count over the batch names n when best_of is absent", async () => {
  const big = llm.executor.limits.maxBatchSize + 1;
  refused(await post("completions", { n: big, temperature: 1 }), "n", String(big));
  refused(await post("chat/completions", { n: big, temperature: 1 }), "n", String(big));
  refused(await post("completions", { n: 2, best_of: big, temperature: 1 }), "best_of", String(big));
  refused(await post("completions", { n: big, use_beam_search: true }), "n", String(big));
});

test("serve hostile: priority reaches the executor (vLLM's lower-first as llmrt's higher-first); add_special_tokens applies", async () => {
  const seen: unknown[] = [];
  const generateAsync = llm.generateAsync.bind(llm);
  llm.generateAsync = (prompt, params, options) => {
    seen.push(options?.priority);
    return generateAsync(prompt, params, options);
  };
  try {
    assert.equal((await post("completions", { priority: 5 })).status, 200);
    assert.equal((await post("chat/completions", { priority: -3 })).status, 200);
    assert.equal((await post("completions", {})).status, 200);
  } finally {
    llm.generateAsync = generateAsync;
  }
  assert.deepEqual(seen, [-5, 3, undefined]);
  // Completions add BOS by default, chat does not (its template writes what it needs).
  const usage = async (route: "completions" | "chat/completions", body: object): Promise<number> => (await post(route, body)).body.usage.prompt_tokens;
  assert.equal(await usage("completions", { add_special_tokens: false }), (await usage("completions", {})) - 1);
  assert.equal(await usage("chat/completions", { add_special_tokens: true }), (await usage("chat/completions", {})) + 1);
  refused(await post("completions", { add_special_tokens: "no" }), "add_special_tokens", '"no"');
});

test("serve hostile: the body cap counts bytes as they arrive (no content-length, multi-byte text)", async () => {
  const small = createServeApp({ llm, modelName: "kjv", maxBodyBytes: 1024 });
  let pulled = 0;
  const mebibyte = new ReadableStream<Uint8Array>({
    pull(c): void {
      if (pulled >= 2 ** 20) return c.close();
      pulled += 256;
      c.enqueue(new Uint8Array(256).fill(0x20));
    },
  });
  const init = { method: "POST", body: mebibyte, duplex: "half" } as RequestInit;
  const r = await small.fetch(new Request("http://x/v1/completions", init));
  assert.equal(r.status, 413);
  assert.equal((await r.json()).error.code, "body_too_large");
  assert.ok(pulled <= 2048, `stopped reading at the cap (${pulled} bytes pulled)`);
  // 400 characters, 1,200 bytes: over the cap although its length in characters is not.
  const wide = JSON.stringify({ ...COMPLETION, prompt: "€".repeat(400) });
  const w = await small.fetch(new Request("http://x/v1/completions", { method: "POST", body: new Blob([wide]).stream(), duplex: "half" } as RequestInit));
  assert.equal(w.status, 413);
});

test("serve hostile: more prompts than the server admits at once is 400 naming prompt (a 429 retry never succeeds)", async () => {
  const cap = llm.executor.limits.maxBatchSize + 256;
  const r = await post("completions", { prompt: Array.from({ length: cap + 1 }, () => "a") });
  refused(r, "prompt", `a batch of ${cap + 1} prompts`);
  assert.equal((await post("completions", { prompt: ["a", "b"] })).status, 200);
});

test("serve hostile: work a request makes on the event loop is bounded (bad_words; the messages' total size before rendering)", async () => {
  refused(await post("completions", { bad_words: Array.from({ length: 1025 }, (_, i) => `w${i}`) }), "bad_words", "<=1024 items");
  // Many small messages: each under the prompt byte limit, together over it.
  const n = Math.ceil(llm.maxPromptBytes / 100) + 1;
  const messages = Array.from({ length: n }, () => ({ role: "user", content: "x".repeat(100) }));
  const r = await post("chat/completions", { messages });
  assert.equal(r.status, 413);
  assert.equal(r.body.error.param, "messages");
});

/** The events of an SSE body (its `data:` lines, [DONE] excluded). */
function events(raw: string): unknown[] {
  return raw.split("\n\n").filter((e) => e.startsWith("data: ") && e !== "data: [DONE]").map((e) => JSON.parse(e.slice(6)));
}

test("serve hostile: settings that leave no token to choose are a 400 naming the fields (at submission, or at the step that finds it)", async () => {
  const the = llm.tokenizer!.encode(" the", { addSpecialTokens: false });
  assert.equal(the.length, 1, "' the' is one token of kjv-llama");
  // Decidable at submission (bad_words are encoded there): refused before anything runs (was a 500 from the first step).
  const banned = await post("completions", { allowed_token_ids: the, bad_words: ["the"] });
  refused(banned, "allowed_token_ids", "every allowed id is banned by bad_words");
  const eos = llm.tokenizer!.eosTokenId!;
  const ends = await post("chat/completions", { allowed_token_ids: [eos], min_tokens: 1 });
  refused(ends, "allowed_token_ids", "banned by min_tokens (min_tokens bans the end and stop ids for the first 1 token)");
  // Found at a step: token 5 first, then banned by no_repeat_ngram_size 1.
  const late = { allowed_token_ids: [5], no_repeat_ngram_size: 1, max_tokens: 4 };
  const r = await post("completions", late);
  refused(r, "allowed_token_ids", "no token is left to choose at output token 1", "validation");
  assert.ok(r.body.error.message.includes("allowed_token_ids and no_repeat_ngram_size together ban every id"), r.body.error.message);
  assert.equal(r.body.error.type, "invalid_request_error");
  // Streamed: the tokens before it, then the same error as an event (the 200 was sent with the first token).
  const streamed = await post("completions", { ...late, stream: true });
  assert.equal(streamed.status, 200);
  const evs = events(streamed.body) as { choices?: { text: string }[]; error?: { message: string; type: string; param: string } }[];
  assert.equal(evs[0].choices?.[0].text, llm.tokenizer!.decode([5]));
  const err = evs[evs.length - 1].error!;
  const unnumbered = (m: string): string => m.replace(/\(request \d+, /, "(");
  assert.deepEqual([err.type, err.param, unnumbered(err.message)], ["invalid_request_error", "allowed_token_ids", unnumbered(r.body.error.message)]);
});

test("serve hostile: min_tokens beyond the context is refused with the library's message; LLM.generate refuses it too (maxTokens stops at the context)", async () => {
  const { maxSeqLen } = llm.executor.limits;
  const prompt = llm.tokenizer!.encode("In the beginning");
  const room = maxSeqLen - prompt.length;
  const r = await post("completions", { prompt, min_tokens: room + 1, max_tokens: 4 });
  refused(
    r,
    "min_tokens",
    `${room + 1} tokens cannot be generated: a prompt of ${prompt.length} tokens leaves room for ${room} below the context length (maxSeqLen) ${maxSeqLen}`,
  );
  // The library refused nothing before: the request ran to maxSeqLen and ended "length", the impossible minTokens never reported.
  const lib = llm.generate(prompt, { minTokens: room + 1, maxTokens: room + 1, temperature: 0 }, { useTqdm: false });
  await assert.rejects(
    lib,
    (e: Error) =>
      e instanceof ValidationError && e.field === "minTokens" && e.message === `SamplingParams.minTokens: ${r.body.error.message.slice("min_tokens: ".length)}`,
  );
  // maxTokens beyond the room stays as documented (SamplingParams.maxTokens; vLLM's offline LLM does the same): stops at maxSeqLen with "length".
  const long = Array.from({ length: maxSeqLen - 3 }, (_, i) => prompt[i % prompt.length]);
  const out = (await llm.generate(long, { maxTokens: 10, temperature: 0, ignoreEos: true }, { useTqdm: false })).outputs[0];
  assert.deepEqual([out.tokenIds.length, out.finishReason], [3, "length"]);
});

test("serve hostile: guided_choice is bounded (count and bytes), as guidedDecoding.choice", async () => {
  refused(await post("completions", { guided_choice: Array.from({ length: 50_000 }, (_, i) => `c${i}`) }), "guided_choice", "at most 1024 choices, got 50000");
  refused(await post("completions", { guided_choice: Array.from({ length: 1000 }, (_, i) => `c${i}`.padEnd(20, "x")) }), "guided_choice", "20000 bytes");
  assert.equal((await post("completions", { guided_choice: ["yes", "no"] })).status, 200);
});

test("serve hostile: a logit_bias key that is not a canonical token id is named, with what a key must be", async () => {
  refused(
    await post("completions", { logit_bias: { "007": 1 } }),
    "logit_bias",
    'key "007" is not a token id: a key must be a token id in decimal, without sign, spaces or leading zeros (write "7")',
  );
  refused(await post("completions", { logit_bias: { "-1": 1 } }), "logit_bias", 'key "-1" is not a token id');
});

test("serve hostile: with the executor in a Web Worker, what the worker refuses at submission counts as rejected (as in process)", async () => {
  const proxied = await LLM.create({ model: KJV, backend: "cpu", cacheEngine: false, executorMode: "proxy" });
  const papp = createServeApp({ llm: proxied, modelName: "kjv" });
  try {
    const the = llm.tokenizer!.encode(" the", { addSpecialTokens: false });
    const body = JSON.stringify({ ...COMPLETION, allowed_token_ids: the, bad_words: ["the"] });
    const r = await papp.fetch(new Request("http://x/v1/completions", { method: "POST", body }));
    refused({ status: r.status, body: await r.json() }, "allowed_token_ids", "banned by bad_words");
    // A grammar the worker fails to compile (a 400 before this fix too, but counted "failed").
    const g = await papp.fetch(new Request("http://x/v1/completions", { method: "POST", body: JSON.stringify({ ...COMPLETION, guided_regex: "(" }) }));
    refused({ status: g.status, body: await g.json() }, "guided_regex", "Regex");
    const ok = await papp.fetch(new Request("http://x/v1/completions", { method: "POST", body: JSON.stringify(COMPLETION) }));
    assert.equal(ok.status, 200);
    await ok.text();
    const text = await papp.state.metrics.text();
    assert.match(text, /^llmrt_requests_total\{endpoint="completions",state="rejected"\} 2$/m);
    assert.match(text, /^llmrt_requests_total\{endpoint="completions",state="finished"\} 1$/m);
    assert.doesNotMatch(text, /state="failed"/);
  } finally {
    await proxied.shutdown();
  }
});

test("serve hostile: min_tokens over max_tokens names the request's fields, and says when max_tokens defaulted (to 16 in completions)", async () => {
  const dflt = await post("completions", { max_tokens: undefined, min_tokens: 17 });
  refused(dflt, "min_tokens", "must be <= max_tokens (16); max_tokens was not given and defaulted to 16", "validation");
  assert.ok(!dflt.body.error.message.includes("maxTokens"), dflt.body.error.message);
  const given = await post("completions", { max_tokens: 3, min_tokens: 4 });
  refused(given, "min_tokens", "must be <= max_tokens (3)");
  assert.ok(!given.body.error.message.includes("defaulted"), given.body.error.message);
  const chat = await post("chat/completions", { max_tokens: undefined, max_completion_tokens: 2, min_tokens: 3 });
  refused(chat, "min_tokens", "must be <= max_completion_tokens (2)");
});

test("serve hostile: unknown top-level fields are served but reported (as vLLM logs them); a logit_bias id past the vocabulary is rejected at submission", async () => {
  const warnings: string[] = [];
  const wapp = createServeApp({ llm, modelName: "kjv", onWarning: (m) => warnings.push(m) });
  const send = async (route: string, body: object): Promise<Reply> => {
    const r = await wapp.fetch(new Request(`http://x/v1/${route}`, { method: "POST", body: JSON.stringify(body) }));
    return { status: r.status, body: await r.json() };
  };
  const ok = await send("completions", { ...COMPLETION, unknown_field: 1, extra: "x" });
  assert.equal(ok.status, 200);
  const chat = await send("chat/completions", { ...CHAT, reasoning_effort_x: "low" });
  assert.equal(chat.status, 200);
  assert.equal((await send("completions", COMPLETION)).status, 200);
  assert.deepEqual(warnings, [
    "completions: fields present in the request but ignored: unknown_field, extra",
    "chat/completions: fields present in the request but ignored: reasoning_effort_x",
  ]);
  const V = llm.tokenizer!.vocabSize;
  refused(await send("completions", { ...COMPLETION, logit_bias: { [String(V)]: 1 } }), `logit_bias.${V}`, `token id ${V} is outside [0, ${V})`);
  const text = await wapp.state.metrics.text();
  assert.match(text, /^llmrt_requests_total\{endpoint="completions",state="rejected"\} 1$/m);
  assert.doesNotMatch(text, /state="failed"/);
});

test("serve hostile: every request above ended in one final state; nothing left in flight", async () => {
  assert.equal(app.state.numActive(), 0);
  assert.equal(app.state.kvBlocks().used, 0);
  await llm.shutdown();
});
