/** Arrow trajectory datasets: format, streaming writer, lazy reader, importers, samplers (issue 3). */
export * from './metadata.js';
export { type Episode, type EpisodeInput, hashEpisode } from './episode.js';
export {
  abortOpenWriters,
  createWriter,
  type EpisodeIndex,
  type Layout,
  TrajectoryWriter,
  type WriteResult,
  type WriterOptions,
  writeEpisodes,
} from './writer.js';
export {
  openDataset,
  minariDataDir,
  type StepBatch,
  type StepSlice,
  type TrajectoryDataset,
} from './reader.js';
