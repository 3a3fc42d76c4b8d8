/**
 * A small typed schema for YAML configs: each field carries its type, its default and a doc line
 * (STYLE.md §6). `check` validates a parsed YAML value and returns the typed value with defaults
 * filled in; every problem is collected as `key.path: expected …; got …` so a config with several
 * mistakes reports all of them at once. Unknown keys are errors, never ignored.
 */

/** One validation problem: where, and what was expected instead of what came. */
export interface SchemaIssue {
  /** Dotted key path, e.g. `toy.lr` (`(root)` for the document itself). */
  path: string;
  message: string;
}

/** Collects issues while checking a document. */
export class IssueList {
  readonly issues: SchemaIssue[] = [];
  add(path: string, message: string): void {
    this.issues.push({ path: path || '(root)', message });
  }
}

/** Describes a value for an error message: `got 'abc' (a string)`. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'string') return `'${v.length > 60 ? `${v.slice(0, 57)}...` : v}' (a string)`;
  if (typeof v === 'object') return 'a mapping';
  return `${String(v)} (a ${typeof v})`;
}

const MISSING: unique symbol = Symbol('missing');

export abstract class Schema<T> {
  constructor(
    /** One line saying what the field means. */
    readonly doc: string,
    /** Value used when the key is absent; `undefined` makes the key required. */
    readonly defaultValue: T | undefined,
  ) {}
  /** What a valid value looks like, for messages and `--help`: `a number ≥ 0`. */
  abstract get expect(): string;
  /** Checks `value` (already known to be present); returns the typed value or MISSING on error. */
  abstract checkPresent(value: unknown, path: string, issues: IssueList): T | typeof MISSING;

  /** Checks a possibly absent value, applying the default. */
  check(value: unknown, path: string, issues: IssueList): T | typeof MISSING {
    if (value === undefined) {
      if (this.defaultValue !== undefined) return structuredClone(this.defaultValue);
      issues.add(path, `missing required key; expected ${this.expect}`);
      return MISSING;
    }
    if (value === null) {
      // `key:` with nothing after it: YAML's null, never a valid value here.
      issues.add(path, `missing value; expected ${this.expect}`);
      return MISSING;
    }
    return this.checkPresent(value, path, issues);
  }
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

interface NumberOptions {
  doc: string;
  default?: number;
  min?: number;
  max?: number;
  /** Why `max` is the bound, when it is the machine's (issue 16: device counts). */
  maxWhy?: string;
  /** The minimum is exclusive (`> min`). */
  exclusiveMin?: boolean;
  integer?: boolean;
}

export class NumberSchema extends Schema<number> {
  constructor(private readonly o: NumberOptions) {
    super(o.doc, o.default);
  }
  get expect(): string {
    const kind = this.o.integer ? 'an integer' : 'a number';
    const bounds: string[] = [];
    if (this.o.min !== undefined) bounds.push(`${this.o.exclusiveMin ? '>' : '≥'} ${this.o.min}`);
    if (this.o.max !== undefined) bounds.push(`≤ ${this.o.max}${this.o.maxWhy ? ` (${this.o.maxWhy})` : ''}`);
    return bounds.length ? `${kind} ${bounds.join(' and ')}` : kind;
  }
  checkPresent(v: unknown, path: string, issues: IssueList): number | typeof MISSING {
    const ok =
      typeof v === 'number' &&
      Number.isFinite(v) &&
      // Safe integers only: 1e20 passes Number.isInteger but is no count anyone can allocate.
      (!this.o.integer || Number.isSafeInteger(v)) &&
      (this.o.min === undefined || (this.o.exclusiveMin ? v > this.o.min : v >= this.o.min)) &&
      (this.o.max === undefined || v <= this.o.max);
    if (!ok) {
      issues.add(path, `expected ${this.expect}; got ${describeValue(v)}`);
      return MISSING;
    }
    return v as number;
  }
}

interface StringOptions {
  doc: string;
  default?: string;
  /** Reject the empty string. */
  nonEmpty?: boolean;
}

export class StringSchema extends Schema<string> {
  constructor(private readonly o: StringOptions) {
    super(o.doc, o.default);
  }
  get expect(): string {
    return this.o.nonEmpty ? 'a non-empty string' : 'a string';
  }
  checkPresent(v: unknown, path: string, issues: IssueList): string | typeof MISSING {
    // NOTE: YAML turns `name: 123` into a number; a string field accepts scalars and stringifies
    // them, since a user who writes a bare number for a name means its text.
    if (typeof v === 'number' || typeof v === 'boolean') v = String(v);
    if (typeof v !== 'string' || (this.o.nonEmpty && v === '')) {
      issues.add(path, `expected ${this.expect}; got ${describeValue(v)}`);
      return MISSING;
    }
    return v;
  }
}

export class BooleanSchema extends Schema<boolean> {
  constructor(o: { doc: string; default?: boolean }) {
    super(o.doc, o.default);
  }
  get expect(): string {
    return 'true or false';
  }
  checkPresent(v: unknown, path: string, issues: IssueList): boolean | typeof MISSING {
    if (typeof v !== 'boolean') {
      issues.add(path, `expected ${this.expect}; got ${describeValue(v)}`);
      return MISSING;
    }
    return v;
  }
}

