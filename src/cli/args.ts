/**
 * Command-line flags for the operator commands, parsed with node:util's parseArgs in
 * its tolerant mode and checked token by token, so every problem is one line that
 * names the flag as the user typed it (Node's own messages read as internals).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A bad command line: said in one line with a pointer to --help, exit code 2. */
export class UsageError extends Error {}

export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

export interface ParsedFlags {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Parses `argv` against `options`. A string flag takes the next argument as its value
 * unless that looks like a flag (write `--flag=-x` to mean it); a negative number is a
 * value (`--priority -5`). A flag given twice is refused rather than silently
 * overridden.
 */
export function parseFlags(argv: string[], options: FlagSpec): ParsedFlags {
  const { tokens } = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  const values: Record<string, string | boolean | undefined> = {};
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === "positional") {
      positionals.push(token.value);
      continue;
    }
    if (token.kind !== "option") continue;
    if (!Object.hasOwn(options, token.name)) throw new UsageError(`unknown option ${token.rawName}`);
    const option = options[token.name]!;
    if (values[token.name] !== undefined) throw new UsageError(`${token.rawName} is given twice`);
    if (option.type === "boolean") {
      if (token.value !== undefined) throw new UsageError(`${token.rawName} takes no value`);
      values[token.name] = true;
      continue;
    }
    if (token.value === undefined) throw new UsageError(`${token.rawName} needs a value`);
    if (!token.inlineValue && token.value.startsWith("-") && !/^-\d/.test(token.value)) {
      throw new UsageError(`${token.rawName} needs a value; got "${token.value}" (write ${token.rawName}=${token.value} if you mean it)`);
    }
    values[token.name] = token.value;
  }
  return { values, positionals };
}

/** An integer flag, or undefined when absent. */
export function integerFlag(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (value.trim() === "" || !Number.isSafeInteger(number) || number < min || number > max) {
    throw new UsageError(`--${flag} must be an integer from ${min} to ${max}; got "${value}"`);
  }
  return number;
}
