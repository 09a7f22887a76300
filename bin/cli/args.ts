/**
 * Command-line options: a small declarative parser (`--name value`, `--name=value`, boolean
 * flags, `-h`), validation with errors that name the flag and the value, and help text.
 * Negative numbers are values (`--temperature -1` is read, then rejected with the reason).
 */

/** A bad command line: printed as `llmrt: <message>`, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** One option of a command. */
export interface OptionSpec {
  readonly name: string;
  readonly type: "string" | "number" | "int" | "boolean";
  readonly help: string;
  /** Shown in help: `--port N`. */
  readonly valueName?: string;
  readonly default?: string | number | boolean;
  /** Inclusive bounds (numbers). */
  readonly min?: number;
  readonly max?: number;
  /** Exclusive lower bound (numbers). */
  readonly gt?: number;
  readonly choices?: readonly string[];
  /** May be given several times (values collected in a list). */
  readonly multiple?: boolean;
}

/** Parsed options: values by option name (defaults applied), positionals in order. */
export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | number | boolean | string[] | undefined>>;
  readonly positionals: readonly string[];
  /** The options the command line gave (the others hold their defaults). */
  readonly given: ReadonlySet<string>;
}

function checkValue(spec: OptionSpec, raw: string): string | number {
  const flag = `--${spec.name}`;
  if (spec.type === "string") {
    if (spec.choices && !spec.choices.includes(raw)) {
      throw new UsageError(`${flag}: expected one of ${spec.choices.join(", ")}, got ${JSON.stringify(raw)}`);
    }
    return raw;
  }
  const n = raw.trim() === "" ? NaN : Number(raw);
  if (!Number.isFinite(n)) throw new UsageError(`${flag}: expected a number, got ${JSON.stringify(raw)}`);
  if (spec.type === "int" && !Number.isInteger(n)) throw new UsageError(`${flag}: expected an integer, got ${raw}`);
  if (spec.min !== undefined && n < spec.min) throw new UsageError(`${flag}: must be >= ${spec.min}, got ${raw}`);
  if (spec.gt !== undefined && n <= spec.gt) throw new UsageError(`${flag}: must be > ${spec.gt}, got ${raw}`);
  if (spec.max !== undefined && n > spec.max) throw new UsageError(`${flag}: must be <= ${spec.max}, got ${raw}`);
  return n;
}

/** Parses `argv` against `specs`; unknown options and bad values throw a UsageError naming them. */
export function parseArgs(command: string, argv: readonly string[], specs: readonly OptionSpec[]): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: Record<string, string | number | boolean | string[] | undefined> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a === "-h") {
      values.help = true;
      continue;
    }
    if (!a.startsWith("--") || a === "-") {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    const spec = byName.get(name);
    if (!spec) throw new UsageError(`unknown option --${name} for "${command}" (see llmrt ${command} --help)`);
    if (spec.type === "boolean") {
      if (eq >= 0) {
        const v = a.slice(eq + 1);
        if (v !== "true" && v !== "false") throw new UsageError(`--${name}: expected true or false, got ${JSON.stringify(v)}`);
        values[name] = v === "true";
      } else values[name] = true;
      continue;
    }
    let raw: string;
    if (eq >= 0) raw = a.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name}: needs a value (${spec.valueName ?? "VALUE"})`);
      raw = argv[++i];
    }
    const v = checkValue(spec, raw);
    if (spec.multiple) values[name] = [...((values[name] as string[] | undefined) ?? []), String(v)];
    else values[name] = v;
  }
  const given = new Set(Object.keys(values));
  for (const s of specs) if (values[s.name] === undefined && s.default !== undefined) values[s.name] = s.default;
  return { values, positionals, given };
}

/** The options block of a help text. */
export function formatOptions(specs: readonly OptionSpec[]): string {
  const rows = specs.map((s) => {
    const left = `--${s.name}${s.type === "boolean" ? "" : ` ${s.valueName ?? (s.type === "string" ? "TEXT" : "N")}`}`;
    const extra = [
      s.choices ? `one of ${s.choices.join(", ")}` : "",
      s.default !== undefined && s.type !== "boolean" ? `default ${s.default}` : "",
    ].filter(Boolean).join("; ");
    return [left, extra ? `${s.help} (${extra})` : s.help];
  });
  const w = Math.min(34, Math.max(...rows.map((r) => r[0].length)) + 2);
  return rows.map(([l, r]) => `  ${l.padEnd(w)}${l.length >= w ? `\n  ${"".padEnd(w)}` : ""}${r}`).join("\n");
}
