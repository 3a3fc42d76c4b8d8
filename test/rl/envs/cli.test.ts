/** `exp env list`, `exp env check`, `exp bench env` as a user runs them (STYLE §9). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exp } from '../../helpers/cli.js';

test('exp env list --json lists the six envs', () => {
  const r = exp(['env', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { mujoco: string; envs: { id: string }[] };
  assert.equal(out.mujoco, '3.14.0');
  assert.deepEqual(
    out.envs.map((e) => e.id),
    ['Ant-v5', 'CartPole-v1', 'HalfCheetah-v5', 'Hopper-v5', 'Pendulum-v1', 'Walker2d-v5'],
  );
});

test('exp env check Hopper-v5 passes; unknown id or keyword exits 2 with a message', () => {
  const ok = exp(['env', 'check', 'Hopper-v5', '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((JSON.parse(ok.stdout) as { ok: boolean }).ok, true);
  const bad = exp(['env', 'check', 'Hoper-v5']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Environment Hoper doesn't exist. Did you mean: Hopper\?/);
  const kw = exp(['env', 'check', 'Ant-v5', '--kwargs', '{"include_cfrc": false}']);
  assert.equal(kw.code, 2);
  assert.match(kw.stderr, /unexpected keyword argument "include_cfrc"/);
});

test('exp bench env prints stepsPerSec, single and vectorised over 2 workers', () => {
  for (const extra of [[], ['--num-envs', '2']]) {
    const r = exp(['bench', 'env', 'Hopper-v5', '--steps', '200', '--warmup', '10', ...extra, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { stepsPerSec: number; numEnvs: number; workers: number };
    assert.ok(out.stepsPerSec > 0);
    if (extra.length) assert.equal(out.workers, 2);
  }
  assert.equal(exp(['bench', 'env', 'Hopper-v5', '--num-envs', '0']).code, 2);
});
