/**
 * experiments/rollout/recording.ts: the evaluation recording the offline-rl and ppo recipes share
 * (issue 18). An evaluation that recorded episodes is logged as rollouts/step-<step>/ with the
 * run and step as its source; one that recorded none logs nothing; rl/offline's hook logs the
 * last recorder once; an upload's failure comes out of `done`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { evaluationRecording } from '../../experiments/rollout/index.js';
import { make } from '../../rl/envs/index.js';
import { type RolloutRecorder, readRollouts } from '../../rl/rollout/index.js';

/** One seeded random-action CartPole-v1 episode into `rec`; returns its length. */
function recordEpisode(rec: RolloutRecorder, seed: number): number {
  const env = make<ArrayLike<number>, number>('CartPole-v1', {}, { maxEpisodeSteps: 50 });
  const rng = new Rng(seed);
  env.reset({ seed });
  rec.reset(env, seed);
  let steps = 0;
  for (;;) {
    const [, r, term, trunc] = env.step(rng.int(2));
    rec.step(env, r, term || trunc);
    steps++;
    if (term || trunc) break;
  }
  env.close();
  return steps;
}

/** A sink that reads each logged rollouts.arrow back (the temporary folder is gone after the upload). */
function sink() {
  const logged: { path: string; steps?: number[]; source?: Record<string, string> }[] = [];
  const log = async (local: string, path: string) => {
    if (!path.endsWith('rollouts.arrow')) return void logged.push({ path });
    const r = readRollouts(local);
    logged.push({ path, steps: r.episodes.map((e) => e.rewards.length), source: r.source });
  };
  return { logged, log };
}

describe('evaluationRecording', () => {
  const seed = Date.now() % 100000;

  test(`ppo's hooks: a recorded evaluation is logged with run and step; an empty one is not (seed ${seed})`, async () => {
    const { logged, log } = sink();
    const rec = evaluationRecording(log, 'run-a', { video: false, who: 'ppo.evalVideo' });
    rec.recorded(512, rec.recorder()); // no episode recorded
    const r = rec.recorder();
    const steps = recordEpisode(r, seed);
    rec.recorded(1024, r);
    await rec.done();
    assert.deepEqual(logged.map((l) => l.path).sort(), [
      'rollouts/step-1024/replay.html',
      'rollouts/step-1024/rollouts.arrow',
    ]);
    const arrow = logged.find((l) => l.path.endsWith('.arrow'));
    assert.deepEqual(arrow?.steps, [steps]);
    assert.deepEqual({ ...arrow?.source }, { run: 'run-a', step: '1024' });
  });

  test(`offline-rl's hooks: evaluated(step) logs the last recorder once (seed ${seed})`, async () => {
    const { logged, log } = sink();
    const rec = evaluationRecording(log, 'run-b', { video: false, who: 'offline-rl.eval.video' });
    recordEpisode(rec.recorder(), seed);
    rec.evaluated(3);
    rec.evaluated(3); // the recorder was handed over: nothing more to log
    rec.recorder(); // an evaluation that recorded nothing
    rec.evaluated(6);
    await rec.done();
    assert.deepEqual(logged.map((l) => l.path).sort(), [
      'rollouts/step-3/replay.html',
      'rollouts/step-3/rollouts.arrow',
    ]);
  });

  test(`an upload's failure comes out of done (seed ${seed})`, async () => {
    const rec = evaluationRecording(
      async () => {
        throw new Error('tracker unreachable');
      },
      'run-c',
      { video: false, who: 'ppo.evalVideo' },
    );
    const r = rec.recorder();
    recordEpisode(r, seed);
    rec.recorded(7, r);
    await assert.rejects(rec.done(), /tracker unreachable/);
  });
});
