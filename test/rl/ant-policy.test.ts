/**
 * The shipped Ant-v5 behaviour policy (rl/behavior/ant-medium.json, issue 6): its recorded return
 * is re-measured. Episodes with the recorded seed reproduce the recorded per-episode returns
 * (rollouts are deterministic), and three episodes at fresh seeds have a mean within three
 * standard errors (of the recorded spread) of the recorded 10-episode mean.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ANT_MEDIUM_POLICY, evaluatePolicy, loadPolicy } from '../../rl/index.js';

const policy = loadPolicy(ANT_MEDIUM_POLICY);
const recorded = policy.json.evaluation;

test('ant-medium.json: Ant-v5 defaults (105-d obs), small, with a 10-episode measured return', () => {
  assert.equal(policy.json.envId, 'Ant-v5');
  assert.deepEqual(policy.json.envKwargs, {});
  assert.equal(policy.obsDim, 105);
  assert.equal(policy.actDim, 8);
  assert.equal(policy.json.critic, undefined);
  assert.ok(recorded?.stochastic && recorded.stochastic.episodes >= 10);
});

test('ant-medium.json: the recorded seed reproduces the first 3 recorded returns', () => {
  const st = recorded?.stochastic;
  assert.ok(st && recorded);
  const ev = evaluatePolicy(policy, { episodes: 3, seed: recorded.seed, stochastic: true });
  for (const [k, r] of ev.returns.entries())
    assert.ok(
      Math.abs(r - st.returns[k]) <= 1e-3 * Math.max(1, Math.abs(st.returns[k])),
      `episode ${k}: ${r} vs recorded ${st.returns[k]}`,
    );
});

test('ant-medium.json: 3 fresh episodes are within 3 standard errors of the recorded mean', () => {
  const st = recorded?.stochastic;
  assert.ok(st);
  const ev = evaluatePolicy(policy, { episodes: 3, seed: 777, stochastic: true });
  const tol = (3 * st.std) / Math.sqrt(3);
  assert.ok(
    Math.abs(ev.mean - st.mean) <= tol,
    `mean of 3 episodes ${ev.mean.toFixed(1)} vs recorded ${st.mean.toFixed(1)} ± ${tol.toFixed(1)}`,
  );
});
