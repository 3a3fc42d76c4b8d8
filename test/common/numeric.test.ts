// common/numeric.ts: the median the benches report (odd and even counts, input left in order).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { median } from '../../common/index.js';

test('median: the middle value, the mean of the middle two for an even count; the input keeps its order', () => {
  const xs = [5, 1, 4, 2, 3];
  assert.equal(median(xs), 3);
  assert.deepEqual(xs, [5, 1, 4, 2, 3]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
});
