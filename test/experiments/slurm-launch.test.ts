/**
 * `exp launch` (issue 16 item 10, issue 19): one rank is refused at once instead of waiting out
 * the rendezvous; a stalled rank is the one blamed; and the multi-process ring run as one SLURM
 * job step (`--launcher slurm`, srun on the test cluster) gives the local launcher's result,
 * within 1e-4 of vanilla attention.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  jsonLines,
  rankEnv,
  secret,
  start,
  waitForStderr,
  type WorkerCase,
  workerArgs,
} from '../cluster/transport/helpers.js';
import { type SlurmCluster, startSlurmCluster } from './slurm-cluster.js';

const SMALL: WorkerCase = { B: 1, H: 2, Hk: 1, T: 64, D: 8, causal: true, layout: 'striped', blockSize: 8 };

interface WorkerResult {
  rank: number;
  worldSize: number;
  source: string;
  relErr: { out: number; dq: number; dk: number; dv: number };
  maxRelErr: number;
}

describe('exp launch: one rank, a stalled rank', () => {
  test('--nproc 1 is refused at once (exit 2), not after the 60 s rendezvous', async () => {
    const r = await start(['launch', '--nproc', '1', '--', 'exp', ...workerArgs(SMALL)]).done;
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--nproc 1: a ring needs at least 2 ranks/);
    assert.ok(r.ms < 20_000, `took ${r.ms} ms`);
  });

  test('a rank started alone with WORLD_SIZE=1 is refused at once (exit 2)', async () => {
    const r = await start(workerArgs(SMALL), rankEnv(0, 1, 29_999, secret())).done;
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /needs at least 2 ranks; got WORLD_SIZE 1/);
    assert.ok(r.ms < 20_000, `took ${r.ms} ms`);
  });

  test('a stalled rank (SIGSTOP) is the one named in the summary, not the rank that noticed', async () => {
    const p = start(
      ['launch', '--nproc=2', '--grace-ms=1000', '--', 'exp', ...workerArgs(SMALL, ['--steps=1000000'])],
      { RING_HEARTBEAT_TIMEOUT_MS: '2000' },
    );
    for (let r = 0; r < 2; r++) await waitForStderr(p, `ring rank ${r}: joined a ring of 2`, 60_000);
    const pid = Number(/exp launch: rank 1 pid (\d+)/.exec(p.stderr())![1]);
    process.kill(pid, 'SIGSTOP');
    const r = await p.done;
    assert.equal(r.code, 1, r.stderr);
    // rank 0 fails first (no heartbeat from rank 1); before the fix the summary blamed rank 0
    assert.match(r.stderr, /\[rank 0\] .*rank 1 stopped responding/);
    assert.match(
      r.stderr,
      /exp launch: rank 1 stalled \(still running 1000 ms after rank 0 failed \(exit code 1\)/,
    );
    assert.doesNotMatch(r.stderr, /exp launch: rank 0 failed/);
  });
});

describe('exp launch --launcher slurm (srun on a single-node cluster)', () => {
  let cluster: SlurmCluster | undefined;
  before(() => {
    cluster = startSlurmCluster();
  });
  after(() => cluster?.stop());

  test('ring N=2 causal GQA over srun: ranks from SLURM, equal to the local launcher, within 1e-4 of vanilla', async (t) => {
    if (cluster?.skip) return t.skip(cluster.skip);
    const args = [
      '--',
      'exp',
      ...workerArgs(SMALL, ['--check', '--backward', `--seed=${Date.now() % 100_000}`]),
    ];
    const viaSrun = await start([
      'launch',
      '--launcher',
      'slurm',
      '--nodes',
      '1',
      '--nproc-per-node',
      '2',
      ...args,
    ]).done;
    assert.equal(viaSrun.code, 0, viaSrun.stderr);
    assert.match(viaSrun.stderr, /exp launch: srun --nodes=1 --ntasks-per-node=2 --ntasks=2/);
    const local = await start(['launch', '--nproc', '2', ...args]).done;
    assert.equal(local.code, 0, local.stderr);
    const s = jsonLines<WorkerResult>(viaSrun.stdout).sort((a, b) => a.rank - b.rank);
    const l = jsonLines<WorkerResult>(local.stdout).sort((a, b) => a.rank - b.rank);
    assert.deepEqual(
      s.map((x) => [x.rank, x.worldSize, x.source]),
      [
        [0, 2, 'slurm'],
        [1, 2, 'slurm'],
      ],
    );
    assert.equal(l.length, 2);
    for (const [i, x] of s.entries()) {
      assert.ok(x.maxRelErr < 1e-4, `srun rank ${x.rank}: ‖ring − vanilla‖/‖vanilla‖ = ${x.maxRelErr}`);
      for (const k of ['out', 'dq', 'dk', 'dv'] as const)
        assert.ok(
          Math.abs(x.relErr[k] - l[i].relErr[k]) <= 1e-6,
          `${k}: srun ${x.relErr[k]} vs local ${l[i].relErr[k]}`,
        );
    }
  });

  test('a bad --nproc-per-node is refused before srun runs (exit 2)', async () => {
    const r = await start([
      'launch',
      '--launcher',
      'slurm',
      '--nproc-per-node',
      '0',
      '--',
      'exp',
      'ring-worker',
    ]).done;
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--nproc-per-node must be a positive integer; got 0/);
  });
});
