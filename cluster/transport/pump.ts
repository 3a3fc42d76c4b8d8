/**
 * The socket pump of the ZeroMQ transport: a worker thread of each rank process that owns every
 * socket (issue 9). The compute thread blocks in the transport's synchronous send/recv on
 * shared-memory slots; this thread moves those slots over TCP with ZeroMQ, so the next K/V block
 * travels while the compute thread works (paper Algorithm 1: the send overlaps the compute).
 *
 * Sockets of rank r:
 * - rendezvous/control: rank 0 binds a ROUTER at MASTER_PORT; every other rank connects a DEALER.
 *   Used to authenticate, agree on world size / protocol / shapes / dtype, publish the link
 *   addresses, then for heartbeats, abort broadcasts and the closing barrier.
 * - ring link in: a ROUTER bound on this rank's interface; only rank r − 1, once authenticated,
 *   may send data into it.
 * - ring link out: a DEALER connected to rank r + 1's link listener.
 *
 * Authentication: HMAC-SHA256 challenge–response with the shared secret, both ways, before any
 * data or metadata is exchanged; a peer that fails is answered REFUSED and ignored from then on.
 * Data frames are raw float32 bytes (no JSON); control messages are small JSON objects.
 */
import { randomBytes } from 'node:crypto';
import { writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Dealer, Router } from 'zeromq';
import { ChannelEnd } from './shared-memory.js';
import { RingCommError } from '../../ring/index.js';
import {
  abortReason,
  differences,
  type JoinInfo,
  PROTOCOL_VERSION,
  type PumpCommand,
  type PumpInit,
  type PumpReply,
  proof,
  proofMatches,
  setAbort,
} from './zeromq-protocol.js';

const init = workerData as PumpInit;
const port = parentPort!;
const { rank, worldSize: N, secret } = init;
const next = (rank + 1) % N;
const prev = (rank - 1 + N) % N;
const control32 = new Int32Array(init.control);
const PING_MS = 250;
const LINGER_MS = 1000;

function log(message: string): void {
  // NOTE: straight to fd 2: the main thread may be blocked in Atomics.wait, and a worker's
  // process.stderr is relayed through it
  writeSync(2, `ring rank ${rank}: ${message}\n`);
}

function reply(msg: PumpReply): void {
  port.postMessage(msg);
}

const outbound = new ChannelEnd(init.outbound, control32, Number.POSITIVE_INFINITY, `rank ${rank} pump`, () =>
  abortReason(init.control),
);
const inbound = new ChannelEnd(init.inbound, control32, Number.POSITIVE_INFINITY, `rank ${rank} pump`, () =>
  abortReason(init.control),
);

/** One outstanding send per socket: zeromq.js refuses concurrent sends on a socket. */
class Serial {
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly sock: Dealer | Router) {}
  send(frames: (Buffer | string)[]): Promise<void> {
    const p = this.chain.then(() => this.sock.send(frames));
    this.chain = p.catch(() => undefined);
    return p;
  }
}

const json = (v: unknown) => JSON.stringify(v);
function parse(b: Buffer | undefined): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(b?.toString('utf8') ?? '{}');
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
const nonce = () => randomBytes(16).toString('hex');

// ---- state -------------------------------------------------------------------------------

let phase: 'rendezvous' | 'running' | 'closing' | 'closed' = 'rendezvous';
let sentDone = false;
const sockets: (Dealer | Router)[] = [];
let serverOut: Serial | undefined;
const rankIds = new Map<number, Buffer>(); // rank 0: control routing id of each joined rank
let controlClient: Dealer | undefined; // ranks > 0
let clientOut: Serial | undefined;
let session = '';

function wakeChannels(): void {
  for (const ch of [init.outbound, init.inbound]) {
    const h = new Int32Array(ch.header);
    for (let i = 0; i < h.length; i++) Atomics.notify(h, i);
  }
}

/** Stops the ring here (first reason wins) and tells the others through rank 0. */
function fail(reason: string, fromRank0 = false): void {
  if (!setAbort(init.control, reason)) return;
  wakeChannels();
  if (phase === 'closed') return;
  if (rank === 0) broadcast('ABORT', { reason });
  else if (!fromRank0) void clientOut?.send(['ABORT', json({ reason })]).catch(() => undefined);
  // give the abort message time to leave before the sockets go
  setTimeout(() => void shutdown(), 300);
}

