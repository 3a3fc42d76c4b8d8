/**
 * experiments/: the `exp` runner, configs, MLflow tracking, recipes, sweeps. Other code (scripts,
 * notebooks-like REPLs, recipes in other issues) uses these.
 */
export {
  Checkpoints,
  type CheckpointData,
  fetchLatestCheckpoint,
  type JsonValue,
  type LoadedCheckpoint,
  loadCheckpoint,
  type SavedTensor,
  writeCheckpoint,
} from './checkpoint.js';
export type { RunConfig } from './config/base.js';
export {
  checkConfig,
  configToYaml,
  flattenConfig,
  loadConfig,
  type LoadedConfig,
  type LoadOptions,
} from './config/load.js';
export {
  describeSchema,
  type Infer,
  type InferFields,
  ObjectSchema,
  Schema,
  s,
  validate,
} from './config/schema.js';
export { datasetInfoFromFile } from './dataset-input.js';
export { type LinePlotOptions, linePlotSvg, type Series } from './plot/svg.js';
export { RECIPES, recipeByName, recipeNames, type Recipe, type RecipeContext } from './recipes/index.js';
export { type RunOptions, type RunOutcome, runExperiment, STATUS_REASON_TAG } from './runner.js';
export { expandGrid, parseSeeds, runSweep, type SweepOptions, type SweepOutcome } from './sweep.js';
export { type Cell, type Row, tableToArrow } from './tables.js';
export * from './tracking/index.js';
