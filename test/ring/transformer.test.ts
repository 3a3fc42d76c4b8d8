// The transformer block on N ring devices (sequence parallel, weight gradients all-reduced)
// equals the same block with vanilla attention on the whole sequence; RoPE against a plain
// implementation.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { initBackend } from '../../native/index.js';
import {
  allReduceMessageFloats,
  applyRope,
  disposeKvCache,
  emptyKvCache,
  initBlock,
  tokenIndices,
  type TransformerBlockConfig,
  transformerBlock,
  transformerBlockStep,
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

describe('transformer block on the ring', () => {
  for (const [N, layout, extra] of [
    [2, 'contiguous', {}],
    [4, 'striped', {}],
    [3, 'contiguous', { ffn: 'gelu', norm: 'layer', rope: undefined, kvHeads: 4 }],
    [1, 'contiguous', { ffn: 'relu', rope: { theta: 500, interpolation: 4 }, causal: false }],
  ] as const) {
    test(`N=${N} ${layout} ${JSON.stringify(extra)}`, async () => {
      const config = { ...base, ...extra } as TransformerBlockConfig;
      const B = 2;
      const T = 24;
      const Dm = config.dModel;
      const rng = new Rng((Math.random() * 2 ** 31) | 0);
      const x = rng.normalArray(B * T * Dm);
      const dy = rng.normalArray(B * T * Dm);
      const segmentIds = Int32Array.from({ length: B * T }, (_, i) => Math.floor((i % T) / 10));
      const seed = 7;
      const ref = blockGradients(
        tf.tensor3d(x, [B, T, Dm]),
        tf.tensor3d(dy, [B, T, Dm]),
        { ...config, attention: 'vanilla' },
        seed,
        {
          segmentIds,
        },
      );
      const group = await RingGroup.create({ devices: N, backend: 'wasm' });
      try {
        const idx = Array.from({ length: N }, (_, r) => tokenIndices(r, N, T, layout));
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
        assert.ok(relError(out, ref.out) < 1e-4, `out ${relError(out, ref.out)}`);
        assert.ok(relError(dx, ref.dx) < 1e-4, `dx ${relError(dx, ref.dx)}`);
        for (const r of res)
          assert.ok(relError(r.dw, ref.dw) < 1e-4, `weight grads ${relError(r.dw, ref.dw)}`);
      } finally {
        await group.dispose();
      }
    });
  }
});

describe('incremental decoding with a KV cache', () => {
  for (const extra of [{}, { rope: undefined, norm: 'layer', ffn: 'gelu' }] as const) {
    test(`step by step equals the full causal forward ${JSON.stringify(extra)}`, () => {
      const config = { ...base, ...extra, attention: 'vanilla', ffnChunk: 0 } as TransformerBlockConfig;
      const rng = new Rng((Math.random() * 2 ** 31) | 0);
      const [B, T, Dm] = [2, 11, config.dModel];
      const w = initBlock(config, rng, 1);
      const x = tf.tensor3d(rng.normalArray(B * T * Dm), [B, T, Dm]);
      const full = transformerBlock(x, w, config, {}).dataSync();
      const cache = emptyKvCache();
      const parts: tf.Tensor[] = [];
      for (const [start, len] of [
        [0, 4],
        [4, 1],
        [5, 3],
        [8, 3],
      ]) {
        parts.push(transformerBlockStep(tf.slice(x, [0, start, 0], [B, len, Dm]), w, config, cache));
      }
      assert.equal(cache.length, T);
      const inc = tf.concat(parts, 1).dataSync();
      assert.ok(relError(inc, full) < 1e-5, `${relError(inc, full)}`);
      disposeKvCache(cache);
    });
  }
});

describe('rotary embedding', () => {
  test('matches rotate_half on fresh inputs, interpolation divides positions', () => {
    const rng = new Rng((Math.random() * 2 ** 31) | 0);
    const [B, H, T, Dh] = [1, 2, 5, 8];
    const data = rng.normalArray(B * H * T * Dh);
    const pos = Int32Array.from([3, 9, 0, 100, 7]);
    for (const interp of [1, 4]) {
      const got = applyRope(tf.tensor4d(data, [B, H, T, Dh]), pos, 10000, interp).dataSync();
      const want = new Float64Array(data.length);
      for (let h = 0; h < H; h++)
        for (let t = 0; t < T; t++)
          for (let i = 0; i < Dh; i++) {
            const half = Dh / 2;
            const j = i % half;
            const ang = (pos[t] / interp) * 10000 ** ((-2 * j) / Dh);
            const base = (h * T + t) * Dh;
            const rot = i < half ? -data[base + i + half] : data[base + i - half];
            want[base + i] = data[base + i] * Math.cos(ang) + rot * Math.sin(ang);
          }
      assert.ok(relError(got, want) < 1e-5, `interp ${interp}: ${relError(got, want)}`);
    }
  });
});
