/**
 * What a trainer in rl/ or lm/ is handed besides its options: the run's seed and RNG, where it
 * reports (metrics, params, log lines, a progress bar), where it saves checkpoints and the one to
 * resume from, and the signal that stops it. experiments/ passes its RecipeContext's parts (the
 * RunTracker, Checkpoints, …); a script or a test passes a MemoryLogger and nothing else. Kept
 * free of experiments/ so the trainers never import it (issue 13's layering).
 */
import type { Rng } from '../common/index.js';
import type { BackendChoice } from '../native/index.js';
import type { TrainLogger } from './logger.js';

/** JSON a checkpoint carries beside its tensors (counters, running statistics). */
export type CheckpointJson =
  | null
  | boolean
  | number
  | string
  | CheckpointJson[]
  | { [key: string]: CheckpointJson };

/** A tensor as checkpoints store it: (shape) and its values, row-major. */
export interface CheckpointTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface TrainCheckpoint {
  /** Last completed training step; a resumed run continues at `step + 1`. */
  step: number;
  state: CheckpointJson;
  tensors: Record<string, CheckpointTensor>;
}

/** Where checkpoints go (experiments/ Checkpoints: keeps the last few, uploads them). */
export interface CheckpointSink {
  /** Whether a checkpoint is due after `step`. */
  due(step: number): boolean;
  save(checkpoint: TrainCheckpoint): Promise<void>;
}

/** A progress display: `update` after each step, `finish` once. */
export interface ProgressBar {
  update(done: number, metrics?: Record<string, number>): void;
  finish(): void;
}

export interface TrainContext {
  /** The run's seed: per-step samplers derive theirs from it, so a resumed run draws the same. */
  seed: number;
  /** The run's main RNG (model initialisation); restored on resume by whoever saved it. */
  rng: Rng;
  logger: TrainLogger;
  /** Run parameters learned while training (a measured memory figure); default: dropped. */
  params?(values: Record<string, string | number | boolean>): void;
  /** Default: no checkpoints. */
  checkpoints?: CheckpointSink;
  /** The checkpoint to continue from. */
  resume?: TrainCheckpoint;
  /** Stops the loop after the current step (Ctrl-C): a checkpoint of that step is saved. */
  signal?: AbortSignal;
  progress?(label: string, total?: number): ProgressBar;
  /** One human-readable line (stderr in a run). */
  log?(line: string): void;
  /**
   * Where the options came from, for error messages: a recipe passes its config section
   * (`sharegpt-finetune`), so an error names the key to change (`sharegpt-finetune.devices`);
   * default the trainer's name.
   */
  optionsPath?: string;
  /** Backend of the ring's devices (default: auto, as the main thread). */
  backend?: BackendChoice;
}
