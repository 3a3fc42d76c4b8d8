// withPeakBytes' distinct-buffer peak (issue 14's memory figure): a view, a clone or a custom op's
// saved copy shares its input's buffer and counts once, where tf.profile's figure (the engine's
// numBytes) counts every tensor. Sizes drawn at random; the expected peaks are counted by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, withPeakBytes } from '../../native/index.js';

await initBackend({});

test('withPeakBytes: views and clones share a buffer and count once', async () => {
  const n = 1000 + Math.floor(Math.random() * 5000);
  const pre = tf.ones([n]); // resident before the call: not counted, not subtracted when freed
  const { peakBytes, bufferBytes } = await withPeakBytes(() => {
    const a = tf.add(pre, 1); // new buffer: 4n
    const views = [tf.reshape(a, [1, n]), a.clone(), tf.reshape(a, [n, 1])]; // a's buffer
    const b = tf.mul(a, 2); // new buffer: 8n live
    tf.dispose([b, ...views]);
    pre.dispose();
    const c = tf.square(a); // a + c: 8n again, after pre was freed (not subtracted)
    tf.dispose([a, c]);
  }, true);
  // (+ the scalars 1 and 2: 4 bytes each)
  assert.ok(bufferBytes >= 8 * n && bufferBytes <= 8 * n + 8, `buffers ${bufferBytes} vs ${8 * n}`);
  // tf.profile's figure counts the three views again
  assert.ok(peakBytes >= 20 * n && peakBytes <= 20 * n + 8, `tensors ${peakBytes} vs ${20 * n}`);
});

test("withPeakBytes: a custom op's saved copy of its input adds nothing", async () => {
  const n = 1000 + Math.floor(Math.random() * 5000);
  const step = (saveInput: boolean) => () => {
    const a = tf.ones([n]);
    const op = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
      if (saveInput) save([x]);
      return { value: tf.neg(x), gradFunc: (dy: tf.Tensor) => dy };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    tf.grad((x: tf.Tensor) => tf.sum(op(x) as tf.Tensor))(a).dispose();
    a.dispose();
  };
  const [saved, unsaved] = [await withPeakBytes(step(true), true), await withPeakBytes(step(false), true)];
  assert.ok(saved.bufferBytes >= 8 * n, `${saved.bufferBytes} < ${8 * n}`);
  assert.equal(saved.bufferBytes, unsaved.bufferBytes);
  assert.equal(saved.peakBytes, unsaved.peakBytes + 4 * n);
});

test('withPeakBytes: nothing measured, nothing counted', async () => {
  const r = await withPeakBytes(() => tf.tidy(() => tf.sum(tf.ones([100]))).dispose(), false);
  assert.equal(r.bufferBytes, 0);
});
