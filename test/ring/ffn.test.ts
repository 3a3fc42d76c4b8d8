// Blockwise feedforward equals the plain FFN, outputs and gradients of input and weights, and
// holds one chunk's hidden activations at a time.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { initBackend } from '../../native/index.js';
import { blockwiseFeedForward, type FeedForwardKind, feedForward } from '../../ring/index.js';
import { relError } from '../helpers/reference.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

function weights(kind: FeedForwardKind, Dm: number, F: number, rng: Rng) {
  const w = (r: number, c: number) => tf.tensor2d(rng.normalArray(r * c, 1 / Math.sqrt(r)), [r, c]);
  return { kind, up: w(Dm, F), down: w(F, Dm), gate: kind === 'swiglu' ? w(Dm, F) : undefined };
}

describe('blockwise feedforward', () => {
  for (const kind of ['swiglu', 'gelu', 'relu'] as const) {
    for (const chunk of [4, 7, 64]) {
      test(`${kind} chunk=${chunk} B=2 T=30 Dm=16 F=40`, () => {
        const rng = new Rng((Math.random() * 2 ** 31) | 0);
        const w = weights(kind, 16, 40, rng);
        const x = tf.tensor3d(rng.normalArray(2 * 30 * 16), [2, 30, 16]);
        const dy = tf.tensor3d(rng.normalArray(2 * 30 * 16), [2, 30, 16]);
        const params = w.gate ? [x, w.up, w.down, w.gate] : [x, w.up, w.down];
        const run = (f: typeof feedForward) =>
          tf.valueAndGrads((...ps: tf.Tensor[]) =>
            f(ps[0], {
              kind,
              up: ps[1] as tf.Tensor2D,
              down: ps[2] as tf.Tensor2D,
              gate: ps[3] as tf.Tensor2D | undefined,
            }),
          )(params, dy);
        const plain = run(feedForward);
        const block = run((xx, ww) => blockwiseFeedForward(xx, ww, chunk));
        assert.ok(relError(block.value.dataSync(), plain.value.dataSync()) < 1e-5);
        plain.grads.forEach((g, i) => {
          assert.ok(relError(block.grads[i].dataSync(), g.dataSync()) < 1e-5, `gradient ${i}`);
        });
      });
    }
  }

  test('peak bytes stay at one chunk of hidden activations', async () => {
    const rng = new Rng(3);
    const w = weights('swiglu', 32, 256, rng);
    const x = tf.tensor3d(rng.normalArray(1 * 512 * 32), [1, 512, 32]);
    const peak = async (f: () => tf.Tensor) => {
      const before = tf.memory().numBytes;
      const info = await tf.profile(() => {
        const y = f();
        y.dispose();
        return [];
      });
      return info.peakBytes - before;
    };
    const plain = await peak(() => feedForward(x, w));
    const block = await peak(() => blockwiseFeedForward(x, w, 32));
    // plain holds 512×256 hidden values ×3 (gate, up, product); blockwise 32×256 ×3 plus outputs
    assert.ok(block < plain / 3, `blockwise ${block} bytes vs plain ${plain}`);
  });

  test('mismatched weights are refused with the shapes', () => {
    const rng = new Rng(1);
    const w = weights('relu', 8, 16, rng);
    assert.throws(() => feedForward(tf.zeros([1, 4, 9]), w), /feedForward: weights do not fit input width 9/);
    assert.throws(
      () => blockwiseFeedForward(tf.zeros([1, 4, 8]), w, 0),
      /chunkSize must be a positive integer; got 0/,
    );
    assert.throws(() => feedForward(tf.zeros([1, 4, 8]), { ...w, kind: 'swiglu' }), /swiglu needs gate/);
  });
});
