/**
 * What the ZeroMQ transport's two threads share, and the wire protocol's small pieces: the
 * abort word and reason in shared memory, the pump's start message, HMAC proofs, and the
 * comparison of what ranks must agree on before the first step (issue 9).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ChannelDescriptor } from './shared-memory.js';

/** Bumped whenever the wire format changes; ranks of different versions refuse each other. */
export const PROTOCOL_VERSION = 1;

/** Values ranks must agree on (shapes, dtype, …), compared key by key at the rendezvous. */
export type RingSpec = Record<string, string | number | boolean | number[]>;

/** Control words: [abort flag, reason length]; then the reason as UTF-8 (a ChannelEnd reads word 0). */
const REASON_OFFSET = 16;
const REASON_BYTES = 2048;

export function createAbortControl(): SharedArrayBuffer {
  return new SharedArrayBuffer(REASON_OFFSET + REASON_BYTES);
}

/** Records why the ring stops (first reason wins) and raises the abort flag; false if already set. */
export function setAbort(control: SharedArrayBuffer, reason: string): boolean {
  const words = new Int32Array(control, 0, 2);
  if (Atomics.compareExchange(words, 0, 0, 2) !== 0) return false; // 2: reason being written
  const bytes = new TextEncoder().encode(reason).subarray(0, REASON_BYTES);
  new Uint8Array(control, REASON_OFFSET, REASON_BYTES).set(bytes);
  Atomics.store(words, 1, bytes.length);
  Atomics.store(words, 0, 1);
  Atomics.notify(words, 0);
  return true;
}

export function abortReason(control: SharedArrayBuffer): string | undefined {
  const words = new Int32Array(control, 0, 2);
  if (Atomics.load(words, 0) === 0) return undefined;
  while (Atomics.load(words, 0) === 2); // the reason is being written: a few bytes, microseconds
  const n = Atomics.load(words, 1);
  // NOTE: copy out of shared memory first; TextDecoder refuses views of a SharedArrayBuffer
  return new TextDecoder().decode(new Uint8Array(control, REASON_OFFSET, n).slice()) || 'a peer failed';
}

/** What the main thread hands its pump worker. */
export interface PumpInit {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** Interface the listeners bind to (rank 0's rendezvous and every rank's ring link). */
  bindAddr: string;
  /** Address peers use to reach this rank's link listener (default: bindAddr). */
  advertiseAddr: string;
  /** Port of this rank's link listener (0: any free port). */
  linkPort: number;
  secret: Uint8Array;
  spec: RingSpec;
  rendezvousTimeoutMs: number;
  heartbeatTimeoutMs: number;
  control: SharedArrayBuffer;
  /** Compute thread → pump (to rank + 1). */
  outbound: ChannelDescriptor;
  /** Pump (from rank − 1) → compute thread. */
  inbound: ChannelDescriptor;
  /** Pid of a launcher to watch: if it dies, this rank aborts (no orphans). */
  launcherPid?: number;
}

export type PumpCommand = { type: 'close'; timeoutMs: number } | { type: 'abort'; reason: string };

export type PumpReply =
  | { type: 'ready'; peers: string[]; session: string }
  | { type: 'failed'; message: string }
  | { type: 'closed' };

/** HMAC-SHA256 of the parts, joined unambiguously; hex. */
export function proof(secret: Uint8Array, ...parts: string[]): string {
  const h = createHmac('sha256', secret);
  for (const p of parts) h.update(`${p.length}:${p};`);
  return h.digest('hex');
}

export function proofMatches(expected: string, got: unknown): boolean {
  if (typeof got !== 'string' || got.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(expected), Buffer.from(got));
}

/** What a joining rank reports at the rendezvous. */
export interface JoinInfo {
  rank: number;
  worldSize: number;
  protocol: number;
  spec: RingSpec;
  link: string;
  host: string;
  pid: number;
}

/** Differences between a joining rank and rank 0, one phrase each ("world size 3 vs rank 0's 2"). */
export function differences(mine: JoinInfo, theirs: JoinInfo): string[] {
  const out: string[] = [];
  const r = `rank ${theirs.rank}`;
  if (theirs.protocol !== mine.protocol)
    out.push(`${r} speaks protocol version ${theirs.protocol}, rank 0 version ${mine.protocol}`);
  if (theirs.worldSize !== mine.worldSize)
    out.push(`${r} has world size ${theirs.worldSize}, rank 0 has ${mine.worldSize}`);
  const keys = new Set([...Object.keys(mine.spec), ...Object.keys(theirs.spec)]);
  for (const k of keys) {
    const a = JSON.stringify(mine.spec[k]);
    const b = JSON.stringify(theirs.spec[k]);
    if (a !== b) out.push(`${r} has ${k} ${b ?? '(none)'}, rank 0 has ${a ?? '(none)'}`);
  }
  return out;
}
