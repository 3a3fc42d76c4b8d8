export { type RingTransport, RingCommError } from './types.js';
export {
  abortChannels,
  type ChannelDescriptor,
  createChannel,
  createControl,
  SharedMemoryTransport,
  type SharedMemoryTransportOptions,
} from './shared-memory.js';
export { ChannelEnd } from './shared-memory.js';
export {
  DEFAULT_MASTER_PORT,
  parseNodeList,
  type RankEnvironment,
  type RankSource,
  rankFromEnvironment,
  secretFromEnvironment,
  type TransportEnvironment,
  transportFromEnvironment,
} from './env.js';
export { type RingSpec, ZeroMqTransport, type ZeroMqTransportOptions } from './zeromq.js';
