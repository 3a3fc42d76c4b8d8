/**
 * AT and DT token layouts (rl/policies, issue 21): a three-episode dataset whose every value is
 * known goes through the real samplers and `atTokens` / `dtTokens`, and the token sequences are
 * compared with tables written out by hand: chains sorted by return with the relabelled target,
 * returns-to-go (R̂ = target − reward so far for AT, Σ of the rewards still to come for DT),
 * completion flags, left padding, types, timesteps, segment ids, action targets and loss weights;
 * and the ring's padding and shards (`padTokens`, `selectTokens`) keep them.
 *
 * Checked to fail on (each by hand in rl/policies/*.ts or datasets/samplers.ts, then reverted):
 * the AT completion flag set on every trajectory's last step, the AT return-to-go taken after the
 * step's reward, the DT action target on the action token instead of the state token, and padding
 * tokens marked as real segments.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  AtChainSampler,
  boxSpace,
  DtWindowSampler,
  openDataset,
  type TrajectoryDataset,
  writeEpisodes,
} from '../../datasets/index.js';
import { tokenIndices } from '../../ring/index.js';
import { AT_MODALITIES, atTokens } from '../../rl/policies/agentic-transformer.js';
import { DT_MODALITIES, dtTokens } from '../../rl/policies/decision-transformer.js';
import { padTokens, selectTokens, type TokenBatch } from '../../rl/policies/tokens.js';

const dir = mkdtempSync(join(tmpdir(), 'rl-tokens-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Episode e, step t: observation (10e + t, −(10e + t)), action 0.1(e + 1) + 0.01t.
//   episode 0: rewards 1, 2     return 3
//   episode 1: rewards 0, 1, 0  return 1
//   episode 2: rewards 4, 1     return 5
const REWARDS = [
  [1, 2],
  [0, 1, 0],
  [4, 1],
];
const obsOf = (e: number, t: number) => [10 * e + t, -(10 * e + t)];
const actOf = (e: number, t: number) => Math.fround(0.1 * (e + 1) + 0.01 * t);

function tinyDataset(): TrajectoryDataset {
  const path = join(dir, 'tiny.arrow');
  writeEpisodes(
    path,
    {
      datasetId: 'test/tokens-v0',
      observationSpace: boxSpace(2),
      actionSpace: boxSpace(1, 'float32', -1, 1),
    },
    REWARDS.map((r, e) => ({
      observations: Array.from({ length: r.length + 1 }, (_, t) => obsOf(e, t)).flat(),
      actions: r.map((_, t) => actOf(e, t)),
      rewards: r,
      terminations: r.map((_, t) => t === r.length - 1),
      truncations: r.map(() => false),
    })),
  );
  return openDataset(path);
}

/** One step's expected tokens: [episode, t, R̂, completion] or null for a padding step. */
type Step = [number, number, number, number] | null;

/** Compares sequence s of `tokens` with the steps, `perStep` tokens each (AT: 4, DT: 3). */
function expectTokens(tokens: TokenBatch, s: number, steps: Step[], perStep: 3 | 4, maxTimestep: number) {
  const F = tokens.featDim;
  const A = tokens.actDim;
  assert.equal(tokens.length, perStep * steps.length);
  steps.forEach((step, k) => {
    for (let m = 0; m < perStep; m++) {
      const tok = s * tokens.length + perStep * k + m;
      const at = `sequence ${s} step ${k} token ${m}`;
      const feats = Array.from(tokens.feats.subarray(tok * F, (tok + 1) * F));
      assert.equal(tokens.types[tok], m, `${at}: type`);
      assert.equal(tokens.segments[tok], step ? 1 : 0, `${at}: segment id`);
      if (!step) {
        assert.equal(tokens.weights[tok], 0, `${at}: padding weight`);
        assert.deepEqual(
          Array.from(tokens.targets.subarray(tok * A, (tok + 1) * A)),
          [0],
          `${at}: padding target`,
        );
        continue;
      }
      const [e, t, rtg, done] = step;
      assert.equal(tokens.timesteps[tok], Math.min(t, maxTimestep - 1), `${at}: timestep`);
      const want = [[rtg, 0], obsOf(e, t), [actOf(e, t), 0], [done, 0]][m];
      assert.deepEqual(feats, want, `${at}: features`);
      // The action is predicted from the state token only, with weight 1.
      const isState = m === 1;
      assert.equal(tokens.weights[tok], isState ? 1 : 0, `${at}: weight`);
      assert.deepEqual(
        Array.from(tokens.targets.subarray(tok * A, (tok + 1) * A)),
        [isState ? actOf(e, t) : 0],
        `${at}: target`,
      );
    }
  });
}

