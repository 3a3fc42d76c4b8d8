/** Messages between the main thread and a device worker. */
import type { BackendChoice, BackendInfo, NativeOptions } from '../../native/index.js';
import type { ChannelDescriptor } from '../transport/shared-memory.js';

export interface WorkerInit {
  rank: number;
  backend: BackendChoice;
  control: SharedArrayBuffer;
  /** The main thread's native-kernel settings (native/addon.ts), handed on to the device. */
  native: NativeOptions;
  /** The group's compute slots (cluster/device/compute-slots.ts); absent: devices never wait for one. */
  computeSlots?: SharedArrayBuffer;
}

export interface CallMessage {
  type: 'call';
  id: number;
  /** URL of the module exporting the task. */
  module: string;
  /** Name of the exported task function. */
  fn: string;
  args: unknown;
  worldSize: number;
  sendChannel: ChannelDescriptor;
  recvChannel: ChannelDescriptor;
  commTimeoutMs: number;
}

export type WorkerReply =
  | { type: 'ready'; backend: BackendInfo }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; message: string; stack?: string };