export class EnumSchema<E extends string> extends Schema<E> {
  constructor(
    readonly values: readonly E[],
    o: { doc: string; default?: E },
  ) {
    super(o.doc, o.default);
  }
  get expect(): string {
    return `one of ${this.values.map((v) => `'${v}'`).join(', ')}`;
  }
  checkPresent(v: unknown, path: string, issues: IssueList): E | typeof MISSING {
    if (typeof v !== 'string' || !(this.values as readonly string[]).includes(v)) {
      issues.add(path, `expected ${this.expect}; got ${describeValue(v)}`);
      return MISSING;
    }
    return v as E;
  }
}

export class ListSchema<T> extends Schema<T[]> {
  constructor(
    readonly item: Schema<T>,
    o: { doc: string; default?: T[]; minLength?: number },
    private readonly minLength = o.minLength ?? 0,
  ) {
    super(o.doc, o.default);
  }
  get expect(): string {
    return `a list of ${this.item.expect}${this.minLength ? ` (at least ${this.minLength})` : ''}`;
  }
  checkPresent(v: unknown, path: string, issues: IssueList): T[] | typeof MISSING {
    if (!Array.isArray(v) || v.length < this.minLength) {
      issues.add(path, `expected ${this.expect}; got ${describeValue(v)}`);
      return MISSING;
    }
    const out: T[] = [];
    let bad = false;
    v.forEach((item, i) => {
      const r = this.item.check(item, `${path}[${i}]`, issues);
      if (r === MISSING) bad = true;
      else out.push(r);
    });
    return bad ? MISSING : out;
  }
}

export type Fields = Record<string, Schema<unknown>>;
export type InferFields<F extends Fields> = { [K in keyof F]: Infer<F[K]> };

/** A mapping with a fixed set of keys; unknown keys are errors. */
export class ObjectSchema<T> extends Schema<T> {
  constructor(
    readonly fields: Fields,
    o: { doc: string; optional?: boolean },
  ) {
    // An object whose fields all have defaults may be left out entirely.
    super(o.doc, undefined);
    this.allDefaults = Object.values(fields).every(
      (f) => f.defaultValue !== undefined || (f instanceof ObjectSchema && f.allDefaults),
    );
  }
  readonly allDefaults: boolean;
  get expect(): string {
    return `a mapping with keys ${Object.keys(this.fields).join(', ')}`;
  }
  override check(value: unknown, path: string, issues: IssueList): T | typeof MISSING {
    if ((value === undefined || value === null) && this.allDefaults)
      return this.checkPresent({}, path, issues);
    return super.check(value, path, issues);
  }
  checkPresent(v: unknown, path: string, issues: IssueList): T | typeof MISSING {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      issues.add(path, `expected ${this.expect}; got ${describeValue(v)}`);
      return MISSING;
    }
    const raw = v as Record<string, unknown>;
    // NOTE: prototype-free (issue 16 item 12): a validated config has only its fields, so no
    // lookup can reach Object.prototype; and own keys only, since `'toString' in {}` is true and
    // such a key was dropped silently instead of refused as unknown (`--set toy.toString=1`)
    const out: Record<string, unknown> = Object.create(null);
    let bad = false;
    for (const key of Object.keys(raw)) {
      if (!Object.hasOwn(this.fields, key)) {
        issues.add(join(path, key), `unknown key${suggest(key, Object.keys(this.fields))}`);
        bad = true;
      }
    }
    for (const [key, field] of Object.entries(this.fields)) {
      const r = field.check(Object.hasOwn(raw, key) ? raw[key] : undefined, join(path, key), issues);
      if (r === MISSING) bad = true;
      else out[key] = r;
    }
    return bad ? MISSING : (out as T);
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** ` (did you mean 'lr'?)` when a known key is one or two edits away, else a list of known keys. */
function suggest(key: string, known: string[]): string {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best ? ` (did you mean '${best}'?)` : `; expected one of ${known.join(', ')}`;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

/** Builders, so a schema reads as a list of documented fields. */
export const s = {
  number: (o: NumberOptions) => new NumberSchema(o),
  integer: (o: Omit<NumberOptions, 'integer'>) => new NumberSchema({ ...o, integer: true }),
  string: (o: StringOptions) => new StringSchema(o),
  boolean: (o: { doc: string; default?: boolean }) => new BooleanSchema(o),
  enum: <E extends string>(values: readonly E[], o: { doc: string; default?: E }) =>
    new EnumSchema(values, o),
  list: <T>(item: Schema<T>, o: { doc: string; default?: T[]; minLength?: number }) =>
    new ListSchema(item, o),
  object: <F extends Fields>(fields: F, o: { doc: string }) => new ObjectSchema<InferFields<F>>(fields, o),
};

/** Runs a schema over a document; returns the value or the list of issues. */
export function validate<T>(
  schema: Schema<T>,
  value: unknown,
): { ok: true; value: T } | { ok: false; issues: SchemaIssue[] } {
  const issues = new IssueList();
  const r = schema.check(value, '', issues);
  if (r === MISSING || issues.issues.length) return { ok: false, issues: issues.issues };
  return { ok: true, value: r };
}

/** One line per field, `key.path  type (default …)  doc`, for `exp run --help-config`. */
export function describeSchema(schema: Schema<unknown>, path = ''): string[] {
  if (schema instanceof ObjectSchema) {
    const lines: string[] = path ? [`${path}: ${schema.doc}`] : [];
    for (const [k, f] of Object.entries(schema.fields)) lines.push(...describeSchema(f, join(path, k)));
    return lines;
  }
  const def =
    schema.defaultValue !== undefined ? ` (default ${JSON.stringify(schema.defaultValue)})` : ' (required)';
  return [`${path}: ${schema.expect}${def}. ${schema.doc}`];
}
