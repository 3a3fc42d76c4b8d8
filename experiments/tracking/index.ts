/** MLflow tracking: one interface, a REST client of a tracking server and the local file store. */
export * from './types.js';
export { BATCH_LIMITS, clampValue, splitBatch } from './batch.js';
export { experimentLockDir, FileStore } from './file-store.js';
export { MlflowApiError, RestStore, type RestStoreOptions, UnreachableError } from './rest-store.js';
export { openStore, resolveTrackingUri } from './open.js';
export { METRIC_PREFIXES, RunTracker, type RunTrackerOptions } from './run.js';
export { SYSTEM_STEP_METRIC, SystemSampler } from './system.js';
export { environmentTags } from './env-tags.js';
export {
  acquireRunLease,
  checkOwnerTag,
  currentOwner,
  type LeaseOwner,
  OWNER_TAG,
  type RunLease,
} from './lease.js';
