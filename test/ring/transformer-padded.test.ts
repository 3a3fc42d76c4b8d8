// Lengths not divisible by N (issue 21: the ring transformer was tested only with T divisible by
// N). A sequence of T0 tokens is padded at the end to the next multiple of N, as the offline-RL
// and LM callers do, and run on the ring; at the T0 real positions the output and the input
// gradient, and the weight gradient summed over devices, must equal the block with vanilla
// attention on the unpadded T0 tokens. Padding tokens carry zero output gradient; with segment
// ids they get a segment of their own (causal masking alone already keeps them out of the real
// tokens' view, since they come last).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { initBackend } from '../../native/index.js';
import {
  allReduceMessageFloats,
  type RingLayout,
  tokenIndices,
  type TransformerBlockConfig,
} from '../../ring/index.js';
import { gatherTokens, RingGroup, scatterTokens } from '../../cluster/index.js';
import { relError } from '../helpers/reference.js';
import { type BlockTaskArgs, blockGradients } from './fixtures/block-task.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

const base: TransformerBlockConfig = {
  dModel: 16,
  heads: 4,
  kvHeads: 2,
  ffnHidden: 24,
  ffn: 'swiglu',
  norm: 'rms',
  normEps: 1e-5,
  rope: { theta: 10000 },
  attention: 'ring',
  blockSize: 4,
  ffnChunk: 4,
  causal: true,
};

/** (B, T0, Dm) → (B, T, Dm) with zero rows appended. */
function padRows(x: Float32Array, B: number, T0: number, T: number, Dm: number): Float32Array {
  const out = new Float32Array(B * T * Dm);
  for (let b = 0; b < B; b++) out.set(x.subarray(b * T0 * Dm, (b + 1) * T0 * Dm), b * T * Dm);
  return out;
}

/** The first T0 of T rows of every sequence. */
function realRows(x: Float32Array, B: number, T0: number, T: number, Dm: number): Float32Array {
  const out = new Float32Array(B * T0 * Dm);
  for (let b = 0; b < B; b++) out.set(x.subarray(b * T * Dm, (b * T + T0) * Dm), b * T0 * Dm);
  return out;
}

describe('transformer block on the ring, length not divisible by N', () => {
  for (const [N, T0, layout, segments] of [
    [2, 13, 'contiguous', false],
    [4, 13, 'striped', true],
    [3, 22, 'contiguous', true],
  ] as const) {
    const T = Math.ceil(T0 / N) * N;
    test(`ring N=${N} ${layout} L=${T0} (padded to ${T})${segments ? ' with segment ids' : ''}`, async (tc) => {
      const config = base;
      const B = 2;
      const Dm = config.dModel;
      const inputSeed = (Math.random() * 2 ** 31) | 0;
      tc.diagnostic(`input seed ${inputSeed}`);
      const rng = new Rng(inputSeed);
      const x0 = rng.normalArray(B * T0 * Dm);
      const dy0 = rng.normalArray(B * T0 * Dm);
      // Two real segments per sequence (split at 7), padding in segment 99.
      const seg0 = Int32Array.from({ length: B * T0 }, (_, i) => (i % T0 < 7 ? 0 : 1));
      const seed = 5;
      const ref = blockGradients(
        tf.tensor3d(x0, [B, T0, Dm]),
        tf.tensor3d(dy0, [B, T0, Dm]),
        { ...config, attention: 'vanilla' },
        seed,
        segments ? { segmentIds: seg0 } : {},
      );
      const x = padRows(x0, B, T0, T, Dm);
      const dy = padRows(dy0, B, T0, T, Dm);
      const segmentIds = segments
        ? Int32Array.from({ length: B * T }, (_, i) =>
            i % T >= T0 ? 99 : seg0[Math.floor(i / T) * T0 + (i % T)],
          )
        : undefined;
      const group = await RingGroup.create({ devices: N, backend: 'wasm' });
      try {
        const idx = Array.from({ length: N }, (_, r) => tokenIndices(r, N, T, layout as RingLayout));
        const args: BlockTaskArgs[] = idx.map((ix) => ({
          x: gatherTokens(x, B, T, Dm, ix),
          dy: gatherTokens(dy, B, T, Dm, ix),
          B,
          c: T / N,
          config,
          seed,
          seqLen: T,
          layout,
          segmentIds,
        }));
        const res = await group.run<BlockTaskArgs, { out: Float32Array; dx: Float32Array; dw: Float32Array }>(
          new URL('./fixtures/block-task.js', import.meta.url),
          'blockTask',
          args,
          Math.max(
            2 * B * config.kvHeads * (T / N) * (Dm / config.heads),
            allReduceMessageFloats(ref.dw.length, N),
          ),
        );
        const out = new Float32Array(B * T * Dm);
        const dx = new Float32Array(B * T * Dm);
        res.forEach((r, rank) => {
          scatterTokens(out, r.out, B, T, Dm, idx[rank], T);
          scatterTokens(dx, r.dx, B, T, Dm, idx[rank], T);
        });
        const o = relError(realRows(out, B, T0, T, Dm), ref.out);
        const d = relError(realRows(dx, B, T0, T, Dm), ref.dx);
        assert.ok(o < 1e-4, `out at the ${T0} real positions: rel error ${o}`);
        assert.ok(d < 1e-4, `dx at the ${T0} real positions: rel error ${d}`);
        for (const r of res)
          assert.ok(relError(r.dw, ref.dw) < 1e-4, `weight grads ${relError(r.dw, ref.dw)}`);
      } finally {
        await group.dispose();
      }
    });
  }
});
