/**
 * Config loading as a user meets it: `exp run <config>` in a subprocess. Malformed configs each
 * give their own precise message (file, key path, expectation) and exit code 2; --dry-run, --set,
 * --seed and built-in names work from any folder of the repository.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { checkConfig } from '../../experiments/config/load.js';
import { describeSchema, s, validate } from '../../experiments/config/schema.js';
import { repoRoot, runExp, tempDir, testEnv } from './util.js';

interface BadCase {
  name: string;
  yaml?: string;
  args?: string[];
  /** Substrings the error must contain (besides the file name, checked for file cases). */
  expect: string[];
}

const BAD: BadCase[] = [
  {
    name: 'unknown top-level key',
    yaml: 'recipe: toy\nseeed: 1\n',
    expect: ["seeed: unknown key (did you mean 'seed'?)"],
  },
  {
    name: 'unknown nested key',
    yaml: 'recipe: toy\ntoy:\n  lrr: 0.1\n',
    expect: ["toy.lrr: unknown key (did you mean 'lr'?)"],
  },
  {
    name: 'wrong type',
    yaml: 'recipe: toy\ntoy:\n  steps: many\n',
    expect: ["toy.steps: expected an integer ≥ 1; got 'many' (a string)"],
  },
  {
    name: 'not an integer',
    yaml: 'recipe: toy\ntoy:\n  steps: 2.5\n',
    expect: ['toy.steps: expected an integer ≥ 1; got 2.5 (a number)'],
  },
  {
    name: 'out of range',
    yaml: 'recipe: toy\ntoy:\n  lr: -1\n',
    expect: ['toy.lr: expected a number > 0; got -1 (a number)'],
  },
  {
    name: 'bad enum',
    yaml: 'recipe: toy\nbackend: gpu\n',
    expect: ["backend: expected one of 'auto', 'tensorflow', 'wasm', 'cpu'; got 'gpu' (a string)"],
  },
  {
    name: 'unknown recipe',
    yaml: 'recipe: nope\n',
    expect: ["recipe: expected one of 'toy'", "got 'nope' (a string)"],
  },
  {
    name: 'missing recipe',
    yaml: 'seed: 1\n',
    expect: ["recipe: missing required key; expected one of 'toy'"],
  },
  {
    name: 'missing value',
    yaml: 'recipe: toy\ntoy:\n  steps:\n',
    expect: ['toy.steps: missing value; expected an integer ≥ 1'],
  },
  {
    name: 'section of wrong type',
    yaml: 'recipe: toy\ntracking: 5\n',
    expect: [
      'tracking: expected a mapping with keys uri, flushEverySec, systemMetricsEverySec, finishTimeoutSec; got 5 (a number)',
    ],
  },
  { name: 'YAML syntax error', yaml: 'recipe: toy\ntoy: {steps: 1\n', expect: [':3:1: YAML syntax error:'] },
  {
    name: 'duplicate key',
    yaml: 'recipe: toy\nseed: 1\nseed: 2\n',
    expect: [':3:1: YAML syntax error: Map keys must be unique'],
  },
  {
    name: 'top level is a list',
    yaml: '- recipe\n- toy\n',
    expect: ['expected a mapping of keys at the top level; got a list of 2'],
  },
  {
    name: 'empty file',
    yaml: '# nothing\n',
    expect: ["the config is empty; expected a mapping with at least 'recipe'"],
  },
  {
    name: 'two errors at once',
    yaml: 'recipe: toy\nseed: -3\ncheckpoint:\n  keep: 0\n',
    expect: [
      'seed: expected an integer ≥ 0 and ≤ 4294967295; got -3 (a number)',
      'checkpoint.keep: expected an integer ≥ 1; got 0 (a number)',
    ],
  },
  {
    name: 'missing file',
    args: ['run', 'no-such-config.yaml', '--dry-run'],
    expect: ["config 'no-such-config.yaml': no such file"],
  },
  {
    name: '--set without =',
    args: ['run', 'toy.yaml', '--set', 'toy.steps', '--dry-run'],
    expect: ["--set 'toy.steps': expected key.path=value"],
  },
  {
    name: '--set unknown key',
    args: ['run', 'toy.yaml', '--set', 'toy.nope=1', '--dry-run'],
    expect: ['toy.nope: unknown key', '(from --set)'],
  },
  {
    name: '--set wrong type',
    args: ['run', 'toy.yaml', '--set', 'toy.lr=fast', '--dry-run'],
    expect: ["toy.lr: expected a number > 0; got 'fast' (a string) (from --set)"],
  },
  {
    name: '--seed negative',
    args: ['run', 'toy.yaml', '--seed', '-1', '--dry-run'],
    expect: ['--seed: expected an integer ≥ 0; got -1'],
  },
  {
    name: '--backend unknown',
    args: ['run', 'toy.yaml', '--backend', 'tpu', '--dry-run'],
    expect: ["backend: expected one of 'auto', 'tensorflow', 'wasm', 'cpu'; got 'tpu'"],
  },
];

