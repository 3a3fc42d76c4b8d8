/**
 * Loading a run config: find the file (a path, or a name under experiments/configs/), parse the
 * YAML, apply `--set key.path=value` overrides and `--seed`/`--backend`, validate against the
 * schema of the config's recipe. Every problem is an InputError (exit 2) naming the file, the key
 * path and what was expected.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import YAML from 'yaml';
import { assertRegularFile, InputError } from '../../common/index.js';
import { CONFIG_DIR } from '../paths.js';
import { recipeByName, recipeNames } from '../recipes/index.js';
import type { Recipe } from '../recipes/types.js';
import { type RunConfig, runConfigSchema } from './base.js';
import { describeValue, validate } from './schema.js';

export interface LoadOptions {
  /** `key.path=value` overrides; values are parsed as YAML scalars (`0.1`, `true`, `[1, 2]`). */
  sets?: string[];
  seed?: number;
  backend?: string;
}

export interface LoadedConfig {
  /** Absolute path of the file, or a label such as `run <id>/config.yaml`. */
  file: string;
  config: RunConfig;
  recipe: Recipe<unknown>;
}

/** Built-in config names (files under experiments/configs/). */
export function builtinConfigs(): string[] {
  if (!existsSync(CONFIG_DIR)) return [];
  return readdirSync(CONFIG_DIR)
    .filter((n) => /\.ya?ml$/.test(n))
    .sort();
}

/** A path as given (relative to the working directory) or a name under experiments/configs/. */
export function resolveConfigPath(arg: string): string {
  const candidates = [resolve(arg), join(CONFIG_DIR, arg), join(CONFIG_DIR, `${arg}.yaml`)];
  for (const c of candidates) if (existsSync(c) && statSync(c).isFile()) return c;
  // A FIFO or device would block the read (and ignore Ctrl-C): say what it is (issue 16).
  if (existsSync(candidates[0]) && !statSync(candidates[0]).isDirectory())
    assertRegularFile(candidates[0], 'config');
  throw new InputError(
    `config '${arg}': no such file (looked at ${resolve(arg)} and in experiments/configs/; built-in configs: ${builtinConfigs().join(', ') || 'none'})`,
  );
}

/** Shows a path relative to the working directory when that is shorter. */
export function displayPath(p: string): string {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') && r.length < p.length ? r : p;
}

/**
 * Keys that reach an object's prototype instead of a field: `--set __proto__.x=1` polluted
 * Object.prototype and a YAML `__proto__:` key was silently dropped (issue 16). Both are refused.
 */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * A deep copy whose mappings have no prototype (issue 16 item 12), so neither a key path from
 * `--set` nor the validator can reach Object.prototype through them; lists stay lists.
 */
export function prototypeFree(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(prototypeFree);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = Object.create(null);
  for (const [k, v] of Object.entries(value)) out[k] = prototypeFree(v);
  return out;
}

/** Aliases allowed in one config (YAML's default is 100); far more is an expansion attack. */
const MAX_ALIASES = 100;

/** Parses YAML text; a syntax error names the file, line and column. */
export function parseYaml(text: string, label: string): unknown {
  const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const pos = e.linePos?.[0];
    const where = pos ? `${label}:${pos.line}:${pos.col}` : label;
    throw new InputError(
      `${where}: YAML syntax error: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:$/, '')}`,
    );
  }
  YAML.visit(doc, {
    Pair(_, pair) {
      const key = YAML.isScalar(pair.key) ? pair.key.value : pair.key;
      if (typeof key === 'string' && FORBIDDEN_KEYS.has(key)) {
        const pos = YAML.isScalar(pair.key) && pair.key.range ? lineCol(text, pair.key.range[0]) : '';
        throw new InputError(
          `${label}${pos}: key '${key}' is not allowed (it names an object's prototype, not a config key)`,
        );
      }
    },
  });
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    // The yaml package refuses alias expansion beyond maxAliasCount ("billion laughs").
    throw new InputError(
      `${label}: YAML aliases expand too far (${(err as Error).message.split('\n')[0]}); expected a plain config, at most ${MAX_ALIASES} aliases`,
    );
  }
}

/** `:line:col` of a character offset, for messages. */
function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `:${before.length}:${before[before.length - 1].length + 1}`;
}

