/**
 * In-process transport: one channel per ring link (rank r → r+1) in SharedArrayBuffers, so
 * worker threads exchange raw float blocks with one memcpy and no serialisation.
 *
 * A channel has `slots` buffers (2: double buffering). Slot state words: 0 empty, 1 full. The
 * writer fills slot (n mod slots) for its n-th message once it is empty; the reader drains it in
 * order. Waits are bounded and check a group-wide abort word, so a failed peer or a hung one
 * turns into an error instead of a deadlock.
 */
import { RingCommError, type RingTransport } from '../../ring/index.js';

/** At most this many tensors per message (k, v, dk, dv fit). */
const MAX_PARTS = 8;
const HEADER_WORDS = 2 + MAX_PARTS; // state, nParts, lengths…
const WAIT_SLICE_MS = 50;
/**
 * A wait slice that returns this much later than asked means the process was not running (Ctrl-Z
 * then fg, SIGSTOP, a laptop asleep): that time moves the deadline on instead of counting as a
 * neighbour's hang (a sweep cell failed this way after a 2-minute SIGSTOP).
 */
const SUSPENDED_MS = 2_000;

/** Atomics.waitAsync (ES2024; Node ≥ 16), typed here because the project's lib is ES2023. */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      i: number,
      v: number,
      t: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

/**
 * What a blocking wait gives up while it sleeps and takes back after: a device's compute slot
 * (cluster/device/compute-slots.ts), so a device waiting on its neighbour never holds a core.
 */
export interface WaitYield {
  release(): void;
  acquire(): void;
}

/** What a worker needs to attach to a channel (posted once; SharedArrayBuffers are shared). */
export interface ChannelDescriptor {
  header: SharedArrayBuffer;
  data: SharedArrayBuffer;
  /** Floats per slot. */
  capacity: number;
  slots: number;
}

export function createChannel(capacityFloats: number, slots = 2): ChannelDescriptor {
  return {
    header: new SharedArrayBuffer(slots * HEADER_WORDS * 4),
    data: new SharedArrayBuffer(Math.max(1, slots * capacityFloats) * 4),
    capacity: capacityFloats,
    slots,
  };
}

/** Group-wide control words: [abort flag]. */
export function createControl(): SharedArrayBuffer {
  return new SharedArrayBuffer(16);
}

/** Sets the abort flag and wakes every waiter on the given channels. */
export function abortChannels(control: SharedArrayBuffer, channels: ChannelDescriptor[]): void {
  const c = new Int32Array(control);
  Atomics.store(c, 0, 1);
  Atomics.notify(c, 0);
  for (const ch of channels) {
    const h = new Int32Array(ch.header);
    for (let s = 0; s < ch.slots; s++) Atomics.notify(h, s * HEADER_WORDS);
  }
}

/**
 * One end of a channel. The blocking `write`/`read` are for a compute thread; `writeAsync` and
 * `readAsync` (Atomics.waitAsync) are for a thread that must keep its event loop running while it
 * waits, such as the socket pump of the ZeroMQ transport (issue 9), which bridges a channel to a
 * socket. Both kinds share the slot protocol above.
 */
export class ChannelEnd {
  private readonly header: Int32Array;
  private readonly data: Float32Array;
  private count = 0;

  /**
   * `timeoutMs`: longest wait for the neighbour (Infinity: wait until aborted). `abortReason`
   * says why the ring was aborted, read from shared memory by the transport that owns `control`.
   */
  constructor(
    readonly desc: ChannelDescriptor,
    private readonly control: Int32Array,
    private readonly timeoutMs: number,
    private readonly what: string,
    private readonly abortReason?: () => string | undefined,
    private readonly yieldTo?: WaitYield,
  ) {
    this.header = new Int32Array(desc.header);
    this.data = new Float32Array(desc.data);
  }

  private aborted(): RingCommError {
    return new RingCommError(`${this.what}: ring aborted (${this.abortReason?.() ?? 'a peer failed'})`);
  }

  private hung(): RingCommError {
    return new RingCommError(`${this.what}: no progress for ${this.timeoutMs} ms (peer hung or died)`);
  }

  /**
   * Waits until the slot's state word equals `want`. A wait that has to sleep gives up `yieldTo`
   * (the device's compute slot) first and takes it back once the neighbour has answered; one that
   * finds the slot ready keeps it. After a failure the slot stays given up.
   */
  private waitFor(slot: number, want: number): void {
    if (Atomics.load(this.header, slot * HEADER_WORDS) === want) return;
    this.yieldTo?.release();
    this.sleepUntil(slot, want);
    this.yieldTo?.acquire();
  }

  private sleepUntil(slot: number, want: number): void {
    const idx = slot * HEADER_WORDS;
    let deadline = performance.now() + this.timeoutMs;
    for (;;) {
      const state = Atomics.load(this.header, idx);
      if (state === want) return;
      if (Atomics.load(this.control, 0) !== 0) throw this.aborted();
      const now = performance.now();
      const left = deadline - now;
      if (left <= 0) throw this.hung();
      const slice = Math.min(WAIT_SLICE_MS, left);
      Atomics.wait(this.header, idx, state, slice);
      deadline += suspendedFor(now, slice);
    }
  }

