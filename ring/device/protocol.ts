/** Messages between the main thread and a device worker. */
import type { BackendChoice, BackendInfo } from '../backend.js';
import type { NativeOptions } from '../native.js';
import type { ChannelDescriptor } from '../transport/shared-memory.js';
import type { RingTransport } from '../transport/types.js';

export interface WorkerInit {
  rank: number;
  backend: BackendChoice;
  control: SharedArrayBuffer;
  /** The main thread's native-kernel settings (ring/native.ts), handed on to the device. */
  native: NativeOptions;
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

/** What a task running on a device gets besides its arguments. */
export interface DeviceContext {
  rank: number;
  worldSize: number;
  transport: RingTransport;
}

/** A function a device can run: exported by a module, called with this device's arguments. */
export type DeviceTask<A, R> = (args: A, ctx: DeviceContext) => R | Promise<R>;
