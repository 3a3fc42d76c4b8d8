/**
 * rl/ppo-run.ts (issue 13: the `ppo` recipe's run, callable without experiments/): its per-update
 * metrics equal a plain `trainPpo` run's statistics for the same seed, evaluations land every
 * `evalEvery` updates and are written into the final policy, checkpoints are saved when due and
 * at the last update, the early-stop band ends training at the evaluation that enters it, and an
 * aborted run publishes no policy. The CLI run is in ppo.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../common/index.js';
import { type PolicyJSON, type PpoUpdate, runPpo, trainPpo } from '../../rl/index.js';
import { MemoryLogger, type TrainCheckpoint, type TrainContext } from '../../train/index.js';

// CartPole, 4 updates of 2 envs × 32 steps, float64 math: a second or so.
const TRAIN = {
  envId: 'CartPole-v1',
  totalSteps: 256,
  numEnvs: 2,
  numSteps: 32,
  vectorization: 'sync',
  numMinibatches: 2,
  updateEpochs: 2,
  math: 'js',
} as const;
const EVAL = { evalEvery: 3, evalEpisodes: 2, evalStochastic: false, stopBelow: 0, stopAbove: 0 };

function context(seed: number, signal?: AbortSignal) {
  const saved: TrainCheckpoint[] = [];
  const lines: string[] = [];
  const ctx: TrainContext = {
    seed,
    rng: new Rng(seed),
    logger: new MemoryLogger(),
    checkpoints: { due: (step) => step % 3 === 0, save: async (c) => void saved.push(c) },
    log: (line) => void lines.push(line),
    signal,
  };
  return { ctx, logger: ctx.logger as MemoryLogger, saved, lines };
}

test('runPpo: metrics equal trainPpo’s for the same seed; evaluations, checkpoints and the final policy', async () => {
  const seed = Date.now() % 10_000;
  console.log(`seed ${seed}`);
  const updates: PpoUpdate[] = [];
  await trainPpo({ ...TRAIN, seed, onUpdate: (u) => void updates.push(u) });
  const { ctx, logger, saved } = context(seed);
  const { final, best } = await runPpo({ ...TRAIN, ...EVAL }, ctx);

  const steps = updates.map((u) => u.envStep);
  assert.deepEqual(steps, [64, 128, 192, 256]);
  const series = (key: string) => logger.points[key];
  assert.deepEqual(
    series('train/policy_loss'),
    updates.map((u) => [u.envStep, u.policyLoss]),
  );
  assert.deepEqual(
    series('train/value_loss'),
    updates.map((u) => [u.envStep, u.valueLoss]),
  );
  assert.deepEqual(
    series('train/lr'),
    updates.map((u) => [u.envStep, u.lr]),
  );
  assert.deepEqual(
    series('eval/return_mean').map(([step]) => step),
    [192, 256],
    'every 3 updates, and at the end',
  );
  assert.ok(!('eval/normalized_score' in logger.points), 'CartPole has no D4RL reference scores');

  assert.ok(final);
  assert.equal(final.training.envSteps, 256);
  const ev = final.evaluation?.deterministic;
  assert.ok(ev, 'final policy carries its deterministic evaluation');
  assert.equal(ev.mean, series('eval/return_mean')[1][1]);
  assert.equal(ev.episodes, 2);
  const bestMean = best?.evaluation?.deterministic?.mean ?? Number.NaN;
  assert.equal(bestMean, Math.max(...series('eval/return_mean').map(([, v]) => v)));

  // Due at update 3, and the last update always; each holds the critic to resume from.
  assert.deepEqual(
    saved.map((c) => c.step),
    [3, 4],
  );
  const last = saved[1].state as unknown as PolicyJSON;
  assert.ok(last.critic, 'checkpoint keeps the critic');
  assert.equal(last.training.updates, 4);
});

test('runPpo: an evaluation inside [stopAbove, stopBelow] stops training there', async () => {
  const { ctx, saved, lines } = context(1);
  const { final } = await runPpo({ ...TRAIN, ...EVAL, evalEvery: 2, stopAbove: 0, stopBelow: 1e9 }, ctx);
  assert.ok(final);
  assert.equal(final.training.updates, 2, 'stopped at the first evaluation');
  assert.ok(final.evaluation?.deterministic);
  assert.deepEqual(
    saved.map((c) => c.step),
    [2],
  );
  assert.match(lines.join('\n'), /in \[0, 1000000000\]: stopping/);
});

test('runPpo: an aborted run publishes no policy but saves its checkpoint', async () => {
  const abort = new AbortController();
  abort.abort();
  const { ctx, logger, saved } = context(2, abort.signal);
  const res = await runPpo({ ...TRAIN, ...EVAL }, ctx);
  assert.equal(res.final, undefined);
  assert.equal(res.best, undefined);
  assert.deepEqual(logger.points, {});
  assert.deepEqual(
    saved.map((c) => c.step),
    [0],
  );
});
