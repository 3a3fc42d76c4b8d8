/**
 * A device task for the compute-slots test (test/cluster/compute-slots.test.ts): rounds of busy
 * compute and a ring exchange, counting in shared memory how many devices are inside compute at
 * once. Counter words: [inside now, most inside at once, rounds done].
 */
import type { DeviceContext } from '../../ring/index.js';

export interface ConcurrencyArgs {
  counter: SharedArrayBuffer;
  rounds: number;
  /** Busy compute per round (ms): long enough that devices overlap without slots. */
  spinMs: number;
}

const INSIDE = 0;
const MOST = 1;
const DONE = 2;

function enter(c: Int32Array): void {
  const now = Atomics.add(c, INSIDE, 1) + 1;
  for (;;) {
    const most = Atomics.load(c, MOST);
    if (now <= most || Atomics.compareExchange(c, MOST, most, now) === most) return;
  }
}

/** Returns the sum of the ranks it received (each round's message is the sender's rank). */
export function concurrencyTask(a: ConcurrencyArgs, ctx: DeviceContext): number {
  const c = new Int32Array(a.counter);
  let received = 0;
  for (let r = 0; r < a.rounds; r++) {
    enter(c);
    const until = performance.now() + a.spinMs;
    while (performance.now() < until) {
      // NOTE: busy on purpose: a compute task holds its core, which is what the slots limit
    }
    Atomics.sub(c, INSIDE, 1);
    ctx.transport.send([Float32Array.of(ctx.rank)]);
    received += ctx.transport.recv()[0][0];
  }
  Atomics.add(c, DONE, 1);
  return received;
}
