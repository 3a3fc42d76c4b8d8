/**
 * RunningMeanStd (rl/envs/wrappers.ts), the one running-statistics class that NormalizeObservation
 * and PPO's observation and reward statistics share (issue 13): one-sample updates are exactly
 * the one-sample formula PPO and the wrapper used before, and batch updates give the mean and
 * (population) variance of everything seen, against a plain float64 reference.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../../common/index.js';
import { RunningMeanStd } from '../../../rl/envs/index.js';

const seed = Date.now() >>> 0;
console.log(`running-stats seed ${seed}`);

test('update(x) is bit-identical to the one-sample formula (mean += δ/n; var = (var·c + δ²·c/n)/n)', () => {
  const rng = new Rng(seed);
  const size = 5;
  const rms = new RunningMeanStd(size);
  const mean = new Float64Array(size);
  const vr = new Float64Array(size).fill(1);
  let count = 1e-4;
  for (let step = 0; step < 200; step++) {
    const x = Float64Array.from({ length: size }, () => rng.normal() * 3 + 1);
    rms.update(x);
    const n = count + 1;
    for (let i = 0; i < size; i++) {
      const delta = x[i] - mean[i];
      mean[i] += delta / n;
      vr[i] = (vr[i] * count + (delta * delta * count) / n) / n;
    }
    count = n;
  }
  assert.deepEqual(Array.from(rms.mean), Array.from(mean));
  assert.deepEqual(Array.from(rms.var), Array.from(vr));
  assert.equal(rms.count, count);
});

test('updateBatch over strided rows: mean and variance of all rows seen (to 1e-9 relative)', () => {
  const rng = new Rng(seed + 1);
  const [size, stride] = [3, 7]; // statistics of the first 3 of 7 values per row
  const rms = new RunningMeanStd(size);
  const seen: number[][] = [];
  for (let batch = 0; batch < 20; batch++) {
    const rows = 1 + rng.int(8);
    const x = Float64Array.from({ length: rows * stride }, () => rng.normal() * 2 - 5);
    rms.updateBatch(x, rows, stride);
    for (let r = 0; r < rows; r++) seen.push(Array.from(x.subarray(r * stride, r * stride + size)));
  }
  assert.equal(rms.count, 1e-4 + seen.length);
  for (let i = 0; i < size; i++) {
    // The prior (mean 0, var 1, weight 1e-4) shifts the statistics by O(1e-4 / n); fold it in.
    const n = seen.length;
    const w = 1e-4;
    const m = seen.reduce((a, row) => a + row[i], 0) / (n + w);
    const ss = seen.reduce((a, row) => a + (row[i] - m) ** 2, 0) + w * (1 + m * m);
    const v = ss / (n + w);
    assert.ok(Math.abs(rms.mean[i] - m) <= 1e-9 * Math.abs(m), `mean[${i}] ${rms.mean[i]} vs ${m}`);
    assert.ok(Math.abs(rms.var[i] - v) <= 1e-9 * v, `var[${i}] ${rms.var[i]} vs ${v}`);
  }
});
