// The wasm kernels native/kernels.ts re-registers to work on heap views (GatherV2, Slice) give
// what tfjs's cpu backend gives, on fresh random shapes, dtypes and indices, including the cases
// they hand back to the backend's own kernel (another axis, non-contiguous slices).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { initBackend } from '../../native/index.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

/** `f` on tfjs's cpu backend (the reference), its result's values and shape. */
async function onCpu(f: () => tf.Tensor): Promise<{ values: ArrayLike<number>; shape: number[] }> {
  await tf.setBackend('cpu');
  try {
    const y = f();
    const out = { values: y.dataSync(), shape: y.shape };
    y.dispose();
    return out;
  } finally {
    await tf.setBackend('wasm');
  }
}

describe('heap kernels on wasm vs the cpu backend', () => {
  test('GatherV2: random tables, dtypes, index shapes, axes', async () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const rng = new Rng(seed);
    for (let trial = 0; trial < 20; trial++) {
      const rank = 1 + Math.floor(rng.next() * 3);
      const shape = Array.from({ length: rank }, () => 1 + Math.floor(rng.next() * 9));
      const dtype = rng.next() < 0.7 ? 'float32' : 'int32';
      const size = shape.reduce((p, q) => p * q, 1);
      const values = Array.from({ length: size }, () => Math.round(rng.normal() * 100) / 7);
      const axis = rank > 1 && rng.next() < 0.3 ? 1 : rng.next() < 0.5 ? 0 : -rank;
      const extent = shape[axis < 0 ? axis + rank : axis];
      const idShape = [[], [5], [3, 4]][Math.floor(rng.next() * 3)];
      const ids = Array.from({ length: idShape.reduce((p, q) => p * q, 1) }, () =>
        Math.floor(rng.next() * extent),
      );
      const make = () => tf.gather(tf.tensor(values, shape, dtype), tf.tensor(ids, idShape, 'int32'), axis);
      const y = make();
      const want = await onCpu(make);
      const what = `table [${shape}] ${dtype}, indices [${idShape}], axis ${axis} (seed ${seed})`;
      assert.deepEqual(y.shape, want.shape, what);
      assert.deepEqual(Array.from(y.dataSync()), Array.from(want.values), what);
      y.dispose();
    }
  });

  test('Slice: contiguous and strided slices of random tensors', async () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const rng = new Rng(seed);
    for (let trial = 0; trial < 20; trial++) {
      const rank = 1 + Math.floor(rng.next() * 4);
      const shape = Array.from({ length: rank }, () => 1 + Math.floor(rng.next() * 6));
      const values = Array.from({ length: shape.reduce((p, q) => p * q, 1) }, () => rng.normal());
      const begin = shape.map((n) => Math.floor(rng.next() * n));
      const size = shape.map((n, i) => (rng.next() < 0.3 ? -1 : 1 + Math.floor(rng.next() * (n - begin[i]))));
      const make = () => tf.slice(tf.tensor(values, shape), begin, size);
      const y = make();
      const want = await onCpu(make);
      const what = `[${shape}] from [${begin}] size [${size}] (seed ${seed})`;
      assert.deepEqual(y.shape, want.shape, what);
      assert.deepEqual(Array.from(y.dataSync()), Array.from(want.values), what);
      y.dispose();
    }
  });
});
