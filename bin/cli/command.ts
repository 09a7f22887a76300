/** What a CLI command is: its name, help and options, and what it runs. Commands register in bin/commands/index.ts. */
import type { OptionSpec, ParsedArgs } from "./args.ts";

/** One `llmrt <name>` command. */
export interface Command {
  readonly name: string;
  /** One line for `llmrt --help`. */
  readonly summary: string;
  /** The arguments after the name, e.g. `["PROMPT"] [options]`. */
  readonly usage: string;
  /** More help text printed under the usage line. */
  readonly description?: string;
  readonly options: readonly OptionSpec[];
  /** Runs the command; resolves to the exit code. */
  run(args: ParsedArgs): Promise<number>;
}
