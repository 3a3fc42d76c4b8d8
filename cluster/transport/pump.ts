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
 * Authentication: handshake.ts. Frames: wire.ts (typed; a malformed frame from an authenticated
 * peer fails the ring, one from anyone else gets the peer refused).
 *
 * The state lives in one `Pump` per thread (issue 13). It waits on events, never on guessed
 * sleeps: an abort or the closing barrier closes rank 0's sockets once the other ranks have left
 * (their disconnects) or LINGER_MS has passed, so no rank mistakes rank 0's exit for a failure;
 * every other rank closes as soon as rank 0 has answered. The one periodic timer is the
 * heartbeat tick, which also judges disconnects: which rank a ROUTER lost is not in the event.
 */
import { writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { Dealer, Router } from 'zeromq';
import { RingCommError } from '../../ring/index.js';
import { authenticate, Gate, nonce, receiveBy, Serial } from './handshake.js';
import { ChannelEnd } from './shared-memory.js';
import { type ControlMessage, DATA_TYPE, decodeControl, decodeData, encodeData } from './wire.js';
import {
  abortReason,
  differences,
  type JoinInfo,
  PROTOCOL_VERSION,
  type PumpCommand,
  type PumpInit,
  type PumpReply,
  setAbort,
} from './zeromq-protocol.js';

/** Heartbeat period; a rank is declared gone after `heartbeatTimeoutMs` of silence. */
const PING_MS = 250;
/** How long closing sockets keep delivering queued messages, and rank 0 waits for the others to leave. */
const LINGER_MS = 1000;
/** After a disconnect on rank 0's ROUTER, its neighbour usually names the rank first; else, after this, rank 0 does. */
const DISCONNECT_JUDGE_MS = 4 * PING_MS;
/** A rank that has pinged within this is alive. */
const SILENT_MS = 2 * PING_MS;

type Phase = 'rendezvous' | 'running' | 'closing' | 'closed';

/** A promise with its resolve at hand: the events the pump waits on. */
class Signal {
  readonly promise: Promise<void>;
  resolve: () => void = () => undefined;
  constructor() {
    this.promise = new Promise<void>((r) => {
      this.resolve = r;
    });
  }
}

/** Resolves with `p`, or after `ms` when it has not settled by then. */
function within(p: Promise<void>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<void>((r) => (t = setTimeout(r, ms)))]).finally(() => clearTimeout(t));
}

/** Rank 0's side of the control socket. */
interface ControlServer {
  sock: Router;
  out: Serial;
  /** Routing id of each joined rank. */
  rankIds: Map<number, Buffer>;
  /** Last message from each rank (ms). */
  lastSeen: Map<number, number>;
  /** Ranks at the closing barrier (0 included once it arrives). */
  done: Set<number>;
  /** Connections open now (accepts − disconnects); `left` fires when it reaches 0. */
  connections: number;
  left: Signal;
  /** When a connection dropped while running, not yet judged. */
  disconnectedAt?: number;
}

/** A rank > 0's side of the control socket. */
interface ControlClient {
  sock: Dealer;
  out: Serial;
  lastFromRank0: number;
  /** Set once the rendezvous is over and this rank reads rank 0's messages and sends heartbeats. */
  listening: boolean;
  /** When rank 0 disconnected while this rank was closing. */
  disconnectedAt?: number;
  /** Fires when rank 0 has answered this rank's ABORT (its broadcast) or gone. */
  answered: Signal;
}

interface Rendezvous {
  peers: string[];
  session: string;
}

class Pump {
  private readonly rank: number;
  private readonly N: number;
  private readonly next: number;
  private readonly prev: number;
  private readonly outbound: ChannelEnd;
  private readonly inbound: ChannelEnd;
  private phase: Phase = 'rendezvous';
  private sentDone = false;
  private readonly sockets: (Dealer | Router)[] = [];
  private readonly ticker: NodeJS.Timeout;
  private server?: ControlServer;
  private client?: ControlClient;
  /** The closing barrier: fires on rank 0's CLOSE (rank 0: once all have arrived and it has sent CLOSE). */
  private barrier?: Signal;
  private failing?: Promise<void>;