function broadcast(type: string, body: unknown): void {
  for (const id of rankIds.values()) void serverOut?.send([id, type, json(body)]).catch(() => undefined);
}

async function shutdown(): Promise<void> {
  if (phase === 'closed') return;
  phase = 'closed';
  for (const t of timers) clearInterval(t);
  for (const s of sockets) {
    s.linger = LINGER_MS;
    s.close();
  }
}

const timers: NodeJS.Timeout[] = [];

// ---- authentication ------------------------------------------------------------------------

/**
 * Server side of the challenge–response, shared by the rendezvous and the link listener.
 * `claim` checks the rank a client claims; a client that fails is refused and ignored.
 */
class Gate {
  private readonly pending = new Map<string, { nonce: string; clientNonce: string }>();
  private readonly refused = new Set<string>();
  readonly authed = new Map<string, number>(); // routing id → rank

  constructor(
    private readonly label: string,
    private readonly out: Serial,
    private readonly claim: (rank: number) => string | undefined,
    private readonly onAuthed: (key: string, rank: number) => void = () => undefined,
  ) {}

  /** Handles HELLO/AUTH; true when the message was part of the handshake (or from a refused peer). */
  async handle(id: Buffer, type: string, body: Buffer | undefined): Promise<boolean> {
    const key = id.toString('hex');
    if (this.refused.has(key)) return true;
    if (type === 'HELLO') {
      const clientNonce = String(parse(body).nonce ?? '');
      const n = nonce();
      this.pending.set(key, { nonce: n, clientNonce });
      await this.out.send([id, 'CHALLENGE', json({ nonce: n })]);
      return true;
    }
    if (type === 'AUTH') {
      const p = this.pending.get(key);
      this.pending.delete(key);
      const b = parse(body);
      const claimed = Number(b.rank);
      let why: string | undefined;
      if (!p) why = 'no challenge was issued';
      else if (
        !proofMatches(proof(secret, this.label, 'client', String(claimed), p.clientNonce, p.nonce), b.proof)
      )
        why = 'authentication failed (wrong shared secret)';
      else why = this.claim(claimed);
      if (why) {
        this.refused.add(key);
        log(`refused a ${this.label} peer: ${why}`);
        await this.out.send([id, 'REFUSED', json({ reason: why })]);
        return true;
      }
      this.authed.set(key, claimed);
      const ok = proof(secret, this.label, 'server', String(claimed), p!.clientNonce, p!.nonce);
      await this.out.send([id, 'WELCOME', json({ proof: ok })]);
      this.onAuthed(key, claimed);
      return true;
    }
    return !this.authed.has(key);
  }
}

async function receiveBy(sock: Dealer, deadline: number, what: string): Promise<Buffer[]> {
  const left = Math.max(1, Math.round(deadline - Date.now()));
  sock.receiveTimeout = left;
  try {
    return await sock.receive();
  } catch (err) {
    if ((err as { code?: string }).code === 'EAGAIN')
      throw new RingCommError(
        `${what}: no answer within the rendezvous timeout (${init.rendezvousTimeoutMs} ms)`,
      );
    throw err;
  }
}

/** Client side: proves the secret to the listener and checks its proof. */
async function authenticate(
  sock: Dealer,
  out: Serial,
  label: string,
  what: string,
  deadline: number,
): Promise<void> {
  const mine = nonce();
  await out.send(['HELLO', json({ nonce: mine })]);
  let [type, body] = await receiveBy(sock, deadline, what);
  if (type.toString() !== 'CHALLENGE')
    throw new RingCommError(`${what}: unexpected '${type}' during the handshake`);
  const theirs = String(parse(body).nonce ?? '');
  await out.send(['AUTH', json({ rank, proof: proof(secret, label, 'client', String(rank), mine, theirs) })]);
  [type, body] = await receiveBy(sock, deadline, what);
  if (type.toString() === 'REFUSED')
    throw new RingCommError(`${what} refused this rank: ${parse(body).reason}`);
  if (
    type.toString() !== 'WELCOME' ||
    !proofMatches(proof(secret, label, 'server', String(rank), mine, theirs), parse(body).proof)
  )
    throw new RingCommError(
      `${what} could not prove the shared secret (RING_SECRET differs?); nothing was exchanged`,
    );
}

// ---- rendezvous ----------------------------------------------------------------------------

interface Rendezvous {
  peers: string[];
  session: string;
}

