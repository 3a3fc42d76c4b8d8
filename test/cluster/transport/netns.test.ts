// Multi-host ring on one machine (issue 9): two "hosts" as network namespaces joined by a veth
// pair with addresses this test creates in a private /30 (10.209.x.0/30); one rank in each, the
// ring result checked against vanilla. Only those addresses (and 127.0.0.0/8) are contacted.
// Skipped, with the reason, where namespaces cannot be created (not root, no `ip`).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { EXP, jsonLines, secret, start, type WorkerCase, workerArgs } from './helpers.js';

const tag = process.pid % 10000;
const NS = [`ring9-${tag}-a`, `ring9-${tag}-b`];
const VETH = [`r9a${tag}`, `r9b${tag}`];
const octet = process.pid % 250;
const ADDR = [`10.209.${octet}.1`, `10.209.${octet}.2`];

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

function setUp(): string | undefined {
  try {
    for (const ns of NS) ip('netns', 'add', ns);
    ip('link', 'add', VETH[0], 'type', 'veth', 'peer', 'name', VETH[1]);
    for (let i = 0; i < 2; i++) {
      ip('link', 'set', VETH[i], 'netns', NS[i]);
      ip('-n', NS[i], 'addr', 'add', `${ADDR[i]}/30`, 'dev', VETH[i]);
      ip('-n', NS[i], 'link', 'set', VETH[i], 'up');
      ip('-n', NS[i], 'link', 'set', 'lo', 'up');
    }
    return undefined;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    return (e.stderr?.toString().trim() || e.message).split('\n')[0];
  }
}

function tearDown(): void {
  for (const ns of NS) {
    try {
      ip('netns', 'del', ns); // removes the veth end inside it, and so the pair
    } catch {
      // not created
    }
  }
}

const CASE: WorkerCase = { B: 1, H: 4, Hk: 2, T: 48, D: 8, causal: true, layout: 'striped', blockSize: 8 };

describe('ring across two hosts (network namespaces)', () => {
  let skip: string | undefined;
  before(() => {
    skip = setUp();
    if (skip) tearDown();
  });
  after(tearDown);

  const inHost = (i: number) => ['ip', 'netns', 'exec', NS[i], process.execPath, EXP];

  test('one rank per host over a veth pair: forward and gradients match vanilla', async (t) => {
    if (skip) return t.skip(`network namespaces unavailable here: ${skip}`);
    const s = secret();
    const env = (rank: number) => ({
      RANK: String(rank),
      WORLD_SIZE: '2',
      MASTER_ADDR: ADDR[0],
      MASTER_PORT: '29500',
      RING_BIND_ADDR: ADDR[rank],
      RING_SECRET: s,
    });
    const seed = (Math.random() * 2 ** 31) | 0;
    const args = workerArgs(CASE, ['--check', '--backward', `--seed=${seed}`]);
    const ranks = [0, 1].map((r) => start(args, env(r), 90_000, inHost(r)));
    const results = await Promise.all(ranks.map((p) => p.done));
    for (const [r, x] of results.entries()) {
      assert.equal(x.code, 0, `rank ${r} failed:\n${x.stderr}`);
      const out = jsonLines<{ maxRelErr: number; peers: string[] }>(x.stdout)[0];
      assert.ok(out.maxRelErr < 1e-4, `rank ${r}: ${out.maxRelErr} (seed ${seed})`);
      assert.deepEqual(
        out.peers.map((p) => p.replace(/:\d+$/, '')),
        ADDR.map((a) => `tcp://${a}`),
      );
    }
  });

  test('a rank bound to loopback (the default) cannot be reached from another host', async (t) => {
    if (skip) return t.skip(`network namespaces unavailable here: ${skip}`);
    const s = secret();
    const common = {
      WORLD_SIZE: '2',
      MASTER_PORT: '29500',
      RING_SECRET: s,
      RING_RENDEZVOUS_TIMEOUT_MS: '2500',
    };
    const r0 = start(workerArgs(CASE), { ...common, RANK: '0', MASTER_ADDR: '127.0.0.1' }, 60_000, inHost(0));
    const r1 = start(
      workerArgs(CASE),
      { ...common, RANK: '1', MASTER_ADDR: ADDR[0], RING_BIND_ADDR: ADDR[1] },
      60_000,
      inHost(1),
    );
    const [a, b] = await Promise.all([r0.done, r1.done]);
    assert.equal(a.code, 1, a.stderr);
    assert.match(a.stderr, /rank 1 never arrived/);
    assert.equal(b.code, 1, b.stderr);
    assert.match(
      b.stderr,
      new RegExp(`rendezvous with rank 0 at tcp://${ADDR[0].replaceAll('.', '\\.')}:29500: no answer`),
    );
  });
});