/** Applies one `--set key.path=value` to a parsed document. */
export function applySet(doc: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new InputError(`--set '${assignment}': expected key.path=value`);
  const path = assignment.slice(0, eq).trim();
  const raw = assignment.slice(eq + 1);
  if (!/^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/.test(path))
    throw new InputError(`--set '${assignment}': '${path}' is not a key path like toy.lr`);
  let value: unknown = raw;
  if (raw !== '') {
    const parsed = YAML.parseDocument(raw);
    // Not YAML: the text itself. YAML: checked like a file (no prototype keys, bounded aliases).
    if (!parsed.errors.length) value = parseYaml(raw, `--set '${assignment}'`);
  }
  const keys = path.split('.');
  const bad = keys.find((k) => FORBIDDEN_KEYS.has(k));
  if (bad)
    throw new InputError(
      `--set '${assignment}': key '${bad}' is not allowed (it names an object's prototype, not a config key)`,
    );
  let node: Record<string, unknown> = doc;
  for (let i = 0; i < keys.length - 1; i++) {
    const next = Object.hasOwn(node, keys[i]) ? node[keys[i]] : undefined;
    if (next === undefined || next === null) node[keys[i]] = Object.create(null);
    else if (typeof next !== 'object' || Array.isArray(next))
      throw new InputError(
        `--set '${assignment}': '${keys.slice(0, i + 1).join('.')}' is ${describeValue(next)}, not a mapping`,
      );
    node = node[keys[i]] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]] = value;
}

/** Validates a parsed document; `label` names it in errors. */
export function checkConfig(raw: unknown, label: string, options: LoadOptions = {}): LoadedConfig {
  if (raw === null || raw === undefined)
    throw new InputError(`${label}: the config is empty; expected a mapping with at least 'recipe'`);
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new InputError(`${label}: expected a mapping of keys at the top level; got ${describeValue(raw)}`);
  const doc = prototypeFree(raw) as Record<string, unknown>;
  for (const a of options.sets ?? []) applySet(doc, a);
  if (options.seed !== undefined) doc.seed = options.seed;
  if (options.backend !== undefined) doc.backend = options.backend;
  const names = recipeNames();
  const recipeName = doc.recipe;
  if (recipeName === undefined)
    throw new InputError(
      `${label}: recipe: missing required key; expected one of ${names.map((n) => `'${n}'`).join(', ')}`,
    );
  if (typeof recipeName !== 'string' || !names.includes(recipeName))
    throw new InputError(
      `${label}: recipe: expected one of ${names.map((n) => `'${n}'`).join(', ')}; got ${describeValue(recipeName)}`,
    );
  const recipe = recipeByName(recipeName)!;
  const issues: string[] = [];
  for (const other of names)
    if (other !== recipeName && other in doc)
      issues.push(`${other}: a section for recipe '${other}', but this config's recipe is '${recipeName}'`);
  const result = validate(runConfigSchema(names, recipeName, recipe.schema as never), doc);
  if (!result.ok)
    for (const i of result.issues)
      if (!names.includes(i.path) || i.path === recipeName) issues.push(`${i.path}: ${i.message}`);
  if (issues.length) {
    const overridden = new Set((options.sets ?? []).map((a) => a.slice(0, a.indexOf('='))));
    const lines = issues.map((l) => {
      const key = l.slice(0, l.indexOf(':'));
      return `${label}: ${l}${overridden.has(key) ? ' (from --set)' : ''}`;
    });
    throw new InputError(lines.join('\n'));
  }
  if (!result.ok) throw new Error('unreachable');
  return { file: label, config: result.value, recipe };
}

/** Loads, overrides and validates a config file (a path or a built-in name). */
export function loadConfig(arg: string, options: LoadOptions = {}): LoadedConfig {
  const file = resolveConfigPath(arg);
  const label = displayPath(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`${label}: cannot read (${(err as Error).message})`);
  }
  const loaded = checkConfig(parseYaml(text, label), label, options);
  return { ...loaded, file };
}

/** The resolved config as YAML (what `--dry-run` prints and the run logs as config.yaml). */
export function configToYaml(config: RunConfig): string {
  return YAML.stringify(config, { lineWidth: 0 });
}

/** Flattens a config into MLflow params: `toy.lr` → `0.01`; lists as JSON. */
export function flattenConfig(
  value: unknown,
  prefix = '',
  out: Record<string, string> = {},
): Record<string, string> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flattenConfig(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = Array.isArray(value) ? JSON.stringify(value) : String(value);
  }
  return out;
}
