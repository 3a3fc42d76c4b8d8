/**
 * The ZeroMQ ring's frames (issue 9), typed (issue 13). A control frame is [type, JSON body]
 * (the body is the message without its `type`); a data frame is ['D', header, ...parts] with the
 * header int32 [nParts, length of each part] and each part raw float32 bytes (no JSON).
 *
 * Decoding checks every field: a frame that does not parse, names an unknown type or lacks a
 * field is a `MalformedFrameError`, never a default value (bad JSON used to become {}).
 */
import type { JoinInfo, RingSpec } from './zeromq-protocol.js';

/** Every control message, by type. Handshake first (both ways), then rendezvous and control. */
export type ControlMessage =
  // challenge–response, client → listener → client (zeromq-protocol.ts `proof`)
  | { type: 'HELLO'; nonce: string }
  | { type: 'CHALLENGE'; nonce: string }
  | { type: 'AUTH'; rank: number; proof: string }
  | { type: 'WELCOME'; proof: string }
  | { type: 'REFUSED'; reason: string }
  // rendezvous: rank → rank 0, then rank 0's answer to all
  | ({ type: 'JOIN' } & JoinInfo)
  | { type: 'PEERS'; peers: string[]; session: string }
  | { type: 'ERROR'; message: string }
  // while running: heartbeats, aborts and the closing barrier (DONE to rank 0, CLOSE from it)
  | { type: 'PING' }
  | { type: 'PONG' }
  | { type: 'ABORT'; reason: string }
  | { type: 'DONE' }
  | { type: 'CLOSE' };

export type ControlType = ControlMessage['type'];

/** A frame that breaks the wire format; the receiver refuses the peer or fails the ring. */
export class MalformedFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedFrameError';
  }
}

/** The type tag of data frames. */
export const DATA_TYPE = 'D';

export function encodeControl(msg: ControlMessage): [string, string] {
  const { type, ...body } = msg;
  return [type, JSON.stringify(body)];
}

type Body = Record<string, unknown>;
type Check = (b: Body, type: string) => void;

function fail(type: string, what: string): never {
  throw new MalformedFrameError(`malformed ${type} message: ${what}`);
}
const str =
  (...keys: string[]): Check =>
  (b, type) => {
    for (const k of keys) if (typeof b[k] !== 'string') fail(type, `'${k}' is not a string`);
  };
const int =
  (...keys: string[]): Check =>
  (b, type) => {
    for (const k of keys) if (!Number.isInteger(b[k])) fail(type, `'${k}' is not an integer`);
  };
const none: Check = () => undefined;

function isSpec(v: unknown): v is RingSpec {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  return Object.values(v).every(
    (x) =>
      typeof x === 'string' ||
      typeof x === 'number' ||
      typeof x === 'boolean' ||
      (Array.isArray(x) && x.every((n) => typeof n === 'number')),
  );
}

/** What each type's body must hold. */
const CHECKS: Record<ControlType, Check[]> = {
  HELLO: [str('nonce')],
  CHALLENGE: [str('nonce')],
  AUTH: [int('rank'), str('proof')],
  WELCOME: [str('proof')],
  REFUSED: [str('reason')],
  JOIN: [
    int('rank', 'worldSize', 'protocol', 'pid'),
    str('link', 'host'),
    (b, type) => {
      if (!isSpec(b.spec)) fail(type, "'spec' is not a map of strings, numbers, booleans and number arrays");
    },
  ],
  PEERS: [
    str('session'),
    (b, type) => {
      if (!Array.isArray(b.peers) || !b.peers.every((p) => typeof p === 'string'))
        fail(type, "'peers' is not a list of addresses");
    },
  ],
  ERROR: [str('message')],
  PING: [none],
  PONG: [none],
  ABORT: [str('reason')],
  DONE: [none],
  CLOSE: [none],
};

function isControlType(t: string): t is ControlType {
  return Object.hasOwn(CHECKS, t);
}

/** Decodes [type, body] into a checked message; throws MalformedFrameError. */
export function decodeControl(frames: Buffer[]): ControlMessage {
  const type = frames[0]?.toString('utf8') ?? '';
  if (!isControlType(type)) throw new MalformedFrameError(`unknown message type '${type.slice(0, 32)}'`);
  if (frames.length !== 2) fail(type, `${frames.length} frames, expected 2 (type and body)`);
  let body: unknown;
  try {
    body = JSON.parse(frames[1].toString('utf8'));
  } catch (err) {
    fail(type, `the body is not JSON (${(err as Error).message})`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    fail(type, 'the body is not an object');
  for (const check of CHECKS[type]) check(body as Body, type);
  // NOTE: the checks above establish the fields of this type's member of the union
  return { ...(body as Body), type } as ControlMessage;
}

export function encodeData(parts: Float32Array[]): Buffer[] {
  const header = Int32Array.from([parts.length, ...parts.map((p) => p.length)]);
  // each part is a fresh copy of its slot (ChannelEnd.read), so zero-copy sending is safe
  return [
    Buffer.from(DATA_TYPE),
    Buffer.from(header.buffer),
    ...parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)),
  ];
}

function toFloats(b: Buffer): Float32Array {
  if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new Float32Array(copy.buffer);
}

/** Decodes ['D', header, ...parts]; throws MalformedFrameError when the header and parts disagree. */
export function decodeData(frames: Buffer[]): Float32Array[] {
  const [, headerBytes, ...parts] = frames;
  if (headerBytes === undefined || headerBytes.byteLength % 4 !== 0 || headerBytes.byteLength < 4)
    throw new MalformedFrameError('malformed data frame: no int32 header');
  const header = new Int32Array(Uint8Array.from(headerBytes).buffer);
  const n = header[0];
  if (header.length !== 1 + n || parts.length !== n)
    throw new MalformedFrameError(
      `malformed data frame: the header announces ${n} parts (${header.length - 1} lengths), ${parts.length} came`,
    );
  parts.forEach((p, i) => {
    if (p.byteLength !== 4 * header[1 + i])
      throw new MalformedFrameError(
        `malformed data frame: part ${i} holds ${p.byteLength} bytes, the header says ${header[1 + i]} floats`,
      );
  });
  return parts.map(toFloats);
}
