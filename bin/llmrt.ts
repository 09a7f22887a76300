#!/usr/bin/env bun
/**
 * llmrt command line: `llmrt <command> [options]`, `llmrt --help`, `llmrt <command> --help`.
 * Commands live in bin/commands/ (one file each, listed in bin/commands/index.ts).
 *
 *   bun bin/llmrt.ts generate ["prompt"] [--model DIR] [--max-tokens N] [--temperature T] ...
 *   bun bin/llmrt.ts serve [--model DIR] [--port 8000] [--api-key KEY]
 *
 * Exit codes: 0 success, 1 a failure while running, 2 a bad command line.
 */
import process from "node:process";
import { formatOptions, parseArgs, UsageError } from "./cli/args.ts";
import type { Command } from "./cli/command.ts";
import { COMMANDS } from "./commands/index.ts";

const HELP_OPTION = { name: "help", type: "boolean", help: "show this help" } as const;

function mainHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    "llmrt: a TypeScript LLM inference engine for Bun and Deno",
    "",
    "usage: llmrt <command> [options]",
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
    "",
    "Run `llmrt <command> --help` for a command's options.",
  ].join("\n");
}

function commandHelp(c: Command): string {
  return [
    `usage: llmrt ${c.name} ${c.usage}`,
    "",
    `${c.summary}.`,
    ...(c.description ? ["", c.description] : []),
    "",
    "options:",
    formatOptions([...c.options, HELP_OPTION]),
  ].join("\n");
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    console.error(mainHelp());
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(mainHelp());
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(name)}; commands: ${COMMANDS.map((c) => c.name).join(", ")} (see llmrt --help)`);
  const args = parseArgs(cmd.name, rest, [...cmd.options, HELP_OPTION]);
  if (args.values.help) {
    console.log(commandHelp(cmd));
    return 0;
  }
  return await cmd.run(args);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  console.error(`llmrt: ${(e as Error).message}`);
  process.exitCode = e instanceof UsageError ? 2 : 1;
}
