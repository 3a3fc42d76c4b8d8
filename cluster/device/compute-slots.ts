/**
 * Compute slots (issue 17 item 4): a counting semaphore in shared memory that the devices of a
 * RingGroup share, so at most `slots` of them compute at once. N worker-thread devices on C cores
 * oversubscribe the cores when N > C; with C slots, a device holds a slot while it computes a
 * task and gives it up while it sleeps in the transport's blocking waits (the ring's receive, a
 * send into a full channel), then takes one back.
 *
 * No deadlock: a device only ever waits for a slot while it holds none, and a device waiting on a
 * message holds none, so every slot is held by a device that is computing and will reach its
 * next transport wait or the end of its task. The waits check the group's abort word (a failed
 * peer), so a ring that fails releases its waiters as the transport's waits do.
 *
 * Layout of the buffer: Int32 words [free slots, total slots].
 */
import { RingCommError } from '../../ring/index.js';
import type { WaitYield } from '../transport/shared-memory.js';

const FREE = 0;
const TOTAL = 1;
const WAIT_SLICE_MS = 50;

/** A shared buffer holding `slots` free compute slots, for `ComputeSlots` on each device. */
export function createComputeSlots(slots: number): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(8);
  const words = new Int32Array(buffer);
  words[FREE] = slots;
  words[TOTAL] = slots;
  return buffer;
}

/** One device's handle on the group's compute slots; holds at most one slot at a time. */
export class ComputeSlots implements WaitYield {
  private readonly words: Int32Array;
  private readonly control: Int32Array;
  private held = false;

  /** `control`: the group's control words (word 0 is its abort flag). */
  constructor(
    buffer: SharedArrayBuffer,
    control: SharedArrayBuffer,
    private readonly rank: number,
  ) {
    this.words = new Int32Array(buffer);
    this.control = new Int32Array(control);
  }

  /** Slots in the group (at most this many devices compute at once). */
  get slots(): number {
    return Atomics.load(this.words, TOTAL);
  }

  /** Whether this device holds a slot now. */
  get holding(): boolean {
    return this.held;
  }

  /** Blocks until a slot is free and takes it; throws RingCommError when the ring is aborted. */
  acquire(): void {
    if (this.held) return;
    for (;;) {
      const free = Atomics.load(this.words, FREE);
      if (free > 0) {
        if (Atomics.compareExchange(this.words, FREE, free, free - 1) === free) {
          this.held = true;
          return;
        }
        continue; // another device took it between the load and the exchange
      }
      if (Atomics.load(this.control, 0) !== 0)
        throw new RingCommError(`device ${this.rank}: ring aborted while waiting for a compute slot`);
      // NOTE: no deadline: a slot comes back when a computing device reaches its next wait, and
      // the group's call timeout bounds a hung one (it aborts the ring, which ends this wait)
      Atomics.wait(this.words, FREE, 0, WAIT_SLICE_MS);
    }
  }

  /** Gives the slot back (no-op when none is held, so a failed task can release in `finally`). */
  release(): void {
    if (!this.held) return;
    this.held = false;
    Atomics.add(this.words, FREE, 1);
    Atomics.notify(this.words, FREE, 1);
  }
}
