/**
 * A group of N ring devices on this machine: worker threads, each with its own tfjs backend,
 * linked in a ring by shared-memory channels. The main thread hands each device its arguments
 * and collects results; devices talk to each other directly, never through the main thread.
 *
 * Failures: a device that throws or exits aborts the ring (its peers stop waiting), a call that
 * takes longer than `callTimeoutMs` is aborted, and in both cases every worker is terminated and
 * the call rejects with an error naming the device. A failed group stays closed.
 */
import { Worker } from 'node:worker_threads';
import { InputError } from '../../common/index.js';
import { type BackendChoice, type BackendInfo, nativeSettings } from '../../native/index.js';
import {
  abortChannels,
  type ChannelDescriptor,
  createChannel,
  createControl,
} from '../transport/shared-memory.js';
import { createComputeSlots } from './compute-slots.js';
import type { CallMessage, WorkerInit, WorkerReply } from './protocol.js';

export interface RingGroupOptions {
  /** Number of devices N (worker threads). */
  devices: number;
  /** Backend of every device (default: auto, as the main thread). */
  backend?: BackendChoice;
  /** Longest a device waits for its neighbour before failing (default 120 s). */
  commTimeoutMs?: number;
  /** Longest one call may take before the group aborts it (default 30 min). */
  callTimeoutMs?: number;
  /** Longest a worker may take to start (default 60 s). */
  startTimeoutMs?: number;
  /**
   * At most this many devices compute at once (issue 17 item 4): a device holds one of these
   * slots while it runs a task and gives it up while it waits on its neighbour, so N devices on
   * C < N cores take turns instead of oversubscribing them (set it to C). Default: no limit.
   */
  computeSlots?: number;
}

