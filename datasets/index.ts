/** Arrow trajectory datasets: format, streaming writer, lazy reader, importers, samplers (issue 3). */
export * from './metadata.js';
export { type Episode, type EpisodeInput, hashEpisode } from './episode.js';
export {
  abortOpenWriters,
  checkWriteTarget,
  createWriter,
  type EpisodeIndex,
  type Layout,
  TrajectoryWriter,
  type WriteResult,
  type WriterOptions,
  writeEpisodes,
} from './writer.js';
export {
  minariDataDir,
  openDataset,
  type StepBatch,
  type StepSlice,
  type TrajectoryDataset,
} from './reader.js';
export {
  type D4rlImportOptions,
  importD4rl,
  importMinari,
  type MinariImportOptions,
  minariRoot,
} from './importers.js';
export {
  type AtBatch,
  type AtChainOptions,
  AtChainSampler,
  type DtBatch,
  type DtWindowOptions,
  DtWindowSampler,
  type StateNorm,
  stateNorm,
} from './samplers.js';
export {
  type TokenBatch,
  TokenDataset,
  type TokenDatasetInfo,
  type TokenSequence,
  TokenWindowSampler,
  TokenWriter,
} from './tokens.js';
export {
  type ConvertOptions,
  convertDataset,
  type DatasetSummary,
  inspectDataset,
  minariDatasetIdFor,
  validateDataset,
} from './inspect.js';
