/**
 * A trainer's option spec as a config schema (experiments/config/option-schema.ts): each rule's
 * bounds refuse what the trainer would refuse and name the key path; the offline-rl recipe's
 * defaults are the trainers' DEFAULTS (one source of truth, issue 13).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { optionSchema } from '../../experiments/config/option-schema.js';
import { s, validate } from '../../experiments/config/schema.js';
import { lineRetrievalRecipe } from '../../experiments/recipes/line-retrieval.js';
import { offlineRlRecipe } from '../../experiments/recipes/offline-rl.js';
import { shareGptFinetuneRecipe } from '../../experiments/recipes/sharegpt-finetune.js';
import { ppoRecipe } from '../../experiments/recipes/ppo.js';
import { FINETUNE_DEFAULTS, LINE_RETRIEVAL_DEFAULTS, SHAREGPT_SOURCE_DEFAULTS } from '../../lm/index.js';
import { AT_DEFAULTS, BC_DEFAULTS, DT_DEFAULTS, PPO_DEFAULTS } from '../../rl/index.js';
import { opt } from '../../train/index.js';

const spec = opt.group('test options', {
  count: opt.number('a count', 3, 'int1'),
  gap: opt.number('a gap', 0, 'int0'),
  rate: opt.number('a rate', 0.5, 'pos'),
  decay: opt.number('a decay', 0, 'nonneg'),
  target: opt.number('a target', -2, 'finite'),
  steps: opt.number('big steps', 2000, 'int1', 1000),
  mode: opt.choice('a mode', ['a', 'b'] as const, 'a'),
  name: opt.text('a name', 'x'),
  id: opt.text('an id', 'y', true),
  seed: opt.number('a seed', 5, 'int'),
  share: opt.number('a share', 0.5, 'nonneg', undefined, 1),
  lines: opt.list('line counts', [1, 2], 'a count', 'int1', 1),
  sizes: opt.list('sizes', [], 'a size', 'int1'),
  inner: opt.group('nested', { k: opt.number('k', 1, 'int1') }),
});

const issuesOf = (value: unknown, overrides = {}) => {
  const r = validate(optionSchema(spec, overrides), value);
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
};

describe('optionSchema', () => {
  test('an empty config takes every default', () => {
    const r = validate(optionSchema(spec), {});
    assert.ok(r.ok);
    assert.deepEqual(
      { ...r.value, inner: { ...r.value.inner } },
      {
        count: 3,
        gap: 0,
        rate: 0.5,
        decay: 0,
        target: -2,
        steps: 2000,
        mode: 'a',
        name: 'x',
        id: 'y',
        seed: 5,
        share: 0.5,
        lines: [1, 2],
        sizes: [],
        inner: { k: 1 },
      },
    );
  });

  const cases: [string, Record<string, unknown>, string][] = [
    ['int1 refuses 0', { count: 0 }, 'count: expected an integer ≥ 1'],
    ['int1 refuses 1.5', { count: 1.5 }, 'count: expected an integer ≥ 1'],
    ['int0 refuses −1', { gap: -1 }, 'gap: expected an integer ≥ 0'],
    ['pos refuses 0', { rate: 0 }, 'rate: expected a number > 0'],
    ['nonneg refuses −0.1', { decay: -0.1 }, 'decay: expected a number ≥ 0'],
    ['finite refuses a string', { target: 'high' }, 'target: expected a number'],
    ['min raises the bound', { steps: 999 }, 'steps: expected an integer ≥ 1000'],
    ['int refuses 0.5', { seed: 0.5 }, 'seed: expected an integer'],
    ['max bounds above', { share: 1.01 }, 'share: expected a number ≥ 0 and ≤ 1'],
    ['nonEmpty text refuses ""', { id: '' }, 'id: expected a non-empty string'],
    [
      'a list refuses fewer items than minLength',
      { lines: [] },
      'lines: expected a list of an integer ≥ 1 (at least 1)',
    ],
    ['a list item follows the rule', { lines: [1, 0] }, 'lines[1]: expected an integer ≥ 1'],
    ['choice refuses others', { mode: 'c' }, 'mode:'],
    ['nested keys named by path', { inner: { k: 0 } }, 'inner.k: expected an integer ≥ 1'],
    ['unknown key', { inner: { kk: 1 } }, 'inner.kk: unknown key'],
  ];
  for (const [name, value, says] of cases)
    test(name, () => {
      const issues = issuesOf(value);
      assert.equal(issues.length, 1, issues.join('; '));
      assert.ok(issues[0].startsWith(says), issues[0]);
    });

  test('accepted edge values', () => {
    assert.deepEqual(issuesOf({ gap: 0, decay: 0, target: -1e9, steps: 1000, rate: 1e-9 }), []);
    assert.deepEqual(issuesOf({ seed: -3, share: 1, id: 'z', lines: [7], sizes: [] }), []);
  });

  test('an override replaces the field at its path; an unknown path is an error', () => {
    const overrides = { 'inner.k': s.integer({ doc: 'k', default: 1, min: 1, max: 4 }) };
    assert.deepEqual(issuesOf({ inner: { k: 4 } }, overrides), []);
    assert.match(issuesOf({ inner: { k: 5 } }, overrides)[0], /^inner\.k: expected an integer ≥ 1 and ≤ 4/);
    assert.throws(() => optionSchema(spec, { 'inner.kk': s.integer({ doc: 'k' }) }), /override 'inner\.kk'/);
  });
});

test("offline-rl's schema defaults are the trainers' DEFAULTS", () => {
  const r = validate(offlineRlRecipe.schema, {});
  assert.ok(r.ok);
  const c = r.value;
  assert.deepEqual({ ...c.train }, { ...AT_DEFAULTS.train });
  // eval.record and eval.video are the run's (issue 18: replay and video), off by default
  assert.deepEqual({ ...c.eval }, { ...AT_DEFAULTS.eval, record: false, video: false });
  assert.deepEqual({ ...c.model }, { ...AT_DEFAULTS.model });
  assert.deepEqual({ ...c.at }, { ...AT_DEFAULTS.chain });
  assert.equal(c.dt.context, DT_DEFAULTS.context);
  assert.deepEqual(
    { ...c.bc },
    { topPercent: BC_DEFAULTS.topPercent, hidden: BC_DEFAULTS.hidden, batchSize: BC_DEFAULTS.batchSize },
  );
  assert.equal(c.returnScale, AT_DEFAULTS.returnScale);
  assert.equal(c.env, AT_DEFAULTS.env);
});

// prototype-free validated objects (issue 16) compared as plain data
const plain = (v: unknown) => JSON.parse(JSON.stringify(v));

test("line-retrieval's schema defaults are LINE_RETRIEVAL_DEFAULTS", () => {
  const r = validate(lineRetrievalRecipe.schema, {});
  assert.ok(r.ok);
  assert.deepEqual(plain(r.value), plain(LINE_RETRIEVAL_DEFAULTS));
});

test("sharegpt-finetune's schema defaults are FINETUNE_DEFAULTS and SHAREGPT_SOURCE_DEFAULTS", () => {
  const r = validate(shareGptFinetuneRecipe.schema, {});
  assert.ok(r.ok);
  // exportHf is the run's: the final model as an HF folder, on by default
  assert.deepEqual(
    plain(r.value),
    plain({ ...SHAREGPT_SOURCE_DEFAULTS, ...FINETUNE_DEFAULTS, exportHf: true }),
  );
});

test("ppo's schema defaults are PPO_DEFAULTS", () => {
  const r = validate(ppoRecipe.schema, {});
  assert.ok(r.ok);
  const { env, totalSteps, evalEvery, evalEpisodes, evalStochastic, evalRecord, evalVideo, ...rest } =
    r.value;
  const { stopBelow, stopAbove, out, ...trainer } = rest;
  assert.deepEqual(
    plain({
      env,
      totalSteps,
      evalEvery,
      evalEpisodes,
      evalStochastic,
      evalRecord,
      evalVideo,
      stopBelow,
      stopAbove,
      out,
    }),
    {
      env: 'CartPole-v1',
      totalSteps: 100_000,
      evalEvery: 10,
      evalEpisodes: 10,
      evalStochastic: true,
      evalRecord: false,
      evalVideo: false,
      stopBelow: 0,
      stopAbove: 0,
      out: '',
    },
  );
  // what a config does not set stays the trainer's default (normAdv, initLogStd)
  const { normAdv: _normAdv, initLogStd: _initLogStd, ...configurable } = PPO_DEFAULTS;
  assert.deepEqual(plain(trainer), plain(configurable));
});
