/**
 * A ring device: a worker thread with its own tfjs backend (one wasm instance each, since wasm
 * is single-threaded in Node; a worker per device is also how both cores get used). It runs
 * tasks the main thread names by module and function, with a transport to its ring neighbours.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { configureNative, initBackend } from '../../native/index.js';
import { SharedMemoryTransport } from '../transport/shared-memory.js';
import { ComputeSlots } from './compute-slots.js';
import type { DeviceContext } from '../../ring/index.js';
import type { CallMessage, WorkerInit, WorkerReply } from './protocol.js';

const init = workerData as WorkerInit;
const port = parentPort!;

function post(msg: WorkerReply): void {
  port.postMessage(msg, transferables(msg));
}

/** Non-shared buffers of typed arrays one level inside a result: moved, not copied. */
function transferables(msg: WorkerReply): ArrayBuffer[] {
  if (msg.type !== 'result' || typeof msg.value !== 'object' || msg.value === null) return [];
  const out = new Set<ArrayBuffer>();
  for (const v of Object.values(msg.value)) {
    if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer && v.byteLength === v.buffer.byteLength)
      out.add(v.buffer);
  }
  return [...out];
}

configureNative(init.native);
const slots = init.computeSlots ? new ComputeSlots(init.computeSlots, init.control, init.rank) : undefined;
const backend = await initBackend({ backend: init.backend, notice: false });
post({ type: 'ready', backend });

port.on('message', async (msg: CallMessage) => {
  try {
    const mod = (await import(msg.module)) as Record<string, unknown>;
    const task = mod[msg.fn];
    if (typeof task !== 'function')
      throw new Error(`device ${init.rank}: ${msg.module} has no function '${msg.fn}'`);
    // NOTE: the N devices of this call share the process's cores: ⌊C / N⌋ native threads each
    // unless a thread count was set (issue 7); with compute slots only min(N, slots) compute at once.
    configureNative({ devices: slots ? Math.min(msg.worldSize, slots.slots) : msg.worldSize });
    const ctx: DeviceContext = {
      rank: init.rank,
      worldSize: msg.worldSize,
      transport: new SharedMemoryTransport({
        rank: init.rank,
        worldSize: msg.worldSize,
        sendChannel: msg.sendChannel,
        recvChannel: msg.recvChannel,
        control: init.control,
        timeoutMs: msg.commTimeoutMs,
        yieldTo: slots,
      }),
    };
    // NOTE: the task holds a compute slot except while the transport sleeps (it gives the slot up
    // and takes it back around each blocking wait), so at most `slots` devices compute at once
    slots?.acquire();
    let value: unknown;
    try {
      value = await task(msg.args, ctx);
    } finally {
      slots?.release();
    }
    post({ type: 'result', id: msg.id, value });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    post({ type: 'error', id: msg.id, message: e.message, stack: e.stack });
  }
});
