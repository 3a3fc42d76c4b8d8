import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  AtChainSampler,
  DtWindowSampler,
  openDataset,
  TokenDataset,
  TokenWindowSampler,
  TokenWriter,
  writeEpisodes,
} from '../../datasets/index.js';
import { description, freshSeed, randomEpisodes, tempDir } from './helpers.js';

const close = (a: number, b: number, tol = 1e-4) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

describe('DT windows', () => {
  const seed = freshSeed();
  test(`return-to-go, timesteps, mask, states against a plain loop (seed ${seed})`, () => {
    const dir = tempDir();
    const { episodes, obsDim, actDim } = randomEpisodes(seed, 6, { maxLen: 30 });
    const path = join(dir, 'd.arrow');
    writeEpisodes(path, description(obsDim, actDim), episodes, { batchRows: 20 });
    const ds = openDataset(path);
    const K = 8;
    const scale = 10;
    const sampler = new DtWindowSampler(ds, {
      batchSize: 32,
      context: K,
      seed,
      returnScale: scale,
      normalizeStates: false,
    });
    const batch = sampler.sample();
    for (let b = 0; b < 32; b++) {
      const e = episodes[batch.episodes[b]];
      const si = batch.starts[b];
      const T = e.rewards.length;
      const len = Math.min(K, T - si);
      for (let j = 0; j < K; j++) {
        const row = b * K + j;
        const t = si + j - (K - len);
        if (j < K - len) {
          assert.equal(batch.mask[row], 0);
          continue;
        }
        assert.equal(batch.mask[row], 1);
        assert.equal(batch.timesteps[row], t);
        let rtg = 0;
        for (let u = t; u < T; u++) rtg += e.rewards[u];
        assert.ok(
          close(batch.returnsToGo[row], rtg / scale),
          `rtg ${batch.returnsToGo[row]} vs ${rtg / scale}`,
        );
        assert.equal(batch.states[row * obsDim], e.observations[t * obsDim]);
        assert.equal(batch.actions[row * actDim], e.actions[t * actDim]);
      }
    }
    // Same seed → same batches; normalised states use the dataset mean/std.
    const again = new DtWindowSampler(ds, {
      batchSize: 32,
      context: K,
      seed,
      returnScale: scale,
      normalizeStates: false,
    });
    assert.deepEqual(again.sample().returnsToGo, batch.returnsToGo);
    const norm = new DtWindowSampler(ds, { batchSize: 4, context: K, seed });
    const nb = norm.sample();
    const mean = ds.info.obsMean as number[];
    const std = ds.info.obsStd as number[];
    const raw = new DtWindowSampler(ds, { batchSize: 4, context: K, seed, normalizeStates: false }).sample();
    for (let k = 0; k < nb.states.length; k++) {
      if (!nb.mask[Math.floor(k / obsDim)]) continue;
      const d = k % obsDim;
      assert.ok(close(nb.states[k], (raw.states[k] - mean[d]) / (std[d] + 1e-6), 1e-3));
    }
    ds.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('episodes are drawn in proportion to their length', () => {
    const dir = tempDir();
    const mk = (T: number) => ({
      observations: new Float32Array(T + 1),
      actions: new Float32Array(T),
      rewards: new Float64Array(T),
      terminations: new Uint8Array(T),
      truncations: new Uint8Array(T),
    });
    const path = join(dir, 'd.arrow');
    writeEpisodes(path, description(1, 1), [mk(10), mk(30), mk(60)]);
    const ds = openDataset(path);
    const s = new DtWindowSampler(ds, { batchSize: 1000, context: 2, seed: freshSeed() });
    const counts = [0, 0, 0];
    for (let i = 0; i < 10; i++) for (const e of s.sample().episodes) counts[e]++;
    // Expected 1000/3000/6000 of 10000; 5 standard deviations of a binomial at most.
    for (const [i, p] of [0.1, 0.3, 0.6].entries())
      assert.ok(Math.abs(counts[i] - 10000 * p) < 5 * Math.sqrt(10000 * p * (1 - p)), `${counts}`);
    ds.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('AT chains of hindsight', () => {
  const seed = freshSeed();
  test(`ordering, relabelled targets, return-to-go, completion flags (seed ${seed})`, () => {
    const dir = tempDir();
    const { episodes, obsDim, actDim } = randomEpisodes(seed, 9, { maxLen: 12 });
    const path = join(dir, 'd.arrow');
    writeEpisodes(path, description(obsDim, actDim), episodes);
    const ds = openDataset(path);
    const N = 4;
    const longest = Math.max(...episodes.map((e) => e.rewards.length));
    const L = N * longest;
    const s = new AtChainSampler(ds, { batchSize: 8, maxTrajectories: N, seed, normalizeStates: false });
    assert.equal(s.contextSteps, L);
    const batch = s.sample();
    const ret = episodes.map((e) => e.rewards.reduce((a, b) => a + b, 0));
    for (let b = 0; b < 8; b++) {
      const n = batch.numTrajectories[b];
      assert.ok(n >= 1 && n <= N);
      const chain = Array.from(batch.chainEpisodes.subarray(b * N, b * N + n));
      assert.equal(new Set(chain).size, n, 'distinct trajectories');
      for (let k = 1; k < n; k++) assert.ok(ret[chain[k - 1]] <= ret[chain[k]], 'ascending by return');
      const target = Math.max(...chain.map((e) => ret[e]));
      assert.ok(close(batch.targets[b], target, 1e-12));
      // Rebuild the expected sequence independently and compare position by position.
      const rows: { rtg: number; done: number; t: number; k: number; obs0: number }[] = [];
      chain.forEach((e, k) => {
        let sofar = 0;
        const T = episodes[e].rewards.length;
        for (let t = 0; t < T; t++) {
          rows.push({
            rtg: target - sofar,
            done: t === T - 1 && ret[e] >= target ? 1 : 0,
            t,
            k,
            obs0: episodes[e].observations[t * obsDim],
          });
          sofar += episodes[e].rewards[t];
        }
      });
      const pad = L - rows.length;
      for (let j = 0; j < L; j++) {
        const row = b * L + j;
        if (j < pad) {
          assert.equal(batch.mask[row], 0);
          continue;
        }
        const want = rows[j - pad];
        assert.equal(batch.mask[row], 1);
        assert.ok(close(batch.returnsToGo[row], want.rtg), `rtg ${batch.returnsToGo[row]} vs ${want.rtg}`);
        assert.equal(batch.completions[row], want.done);
        assert.equal(batch.timesteps[row], want.t);
        assert.equal(batch.trajectoryIndex[row], want.k);
        assert.equal(batch.states[row * obsDim], want.obs0);
      }
      assert.ok(batch.completions.subarray(b * L, (b + 1) * L).reduce((a, c) => a + c, 0) >= 1);
    }
    // A short context keeps the chain's last steps: the best trajectory's end is always in it.
    const short = new AtChainSampler(ds, {
      batchSize: 4,
      maxTrajectories: N,
      seed,
      contextSteps: 5,
      normalizeStates: false,
    }).sample();
    for (let b = 0; b < 4; b++) assert.equal(short.completions[b * 5 + 4], 1);
    ds.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('token dataset', () => {
  test('write, read back, windows', () => {
    const dir = tempDir();
    const path = join(dir, 't.arrow');
    const w = new TokenWriter(path, { vocabSize: 100, batchRows: 16 });
    const seqs = [
      [1, 5, 7, 9, 2],
      [1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2],
      [1, 2],
    ];
    for (const [i, s] of seqs.entries())
      w.addSequence(
        s,
        s.map((_, t) => t % 2),
        s.map(() => i),
      );
    const res = w.close();
    assert.equal(res.totalTokens, 19);
    const ds = new TokenDataset(path);
    for (const [i, s] of seqs.entries()) {
      const got = ds.sequence(i);
      assert.deepEqual([...got.tokens], s);
      assert.deepEqual(
        [...got.lossMask],
        s.map((_, t) => t % 2),
      );
      assert.deepEqual(
        [...got.segmentIds],
        s.map(() => i),
      );
    }
    const batch = new TokenWindowSampler(ds, { batchSize: 6, seqLen: 4, seed: 3 }).sample();
    for (let b = 0; b < 6; b++) {
      const win = [...batch.tokens.subarray(b * 4, b * 4 + 4)].filter((_, j) => batch.mask[b * 4 + j]);
      assert.ok(
        seqs.some((s) => s.join(',').includes(win.join(','))),
        `${win}`,
      );
    }
    ds.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
