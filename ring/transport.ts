/**
 * How the devices of a ring talk (ARCHITECTURE.md "Devices and processes"). The ring code is
 * written once against this interface; transports differ only in how bytes move: shared memory
 * between worker threads now, ZeroMQ between processes and hosts later.
 *
 * The calls are synchronous on purpose: ring attention runs inside tfjs's autodiff, whose
 * gradient functions are synchronous, so a device blocks (Atomics.wait) until its neighbour's
 * block arrives. An asynchronous transport (sockets) bridges in from a helper thread that fills
 * the same shared buffers.
 */
export interface RingTransport {
  /** This device's index in 0..worldSize−1. */
  readonly rank: number;
  readonly worldSize: number;
  /**
   * Stages `parts` for device (rank + 1) mod N and returns; blocks only while the neighbour
   * still holds both of its receive buffers (double buffering).
   */
  send(parts: Float32Array[]): void;
  /**
   * Blocks until the next message from device (rank − 1) mod N arrives; returns copies, written
   * into `into`'s arrays where given with matching lengths (a ring step reuses its buffers instead
   * of leaving a chunk of garbage per step, issue 20). Use the returned arrays.
   */
  recv(into?: Float32Array[]): Float32Array[];
}

/** Thrown when the ring is aborted (a peer failed) or a wait times out. */
export class RingCommError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RingCommError';
  }
}

/**
 * What a task running on a device of the ring gets besides its arguments. The devices themselves
 * (worker threads, processes) are made in cluster/; the ring code sees only this.
 */
export interface DeviceContext {
  rank: number;
  worldSize: number;
  transport: RingTransport;
}

/** A function a device can run: exported by a module, called with this device's arguments. */
export type DeviceTask<A, R> = (args: A, ctx: DeviceContext) => R | Promise<R>;
