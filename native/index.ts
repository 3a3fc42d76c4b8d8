/**
 * native/: the compute platform under ring/ (issue 13). The C++ addon (src/, built into build/ by
 * scripts/build-native.mjs) and its bindings: the fused blockwise attention kernel and sgemm
 * (addon.ts), the tfjs kernels re-registered onto them (kernels.ts); the choice of tfjs backend,
 * which installs those kernels (backend.ts); and what a device holds in memory (memory.ts).
 * Depends on nothing else in the project but common/; ring/ builds on it.
 */
export {
  type AttentionGeometryArgs,
  type BackendPlacement,
  configureNative,
  type NativeAddon,
  type NativeOptions,
  nativeAddon,
  nativeRefusedOn,
  nativeSettings,
  nativeStatus,
  nativeThreads,
  timeNativeCalls,
} from './addon.js';
export {
  BACKEND_NAMES,
  type BackendChoice,
  type BackendInfo,
  type BackendName,
  cudaVisible,
  currentBackend,
  type InitBackendOptions,
  initBackend,
  parseBackendChoice,
  tensorflowPackages,
} from './backend.js';
export {
  type ActionLossResult,
  type BlockHalves,
  blockHalvesApply,
  type FfnSublayer,
  type FusedActivation,
  type FusedNorm,
  fusedActionLoss,
  fusedActionLossApplies,
  fusedFfnApplies,
  fusedFfnBackward,
  fusedFfnForward,
  fusedHeadLoss,
  fusedNormApplies,
  fusedNormBackward,
  fusedNormForward,
  type HeadLossResult,
  type ModalityTokens,
  modalityEmbedApplies,
  modalityEmbedBackward,
  modalityEmbedForward,
  type PostWeights,
  postBackward,
  postForward,
  postForwardKeeping,
  type QkvWeights,
  qkvBackward,
  qkvForward,
} from './fused.js';
export {
  currentPlacement,
  installNativeKernels,
  NATIVE_MATMUL_MIN_MACS,
  nativeForCurrentBackend,
  nativeMatmulApplies,
  nativeMatmulCount,
  scatterAddRows,
} from './kernels.js';
export {
  collectGarbage,
  type DeviceMemory,
  deviceMemoryNow,
  type ProbedPeak,
  processPeakRssBytes,
  reserveWasmHeap,
  withPeakBytes,
} from './memory.js';
