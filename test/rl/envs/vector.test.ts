/** Vector envs: NEXT_STEP autoreset, sync = async (worker threads), infos, bad input (issue 4). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AsyncVectorEnv,
  CartPoleEnv,
  InvalidAction,
  makeVec,
  SyncVectorEnv,
  TimeLimit,
  type VectorStepResult,
} from '../../../rl/envs/index.js';

describe('vector envs', () => {
  test('SyncVectorEnv: NEXT_STEP autoreset (reset obs, reward 0, flags false on the step after the end)', () => {
    const v = new SyncVectorEnv([
      () => new TimeLimit(new CartPoleEnv(), 3),
      () => new TimeLimit(new CartPoleEnv(), 5),
    ]);
    const [obs0] = v.reset({ seed: 10 });
    assert.equal(obs0.length, 8);
    const steps = Array.from({ length: 6 }, () => v.step([0, 1]));
    assert.deepEqual(steps[2][3], [true, false], 'env 0 truncates at step 3');
    assert.deepEqual(Array.from(steps[3][1]), [0, 1], 'step 4: env 0 autoresets with reward 0');
    assert.deepEqual(steps[3][3], [false, false]);
    assert.deepEqual(steps[4][3], [false, true], 'env 1 truncates at step 5');
    assert.equal(steps[5][1][1], 0);
  });

  test('AsyncVectorEnv (2 workers, 3 envs) gives exactly SyncVectorEnv’s results', () => {
    const sync = makeVec('Hopper-v5', 3, { kwargs: { max_episode_steps: 20 } });
    const asyn = makeVec('Hopper-v5', 3, {
      vectorizationMode: 'async',
      numWorkers: 2,
      kwargs: { max_episode_steps: 20 },
    });
    assert.ok(asyn instanceof AsyncVectorEnv);
    assert.equal(asyn.numWorkers, 2);
    const [a0, ai] = sync.reset({ seed: 5 });
    const [b0, bi] = asyn.reset({ seed: 5 });
    assert.deepEqual(b0, a0);
    assert.deepEqual(bi, ai);
    const space = sync.actionSpace;
    space.seed(1);
    let ends = 0;
    for (let t = 0; t < 45; t++) {
      const act = space.sample();
      const a: VectorStepResult = sync.step(act);
      const b: VectorStepResult = asyn.step(act);
      assert.deepEqual(b[0], a[0], `obs at step ${t}`);
      assert.deepEqual(b[1], a[1], `rewards at step ${t}`);
      assert.deepEqual(b[2], a[2]);
      assert.deepEqual(b[3], a[3]);
      assert.deepEqual(Object.keys(b[4]).sort(), Object.keys(a[4]).sort());
      ends += a[2].filter(Boolean).length + a[3].filter(Boolean).length;
    }
    assert.ok(ends > 0, 'some episode ended, so autoreset was exercised');
    sync.close();
    asyn.close();
  });

  test('bad input: wrong action count, unknown id in a worker recipe', () => {
    const v = makeVec('CartPole-v1', 2);
    v.reset({ seed: 0 });
    assert.throws(
      () => v.step([0]),
      (e: Error) => e instanceof InvalidAction && /expected 2 action values/.test(e.message),
    );
    assert.throws(() => v.reset({ seed: [1] }), /list of 2 seeds/);
    assert.throws(
      () => makeVec('Nope-v1', 2, { vectorizationMode: 'async' }),
      /Environment Nope doesn't exist/,
    );
  });
});
