// The multi-process ring with a length L not divisible by N (issue 21: `exp ring-worker` refused
// such lengths, and the transport tests used only divisible ones). Each rank pads the problem to
// ⌈L/N⌉·N with masked tokens (a segment of their own); forward and gradients at the L real
// positions must be within 1e-4 of vanilla attention on the unpadded problem. The non-causal
// cases are the ones where unmasked padding would be seen (causal masking alone hides it, as it
// comes last).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { freePort, jsonLines, rankEnv, secret, start, type WorkerCase, workerArgs } from './helpers.js';

const TOL = 1e-4;

interface RankResult {
  rank: number;
  seqLen: number;
  paddedSeqLen: number;
  tokensPerRank: number;
  relErr: Record<string, number>;
}

const CASES: (WorkerCase & { N: number })[] = [
  { N: 3, B: 1, H: 2, Hk: 2, T: 40, D: 8, causal: false, layout: 'contiguous', blockSize: 8 },
  { N: 2, B: 2, H: 4, Hk: 2, T: 45, D: 8, causal: false, layout: 'striped', blockSize: 8, segmentLength: 7 },
  { N: 4, B: 1, H: 4, Hk: 2, T: 38, D: 8, causal: true, layout: 'striped', blockSize: 4, segmentLength: 9 },
];

const name = (c: WorkerCase & { N: number }) =>
  `ring over processes N=${c.N} ${c.layout} B=${c.B} H=${c.H} gqa=${c.H / c.Hk} L=${c.T} (padded to ${Math.ceil(c.T / c.N) * c.N}) D=${c.D}${c.causal ? ' causal' : ''}${c.segmentLength ? ` segments/${c.segmentLength}` : ''}`;

describe('ZeroMQ ring across processes, length not divisible by N', () => {
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
      const Tp = Math.ceil(c.T / c.N) * c.N;
      for (const x of ranks) {
        assert.deepEqual([x.seqLen, x.paddedSeqLen, x.tokensPerRank], [c.T, Tp, Tp / c.N]);
        for (const what of ['out', 'dq', 'dk', 'dv'])
          assert.ok(
            x.relErr[what] < TOL,
            `rank ${x.rank} ${what} vs vanilla: ${x.relErr[what]} (seed ${seed})`,
          );
      }
    });
  }

  test('fewer tokens than ranks exits 2 naming --seq-len, before the rendezvous', async () => {
    const r = await start(workerArgs({ ...CASES[0], T: 2 }), rankEnv(0, 3, await freePort(), secret())).done;
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /3 ranks need at least 3 tokens \(one per rank\); got --seq-len 2/);
  });
});