  constructor(
    private readonly init: PumpInit,
    private readonly port: MessagePort,
  ) {
    this.rank = init.rank;
    this.N = init.worldSize;
    this.next = (this.rank + 1) % this.N;
    this.prev = (this.rank - 1 + this.N) % this.N;
    const control32 = new Int32Array(init.control);
    const reason = () => abortReason(init.control);
    const what = `rank ${this.rank} pump`;
    this.outbound = new ChannelEnd(init.outbound, control32, Number.POSITIVE_INFINITY, what, reason);
    this.inbound = new ChannelEnd(init.inbound, control32, Number.POSITIVE_INFINITY, what, reason);
    this.ticker = setInterval(() => this.tick(), PING_MS);
    port.on('message', (cmd: PumpCommand) => void this.command(cmd));
  }

  private log(message: string): void {
    // NOTE: straight to fd 2: the main thread may be blocked in Atomics.wait, and a worker's
    // process.stderr is relayed through it
    writeSync(2, `ring rank ${this.rank}: ${message}\n`);
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /** Binds, meets the other ranks, links the ring, then tells the main thread it is ready. */
  async start(): Promise<void> {
    try {
      const { listener, advertised } = await this.bindLink();
      const rv =
        this.rank === 0 ? await this.serveRendezvous(advertised) : await this.joinRendezvous(advertised);
      if (this.rank !== 0) this.runControlClient();
      const deadline = Date.now() + this.init.rendezvousTimeoutMs;
      const fromPrev = this.serveLink(listener, rv.session, deadline);
      fromPrev.catch(() => undefined); // awaited below; a failing connectLink must not leave it unhandled
      await this.connectLink(rv.peers[this.next], rv.session, deadline);
      await fromPrev;
      this.phase = 'running';
      this.reply({ type: 'ready', peers: rv.peers, session: rv.session });
    } catch (err) {
      const message =
        err instanceof RingCommError ? err.message : `rank ${this.rank}: ${(err as Error).message}`;
      await this.fail(message);
      this.finish({ type: 'failed', message });
    }
  }

  private async command(cmd: PumpCommand): Promise<void> {
    if (cmd.type === 'abort') {
      await this.fail(cmd.reason);
      this.shutdown();
      this.finish({ type: 'closed' });
      return;
    }
    try {
      await this.close(cmd.timeoutMs);
      this.finish({ type: 'closed' });
    } catch (err) {
      await this.fail((err as Error).message);
      this.finish({ type: 'failed', message: (err as Error).message });
    }
  }

  /** The closing barrier: every rank says DONE to rank 0, which answers CLOSE once all have. */
  private async close(timeoutMs: number): Promise<void> {
    if (this.phase !== 'running') return;
    this.phase = 'closing';
    const barrier = new Signal();
    this.barrier = barrier;
    this.sentDone = true;
    if (this.server) this.arrive(0);
    else await this.client?.out.send({ type: 'DONE' });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new RingCommError(`rank ${this.rank}: closing barrier timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    await Promise.race([barrier.promise, timeout]).finally(() => clearTimeout(timer));
    // NOTE: raise the flag so the link loops stop; later use of the transport says it is closed
    setAbort(this.init.control, 'the transport was closed');
    this.wakeChannels();
    await this.leaveLast();
    this.shutdown();
  }

  /** Rank 0 only: `r` reached the barrier; once all have, CLOSE goes out and the barrier opens. */
  private arrive(r: number): void {
    const s = this.server!;
    s.done.add(r);
    if (s.done.size === this.N) void this.broadcast({ type: 'CLOSE' }).then(() => this.barrier?.resolve());
  }

  /**
   * Stops the ring here (first reason wins), tells the others through rank 0, and closes the
   * sockets once the message is out: rank 0 when the other ranks have left, a rank > 0 when rank 0
   * has answered (or after LINGER_MS, for ranks that died and never will).
   */
  private fail(reason: string, fromRank0 = false): Promise<void> {
    if (!setAbort(this.init.control, reason)) return this.failing ?? Promise.resolve();
    this.wakeChannels();
    this.failing = (async () => {
      if (this.phase === 'closed') return;
      if (this.server) await this.broadcast({ type: 'ABORT', reason });
      else if (this.client && !fromRank0) {
        await this.client.out.send({ type: 'ABORT', reason }).catch(() => undefined);
        // rank 0's broadcast answers it; nobody reads rank 0's messages before the rendezvous ends
        if (this.client.listening) await within(this.client.answered.promise, LINGER_MS);
      }
      await this.leaveLast();
      this.shutdown();
    })();
    return this.failing;
  }

  /** Rank 0 waits (at most LINGER_MS) until every other rank has disconnected. */
  private async leaveLast(): Promise<void> {
    if (this.server && this.server.connections > 0) await within(this.server.left.promise, LINGER_MS);
  }

  private shutdown(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    clearInterval(this.ticker);
    for (const s of this.sockets) {
      s.linger = LINGER_MS;
      s.close();
    }
  }

  /** Answers the main thread and lets this thread end (terminating a worker that holds zeromq sockets crashes). */
  private finish(msg: PumpReply): void {
    this.reply(msg);
    this.port.close();
  }

  private reply(msg: PumpReply): void {
    this.port.postMessage(msg);
  }

  private wakeChannels(): void {
    for (const ch of [this.init.outbound, this.init.inbound]) {
      const h = new Int32Array(ch.header);
      for (let i = 0; i < h.length; i++) Atomics.notify(h, i);
    }
  }

  /** Heartbeats, silence and disconnect judgements, and the launcher watch, every PING_MS. */
  private tick(): void {
    if (this.phase === 'closed') return;
    const now = Date.now();
    const { heartbeatTimeoutMs: timeout, launcherPid } = this.init;
    const c = this.client;
    if (c?.listening) {
      void c.out.send({ type: 'PING' }).catch(() => undefined);
      if (now - c.lastFromRank0 > timeout)
        void this.fail(`rank 0 stopped responding (no heartbeat for ${timeout} ms)`);
      // while closing, rank 0 leaves right after its CLOSE, which may be read after the disconnect
      if (c.disconnectedAt !== undefined && now - c.disconnectedAt >= SILENT_MS && this.phase === 'closing')
        void this.fail('rank 0 disconnected during shutdown');
    }
    if (this.phase !== 'running' && this.phase !== 'closing') return;
    if (launcherPid !== undefined && process.ppid !== launcherPid)
      void this.fail(`the launcher (pid ${launcherPid}) is gone`);
    const s = this.server;
    if (s) {
      for (const [r, t] of s.lastSeen)
        if (now - t > timeout && !s.done.has(r))
          void this.fail(`rank ${r} stopped responding (no heartbeat for ${timeout} ms)`);
      if (s.disconnectedAt !== undefined && now - s.disconnectedAt >= DISCONNECT_JUDGE_MS) {
        s.disconnectedAt = undefined;
        const silent = [...s.lastSeen]
          .filter(([r, t]) => now - t > SILENT_MS && !s.done.has(r))
          .map(([r]) => r);
        if (this.phase === 'running' && silent.length)
          void this.fail(`rank ${silent.join(', ')} disconnected from rank 0 (process died?)`);
      }
    }
  }

  // ---- rendezvous ----------------------------------------------------------------------------

  private myJoin(link: string): JoinInfo {
    return {
      rank: this.rank,
      worldSize: this.N,
      protocol: PROTOCOL_VERSION,
      spec: this.init.spec,
      link,
      host: hostname(),
      pid: process.pid,
    };
  }

  private broadcast(msg: ControlMessage): Promise<void> {
    const s = this.server;
    if (!s) return Promise.resolve();
    return Promise.all([...s.rankIds.values()].map((id) => s.out.send(msg, id).catch(() => undefined))).then(
      () => undefined,
    );
  }

  /** Rank 0: waits for every rank to authenticate and join, checks they agree, publishes the links. */
  private async serveRendezvous(link: string): Promise<Rendezvous> {
    const sock = new Router({ linger: LINGER_MS });
    this.sockets.push(sock);
    const s: ControlServer = {
      sock,
      out: new Serial(sock),
      rankIds: new Map(),
      lastSeen: new Map(),
      done: new Set(),
      connections: 0,
      left: new Signal(),
    };
    this.server = s;
    // NOTE: listen before binding, so no connection is accepted unseen
    sock.events.on('accept', () => s.connections++);
    sock.events.on('disconnect', () => {
      s.connections--;
      if (s.connections <= 0) s.left.resolve();
      if (this.phase === 'running') s.disconnectedAt ??= Date.now();
    });
    const endpoint = `tcp://${this.init.bindAddr}:${this.init.masterPort}`;
    try {
      await sock.bind(endpoint);
    } catch (err) {
      throw new RingCommError(`rendezvous: rank 0 cannot listen on ${endpoint}: ${(err as Error).message}`);
    }
    const N = this.N;
    const gate = new Gate(
      this.init.secret,
      'rendezvous',
      s.out,
      (r) =>
        r < 1 || r >= N
          ? `rank ${r} is out of range for world size ${N}`
          : s.rankIds.has(r)
            ? `rank ${r} has already joined`
            : undefined,
      (m) => this.log(m),
    );

    const joins = new Map<number, JoinInfo>([[0, this.myJoin(link)]]);
    const joined = new Signal();
    const serve = async () => {
      for await (const [id, ...frames] of sock) {
        const g = await gate.handle(id, frames);
        if (g.kind === 'handled') continue;
        const r = g.rank;
        s.lastSeen.set(r, Date.now());
        let msg: ControlMessage;
        try {
          msg = decodeControl(frames);
        } catch (err) {
          void this.fail(`rank ${r} broke the control protocol: ${(err as Error).message}`);
          continue;
        }
        if (msg.type === 'JOIN') {
          const { type: _, ...info } = msg;
          joins.set(r, { ...info, rank: r });
          s.rankIds.set(r, id);
          if (joins.size === N) joined.resolve();
        } else if (msg.type === 'PING') void s.out.send({ type: 'PONG' }, id).catch(() => undefined);
        else if (msg.type === 'ABORT') void this.fail(msg.reason);
        else if (msg.type === 'DONE') this.arrive(r);
        else void this.fail(`rank ${r} sent ${msg.type} to rank 0, which only rank 0 sends`);
      }
    };
    serve().catch((err: Error) => {
      if (this.phase !== 'closed') void this.fail(`rank 0's rendezvous socket failed: ${err.message}`);
    });

    const { rendezvousTimeoutMs } = this.init;
    await within(joined.promise, rendezvousTimeoutMs);
    if (joins.size < N) {
      const missing = Array.from({ length: N }, (_, r) => r).filter((r) => !joins.has(r));
      const message = `rendezvous timed out after ${rendezvousTimeoutMs} ms: rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} never arrived`;
      await this.broadcast({ type: 'ERROR', message });
      throw new RingCommError(message);
    }
    const mine = joins.get(0)!;
    const diffs = [...joins.values()].filter((j) => j.rank !== 0).flatMap((j) => differences(mine, j));
    if (diffs.length) {
      const message = `rendezvous: ranks disagree: ${diffs.join('; ')}`;
      await this.broadcast({ type: 'ERROR', message });
      throw new RingCommError(message);
    }
    const peers = Array.from({ length: N }, (_, r) => joins.get(r)!.link);
    const session = nonce();
    for (const r of s.rankIds.keys()) s.lastSeen.set(r, Date.now());
    await this.broadcast({ type: 'PEERS', peers, session });
    return { peers, session };
  }

  /** Ranks > 0: authenticate with rank 0, join, and wait for the link addresses. */
  private async joinRendezvous(link: string): Promise<Rendezvous> {
    const sock = new Dealer({ linger: LINGER_MS });
    this.sockets.push(sock);
    const c: ControlClient = {
      sock,
      out: new Serial(sock),
      lastFromRank0: Date.now(),
      listening: false,
      answered: new Signal(),
    };
    this.client = c;
    const endpoint = `tcp://${this.init.masterAddr}:${this.init.masterPort}`;
    const what = `rendezvous with rank 0 at ${endpoint}`;
    const timeoutMs = this.init.rendezvousTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    sock.connect(endpoint);
    const me = { sock, out: c.out, secret: this.init.secret, rank: this.rank, timeoutMs };
    await authenticate(me, 'rendezvous', what, deadline);
    await c.out.send({ type: 'JOIN', ...this.myJoin(link) });
    for (;;) {
      const msg = await receiveBy(sock, deadline, what, timeoutMs);
      if (msg.type === 'ERROR') throw new RingCommError(msg.message);
      if (msg.type === 'ABORT') throw new RingCommError(msg.reason);
      if (msg.type === 'PEERS') return { peers: msg.peers, session: msg.session };
    }
  }

  /** Ranks > 0 after the rendezvous: rank 0's PONG/ABORT/CLOSE messages, and its disconnect. */
  private runControlClient(): void {
    const c = this.client!;
    c.listening = true;
    c.lastFromRank0 = Date.now();
    c.sock.events.on('disconnect', () => {
      c.answered.resolve();
      if (this.phase === 'running') void this.fail('rank 0 disconnected (process died?)');
      else if (this.phase === 'closing') c.disconnectedAt ??= Date.now();
    });
    const serve = async () => {
      c.sock.receiveTimeout = -1;
      for await (const frames of c.sock) {
        c.lastFromRank0 = Date.now();
        let msg: ControlMessage;
        try {
          msg = decodeControl(frames);
        } catch (err) {
          void this.fail(`rank 0 broke the control protocol: ${(err as Error).message}`);
          continue;
        }
        if (msg.type === 'ABORT') {
          c.answered.resolve();
          void this.fail(msg.reason, true);
        } else if (msg.type === 'CLOSE') this.barrier?.resolve();
      }
    };
    serve().catch((err: Error) => {
      if (this.phase !== 'closed') void this.fail(`control socket failed: ${err.message}`);
    });
  }

  // ---- ring links ----------------------------------------------------------------------------

  private async bindLink(): Promise<{ listener: Router; advertised: string }> {
    const listener = new Router({ linger: LINGER_MS });
    this.sockets.push(listener);
    const endpoint = `tcp://${this.init.bindAddr}:${this.init.linkPort || '*'}`;
    try {
      await listener.bind(endpoint);
    } catch (err) {
      throw new RingCommError(`rank ${this.rank}: cannot listen on ${endpoint}: ${(err as Error).message}`);
    }
    const bound = listener.lastEndpoint ?? endpoint;
    const portNumber = bound.slice(bound.lastIndexOf(':') + 1);
    return { listener, advertised: `tcp://${this.init.advertiseAddr}:${portNumber}` };
  }

  /**
   * Accepts rank − 1 on the link listener and moves its data frames into the inbound slots;
   * resolves once rank − 1 has authenticated, rejects if it has not by `deadline`.
   */
  private serveLink(listener: Router, session: string, deadline: number): Promise<void> {
    const { rank, prev } = this;
    const linked = new Signal();
    let prevKey: string | undefined;
    const gate = new Gate(
      this.init.secret,
      `link/${session}`,
      new Serial(listener),
      (r) =>
        r !== prev
          ? `rank ${r} is not rank ${rank}'s ring predecessor (rank ${prev})`
          : prevKey !== undefined
            ? `rank ${prev} is already linked`
            : undefined,
      (m) => this.log(m),
      (key) => {
        prevKey = key;
        linked.resolve();
      },
    );
    const serve = async () => {
      for await (const [id, ...frames] of listener) {
        if ((await gate.handle(id, frames)).kind === 'handled') continue;
        const type = frames[0]?.toString();
        if (type !== DATA_TYPE)
          throw new Error(`sent '${type?.slice(0, 32)}' on the ring link, expected data`);
        await this.inbound.writeAsync(decodeData(frames));
      }
    };
    serve().catch((err: Error) => {
      // NOTE: once aborted, the slot wait throws a RingCommError: the loop's normal end
      if (this.phase !== 'closed' && abortReason(this.init.control) === undefined)
        void this.fail(`rank ${rank}: link from rank ${prev} failed: ${err.message}`);
    });
    return within(linked.promise, Math.max(0, deadline - Date.now())).then(() => {
      if (prevKey === undefined)
        throw new RingCommError(
          `rank ${rank}: rank ${prev} did not open its ring link within ${this.init.rendezvousTimeoutMs} ms`,
        );
    });
  }

  /** Connects to rank + 1, authenticates, then sends every outbound slot as raw frames. */
  private async connectLink(peer: string, session: string, deadline: number): Promise<void> {
    const { rank, next } = this;
    const sock = new Dealer({ linger: LINGER_MS });
    this.sockets.push(sock);
    const out = new Serial(sock);
    sock.connect(peer);
    const me = { sock, out, secret: this.init.secret, rank, timeoutMs: this.init.rendezvousTimeoutMs };
    await authenticate(me, `link/${session}`, `ring link to rank ${next} at ${peer}`, deadline);
    sock.events.on('disconnect', () => {
      if (this.phase === 'running' || (this.phase === 'closing' && !this.sentDone))
        void this.fail(`rank ${next} at ${peer} disconnected (process died?)`);
    });
    const pump = async () => {
      for (;;) await out.sendFrames(encodeData(await this.outbound.readAsync()));
    };
    pump().catch((err: Error) => {
      if (this.phase !== 'closed' && abortReason(this.init.control) === undefined)
        void this.fail(`rank ${rank}: link to rank ${next} failed: ${err.message}`);
    });
  }
}

void new Pump(workerData as PumpInit, parentPort!).start();
