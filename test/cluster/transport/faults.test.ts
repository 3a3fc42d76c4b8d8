// Faults of the multi-process ring (issue 9): a killed rank stops every other rank with a clear
// error within a stated time and leaves no process behind; a rank that never arrives fails the
// rendezvous after its timeout; a peer with the wrong secret is refused before anything is
// exchanged; ranks that disagree on shapes all fail naming the difference.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Dealer } from 'zeromq';
import {
  freePort,
  isAlive,
  jsonLines,
  type Proc,
  rankEnv,
  secret,
  start,
  type WorkerCase,
  waitForStderr,
  workerArgs,
} from './helpers.js';

const SMALL: WorkerCase = { B: 1, H: 2, Hk: 2, T: 32, D: 8, causal: true, layout: 'striped', blockSize: 8 };
/**
 * The launcher's grace after a rank fails. A survivor still running when it ends is "stalled" and
 * killed by the launcher, which says so; the test asserts the launcher never had to. This is the
 * event that matters (the ring stopped each survivor by itself), so no wall-clock window is
 * asserted: one of 15 s flaked under load (issue 21). Survivors notice within the heartbeat
 * timeout (10 s by default), far inside this generous bound.
 */
const GRACE_MS = 60_000;

function pidsOf(p: Proc, n: number): number[] {
  return Array.from({ length: n }, (_, r) => {
    const m = new RegExp(`exp launch: rank ${r} pid (\\d+)`).exec(p.stderr());
    assert.ok(m, `no pid for rank ${r}`);
    return Number(m[1]);
  });
}

