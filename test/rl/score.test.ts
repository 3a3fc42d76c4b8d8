/** rl/score.ts: one normalised score, the dataset's own references first (issue 13). */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isInputError, Rng } from '../../common/index.js';
import { type Layout, openDataset, writeEpisodes } from '../../datasets/index.js';
import { summarize } from '../../rl/evaluate.js';
import { d4rlReferenceScores, normalizedScore, referenceScores } from '../../rl/index.js';
import { description, freshSeed, randomEpisodes, tempDir } from '../datasets/helpers.js';

/** The plain formula, written out here as the reference (D4RL §5). */
const plain = (r: number, min: number, max: number) => (100 * (r - min)) / (max - min);

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

function meanStd(xs: number[]): { mean: number; std: number } {
  let s = 0;
  for (const x of xs) s += x;
  const mean = s / xs.length;
  let v = 0;
  for (const x of xs) v += (x - mean) ** 2;
  return { mean, std: Math.sqrt(v / xs.length) };
}

describe('normalised score', () => {
  for (const layout of ['file', 'minari'] as Layout[]) {
    test(`a dataset's own refs win over D4RL's table (layout=${layout}, env Ant-v5)`, () => {
      const seed = freshSeed();
      const rng = new Rng(seed);
      const dir = tempDir();
      const min = -1000 * rng.next();
      const max = min + 1 + 5000 * rng.next();
      const { episodes, obsDim, actDim } = randomEpisodes(seed, 4);
      const out = join(dir, layout === 'file' ? 'd.arrow' : 'd');
      writeEpisodes(
        out,
        { ...description(obsDim, actDim), envId: 'Ant-v5', refMinScore: min, refMaxScore: max },
        episodes,
        { layout },
      );
      const ds = openDataset(out);
      const refs = referenceScores({ info: ds.info, envId: 'Ant-v5' });
      ds.close();
      assert.deepEqual(refs, { min, max, source: 'dataset' }, `seed ${seed}`);
      const returns = Array.from({ length: 7 }, () => rng.normal() * 2000);
      for (const r of returns) close(normalizedScore(r, refs ?? { min, max }), plain(r, min, max), 'score');
      const s = summarize(refs, returns);
      const want = meanStd(returns.map((r) => plain(r, min, max)));
      close(s.normalizedMean ?? Number.NaN, want.mean, 'normalizedMean');
      close(s.normalizedStd ?? Number.NaN, want.std, 'normalizedStd');
      rmSync(dir, { recursive: true, force: true });
    });
  }

  test("D4RL's table serves every version of an env when the dataset has no refs", () => {
    const table = { Ant: [-325.6, 3879.7], HalfCheetah: [-280.18, 12135.0], Hopper: [-20.27, 3234.3] };
    for (const [name, [min, max]] of Object.entries(table))
      for (const v of ['v2', 'v4', 'v5']) {
        const envId = `${name}-${v}`;
        assert.deepEqual(referenceScores({ envId }), { min, max, source: 'd4rl' }, envId);
        assert.deepEqual(referenceScores({ info: { envId } }), { min, max, source: 'd4rl' }, envId);
        // half a pair cannot normalise: the table it is
        assert.deepEqual(referenceScores({ info: { refMinScore: 3 }, envId }), { min, max, source: 'd4rl' });
      }
    assert.deepEqual(d4rlReferenceScores('walker2d-v5'), { min: 1.63, max: 4592.3, source: 'd4rl' });
    const r = new Rng(freshSeed()).normal() * 3000;
    close(
      normalizedScore(r, d4rlReferenceScores('Ant-v5') ?? { min: 0, max: 1 }),
      plain(r, -325.6, 3879.7),
      'ant',
    );
  });

  test('no reference: no normalised score (absent, not made up)', () => {
    assert.equal(referenceScores({ envId: 'CartPole-v1' }), undefined);
    assert.equal(referenceScores({ info: { envId: 'Test-v0' } }), undefined);
    assert.equal(referenceScores({}), undefined);
    const s = summarize(undefined, [1, 2, 3]);
    assert.equal(s.mean, 2);
    assert.ok(!('normalizedMean' in s) && !('normalizedStd' in s));
  });

  test('references that cannot normalise are refused with the function and values named', () => {
    for (const [min, max] of [
      [5, 5],
      [5, 1],
      [Number.NaN, 1],
      [0, Number.POSITIVE_INFINITY],
    ]) {
      assert.throws(
        () => normalizedScore(1, { min, max }),
        (e: unknown) => isInputError(e) && /normalizedScore: .*max > min; got min/.test(String(e)),
      );
      assert.throws(
        () => referenceScores({ info: { refMinScore: min, refMaxScore: max } }),
        (e: unknown) =>
          isInputError(e) && /referenceScores: reference scores from the dataset metadata/.test(String(e)),
      );
    }
  });
});