describe('exp run: malformed configs exit 2 with a precise message', () => {
  const dir = tempDir('config');
  test(`${BAD.length} cases, each with its own message`, async () => {
    const results = await Promise.all(
      BAD.map(async (c, i) => {
        let args = c.args;
        const file = join(dir, `bad-${i}.yaml`);
        if (c.yaml !== undefined) {
          writeFileSync(file, c.yaml);
          args = ['run', file, '--dry-run'];
        }
        return { c, file, r: await runExp(args!, { cwd: dir, env: testEnv(dir) }) };
      }),
    );
    const messages = new Set<string>();
    for (const { c, file, r } of results) {
      assert.equal(r.code, 2, `${c.name}: exit code ${r.code}, stderr: ${r.stderr}`);
      for (const e of c.expect)
        assert.ok(r.stderr.includes(e), `${c.name}: expected '${e}' in:\n${r.stderr}`);
      if (c.yaml !== undefined)
        assert.ok(r.stderr.includes(`bad-${BAD.indexOf(c)}.yaml`), `${c.name}: names the file ${file}`);
      assert.ok(!r.stderr.includes('    at '), `${c.name}: no stack trace:\n${r.stderr}`);
      messages.add(r.stderr);
    }
    assert.equal(messages.size, BAD.length, 'every case has its own message');
  });
});

describe('exp run --dry-run', () => {
  test('a built-in name resolves from a subfolder; --set, --seed apply; the resolved config prints', async () => {
    const work = tempDir('dry');
    const sub = join(repoRoot, 'experiments', 'configs');
    mkdirSync(sub, { recursive: true });
    const r = await runExp(
      ['run', 'toy', '--dry-run', '--set', 'toy.lr=0.05', '--set', 'toy.steps=7', '--seed', '3'],
      {
        cwd: join(repoRoot, 'ring'),
        env: testEnv(work),
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /lr: 0\.05/);
    assert.match(r.stdout, /steps: 7/);
    assert.match(r.stdout, /^seed: 3$/m);
    // defaults are filled in
    assert.match(r.stdout, /batchSize: 32/);
    assert.match(r.stdout, /flushEverySec: 2/);
  });
});

describe('exp run --schema', () => {
  test('lists every key of the recipe with type, default and doc', async () => {
    const work = tempDir('schema');
    const r = await runExp(['run', 'toy.yaml', '--schema'], { env: testEnv(work) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^toy\.lr: a number > 0 \(default 0\.01\)\. Adam learning rate$/m);
    assert.match(r.stdout, /^checkpoint\.every: an integer ≥ 0 \(default 0\)\. /m);
    assert.match(r.stdout, /^recipe: one of 'toy'.* \(required\)\. /m);
  });
});

describe('config schema', () => {
  test('defaults fill in, an empty section takes all defaults, the doc lists every field', () => {
    const loaded = checkConfig({ recipe: 'toy', toy: null }, 'inline');
    assert.equal((loaded.config.toy as { steps: number }).steps, 200);
    assert.equal(loaded.config.checkpoint.keep, 3);
    const doc = describeSchema(loaded.recipe.schema, 'toy');
    assert.ok(doc.some((l) => l.startsWith('toy.lr: a number > 0 (default 0.01). Adam learning rate')));
  });
  test('list fields check every item', () => {
    const schema = s.object(
      { seeds: s.list(s.integer({ doc: 'a seed', min: 0 }), { doc: 'seeds', minLength: 1 }) },
      { doc: 'x' },
    );
    const bad = validate(schema, { seeds: [1, 'x', -2] });
    assert.equal(bad.ok, false);
    if (!bad.ok)
      assert.deepEqual(
        bad.issues.map((i) => i.path),
        ['seeds[1]', 'seeds[2]'],
      );
    const ok = validate(schema, { seeds: [0, 4] });
    // validated mappings have no prototype (issue 16); deepEqual compares prototypes, so spread
    assert.deepEqual(ok.ok && { ...ok.value }, { seeds: [0, 4] });
  });
});
