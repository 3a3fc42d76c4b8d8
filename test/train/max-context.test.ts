// searchMaxContext against the search the context-scaling recipe wrote inline before (doubling,
// then bisection; the plain reference below), on random budgets; and trainingFlops against
// PaLM's count written out.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { searchMaxContext, trainingFlops } from '../../train/index.js';

/** The recipe's loop before issue 13 moved it: fits(L) says whether L fits; returns (lo, probes). */
function reference(
  o: { start: number; max: number; granularity: number; refineSteps: number },
  limit: number,
) {
  const g = o.granularity;
  const round = (L: number) => Math.max(g, Math.floor(L / g) * g);
  let probes = 0;
  const fits = (L: number) => {
    probes++;
    return L <= limit;
  };
  let lo = 0;
  let hi = 0;
  for (let L = round(o.start); L <= o.max; L *= 2) {
    if (fits(L)) lo = L;
    else {
      hi = L;
      break;
    }
  }
  for (let i = 0; i < o.refineSteps && lo > 0 && hi > 0 && hi - lo > g; i++) {
    const mid = round((lo + hi) / 2);
    if (mid <= lo || mid >= hi) break;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return { maxContext: lo, probes };
}

describe('searchMaxContext', () => {
  const seed = (Math.random() * 2 ** 31) | 0;
  test(`equals the reference on 300 random budgets (seed ${seed})`, async () => {
    const rng = new Rng(seed);
    for (let k = 0; k < 300; k++) {
      const granularity = 64 * (1 + rng.int(4));
      const o = { start: 1 + rng.int(600), max: 256 + rng.int(40_000), granularity, refineSteps: rng.int(5) };
      const limit = rng.int(50_000);
      const seen: number[] = [];
      const r = await searchMaxContext(o, async (L) => {
        seen.push(L);
        return L <= limit ? { at: L } : undefined;
      });
      const want = reference(o, limit);
      const where = `case ${k}: ${JSON.stringify(o)} limit ${limit}`;
      assert.equal(r.maxContext, want.maxContext, where);
      assert.equal(r.probes, want.probes, where);
      assert.equal(r.probes, seen.length, where);
      // the measurement kept is the probe's at the length reported
      assert.deepEqual(r.fit, r.maxContext ? { at: r.maxContext } : undefined, where);
      assert.equal(r.maxContext % granularity, 0, where);
    }
  });

  test('nothing fits: 0 after one probe', async () => {
    const r = await searchMaxContext(
      { start: 64, max: 4096, granularity: 64, refineSteps: 3 },
      async () => undefined,
    );
    assert.deepEqual(r, { maxContext: 0, probes: 1, fit: undefined });
  });
});

test('trainingFlops is 6·P·L + 6·layers·L²·d', () => {
  const m = { parameters: 123_776, layers: 2, dModel: 64 };
  for (const L of [64, 1000, 4096])
    assert.equal(trainingFlops(m, L), 6 * 123_776 * L + 6 * 2 * L * L * 64, `L=${L}`);
});
