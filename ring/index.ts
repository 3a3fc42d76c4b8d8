/**
 * ring/: the paper's core. Attention implementations (vanilla reference, memory-efficient,
 * blockwise, ring over N devices), blockwise feedforward, the transformer block, the ring
 * schedule written against one transport interface (transport.ts), collectives over it
 * (parallel.ts) and the memory plan. Depends only on common/ and native/ (the kernels and the
 * tfjs backend under it); the devices that run the ring, worker threads or processes over
 * ZeroMQ, are made in cluster/ (issue 13); the block as one native op is block/ (issue 14).
 */

export { attentionEngine } from './attention/accumulator.js';
export { blockwiseAttention, blockwisePass } from './attention/blockwise.js';
export { nativeAttentionCount, tensorData, tensorDataIsView } from './attention/kernels.js';
export { contiguousPositions, type TokenSide } from './attention/mask.js';
export { memeffAttention } from './attention/memeff.js';
export { type RingDeviceOptions, ringAttentionDevice, ringPass, tokenIndices } from './attention/ring.js';
export {
  ATTENTION_IMPLS,
  type AttentionImpl,
  type AttentionOptions,
  type AttentionPass,
  DEFAULT_BLOCK_SIZE,
  type RingLayout,
} from './attention/types.js';
export { checkAttentionInputs } from './attention/validate.js';
export { vanillaAttention } from './attention/vanilla.js';
export {
  blockwiseFeedForward,
  type FeedForwardKind,
  type FeedForwardWeights,
  feedForward,
  fusedFeedForwardSublayer,
} from './ffn.js';
export {
  checkpoint,
  constantLinear,
  customOp,
  dims,
  embeddingLookup,
  gradientBeingTaken,
  linear,
  madeInThisBackward,
  matmul,
  product,
  releaseAfterBackward,
  stopGradient,
  upstreamScaled,
} from './ops.js';
export { allReduceMessageFloats, allReduceSum, broadcastFromRank0 } from './parallel.js';
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
export {
  applyRope,
  attend,
  attentionOptions,
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
  ropeTables,
  type SequenceContext,
  type TransformerBlockConfig,
  transformerBlock,
  transformerBlockStep,
  trimKvCache,
} from './transformer.js';
export { type DeviceContext, type DeviceTask, RingCommError, type RingTransport } from './transport.js';
