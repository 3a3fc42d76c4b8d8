/**
 * ring/: the paper's core. Attention implementations (vanilla reference, memory-efficient,
 * blockwise, ring over N devices), blockwise feedforward, the device ring and its transports,
 * the memory plan, and the choice of tfjs backend. Depends on nothing else in the project
 * but common/.
 */
export {
  ATTENTION_IMPLS,
  type AttentionImpl,
  type AttentionOptions,
  DEFAULT_BLOCK_SIZE,
  type RingLayout,
} from './attention/types.js';
export { vanillaAttention } from './attention/vanilla.js';
export { memeffAttention } from './attention/memeff.js';
export { blockwiseAttention } from './attention/blockwise.js';
export { nativeAttentionCount } from './attention/kernels.js';
export {
  BACKEND_NAMES,
  type BackendChoice,
  type BackendInfo,
  type BackendName,
  cudaVisible,
  currentBackend,
  initBackend,
  parseBackendChoice,
  tensorflowPackages,
} from './backend.js';
export {
  type BackendPlacement,
  configureNative,
  type NativeAddon,
  type NativeOptions,
  nativeAddon,
  nativeRefusedOn,
  nativeSettings,
  nativeStatus,
  nativeThreads,
} from './native.js';
export {
  currentPlacement,
  installNativeKernels,
  NATIVE_MATMUL_MIN_MACS,
  nativeMatmulApplies,
  nativeForCurrentBackend,
  nativeMatmulCount,
} from './native-kernels.js';
export { checkpoint, customOp, dims, embeddingLookup, linear, matmul, product, stopGradient } from './ops.js';
export {
  deviceBytes,
  HARDWARE_PRESETS,
  MODEL_PRESETS,
  type ModelShape,
  maxContext,
  minBlockSize,
  type PlanOptions,
  type PlanRow,
  parameterCount,
  parseModel,
  planTable,
} from './plan.js';
export { ringAttentionDevice, type RingDeviceOptions, tokenIndices } from './attention/ring.js';
export { RingGroup, type RingGroupOptions } from './device/group.js';
export type { DeviceContext, DeviceTask } from './device/protocol.js';
export {
  gatherTokens,
  type RingCallOptions,
  type RingCallResult,
  ringAttention,
  scatterTokens,
} from './device/ring-attention.js';
export { type RingTransport, RingCommError, SharedMemoryTransport } from './transport/index.js';
export {
  parseNodeList,
  type RankEnvironment,
  type RankSource,
  type RingSpec,
  rankFromEnvironment,
  secretFromEnvironment,
  type TransportEnvironment,
  transportFromEnvironment,
  ZeroMqTransport,
  type ZeroMqTransportOptions,
} from './transport/index.js';
export { blockwiseFeedForward, type FeedForwardKind, type FeedForwardWeights, feedForward } from './ffn.js';
export { allReduceMessageFloats, allReduceSum, broadcastFromRank0 } from './parallel.js';
export {
  applyRope,
  attend,
  type BlockWeights,
  blockVariables,
  checkBlockConfig,
  disposeKvCache,
  emptyKvCache,
  initBlock,
  type KvCache,
  localPositions,
  normalize,
  type RopeFrequencies,
  type SequenceContext,
  type TransformerBlockConfig,
  transformerBlock,
  transformerBlockStep,
  trimKvCache,
} from './transformer.js';
export {
  type DeviceMemory,
  deviceMemoryNow,
  type ProbedPeak,
  processPeakRssBytes,
  withPeakBytes,
} from './device/measure.js';
