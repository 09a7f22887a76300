/** `llmrt chat`: an interactive, streaming conversation that keeps its history (/reset clears it). */
import process from "node:process";
import * as readline from "node:readline";
import type { Command } from "../cli/command.ts";
import { ValidationError } from "../../mod.ts";
import { GENERATION_CONFIG_OPTION, MODEL_OPTIONS, openModel, SAMPLING_OPTIONS, samplingFrom } from "../cli/model.ts";

interface Turn {
  role: string;
  content: string;
  [field: string]: unknown;
}

export const chat: Command = {
  name: "chat",
  summary: "chat interactively with a model (streaming; /reset, /exit)",
  usage: "[options]",
  description: "Reads one user message per line from stdin and streams the reply. The conversation is kept\n" +
    "and rendered with the tokenizer's chat template. Commands: /reset (forget the conversation), /exit.",
  options: [
    ...MODEL_OPTIONS,
    ...SAMPLING_OPTIONS,
    GENERATION_CONFIG_OPTION,
    { name: "system", type: "string", valueName: "TEXT", help: "a system message that opens the conversation" },
  ],
  async run({ values, given }): Promise<number> {
    const { llm, model } = await openModel(values);
    const sampling = samplingFrom(values, given, llm.generationDefaults);
    try {
      const tok = llm.tokenizer!;
      if (!tok.hasChatTemplate) throw new ValidationError(`the tokenizer of ${model} has no chat template; use llmrt generate`, "model", model);
      const system = values.system as string | undefined;
      const fresh = (): Turn[] => (system ? [{ role: "system", content: system }] : []);
      let messages = fresh();
      const tty = !!process.stdin.isTTY;
      const rl = readline.createInterface({ input: process.stdin, terminal: tty });
      const ask = (): void => {
        if (tty) process.stdout.write("> ");
      };
      console.error(`[llmrt] chatting with ${model} on ${llm.backend}; /reset forgets the conversation, /exit quits`);
      ask();
      for await (const line of rl) {
        const text = line.trim();
        if (text === "") {
          ask();
          continue;
        }
        if (text === "/exit" || text === "/quit") break;
        if (text === "/reset") {
          messages = fresh();
          console.log("[conversation reset]");
          ask();
          continue;
        }
        messages.push({ role: "user", content: text });
        const prompt = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
        const ids = tok.encode(prompt, { addSpecialTokens: false });
        const room = llm.executor.limits.maxSeqLen - ids.length;
        if (ids.length > llm.executor.limits.maxInputLen || room < 1) {
          messages.pop();
          console.log(`[the conversation is too long for this model (${ids.length} tokens); /reset to start again]`);
          ask();
          continue;
        }
        const ro = llm.generateAsync(ids, { ...sampling, maxTokens: Math.min(sampling.maxTokens ?? 128, room) }, { streaming: true });
        let reply = "";
        for await (const o of ro) {
          const d = o.outputs[0]?.textDiff ?? "";
          reply += d;
          process.stdout.write(d);
        }
        process.stdout.write("\n");
        messages.push({ role: "assistant", content: reply });
        ask();
      }
      rl.close();
    } finally {
      await llm.shutdown();
    }
    return 0;
  },
};
