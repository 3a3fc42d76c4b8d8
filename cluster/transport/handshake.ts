/**
 * The HMAC challenge–response of the ZeroMQ ring (issue 9), both ways, before any data or
 * metadata is exchanged: the client proves the shared secret on the listener's nonce, the listener
 * proves it back on the client's. A peer that fails, or breaks the wire format while trying, is
 * answered REFUSED and ignored from then on.
 */
import { randomBytes } from 'node:crypto';
import type { Dealer, Router } from 'zeromq';
import { RingCommError } from '../../ring/index.js';
import { type ControlMessage, decodeControl, encodeControl, MalformedFrameError } from './wire.js';
import { proof, proofMatches } from './zeromq-protocol.js';

export const nonce = (): string => randomBytes(16).toString('hex');

/** One outstanding send per socket: zeromq.js refuses concurrent sends on a socket. */
export class Serial {
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly sock: Dealer | Router) {}

  /** Sends `msg`, after `to` (a ROUTER's routing id) when given. */
  send(msg: ControlMessage, to?: Buffer): Promise<void> {
    return this.sendFrames(to ? [to, ...encodeControl(msg)] : encodeControl(msg));
  }

  sendFrames(frames: (Buffer | string)[]): Promise<void> {
    const p = this.chain.then(() => this.sock.send(frames));
    this.chain = p.catch(() => undefined);
    return p;
  }
}

/** What `Gate.handle` made of a frame from a ROUTER peer. */
export type GateResult =
  /** The frame was the handshake's, or came from a refused or unauthenticated peer: done with it. */
  | { kind: 'handled' }
  /** A frame from an authenticated peer, for the caller; `rank` is the rank it proved. */
  | { kind: 'peer'; rank: number };

/**
 * Listener side of the challenge–response, shared by the rendezvous and the link listener.
 * `claim` checks the rank a client claims (a reason to refuse, or undefined).
 */
export class Gate {
  private readonly pending = new Map<string, { nonce: string; clientNonce: string }>();
  private readonly refused = new Set<string>();
  private readonly authed = new Map<string, number>(); // routing id (hex) → rank

  constructor(
    private readonly secret: Uint8Array,
    private readonly label: string,
    private readonly out: Serial,
    private readonly claim: (rank: number) => string | undefined,
    private readonly log: (message: string) => void,
    private readonly onAuthed: (key: string, rank: number) => void = () => undefined,
  ) {}

  async handle(id: Buffer, frames: Buffer[]): Promise<GateResult> {
    const key = id.toString('hex');
    if (this.refused.has(key)) return { kind: 'handled' };
    const rank = this.authed.get(key);
    if (rank !== undefined) return { kind: 'peer', rank };
    let msg: ControlMessage;
    try {
      msg = decodeControl(frames);
    } catch (err) {
      if (!(err instanceof MalformedFrameError)) throw err;
      await this.refuse(id, key, err.message);
      return { kind: 'handled' };
    }
    if (msg.type === 'HELLO') {
      const n = nonce();
      this.pending.set(key, { nonce: n, clientNonce: msg.nonce });
      await this.out.send({ type: 'CHALLENGE', nonce: n }, id);
    } else if (msg.type === 'AUTH') {
      const pending = this.pending.get(key);
      this.pending.delete(key);
      const why = pending ? this.check(msg, pending) : 'no challenge was issued';
      if (why !== undefined || !pending) await this.refuse(id, key, why ?? 'no challenge was issued');
      else {
        this.authed.set(key, msg.rank);
        const ok = proof(
          this.secret,
          this.label,
          'server',
          String(msg.rank),
          pending.clientNonce,
          pending.nonce,
        );
        await this.out.send({ type: 'WELCOME', proof: ok }, id);
        this.onAuthed(key, msg.rank);
      }
    } else await this.refuse(id, key, `sent ${msg.type} before authenticating`);
    return { kind: 'handled' };
  }

  /** Why an AUTH is refused: a wrong proof of the secret, or a rank `claim` refuses; undefined if neither. */
  private check(
    msg: Extract<ControlMessage, { type: 'AUTH' }>,
    p: { nonce: string; clientNonce: string },
  ): string | undefined {
    const expected = proof(this.secret, this.label, 'client', String(msg.rank), p.clientNonce, p.nonce);
    if (!proofMatches(expected, msg.proof)) return 'authentication failed (wrong shared secret)';
    return this.claim(msg.rank);
  }

  private async refuse(id: Buffer, key: string, reason: string): Promise<void> {
    this.refused.add(key);
    this.log(`refused a ${this.label} peer: ${reason}`);
    await this.out.send({ type: 'REFUSED', reason }, id);
  }
}

/** The next message on `sock` before `deadline`; a timeout or a malformed frame is a RingCommError. */
export async function receiveBy(
  sock: Dealer,
  deadline: number,
  what: string,
  timeoutMs: number,
): Promise<ControlMessage> {
  sock.receiveTimeout = Math.max(1, Math.round(deadline - Date.now()));
  let frames: Buffer[];
  try {
    frames = await sock.receive();
  } catch (err) {
    if ((err as { code?: string }).code === 'EAGAIN')
      throw new RingCommError(`${what}: no answer within the rendezvous timeout (${timeoutMs} ms)`);
    throw err;
  }
  try {
    return decodeControl(frames);
  } catch (err) {
    if (err instanceof MalformedFrameError) throw new RingCommError(`${what}: ${err.message}`);
    throw err;
  }
}

/** Client side: proves the secret to the listener and checks its proof. */
export async function authenticate(
  o: { sock: Dealer; out: Serial; secret: Uint8Array; rank: number; timeoutMs: number },
  label: string,
  what: string,
  deadline: number,
): Promise<void> {
  const mine = nonce();
  await o.out.send({ type: 'HELLO', nonce: mine });
  const challenge = await receiveBy(o.sock, deadline, what, o.timeoutMs);
  if (challenge.type !== 'CHALLENGE')
    throw new RingCommError(`${what}: unexpected '${challenge.type}' during the handshake`);
  const theirs = challenge.nonce;
  await o.out.send({
    type: 'AUTH',
    rank: o.rank,
    proof: proof(o.secret, label, 'client', String(o.rank), mine, theirs),
  });
  const answer = await receiveBy(o.sock, deadline, what, o.timeoutMs);
  if (answer.type === 'REFUSED') throw new RingCommError(`${what} refused this rank: ${answer.reason}`);
  if (
    answer.type !== 'WELCOME' ||
    !proofMatches(proof(o.secret, label, 'server', String(o.rank), mine, theirs), answer.proof)
  )
    throw new RingCommError(
      `${what} could not prove the shared secret (RING_SECRET differs?); nothing was exchanged`,
    );
}
