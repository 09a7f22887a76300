/**
 * The command table of `llmrt`. A new command is one file exporting a `Command` and one line here
 * (e.g. `quantize` once quantization exists).
 */
import type { Command } from "../cli/command.ts";
import { bench } from "./bench.ts";
import { build } from "./build.ts";
import { chat } from "./chat.ts";
import { generate } from "./generate.ts";
import { quantize } from "./quantize.ts";
import { serve } from "./serve.ts";
import { tpWorker } from "./tp_worker.ts";

export const COMMANDS: readonly Command[] = [generate, chat, serve, build, bench, quantize, tpWorker];
