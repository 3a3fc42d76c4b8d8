// Ring attention over N ∈ {2, 4} separate processes joined by the ZeroMQ transport, launched by
// `exp launch` as a user does: forward and gradients within 1e-4 of vanilla attention (each rank
// compares its shard; the error norms are summed over the ring), causal, striped, GQA, segments.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jsonLines, start, type WorkerCase, workerArgs } from './helpers.js';

const TOL = 1e-4;

interface RankResult {
  rank: number;
  worldSize: number;
  source: string;
  relErr: Record<string, number>;
  maxRelErr: number;
  stepMs: number[];
}

const CASES: (WorkerCase & { N: number })[] = [
  { N: 2, B: 1, H: 2, Hk: 2, T: 48, D: 8, causal: false, layout: 'contiguous', blockSize: 8 },
  { N: 2, B: 2, H: 4, Hk: 2, T: 48, D: 8, causal: true, layout: 'striped', blockSize: 4 },
  { N: 4, B: 1, H: 4, Hk: 1, T: 48, D: 8, causal: true, layout: 'contiguous', blockSize: 8 },
  { N: 4, B: 2, H: 2, Hk: 2, T: 40, D: 8, causal: true, layout: 'striped', blockSize: 16, segmentLength: 9 },
];

const name = (c: WorkerCase & { N: number }) =>
  `ring over processes N=${c.N} ${c.layout} B=${c.B} H=${c.H} gqa=${c.H / c.Hk} L=${c.T} D=${c.D}${c.causal ? ' causal' : ''}${c.segmentLength ? ` segments/${c.segmentLength}` : ''}`;

describe('ZeroMQ ring across processes (exp launch)', () => {
  for (const c of CASES) {
    test(name(c), async () => {
      const seed = (Math.random() * 2 ** 31) | 0;
      const p = start(
        [
          'launch',
          `--nproc=${c.N}`,
          '--',
          'exp',
          ...workerArgs(c, ['--backward', '--check', `--seed=${seed}`]),
        ],
        {},
        90_000,
      );
      const r = await p.done;
      assert.equal(r.code, 0, `launch failed (seed ${seed}):\n${r.stderr}`);
      const ranks = jsonLines<RankResult>(r.stdout).sort((a, b) => a.rank - b.rank);
      assert.deepEqual(
        ranks.map((x) => x.rank),
        Array.from({ length: c.N }, (_, i) => i),
      );
      for (const x of ranks) {
        assert.equal(x.worldSize, c.N);
        assert.equal(x.source, 'torchrun');
        for (const what of ['out', 'dq', 'dk', 'dv'])
          assert.ok(
            x.relErr[what] < TOL,
            `rank ${x.rank} ${what} vs vanilla: ${x.relErr[what]} (seed ${seed})`,
          );
      }
    });
  }
});