/** How long an error reply waits for the crash that may follow it and name its cause. */
const CRASH_GRACE_MS = 500;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export class RingGroup {
  private channels: ChannelDescriptor[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, Pending[]>();
  private failure: Error | undefined;
  private closed = false;
  private exited = 0;
  /** Resolves once every worker has stopped; `stopped()` waits on it. */
  private allStopped: Promise<void>;
  private markStopped: () => void = () => undefined;

  private constructor(
    readonly devices: number,
    private readonly workers: Worker[],
    private readonly control: SharedArrayBuffer,
    readonly backend: BackendInfo,
    private readonly options: Required<Omit<RingGroupOptions, 'backend' | 'computeSlots'>>,
    /** Devices that may compute at once; undefined: no limit. */
    readonly computeSlots: number | undefined,
  ) {
    this.allStopped = new Promise<void>((resolve) => {
      this.markStopped = resolve;
    });
  }

  private countExit(n = 1): void {
    this.exited = Math.min(this.devices, this.exited + n);
    if (this.exited === this.devices) this.markStopped();
  }

  /** Starts N device workers and waits until each has its backend ready. */
  static async create(options: RingGroupOptions): Promise<RingGroup> {
    const { devices } = options;
    if (!Number.isInteger(devices) || devices < 1)
      throw new InputError(`RingGroup: devices must be a positive integer; got ${devices}`);
    const { computeSlots } = options;
    if (computeSlots !== undefined && (!Number.isInteger(computeSlots) || computeSlots < 1))
      throw new InputError(`RingGroup: computeSlots must be a positive integer; got ${computeSlots}`);
    const slotWords = computeSlots === undefined ? undefined : createComputeSlots(computeSlots);
    const full = {
      devices,
      commTimeoutMs: options.commTimeoutMs ?? 120_000,
      callTimeoutMs: options.callTimeoutMs ?? 1_800_000,
      startTimeoutMs: options.startTimeoutMs ?? 60_000,
    };
    const control = createControl();
    const workers: Worker[] = [];
    const ready: Promise<BackendInfo>[] = [];
    for (let rank = 0; rank < devices; rank++) {
      const init: WorkerInit = {
        rank,
        backend: options.backend ?? 'auto',
        control,
        native: nativeSettings(),
        computeSlots: slotWords,
      };
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
      workers.push(w);
      ready.push(
        new Promise<BackendInfo>((resolve, reject) => {
          const timer = setTimeout(
            () =>
              reject(new Error(`RingGroup: device ${rank} did not start within ${full.startTimeoutMs} ms`)),
            full.startTimeoutMs,
          );
          w.once('message', (m: WorkerReply) => {
            clearTimeout(timer);
            if (m.type === 'ready') resolve(m.backend);
            else
              reject(
                new Error(
                  `RingGroup: device ${rank} failed to start: ${m.type === 'error' ? m.message : m.type}`,
                ),
              );
          });
          w.once('error', (e) => {
            clearTimeout(timer);
            reject(new Error(`RingGroup: device ${rank} failed to start: ${e.message}`));
          });
        }),
      );
    }
    let infos: BackendInfo[];
    try {
      infos = await Promise.all(ready);
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw err;
    }
    const group = new RingGroup(devices, workers, control, infos[0], full, computeSlots);
    group.listen();
    return group;
  }

  private listen(): void {
    this.workers.forEach((w, rank) => {
      w.on('message', (m: WorkerReply) => {
        if (m.type === 'ready') return;
        const waiting = this.pending.get(m.id);
        if (!waiting) return;
        if (m.type === 'result') {
          waiting[rank].resolve(m.value);
          return;
        }
        // NOTE: a kernel that throws under tf.profile on wasm throws into the backend's async
        // timer: the task sees only "Cannot read properties of undefined (reading 'map')" and the
        // real error (RangeError: Invalid typed array length …) crashes the worker a moment later
        // as an unhandled rejection. Wait that moment, so the failure names the real error (the
        // crash fails the group first); otherwise report the task's own (issue 16 item 14).
        const reply = new Error(`device ${rank}: ${m.message || 'failed without a message'}`);
        const { reject } = waiting[rank];
        setTimeout(() => reject(reply), CRASH_GRACE_MS);
      });
      w.on('error', (e) => this.fail(new Error(`device ${rank} crashed: ${e.message}`)));
      w.on('exit', (code) => {
        this.countExit();
        if (!this.closed) this.fail(new Error(`device ${rank} exited unexpectedly (code ${code})`));
      });
    });
  }

  /** Aborts the ring, rejects every pending call and terminates all workers. */
  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    abortChannels(this.control, this.channels);
    for (const waiting of this.pending.values()) for (const p of waiting) p.reject(err);
    this.pending.clear();
    void this.terminate();
  }

  private async terminate(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.countExit(this.devices);
  }

  /** Resolves once every worker has stopped (after a failure or dispose). */
  stopped(): Promise<void> {
    return this.allStopped;
  }

  /** Ensures every ring link can carry messages of `floats` floats. */
  private ensureChannels(floats: number): void {
    if (this.channels.length === this.devices && this.channels[0].capacity >= floats) return;
    this.channels = Array.from({ length: this.devices }, () => createChannel(floats));
  }

  /** Devices whose worker thread is still running (0 after dispose or a failure). */
  get liveDevices(): number {
    return this.devices - this.exited;
  }

  /** Bytes of the receive buffers each device holds (2 slots of the channel into it). */
  get commBytesPerDevice(): number {
    return this.channels.length ? this.channels[0].slots * this.channels[0].capacity * 4 : 0;
  }

  /**
   * Runs `fn` exported by `module` on every device at once, with `args[rank]`; resolves with
   * the results by rank. `messageFloats` is the largest message a device sends its neighbour.
   */
  async run<A, R>(
    module: URL | string,
    fn: string,
    args: A[],
    messageFloats: number,
    transfer: ArrayBuffer[][] = [],
  ): Promise<R[]> {
    if (this.failure) throw new Error(`RingGroup is closed after a failure: ${this.failure.message}`);
    if (this.closed) throw new Error('RingGroup is disposed');
    if (args.length !== this.devices)
      throw new InputError(`RingGroup.run: expected ${this.devices} argument sets; got ${args.length}`);
    this.ensureChannels(messageFloats);
    const id = this.nextId++;
    const results = args.map(() => ({}) as Pending & { promise: Promise<unknown> });
    for (const r of results) {
      r.promise = new Promise((resolve, reject) => {
        r.resolve = resolve;
        r.reject = reject;
      });
    }
    this.pending.set(id, results);
    const timer = setTimeout(
      () =>
        this.fail(
          new Error(
            `ring call ${fn} did not finish within ${this.options.callTimeoutMs} ms; devices terminated`,
          ),
        ),
      this.options.callTimeoutMs,
    );
    // A device that fails aborts the ring at once, so its peers stop waiting for it.
    results.forEach((r, rank) => {
      r.promise.catch((e: Error) =>
        this.fail(e.message.startsWith('device') ? e : new Error(`device ${rank}: ${e.message}`)),
      );
    });
    try {
      this.workers.forEach((w, rank) => {
        const msg: CallMessage = {
          type: 'call',
          id,
          module: module.toString(),
          fn,
          args: args[rank],
          worldSize: this.devices,
          sendChannel: this.channels[rank],
          recvChannel: this.channels[(rank - 1 + this.devices) % this.devices],
          commTimeoutMs: this.options.commTimeoutMs,
        };
        w.postMessage(msg, transfer[rank] ?? []);
      });
      return (await Promise.all(results.map((r) => r.promise))) as R[];
    } catch (err) {
      throw this.failure ?? err;
    } finally {
      clearTimeout(timer);
      this.pending.delete(id);
    }
  }

  /** Stops every device. */
  async dispose(): Promise<void> {
    if (this.closed) return;
    await this.terminate();
  }
}