function myJoin(link: string): JoinInfo {
  return {
    rank,
    worldSize: N,
    protocol: PROTOCOL_VERSION,
    spec: init.spec,
    link,
    host: hostname(),
    pid: process.pid,
  };
}

/** Rank 0: waits for every rank to authenticate and join, checks they agree, publishes the links. */
async function serveRendezvous(link: string): Promise<Rendezvous> {
  const server = new Router({ linger: LINGER_MS });
  sockets.push(server);
  serverOut = new Serial(server);
  const endpoint = `tcp://${init.bindAddr}:${init.masterPort}`;
  try {
    await server.bind(endpoint);
  } catch (err) {
    throw new RingCommError(`rendezvous: rank 0 cannot listen on ${endpoint}: ${(err as Error).message}`);
  }
  const gate = new Gate('rendezvous', serverOut, (r) =>
    !Number.isInteger(r) || r < 1 || r >= N
      ? `rank ${r} is out of range for world size ${N}`
      : [...rankIds.keys()].includes(r)
        ? `rank ${r} has already joined`
        : undefined,
  );
  const joins = new Map<number, JoinInfo>([[0, myJoin(link)]]);
  const s = nonce();
  const lastSeen = new Map<number, number>();
  let settled = false;
  const done = new Set<number>();

  return new Promise<Rendezvous>((resolve, reject) => {
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      const missing = Array.from({ length: N }, (_, r) => r).filter((r) => !joins.has(r));
      const message = `rendezvous timed out after ${init.rendezvousTimeoutMs} ms: rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} never arrived`;
      broadcast('ERROR', { message });
      reject(new RingCommError(message));
    }, init.rendezvousTimeoutMs);

    const finishJoin = () => {
      if (joins.size < N || settled) return;
      settled = true;
      clearTimeout(timer);
      const mine = joins.get(0)!;
      const diffs = [...joins.values()].filter((j) => j.rank !== 0).flatMap((j) => differences(mine, j));
      if (diffs.length) {
        const message = `rendezvous: ranks disagree: ${diffs.join('; ')}`;
        broadcast('ERROR', { message });
        reject(new RingCommError(message));
        return;
      }
      const peers = Array.from({ length: N }, (_, r) => joins.get(r)!.link);
      for (const r of rankIds.keys()) lastSeen.set(r, Date.now());
      broadcast('PEERS', { peers, session: s });
      resolve({ peers, session: s });
    };

    const onDone = () => {
      if (done.size === N) {
        broadcast('CLOSE', {});
        closeBarrier?.();
      }
    };
    barrierArrive = () => {
      done.add(0);
      onDone();
    };

    timers.push(
      setInterval(() => {
        if (phase !== 'running' && phase !== 'closing') return;
        const now = Date.now();
        for (const [r, t] of lastSeen)
          if (now - t > init.heartbeatTimeoutMs && !done.has(r))
            fail(`rank ${r} stopped responding (no heartbeat for ${init.heartbeatTimeoutMs} ms)`);
      }, PING_MS),
    );
    server.events.on('disconnect', () => {
      if (phase !== 'running') return;
      // which rank went is not in the event; its neighbour usually reports it within a moment,
      // else the heartbeat names it
      setTimeout(() => {
        if (phase !== 'running') return;
        const now = Date.now();
        const silent = [...lastSeen]
          .filter(([r, t]) => now - t > 2 * PING_MS && !done.has(r))
          .map(([r]) => r);
        if (silent.length) fail(`rank ${silent.join(', ')} disconnected from rank 0 (process died?)`);
      }, 4 * PING_MS);
    });

    void (async () => {
      try {
        for await (const [id, t, body] of server) {
          const type = t?.toString() ?? '';
          if (await gate.handle(id, type, body)) continue;
          const r = gate.authed.get(id.toString('hex'))!;
          lastSeen.set(r, Date.now());
          if (type === 'JOIN') {
            const b = parse(body) as unknown as JoinInfo;
            joins.set(r, { ...b, rank: r });
            rankIds.set(r, id);
            finishJoin();
          } else if (type === 'PING') {
            void serverOut!.send([id, 'PONG', '{}']).catch(() => undefined);
          } else if (type === 'ABORT') {
            fail(String(parse(body).reason ?? `rank ${r} aborted`));
          } else if (type === 'DONE') {
            done.add(r);
            onDone();
          }
        }
      } catch (err) {
        if (phase !== 'closed') fail(`rank 0's rendezvous socket failed: ${(err as Error).message}`);
      }
    })();
  });
}

