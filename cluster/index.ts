/**
 * cluster/: the devices a ring runs on (issue 13). ring/ writes the schedule once against
 * `RingTransport`; this room makes the devices and moves the bytes:
 * - device/: a group of worker-thread devices on this machine, each its own tfjs backend,
 *   linked by the shared-memory transport; tasks called on every device at once; `ringAttention`
 *   over such a group; compute slots (`computeSlots`), so N devices take turns on C < N cores
 *   instead of oversubscribing them (issue 17 item 4); groups kept by size (`RingGroupPool`).
 * - transport/: the shared-memory channels; the ring across processes and hosts over ZeroMQ
 *   (rendezvous, HMAC authentication, heartbeats, abort), and ranks from the launcher's
 *   environment (torchrun, SLURM, Kubernetes).
 * Layering: common/ and native/ below, ring/ below; train/, rl/, lm/ and experiments/ above.
 */
export { RingGroup, type RingGroupOptions } from './device/group.js';
export { RingGroupPool } from './device/group-pool.js';
export {
  gatherTokens,
  type RingCallOptions,
  type RingCallResult,
  ringAttention,
  scatterTokens,
} from './device/ring-attention.js';
export {
  abortChannels,
  type ChannelDescriptor,
  ChannelEnd,
  createChannel,
  createControl,
  SharedMemoryTransport,
  type SharedMemoryTransportOptions,
} from './transport/shared-memory.js';
export {
  DEFAULT_MASTER_PORT,
  parseNodeList,
  type RankEnvironment,
  type RankSource,
  rankFromEnvironment,
  secretFromEnvironment,
  type TransportEnvironment,
  transportFromEnvironment,
} from './transport/env.js';
export { type RingSpec, ZeroMqTransport, type ZeroMqTransportOptions } from './transport/zeromq.js';
