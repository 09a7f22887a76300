/** `llmrt generate`: one prompt in, its continuation out (stats on stderr). */
import process from "node:process";
import type { Command } from "../cli/command.ts";
import { EMBEDDED_MODEL, GENERATION_CONFIG_OPTION, MODEL_OPTIONS, openModel, SAMPLING_OPTIONS, samplingFrom } from "../cli/model.ts";

export const generate: Command = {
  name: "generate",
  summary: "generate text from a prompt",
  usage: `["PROMPT"] [options]`,
  description: "Prints the prompt and its continuation on stdout, and the token counts and tokens/s on stderr.\n" +
    "With no --model it uses the embedded model (models/kjv-llama). --model takes an HF checkpoint directory\n" +
    "(built implicitly, engine cached) or an engine directory written by `llmrt build`.",
  options: [
    ...MODEL_OPTIONS,
    ...SAMPLING_OPTIONS,
    GENERATION_CONFIG_OPTION,
    { name: "stream", type: "boolean", help: "print tokens as they are generated" },
  ],
  async run({ values, positionals, given }): Promise<number> {
    const t0 = performance.now();
    const { llm, model } = await openModel(values);
    const tLoad = performance.now() - t0;
    const sampling = samplingFrom(values, given, llm.generationDefaults);
    const prompt = positionals.join(" ") || (model === EMBEDDED_MODEL ? "In the beginning" : "Once upon a time");
    try {
      const t1 = performance.now();
      let out;
      if (values.stream) {
        process.stdout.write(prompt);
        const ro = llm.generateAsync(prompt, sampling, { streaming: true });
        for await (const o of ro) process.stdout.write(o.outputs[0]?.textDiff ?? "");
        out = await ro.result();
        process.stdout.write("\n");
      } else {
        out = await llm.generate(prompt, sampling);
        console.log(`${prompt}${out.outputs[0].text}`);
      }
      const dt = (performance.now() - t1) / 1000;
      const c = out.outputs[0];
      console.error(
        `\n[llmrt] model ${model} on ${llm.backend}: ${out.promptTokenIds.length} prompt + ${c.tokenIds.length} generated tokens in ${dt.toFixed(2)} s ` +
          `(${(c.tokenIds.length / dt).toFixed(1)} tokens/s; load ${(tLoad / 1000).toFixed(2)} s; finish: ${c.finishReason})`,
      );
    } finally {
      await llm.shutdown();
    }
    return 0;
  },
};
