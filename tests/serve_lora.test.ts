// llmrt serve with LoRA adapters (issue 15 part 3 / issue 13): `loraModules` names adapters a client may
// send as `model`; /v1/models lists them beside the base; a completion through an adapter equals the
// library's `loraRequest` output, the base name stays the base model, an unknown name is 404.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import OpenAI from "openai";
import { LLM } from "../mod.ts";
import { startServer } from "../lib/serve/server.ts";
import { packPeftAdapter } from "../tools/lora-packer/pack.ts";
import { assert, test } from "./harness.ts";

const kjv = new URL("../models/kjv-llama/", import.meta.url).pathname;

test("serve: a LoRA adapter named as model gives the library's adapter output; /v1/models lists it; unknown names are 404", async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-serve-lora-"));
  try {
    const adapter = path.join(tmp, "qv");
    packPeftAdapter(kjv, adapter, { rank: 8, alpha: 32, targetModules: ["q_proj", "v_proj"], seed: 2, std: 0.08 });
    await using llm = await LLM.create({ model: kjv, backend: "cpu", enableLora: true });
    const prompt = "And God said, Let there be light";
    const params = { maxTokens: 8, temperature: 0, ignoreEos: true };
    const viaLib = (await llm.generate(prompt, params, { useTqdm: false, loraRequest: { name: "qv", path: adapter } })).outputs[0].text;
    const base = (await llm.generate(prompt, params, { useTqdm: false })).outputs[0].text;
    assert.notEqual(viaLib, base, "the adapter changes the greedy text (else this test could not tell them apart)");
    const server = await startServer({ llm, port: 0, modelName: "kjv", loraModules: { qv: adapter } });
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
      const models = await client.models.list();
      assert.deepEqual(models.data.map((m) => [m.id, (m as unknown as { parent: string | null }).parent]), [["kjv", null], ["qv", "kjv"]]);
      const ask = async (model: string): Promise<string> =>
        (await client.completions.create({ model, prompt, max_tokens: 8, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming))
          .choices[0].text;
      assert.equal(await ask("qv"), viaLib);
      assert.equal(await ask("kjv"), base);
      await assert.rejects(ask("nope"), (e: unknown) => e instanceof OpenAI.APIError && e.status === 404 && /"qv"/.test(e.message));
    } finally {
      await server.close();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