  /** `waitFor` without blocking the thread's event loop. */
  private async waitForAsync(slot: number, want: number): Promise<void> {
    const idx = slot * HEADER_WORDS;
    let deadline = performance.now() + this.timeoutMs;
    for (;;) {
      const state = Atomics.load(this.header, idx);
      if (state === want) return;
      if (Atomics.load(this.control, 0) !== 0) throw this.aborted();
      const now = performance.now();
      const left = deadline - now;
      if (left <= 0) throw this.hung();
      const slice = Math.min(WAIT_SLICE_MS, left);
      const w = waitAsync(this.header, idx, state, slice);
      if (w.async) await w.value;
      deadline += suspendedFor(now, slice);
    }
  }

  async writeAsync(parts: Float32Array[]): Promise<void> {
    this.checkMessage(parts);
    await this.waitForAsync(this.count % this.desc.slots, 0);
    this.fill(parts);
  }

  async readAsync(): Promise<Float32Array[]> {
    await this.waitForAsync(this.count % this.desc.slots, 1);
    return this.drain();
  }

  write(parts: Float32Array[]): void {
    this.checkMessage(parts);
    this.waitFor(this.count % this.desc.slots, 0);
    this.fill(parts);
  }

  /** The next message; into `into`'s arrays where given with matching lengths (no new arrays). */
  read(into?: Float32Array[]): Float32Array[] {
    this.waitFor(this.count % this.desc.slots, 1);
    return this.drain(into);
  }

  private checkMessage(parts: Float32Array[]): void {
    if (parts.length > MAX_PARTS)
      throw new RingCommError(`${this.what}: ${parts.length} parts exceed ${MAX_PARTS}`);
    const total = parts.reduce((a, p) => a + p.length, 0);
    if (total > this.desc.capacity)
      throw new RingCommError(
        `${this.what}: message of ${total} floats exceeds the channel capacity ${this.desc.capacity}`,
      );
  }

  /** Copies a message into the current (empty) slot and marks it full. */
  private fill(parts: Float32Array[]): void {
    const slot = this.count % this.desc.slots;
    const base = slot * HEADER_WORDS;
    let offset = slot * this.desc.capacity;
    for (let i = 0; i < parts.length; i++) {
      this.data.set(parts[i], offset);
      offset += parts[i].length;
      this.header[base + 2 + i] = parts[i].length;
    }
    this.header[base + 1] = parts.length;
    Atomics.store(this.header, base, 1);
    Atomics.notify(this.header, base);
    this.count++;
  }

  /** Copies the current (full) slot out (into `into`'s arrays where they fit) and marks it empty. */
  private drain(into?: Float32Array[]): Float32Array[] {
    const slot = this.count % this.desc.slots;
    const base = slot * HEADER_WORDS;
    const n = this.header[base + 1];
    const parts: Float32Array[] = [];
    let offset = slot * this.desc.capacity;
    for (let i = 0; i < n; i++) {
      const len = this.header[base + 2 + i];
      const src = this.data.subarray(offset, offset + len);
      const dst = into?.[i];
      if (dst && dst.length === len) {
        dst.set(src);
        parts.push(dst);
      } else parts.push(src.slice());
      offset += len;
    }
    Atomics.store(this.header, base, 0);
    Atomics.notify(this.header, base);
    this.count++;
    return parts;
  }
}

export interface SharedMemoryTransportOptions {
  rank: number;
  worldSize: number;
  /** Channel rank → rank+1. */
  sendChannel: ChannelDescriptor;
  /** Channel rank−1 → rank. */
  recvChannel: ChannelDescriptor;
  control: SharedArrayBuffer;
  /** Longest wait for a neighbour before failing. */
  timeoutMs: number;
  /** Given up during every blocking wait and taken back after (a device's compute slot). */
  yieldTo?: WaitYield;
}

export class SharedMemoryTransport implements RingTransport {
  readonly rank: number;
  readonly worldSize: number;
  private readonly out: ChannelEnd;
  private readonly in: ChannelEnd;

  constructor(o: SharedMemoryTransportOptions) {
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    const control = new Int32Array(o.control);
    const next = (o.rank + 1) % o.worldSize;
    const prev = (o.rank - 1 + o.worldSize) % o.worldSize;
    this.out = new ChannelEnd(
      o.sendChannel,
      control,
      o.timeoutMs,
      `ring rank ${o.rank} sending to rank ${next}`,
      undefined,
      o.yieldTo,
    );
    this.in = new ChannelEnd(
      o.recvChannel,
      control,
      o.timeoutMs,
      `ring rank ${o.rank} waiting for rank ${prev}`,
      undefined,
      o.yieldTo,
    );
  }

  send(parts: Float32Array[]): void {
    this.out.write(parts);
  }

  recv(into?: Float32Array[]): Float32Array[] {
    return this.in.read(into);
  }
}

/** How long a wait of `slice` ms begun at `began` overran when the process was suspended, else 0. */
function suspendedFor(began: number, slice: number): number {
  const overran = performance.now() - began - slice;
  return overran > SUSPENDED_MS ? overran : 0;
}
