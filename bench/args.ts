/**
 * The command line of every bench script (bench/*.ts): one strict parser, so that bad input is
 * refused before any work. Each script used to look its flags up with `argv.indexOf(name)`, so a
 * typo or `--help` was silently ignored and started a run of minutes that overwrote
 * bench/results/. Here a script declares its options (kind, default, one line each) and calls
 * `benchArgs` first thing:
 * - `--help` / `-h` prints the usage (the script's command lines, then each option with its default
 *   and description) to stdout and exits 0;
 * - an unknown flag, a flag without its value, a value of the wrong kind or outside its choices,
 *   a flag given twice, or a stray positional argument prints
 *   `bench/<script>: <what was wrong> (expected …, got …)` and `run with --help for the options`
 *   to stderr and exits 2 (the project's exit code for a user's mistake, common/errors.ts).
 *
 * Tokens come from node's `util.parseArgs` (its tokenizer: `--flag value`, `--flag=value`, short
 * flags, `--`); the checks are ours, so each message names the flag, what was expected and what came.
 */
import { writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { InputError, isInputError } from '../common/index.js';

/** What every option declares: its one-line description, and the default as help shows it. */
interface OptionBase {
  /** One line: what the option does (help prints it beside the flag). */
  description: string;
  /**
   * The default as help writes it, where the value alone does not say it: a default that depends
   * on other flags (`20, or 5 with --profile`) or on the machine (`this machine's cores`).
   */
  defaultText?: string;
  /** The value's name in help (`N`, `FILE`); a default per kind otherwise. */
  placeholder?: string;
}

/** Whole numbers and lower bounds, for a number or a list of numbers. */
interface NumberRules {
  /** Refuse fractions. */
  integer?: boolean;
  /** The least value allowed (inclusive). */
  min?: number;
}

/** A flag without a value (`--no-torch`): true when given, false otherwise. */
export interface BooleanOption extends OptionBase {
  kind: 'boolean';
}

/** `--budget-on real`; `choices` limits the values (and types them as a union). */
export interface StringOption extends OptionBase {
  kind: 'string';
  default?: string;
  choices?: readonly string[];
}

/** `--steps 20`: a finite number (empty, blank or non-numeric text is refused). */
export interface NumberOption extends OptionBase, NumberRules {
  kind: 'number';
  default?: number;
}

/** `--devices 1,2,4,8`: comma-separated numbers, each checked as a number option is. */
export interface NumberListOption extends OptionBase, NumberRules {
  kind: 'list';
  of: 'number';
  default?: readonly number[];
}

/** `--configs sharegpt,large`: comma-separated words, each among `choices` when given. */
export interface StringListOption extends OptionBase {
  kind: 'list';
  of: 'string';
  default?: readonly string[];
  choices?: readonly string[];
}

export type BenchOption = BooleanOption | StringOption | NumberOption | NumberListOption | StringListOption;

/** A script's command line: its name (for messages), its usage lines and its options by flag name. */
export interface BenchSpec<S extends Record<string, BenchOption>> {
  /** The script's name, as in `bench/<script>.ts`. */
  script: string;
  /**
   * The command lines of the script's doc comment (and any note on modes), one string a line as
   * --help prints them (continuation lines carry their own indent).
   */
  usage: readonly string[];
  /** Keyed by the flag without its dashes: `'budget-mib'` is `--budget-mib`. */
  options: S;
}

type Choice<O> = O extends { choices: readonly (infer C extends string)[] } ? C : string;

/** The parsed value of one option: undefined only where the option has no default. */
export type OptionValue<O extends BenchOption> = O extends BooleanOption
  ? boolean
  : O extends NumberOption
    ? O extends { default: number }
      ? number
      : number | undefined
    : O extends StringOption
      ? O extends { default: string }
        ? Choice<O>
        : Choice<O> | undefined
      : O extends NumberListOption
        ? O extends { default: readonly number[] }
          ? number[]
          : number[] | undefined
        : O extends StringListOption
          ? O extends { default: readonly string[] }
            ? Choice<O>[]
            : Choice<O>[] | undefined
          : never;

/** The values of a script's options, keyed as its spec is. */
export type BenchArgs<S extends Record<string, BenchOption>> = { readonly [K in keyof S]: OptionValue<S[K]> };

/** A bad command line: `message` is `<what was wrong> (expected …, got …)`; exit code 2. */
export class BenchArgError extends InputError {
  constructor(problem: string, expected: string, got: string) {
    super(`${problem} (expected ${expected}, got ${got})`);
    this.name = 'BenchArgError';
  }
}

/** What `parseBenchArgs` found: the values, or a request for help. */
export type ParsedBenchArgs<S extends Record<string, BenchOption>> =
  | { help: false; values: BenchArgs<S> }
  | { help: true };

/**
 * Parses `argv` against `spec` without side effects: the values (defaults filled in), or
 * `{ help: true }` where `--help`/`-h` comes before any `--`. Throws `BenchArgError` on bad input.
 */
export function parseBenchArgs<const S extends Record<string, BenchOption>>(
  spec: BenchSpec<S>,
  argv: readonly string[],
): ParsedBenchArgs<S> {
  const end = argv.indexOf('--');
  if ((end < 0 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h')) return { help: true };
  const options = Object.fromEntries(
    Object.entries(spec.options).map(([name, o]) => [
      name,
      { type: o.kind === 'boolean' ? 'boolean' : 'string' },
    ]),
  ) as Record<string, { type: 'boolean' | 'string' }>;
  // NOTE: strict: false so that we, not parseArgs, word the errors; every token is checked below
  const { tokens } = parseArgs({
    args: [...argv],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const raw = new Map<string, string | true>();
  for (const t of tokens) {
    if (t.kind === 'option-terminator') continue;
    if (t.kind === 'positional')
      throw new BenchArgError(`unexpected argument '${t.value}'`, 'only --flags', `'${t.value}'`);
    const o = Object.hasOwn(spec.options, t.name) ? spec.options[t.name] : undefined;
    if (!o || t.rawName !== `--${t.name}`)
      throw new BenchArgError(
        `unknown argument '${t.rawName}'`,
        `one of ${[...Object.keys(spec.options).map((n) => `--${n}`), '--help'].join(', ')}`,
        `'${t.rawName}'`,
      );
    const flag = t.rawName;
    let value: string | true;
    if (o.kind === 'boolean') {
      if (t.value !== undefined)
        throw new BenchArgError(`${flag} takes no value`, flag, `${flag}=${t.value}`);
      value = true;
    } else {
      // parseArgs hands a string option the next argument even when it is a flag
      if (t.value === undefined || (!t.inlineValue && t.value.startsWith('--')))
        throw new BenchArgError(
          `${flag} needs a value`,
          `${flag} ${placeholder(o)}`,
          t.value === undefined ? 'nothing' : `'${t.value}'`,
        );
      value = t.value;
    }
    const before = raw.get(t.name);
    if (before !== undefined)
      throw new BenchArgError(
        `${flag} is given twice`,
        'each flag once',
        o.kind === 'boolean' ? `${flag} ${flag}` : `'${before}' and '${value}'`,
      );
    raw.set(t.name, value);
  }
  const values: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(spec.options)) {
    const given = raw.get(name);
    if (o.kind === 'boolean') values[name] = given === true;
    else if (given !== undefined) values[name] = convert(`--${name}`, o, given as string);
    else values[name] = Array.isArray(o.default) ? [...o.default] : o.default;
  }
  return { help: false, values: values as BenchArgs<S> };
}

/**
 * Parses the process's command line first thing in a bench script: prints the usage and exits 0
 * on `--help`, prints the error and exits 2 on bad input (also where `check`, the script's own
 * checks across options, throws an `InputError`), and returns the values otherwise.
 */
export function benchArgs<const S extends Record<string, BenchOption>>(
  spec: BenchSpec<S>,
  check?: (values: BenchArgs<S>) => void,
  argv: readonly string[] = process.argv.slice(2),
): BenchArgs<S> {
  try {
    const parsed = parseBenchArgs(spec, argv);
    if (parsed.help) {
      // NOTE: writeSync: the usage must be out before exit, and process.stdout is asynchronous on some pipes
      writeSync(1, benchUsage(spec));
      process.exit(0);
    }
    check?.(parsed.values);
    return parsed.values;
  } catch (err) {
    if (!isInputError(err)) throw err;
    writeSync(2, `bench/${spec.script}: ${err.message}\nrun with --help for the options\n`);
    process.exit(2);
  }
}

/** The --help text: the script's usage lines, then one line per option with its default. */
export function benchUsage<S extends Record<string, BenchOption>>(spec: BenchSpec<S>): string {
  const rows: [string, string][] = Object.entries(spec.options).map(([name, o]) => {
    const left = o.kind === 'boolean' ? `--${name}` : `--${name} ${placeholder(o)}`;
    const dflt = o.defaultText ?? defaultText(o);
    return [left, dflt === undefined ? o.description : `${o.description} (default: ${dflt})`];
  });
  rows.push(['-h, --help', 'print this help and exit']);
  const width = Math.max(...rows.map(([left]) => left.length));
  return [
    `bench/${spec.script}`,
    '',
    'usage:',
    ...spec.usage.map((l) => `  ${l}`),
    '',
    'options:',
    ...rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`),
    '',
  ].join('\n');
}

function placeholder(o: Exclude<BenchOption, BooleanOption>): string {
  if (o.placeholder) return o.placeholder;
  if (o.kind === 'number') return 'N';
  if (o.kind === 'string') return o.choices ? o.choices.join('|') : 'VALUE';
  return o.of === 'number' ? 'N,N,…' : o.choices ? `{${o.choices.join(',')}},…` : 'A,B,…';
}

function defaultText(o: BenchOption): string | undefined {
  if (o.kind === 'boolean' || o.default === undefined) return undefined;
  return Array.isArray(o.default) ? o.default.join(',') : String(o.default);
}

/** Checks and converts one given value; `flag` names it in the error. */
function convert(
  flag: string,
  o: Exclude<BenchOption, BooleanOption>,
  text: string,
): string | number | string[] | number[] {
  if (o.kind === 'string') {
    if (o.choices && !o.choices.includes(text)) badValue(flag, `one of ${o.choices.join(', ')}`, text);
    return text;
  }
  if (o.kind === 'number') return toNumber(flag, o, text, undefined);
  const items = text.split(',');
  if (o.of === 'number') return items.map((item) => toNumber(flag, o, item, text));
  for (const item of items)
    if (item === '' || (o.choices && !o.choices.includes(item)))
      badValue(
        flag,
        o.choices
          ? `items among ${o.choices.join(', ')} separated by commas`
          : 'items separated by commas, none empty',
        text,
      );
  return items;
}

function toNumber(flag: string, rules: NumberRules, item: string, list: string | undefined): number {
  const n = item.trim() === '' ? Number.NaN : Number(item);
  if (
    Number.isFinite(n) &&
    (!rules.integer || Number.isInteger(n)) &&
    (rules.min === undefined || n >= rules.min)
  )
    return n;
  const noun = rules.integer ? 'integer' : 'number';
  const bound = rules.min === undefined ? '' : ` ≥ ${rules.min}`;
  const expected =
    list === undefined
      ? `${rules.integer ? 'an' : 'a'} ${noun}${bound}`
      : `${noun}s${bound} separated by commas`;
  return badValue(flag, expected, list ?? item);
}

function badValue(flag: string, expected: string, text: string): never {
  throw new BenchArgError(`bad value for ${flag}`, expected, `'${text}'`);
}