describe('ring faults', () => {
  test('killing one of 3 ranks stops the others by themselves with a clear error, no orphans', async () => {
    const p = start([
      'launch',
      '--nproc=3',
      `--grace-ms=${GRACE_MS}`,
      '--',
      'exp',
      ...workerArgs({ ...SMALL, T: 48 }, ['--steps=1000000']),
    ]);
    for (let r = 0; r < 3; r++) await waitForStderr(p, `ring rank ${r}: joined a ring of 3`, 60_000);
    const pids = pidsOf(p, 3);
    await new Promise((r) => setTimeout(r, 300)); // a few steps in flight
    process.kill(pids[1], 'SIGKILL');
    const r = await p.done;
    assert.equal(r.code, 1, r.stderr);
    // the survivors stopped by themselves before the grace ended: the launcher blames no stalled
    // rank ("rank 0, 2 stalled (still running … ms after …; stopped by the launcher)")
    assert.doesNotMatch(r.stderr, /stalled/);
    assert.match(r.stderr, /exp launch: rank 1 failed \(killed by SIGKILL\); all 3 ranks stopped/);
    // each survivor names the failure
    for (const survivor of [0, 2])
      assert.match(
        r.stderr,
        new RegExp(
          `\\[rank ${survivor}\\] exp: RingCommError: ring rank ${survivor} .*ring aborted \\(rank 1 .*\\)`,
        ),
      );
    for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} still running`);
  });

  test('a rank that never arrives fails the rendezvous after its timeout', async () => {
    const port = await freePort();
    const p = start(workerArgs(SMALL), rankEnv(0, 2, port, secret(), { RING_RENDEZVOUS_TIMEOUT_MS: '2000' }));
    const r = await p.done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /rendezvous timed out after 2000 ms: rank 1 never arrived/);
    assert.equal(jsonLines(r.stdout).length, 0);
  });

  test('a rank with the wrong secret is refused and nothing is exchanged', async () => {
    const port = await freePort();
    const [good, bad] = [secret(), secret()];
    const env = { RING_RENDEZVOUS_TIMEOUT_MS: '4000' };
    const r0 = start(workerArgs(SMALL, ['--check']), rankEnv(0, 2, port, good, env));
    const r1 = start(workerArgs(SMALL, ['--check']), rankEnv(1, 2, port, bad, env));
    const [a, b] = await Promise.all([r0.done, r1.done]);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /refused this rank: authentication failed \(wrong shared secret\)/);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /refused a rendezvous peer: authentication failed/);
    assert.match(a.stderr, /rank 1 never arrived/);
    for (const x of [a, b]) {
      assert.equal(jsonLines(x.stdout).length, 0);
      for (const s of [good, bad]) assert.ok(!`${x.stdout}${x.stderr}`.includes(s), 'a secret was printed');
    }
  });

  test('an intruder without the secret, or with a malformed frame, is refused, then the real ring runs', async () => {
    const port = await freePort();
    const s = secret();
    const r0 = start(workerArgs(SMALL, ['--check', '--backward']), rankEnv(0, 2, port, s));
    // a frame that breaks the wire format is refused by name, not parsed to {} (issue 13)
    const garbler = new Dealer({ linger: 0, receiveTimeout: 20_000 });
    try {
      garbler.connect(`tcp://127.0.0.1:${port}`);
      await garbler.send(['HELLO', '{"nonce":']);
      const [t, body] = await garbler.receive();
      assert.equal(t.toString(), 'REFUSED');
      assert.match(body.toString(), /malformed HELLO message: the body is not JSON/);
    } finally {
      garbler.close();
    }
    const intruder = new Dealer({ linger: 0, receiveTimeout: 20_000 });
    try {
      intruder.connect(`tcp://127.0.0.1:${port}`);
      await intruder.send(['HELLO', JSON.stringify({ nonce: 'ab' })]);
      const [t1] = await intruder.receive();
      assert.equal(t1.toString(), 'CHALLENGE'); // a random nonce: nothing about the ring
      await intruder.send(['AUTH', JSON.stringify({ rank: 1, proof: 'f'.repeat(64) })]);
      const [t2, body] = await intruder.receive();
      assert.equal(t2.toString(), 'REFUSED');
      assert.match(body.toString(), /authentication failed/);
      // anything further is ignored: a JOIN gets no answer, so no ring addresses leak
      await intruder.send(['JOIN', JSON.stringify({ rank: 1, worldSize: 2 })]);
      intruder.receiveTimeout = 1000;
      await assert.rejects(intruder.receive(), (e: { code?: string }) => e.code === 'EAGAIN');
    } finally {
      intruder.close();
    }
    const r1 = start(workerArgs(SMALL, ['--check', '--backward']), rankEnv(1, 2, port, s));
    const [a, b] = await Promise.all([r0.done, r1.done]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    for (const x of [a, b]) assert.ok(jsonLines<{ maxRelErr: number }>(x.stdout)[0].maxRelErr < 1e-4);
  });

  test('an intruder on a ring link is refused and its frames are ignored', async () => {
    const port = await freePort();
    const s = secret();
    const args = workerArgs(SMALL, ['--check', '--backward', '--steps=150']);
    const r0 = start(args, rankEnv(0, 2, port, s));
    const r1 = start(args, rankEnv(1, 2, port, s));
    await waitForStderr(r1, 'ring rank 1: joined', 60_000);
    const link = /links (\S+) (\S+)/.exec(r1.stderr())![2]; // rank 1's listener, fed by rank 0
    const intruder = new Dealer({ linger: 0, receiveTimeout: 20_000 });
    try {
      intruder.connect(link);
      await intruder.send(['HELLO', JSON.stringify({ nonce: 'cd' })]);
      assert.equal((await intruder.receive())[0].toString(), 'CHALLENGE');
      await intruder.send(['AUTH', JSON.stringify({ rank: 0, proof: '0'.repeat(64) })]);
      const [t, body] = await intruder.receive();
      assert.equal(t.toString(), 'REFUSED');
      assert.match(body.toString(), /authentication failed/);
      // a forged K/V frame after the refusal must not reach the computation
      const junk = new Float32Array(2 * 2 * 16 * 8).fill(1e6);
      await intruder.send([
        'D',
        Buffer.from(Int32Array.of(2, junk.length / 2, junk.length / 2).buffer),
        Buffer.from(junk.buffer),
      ]);
    } finally {
      intruder.close();
    }
    const [a, b] = await Promise.all([r0.done, r1.done]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /refused a link\/\S+ peer: authentication failed/);
    for (const x of [a, b]) assert.ok(jsonLines<{ maxRelErr: number }>(x.stdout)[0].maxRelErr < 1e-4);
  });

  test('ranks that disagree on shapes all fail, naming what differs', async () => {
    const port = await freePort();
    const s = secret();
    const r0 = start(workerArgs(SMALL), rankEnv(0, 2, port, s));
    const r1 = start(workerArgs({ ...SMALL, T: 48 }), rankEnv(1, 2, port, s));
    for (const x of await Promise.all([r0.done, r1.done])) {
      assert.equal(x.code, 1);
      assert.match(
        x.stderr,
        /ranks disagree: .*rank 1 has k\/v shard shape \[1,2,24,8\], rank 0 has \[1,2,16,8\]/,
      );
      assert.match(x.stderr, /rank 1 has sequence length 48, rank 0 has 32/);
    }
  });

  test('SIGTERM to the launcher stops every rank', async () => {
    const p = start(['launch', '--nproc=2', '--', 'exp', ...workerArgs(SMALL, ['--steps=1000000'])]);
    for (let r = 0; r < 2; r++) await waitForStderr(p, `ring rank ${r}: joined a ring of 2`, 60_000);
    const pids = pidsOf(p, 2);
    process.kill(p.pid, 'SIGTERM');
    const r = await p.done;
    assert.equal(r.code, 143, r.stderr);
    assert.match(r.stderr, /interrupted by SIGTERM; all 2 ranks stopped/);
    for (const pid of pids) assert.equal(isAlive(pid), false);
  });
});
