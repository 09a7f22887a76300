// Streamed and non-streamed completions agree exactly (text, finish reasons, logprobs tokens, usage), in-process and
// with the executor in a Web Worker, for stop strings spanning tokens, n > 1, logprobs and echo: the streaming
// detokenizer's deltas (its cached per-id continuation texts included) concatenate to the whole text.
import OpenAI from "openai";
import { LLM } from "../mod.ts";
import { startServer } from "../lib/serve/server.ts";
import { assert, test } from "./harness.ts";

const KJV = new URL("../models/kjv-llama/", import.meta.url).pathname;
const MODEL = "kjv-llama";

interface Choice {
  text: string;
  finish: string | null;
  tokens: string[];
}

type Body = OpenAI.CompletionCreateParamsNonStreaming;

async function whole(c: OpenAI, body: Body): Promise<{ choices: Choice[]; usage: unknown }> {
  const r = await c.completions.create(body);
  const choices = [...r.choices].sort((a, b) => a.index - b.index).map((ch) => ({
    text: ch.text,
    finish: ch.finish_reason,
    tokens: ch.logprobs?.tokens ?? [],
  }));
  return { choices, usage: r.usage };
}

async function streamed(c: OpenAI, body: Body): Promise<{ choices: Choice[]; usage: unknown }> {
  const choices: Choice[] = [];
  let usage: unknown = null;
  const s = await c.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  for await (const ch of s) {
    if (ch.usage) usage = ch.usage;
    for (const x of ch.choices) {
      const to = choices[x.index] ??= { text: "", finish: null, tokens: [] };
      to.text += x.text;
      if (x.finish_reason) to.finish = x.finish_reason;
      to.tokens.push(...(x.logprobs?.tokens ?? []));
    }
  }
  return { choices, usage };
}

test("serve: streamed == non-streamed (stop strings across tokens, n: 3, logprobs, echo), in-process and proxy", async () => {
  const inproc = await LLM.create({ model: KJV, backend: "cpu", cacheEngine: false });
  const proxied = await LLM.create({ model: KJV, backend: "cpu", cacheEngine: false, executorMode: "proxy" });
  const servers = [await startServer({ llm: inproc, port: 0, modelName: MODEL }), await startServer({ llm: proxied, port: 0, modelName: MODEL })];
  try {
    const clients = servers.map((s) => new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "x", maxRetries: 0 }));
    const base = { model: MODEL, prompt: "And God said", max_tokens: 40, temperature: 0, logprobs: 2 } as const;
    const ref = await whole(clients[0], base);
    const toks = ref.choices[0].tokens;
    assert.equal(toks.join(""), ref.choices[0].text);
    // A stop string made of the end of one token and the start of the next (both at least 2 characters long).
    const k = toks.findIndex((t, i) => i > 3 && t.length >= 2 && (toks[i + 1]?.length ?? 0) >= 2);
    assert.ok(k > 0, JSON.stringify(toks));
    const stop = toks[k].slice(-2) + toks[k + 1].slice(0, 2);
    const bodies: Body[] = [
      base,
      { ...base, stop: [stop, "zzzz"] },
      { ...base, stop: [stop], echo: true, logprobs: undefined },
      { ...base, n: 3, temperature: 0.9, seed: 7, stop: ["LORD"] },
      { ...base, prompt: ["In the beginning", "And the earth"], max_tokens: 25, echo: true, logprobs: undefined },
    ];
    const cut = ref.choices[0].text.indexOf(stop);
    const stopped = await whole(clients[0], bodies[1]);
    assert.equal(stopped.choices[0].text, ref.choices[0].text.slice(0, cut));
    assert.equal(stopped.choices[0].finish, "stop");
    for (const body of bodies) {
      const expect = await whole(clients[0], body);
      for (const [i, c] of clients.entries()) {
        const what = `${i ? "proxy" : "in-process"} ${JSON.stringify(body)}`;
        if (i > 0) assert.deepEqual(await whole(c, body), expect, `non-streamed, ${what}`);
        const got = await streamed(c, body);
        assert.deepEqual(got.usage, expect.usage, `usage, ${what}`);
        assert.equal(got.choices.length, expect.choices.length, what);
        for (const [j, ch] of expect.choices.entries()) {
          assert.equal(got.choices[j].text, ch.text, `text of choice ${j}, ${what}`);
          assert.equal(got.choices[j].finish, ch.finish, `finish of choice ${j}, ${what}`);
          if (!body.echo) assert.deepEqual(got.choices[j].tokens, ch.tokens, `logprobs tokens of choice ${j}, ${what}`);
        }
      }
    }
    for (const s of servers) assert.equal(s.app.state.numActive(), 0);
  } finally {
    for (const s of servers) await s.close(1000);
    await inproc.shutdown();
    await proxied.shutdown();
  }
});
