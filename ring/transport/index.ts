export { type RingTransport, RingCommError } from './types.js';
export {
  abortChannels,
  type ChannelDescriptor,
  createChannel,
  createControl,
  SharedMemoryTransport,
  type SharedMemoryTransportOptions,
} from './shared-memory.js';