let barrierArrive: (() => void) | undefined;
let closeBarrier: (() => void) | undefined;

/** Ranks > 0: authenticate with rank 0, join, and wait for the link addresses. */
async function joinRendezvous(link: string): Promise<Rendezvous> {
  const client = new Dealer({ linger: LINGER_MS });
  sockets.push(client);
  controlClient = client;
  clientOut = new Serial(client);
  const endpoint = `tcp://${init.masterAddr}:${init.masterPort}`;
  const what = `rendezvous with rank 0 at ${endpoint}`;
  const deadline = Date.now() + init.rendezvousTimeoutMs;
  client.connect(endpoint);
  await authenticate(client, clientOut, 'rendezvous', what, deadline);
  await clientOut.send(['JOIN', json(myJoin(link))]);
  for (;;) {
    const [t, body] = await receiveBy(client, deadline, what);
    const type = t.toString();
    const b = parse(body);
    if (type === 'ERROR' || type === 'ABORT') throw new RingCommError(String(b.message ?? b.reason));
    if (type === 'PEERS') return { peers: b.peers as string[], session: String(b.session) };
  }
}

/** Ranks > 0 after the rendezvous: heartbeats to rank 0, and its ABORT/CLOSE messages. */
function runControlClient(): void {
  const client = controlClient!;
  let lastFromRank0 = Date.now();
  timers.push(
    setInterval(() => {
      if (phase === 'closed') return;
      void clientOut!.send(['PING', '{}']).catch(() => undefined);
      if (Date.now() - lastFromRank0 > init.heartbeatTimeoutMs)
        fail(`rank 0 stopped responding (no heartbeat for ${init.heartbeatTimeoutMs} ms)`);
    }, PING_MS),
  );
  client.events.on('disconnect', () => {
    if (phase === 'running') fail('rank 0 disconnected (process died?)');
    // while closing, rank 0 leaves right after its CLOSE, which may be read after this event
    else if (phase === 'closing')
      setTimeout(() => {
        if (phase === 'closing') fail('rank 0 disconnected during shutdown');
      }, 500);
  });
  void (async () => {
    client.receiveTimeout = -1;
    try {
      for await (const [t, body] of client) {
        lastFromRank0 = Date.now();
        const type = t.toString();
        if (type === 'ABORT') fail(String(parse(body).reason ?? 'rank 0 aborted'), true);
        else if (type === 'CLOSE') closeBarrier?.();
      }
    } catch (err) {
      if (phase !== 'closed') fail(`control socket failed: ${(err as Error).message}`);
    }
  })();
}

// ---- ring links ----------------------------------------------------------------------------

function toFloats(b: Buffer): Float32Array {
  if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new Float32Array(copy.buffer);
}

async function bindLink(): Promise<{ listener: Router; advertised: string }> {
  const listener = new Router({ linger: LINGER_MS });
  sockets.push(listener);
  const endpoint = `tcp://${init.bindAddr}:${init.linkPort || '*'}`;
  try {
    await listener.bind(endpoint);
  } catch (err) {
    throw new RingCommError(`rank ${rank}: cannot listen on ${endpoint}: ${(err as Error).message}`);
  }
  const bound = listener.lastEndpoint ?? endpoint;
  const portNumber = bound.slice(bound.lastIndexOf(':') + 1);
  return { listener, advertised: `tcp://${init.advertiseAddr}:${portNumber}` };
}

/** Accepts rank − 1 on the link listener and moves its data frames into the inbound slots. */
function serveLink(listener: Router, ready: () => void): void {
  const out = new Serial(listener);
  let prevKey: string | undefined;
  const gate = new Gate(
    `link/${session}`,
    out,
    (r) =>
      r !== prev
        ? `rank ${r} is not rank ${rank}'s ring predecessor (rank ${prev})`
        : prevKey !== undefined
          ? `rank ${prev} is already linked`
          : undefined,
    (key) => {
      prevKey = key;
      ready();
    },
  );
  void (async () => {
    try {
      for await (const [id, t, ...rest] of listener) {
        const type = t?.toString() ?? '';
        if (await gate.handle(id, type, rest[0])) continue;
        if (id.toString('hex') !== prevKey || type !== 'D') continue;
        const header = new Int32Array(Uint8Array.from(rest[0]).buffer);
        const parts = rest.slice(1, 1 + header[0]).map(toFloats);
        await inbound.writeAsync(parts);
      }
    } catch (err) {
      if (phase !== 'closed' && !(err instanceof RingCommError))
        fail(`rank ${rank}: link from rank ${prev} failed: ${(err as Error).message}`);
    }
  })();
}