describe('token layouts against hand-built sequences', () => {
  test('AT: chain of all 3 episodes sorted by return (1, 3, 5), target 5, left-padded to 8 steps', () => {
    const ds = tinyDataset();
    try {
      const sampler = new AtChainSampler(ds, {
        batchSize: 2,
        maxTrajectories: 3,
        minTrajectories: 3,
        contextSteps: 8,
        seed: Date.now() >>> 0,
        normalizeStates: false,
      });
      const chains = sampler.sample();
      assert.deepEqual(Array.from(chains.chainEpisodes), [1, 0, 2, 1, 0, 2]);
      assert.deepEqual(Array.from(chains.targets), [5, 5]);
      const tokens = atTokens(chains, 64);
      assert.equal(AT_MODALITIES.state, 1);
      // R̂ = 5 − reward collected so far in that trajectory; d = 1 only where the return reached 5.
      const steps: Step[] = [
        null,
        [1, 0, 5, 0],
        [1, 1, 5, 0],
        [1, 2, 4, 0],
        [0, 0, 5, 0],
        [0, 1, 4, 0],
        [2, 0, 5, 0],
        [2, 1, 1, 1],
      ];
      expectTokens(tokens, 0, steps, 4, 64);
      expectTokens(tokens, 1, steps, 4, 64);
    } finally {
      ds.close();
    }
  });

  test('AT: a context of 5 steps keeps the last 5 (R̂ counts the dropped rewards), timesteps clamped', () => {
    const ds = tinyDataset();
    try {
      const chains = new AtChainSampler(ds, {
        batchSize: 1,
        maxTrajectories: 3,
        minTrajectories: 3,
        contextSteps: 5,
        seed: 1,
        normalizeStates: false,
      }).sample();
      // Episode 1's steps 0 and 1 are dropped; its step 2 has R̂ = 5 − (0 + 1) = 4.
      expectTokens(
        atTokens(chains, 2),
        0,
        [
          [1, 2, 4, 0],
          [0, 0, 5, 0],
          [0, 1, 4, 0],
          [2, 0, 5, 0],
          [2, 1, 1, 1],
        ],
        4,
        2,
      );
    } finally {
      ds.close();
    }
  });

  test('DT: windows of 3 steps, R̂ = rewards still to come, left padding', () => {
    const ds = tinyDataset();
    try {
      const K = 3;
      const sampler = new DtWindowSampler(ds, {
        batchSize: 24,
        context: K,
        seed: Date.now() >>> 0,
        normalizeStates: false,
      });
      const w = sampler.sample();
      const tokens = dtTokens(w, 64);
      assert.equal(DT_MODALITIES.state, 1);
      // Returns-to-go by hand: episode 0: 3, 2; episode 1: 1, 1, 0; episode 2: 5, 1.
      const RTG = [
        [3, 2],
        [1, 1, 0],
        [5, 1],
      ];
      const seen = new Set<string>();
      for (let b = 0; b < w.batchSize; b++) {
        const [e, si] = [w.episodes[b], w.starts[b]];
        seen.add(`${e}:${si}`);
        const n = Math.min(K, REWARDS[e].length - si);
        const steps: Step[] = Array.from({ length: K }, (_, k) => {
          const t = si + k - (K - n);
          return k < K - n ? null : [e, t, RTG[e][t], 0];
        });
        expectTokens(tokens, b, steps, 3, 64);
      }
      assert.ok(seen.size >= 4, `windows drawn: ${[...seen].join(' ')}`);
    } finally {
      ds.close();
    }
  });

  test("ring padding and shards: padded tokens are padding (segment 0, weight 0); shards are the layout's positions", () => {
    const ds = tinyDataset();
    try {
      const chains = new AtChainSampler(ds, {
        batchSize: 2,
        maxTrajectories: 3,
        minTrajectories: 3,
        contextSteps: 7,
        seed: 3,
        normalizeStates: false,
      }).sample();
      const tokens = atTokens(chains, 64); // 28 tokens
      const N = 3;
      const L = Math.ceil(tokens.length / N) * N; // 30
      const padded = padTokens(tokens, L - tokens.length);
      assert.equal(padded.length, 30);
      for (let s = 0; s < 2; s++) {
        for (let j = 0; j < L; j++) {
          const [to, from] = [s * L + j, s * tokens.length + j];
          if (j >= tokens.length) {
            assert.equal(padded.segments[to], 0, `pad token ${j}: segment`);
            assert.equal(padded.weights[to], 0, `pad token ${j}: weight`);
            continue;
          }
          assert.equal(padded.types[to], tokens.types[from]);
          assert.equal(padded.segments[to], tokens.segments[from]);
          assert.equal(padded.weights[to], tokens.weights[from]);
          assert.equal(padded.feats[to * tokens.featDim + 1], tokens.feats[from * tokens.featDim + 1]);
        }
      }
      for (const layout of ['contiguous', 'striped'] as const) {
        const seen = new Set<number>();
        let weight = 0;
        for (let r = 0; r < N; r++) {
          const idx = tokenIndices(r, N, L, layout);
          const shard = selectTokens(padded, idx);
          // Ring attention masks other devices' keys by the whole sequence's segment ids.
          assert.deepEqual(shard.sequenceSegments, padded.segments, `${layout} rank ${r}: sequence segments`);
          for (let s = 0; s < 2; s++)
            idx.forEach((p, j) => {
              seen.add(p);
              const [to, from] = [s * idx.length + j, s * L + p];
              assert.equal(shard.types[to], padded.types[from], `${layout} rank ${r}: type`);
              assert.equal(shard.timesteps[to], padded.timesteps[from]);
              assert.equal(shard.segments[to], padded.segments[from]);
              assert.equal(shard.targets[to], padded.targets[from]);
              weight += shard.weights[to];
            });
        }
        assert.equal(seen.size, L, `${layout}: every position on exactly one device`);
        assert.equal(weight, 2 * 7, `${layout}: loss weight is one per real step`);
      }
    } finally {
      ds.close();
    }
  });
});