/** Connects to rank + 1, authenticates, then sends every outbound slot as raw frames. */
async function connectLink(peer: string, deadline: number): Promise<void> {
  const sock = new Dealer({ linger: LINGER_MS });
  sockets.push(sock);
  const out = new Serial(sock);
  sock.connect(peer);
  await authenticateLink(sock, out, peer, deadline);
  sock.events.on('disconnect', () => {
    if (phase === 'running' || (phase === 'closing' && !sentDone))
      fail(`rank ${next} at ${peer} disconnected (process died?)`);
  });
  void (async () => {
    try {
      for (;;) {
        const parts = await outbound.readAsync();
        const header = Int32Array.from([parts.length, ...parts.map((p) => p.length)]);
        // each part is a fresh copy of its slot (ChannelEnd.read), so zero-copy sending is safe
        await out.send([
          'D',
          Buffer.from(header.buffer),
          ...parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)),
        ]);
      }
    } catch (err) {
      if (phase !== 'closed' && !(err instanceof RingCommError))
        fail(`rank ${rank}: link to rank ${next} failed: ${(err as Error).message}`);
    }
  })();
}

async function authenticateLink(sock: Dealer, out: Serial, peer: string, deadline: number): Promise<void> {
  await authenticate(sock, out, `link/${session}`, `ring link to rank ${next} at ${peer}`, deadline);
}

// ---- main ----------------------------------------------------------------------------------

async function start(): Promise<void> {
  const { listener, advertised } = await bindLink();
  const rv = rank === 0 ? await serveRendezvous(advertised) : await joinRendezvous(advertised);
  session = rv.session;
  if (rank !== 0) runControlClient();
  if (N > 1) {
    const deadline = Date.now() + init.rendezvousTimeoutMs;
    const fromPrev = new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () =>
          reject(
            new RingCommError(
              `rank ${rank}: rank ${prev} did not open its ring link within ${init.rendezvousTimeoutMs} ms`,
            ),
          ),
        init.rendezvousTimeoutMs,
      );
      serveLink(listener, () => {
        clearTimeout(t);
        resolve();
      });
    });
    await connectLink(rv.peers[next], deadline);
    await fromPrev;
  }
  phase = 'running';
  if (init.launcherPid !== undefined) {
    timers.push(
      setInterval(() => {
        if (process.ppid !== init.launcherPid) fail(`the launcher (pid ${init.launcherPid}) is gone`);
      }, 500),
    );
  }
  reply({ type: 'ready', peers: rv.peers, session: rv.session });
}

/** The closing barrier: every rank says DONE to rank 0, which answers CLOSE once all have. */
async function close(timeoutMs: number): Promise<void> {
  if (phase !== 'running') return;
  phase = 'closing';
  const barrier = new Promise<void>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new RingCommError(`rank ${rank}: closing barrier timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    closeBarrier = () => {
      clearTimeout(t);
      resolve();
    };
  });
  sentDone = true;
  if (rank === 0) barrierArrive?.();
  else await clientOut?.send(['DONE', '{}']);
  await barrier;
  // NOTE: raise the flag so the pump loops stop; later use of the transport says it is closed
  setAbort(init.control, 'the transport was closed');
  wakeChannels();
  await new Promise((r) => setTimeout(r, rank === 0 ? 100 : 0));
  await shutdown();
}

/** Answers the main thread and lets this thread end (terminating a worker that holds zeromq sockets crashes). */
function finish(msg: PumpReply): void {
  reply(msg);
  port.close();
}

port.on('message', (cmd: PumpCommand) => {
  if (cmd.type === 'abort') {
    fail(cmd.reason);
    setTimeout(() => void shutdown().then(() => finish({ type: 'closed' })), 400);
  } else if (cmd.type === 'close') {
    close(cmd.timeoutMs).then(
      () => finish({ type: 'closed' }),
      (err: Error) => {
        fail(err.message);
        setTimeout(() => void shutdown().then(() => finish({ type: 'failed', message: err.message })), 400);
      },
    );
  }
});

start().catch((err: Error) => {
  const message = err instanceof RingCommError ? err.message : `rank ${rank}: ${err.message}`;
  fail(message);
  setTimeout(() => void shutdown().then(() => finish({ type: 'failed', message })), 300);
});
