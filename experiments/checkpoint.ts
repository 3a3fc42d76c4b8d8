/**
 * Checkpoints: a folder `step-<8 digits>/` holding `checkpoint.json` (step, RNG state, the
 * recipe's JSON state, a tensor index) and `tensors.bin` (the tensors' little-endian bytes, one
 * after another). Written atomically in the run's local folder, then uploaded as artifacts
 * `checkpoints/step-…/` (tensors first, so a checkpoint whose JSON exists is complete); `--resume`
 * downloads the newest one from the run's artifacts, so it works on any machine that sees the
 * tracking server.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, InputError, sweepStaleTemporaries, writeDirAtomic } from '../common/index.js';
import type { TrackingStore } from './tracking/index.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A tensor's values, independent of tfjs (recipes convert with `tf.tensor(data, shape)`). */
export interface SavedTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface CheckpointData {
  /** Last completed training step; a resumed run continues at `step + 1`. */
  step: number;
  /** Anything JSON the recipe needs to continue (counters, running statistics, extra RNG states). */
  state: JsonValue;
  tensors: Record<string, SavedTensor>;
}

export interface LoadedCheckpoint extends CheckpointData {
  /** State of the run's main RNG (`ctx.rng`) when the checkpoint was saved. */
  rngState: number;
  /** Folder it was loaded from. */
  dir: string;
}

const FORMAT = 'exp-checkpoint-1';

interface TensorIndex {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  /** Byte offset in tensors.bin. */
  offset: number;
  length: number;
}

export function checkpointDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/** Writes a checkpoint folder atomically. */
export async function writeCheckpoint(dir: string, data: CheckpointData, rngState: number): Promise<void> {
  await writeDirAtomic(dir, (tmp) => {
    const index: TensorIndex[] = [];
    const chunks: Buffer[] = [];
    let offset = 0;
    for (const [name, t] of Object.entries(data.tensors)) {
      const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      index.push({
        name,
        dtype: t.data instanceof Int32Array ? 'int32' : 'float32',
        shape: t.shape,
        offset,
        length: t.data.length,
      });
      chunks.push(bytes);
      offset += bytes.byteLength;
    }
    const bin = Buffer.concat(chunks);
    writeFileSync(join(tmp, 'tensors.bin'), bin);
    // The digest lets --resume tell a torn or corrupted tensors.bin from an intact one (issue 16).
    const tensorsSha256 = createHash('sha256').update(bin).digest('hex');
    writeFileSync(
      join(tmp, 'checkpoint.json'),
      `${JSON.stringify({ format: FORMAT, step: data.step, rngState, state: data.state, tensors: index, tensorsSha256 }, null, 1)}\n`,
    );
  });
}

/**
 * Reads a checkpoint folder written by `writeCheckpoint`. Anything torn or corrupted (JSON that
 * does not parse, a tensor index outside tensors.bin, a digest that does not match) is an
 * InputError naming the folder and what was expected.
 */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const jsonFile = join(dir, 'checkpoint.json');
  if (!existsSync(jsonFile)) throw new InputError(`checkpoint ${dir}: no checkpoint.json`);
  let meta: {
    format: string;
    step: number;
    rngState: number;
    state: JsonValue;
    tensors: TensorIndex[];
    tensorsSha256?: string;
  };
  try {
    meta = JSON.parse(readFileSync(jsonFile, 'utf8'));
  } catch (err) {
    throw new InputError(`checkpoint ${dir}: checkpoint.json is not valid JSON (${errorMessage(err)})`);
  }
  if (meta === null || typeof meta !== 'object' || meta.format !== FORMAT)
    throw new InputError(`checkpoint ${dir}: format '${meta?.format}', expected '${FORMAT}'`);
  if (!Number.isInteger(meta.step) || meta.step < 0 || !Array.isArray(meta.tensors))
    throw new InputError(`checkpoint ${dir}: checkpoint.json: expected a step ≥ 0 and a tensor index`);
  const binFile = join(dir, 'tensors.bin');
  if (!existsSync(binFile)) throw new InputError(`checkpoint ${dir}: no tensors.bin`);
  const bin = readFileSync(binFile);
  if (meta.tensorsSha256 !== undefined) {
    const got = createHash('sha256').update(bin).digest('hex');
    if (got !== meta.tensorsSha256)
      throw new InputError(
        `checkpoint ${dir}: tensors.bin has sha256 ${got.slice(0, 12)}…, expected ${meta.tensorsSha256.slice(0, 12)}… (torn or corrupted)`,
      );
  }
  const tensors: Record<string, SavedTensor> = {};
  for (const t of meta.tensors) {
    const count = Array.isArray(t?.shape) ? t.shape.reduce((a, b) => a * b, 1) : Number.NaN;
    if (
      !Number.isSafeInteger(t?.offset) ||
      !Number.isSafeInteger(t?.length) ||
      t.offset < 0 ||
      t.offset % 4 !== 0 ||
      t.length !== count ||
      t.offset + t.length * 4 > bin.byteLength ||
      (t.dtype !== 'float32' && t.dtype !== 'int32')
    )
      throw new InputError(
        `checkpoint ${dir}: tensor '${t?.name}': index ${JSON.stringify(t)} does not fit tensors.bin (${bin.byteLength} bytes)`,
      );
    // Copy out so each tensor owns an aligned buffer.
    const bytes = bin.subarray(t.offset, t.offset + t.length * 4);
    const copy = new Uint8Array(bytes).buffer;
    tensors[t.name] = {
      shape: t.shape,
      data: t.dtype === 'int32' ? new Int32Array(copy) : new Float32Array(copy),
    };
  }
  return { step: meta.step, rngState: meta.rngState, state: meta.state, tensors, dir };
}

/**
 * Downloads the newest intact checkpoint of a run from its artifacts into `localRoot`;
 * undefined when the run has none. A torn or corrupted newer one is skipped with a warning
 * (`warn`) and the previous one is used (issue 16); when checkpoints exist but none is intact,
 * an InputError names each and why.
 */
export async function fetchLatestCheckpoint(
  store: TrackingStore,
  runId: string,
  localRoot: string,
  warn: (line: string) => void = () => undefined,
): Promise<LoadedCheckpoint | undefined> {
  const dirs = (await store.listArtifacts(runId, 'checkpoints'))
    .filter((f) => f.isDir && /step-\d+$/.test(f.path))
    .sort((a, b) => b.path.localeCompare(a.path));
  const broken: string[] = [];
  for (const d of dirs) {
    const files = await store.listArtifacts(runId, d.path);
    if (
      !files.some((f) => f.path.endsWith('/checkpoint.json')) ||
      !files.some((f) => f.path.endsWith('/tensors.bin'))
    ) {
      // An upload cut short (tensors go first, so no JSON means incomplete): not a failure.
      warn(`run ${runId}: ${d.path} is incomplete (upload interrupted); using an older checkpoint`);
      continue;
    }
    const name = d.path.split('/').pop()!;
    const local = join(localRoot, name);
    try {
      for (const f of ['tensors.bin', 'checkpoint.json'])
        await store.downloadArtifact(runId, `${d.path}/${f}`, join(local, f));
      return loadCheckpoint(local);
    } catch (err) {
      broken.push(`${d.path}: ${errorMessage(err)}`);
      warn(`run ${runId}: ${d.path} is unusable (${errorMessage(err)}); trying an older checkpoint`);
    }
  }
  if (broken.length)
    throw new InputError(
      `run ${runId}: no intact checkpoint to resume from; expected checkpoint.json and tensors.bin that load; got:\n  ${broken.join('\n  ')}`,
    );
  return undefined;
}

/** What a recipe calls to save; given to it as `ctx.checkpoints`. */
export class Checkpoints {
  private saved: number[] = [];
  private lastStep: number | undefined;

  constructor(
    private readonly options: {
      store: TrackingStore;
      runId: string;
      /** Local folder of this run's checkpoints. */
      localRoot: string;
      /** Local checkpoints kept (older ones are deleted locally; artifacts keep them all). */
      keep: number;
      /**
       * Keep no local copy once uploaded: with a file store the artifact is already on this disk,
       * and a second copy in the work folder doubled the space (74 MB for the LM sample run,
       * issue 15); --resume reads the artifact either way.
       */
      uploadOnly?: boolean;
      /**
       * Checkpoints kept in the run's artifacts, newest first; 0 keeps all. Every checkpoint of a
       * run used to stay (optimiser state included: 74 MB for the LM sample run, issue 15).
       */
      keepArtifacts?: number;
      /** Steps between checkpoints for `due()`; 0: only at the end and on interrupt. */
      every: number;
      rngState: () => number;
      /**
       * Called before a checkpoint is written: the runner flushes the buffered metrics, so every
       * step up to the checkpoint is stored before the checkpoint exists. A SIGKILL after the
       * upload then cannot leave a hole that --resume would never fill (issue 16).
       */
      beforeSave?: () => Promise<void>;
    },
  ) {}

  /** Uploaded checkpoint steps of this run: listed once (a resumed run has earlier ones), then tracked. */
  private uploaded: number[] | undefined;

  /** Deletes the run's artifact checkpoints older than the newest `keepArtifacts` (after uploading `step`). */
  private async pruneArtifacts(step: number): Promise<void> {
    const keep = this.options.keepArtifacts ?? 0;
    if (keep <= 0) return;
    if (!this.uploaded) {
      const listed = await this.options.store
        .listArtifacts(this.options.runId, 'checkpoints')
        .catch(() => []);
      this.uploaded = listed
        .map((a) => /step-(\d{8})$/.exec(a.path))
        .flatMap((m) => (m ? [Number(m[1])] : []));
    }
    if (!this.uploaded.includes(step)) this.uploaded.push(step);
    this.uploaded.sort((a, b) => a - b);
    while (this.uploaded.length > keep) {
      const old = this.uploaded.shift() as number;
      await this.options.store.deleteArtifacts(this.options.runId, `checkpoints/${checkpointDirName(old)}`);
    }
  }

  /** True when `step` is a multiple of the configured interval. */
  due(step: number): boolean {
    return this.options.every > 0 && step % this.options.every === 0;
  }

  /** The last step saved by this process, if any. */
  get lastSavedStep(): number | undefined {
    return this.lastStep;
  }

  async save(data: CheckpointData): Promise<void> {
    const name = checkpointDirName(data.step);
    const dir = join(this.options.localRoot, name);
    await this.options.beforeSave?.();
    // A process killed mid-write left its hidden temporary folder here: remove it.
    sweepStaleTemporaries(this.options.localRoot);
    await writeCheckpoint(dir, data, this.options.rngState());
    for (const f of ['tensors.bin', 'checkpoint.json'])
      await this.options.store.logArtifact(this.options.runId, join(dir, f), `checkpoints/${name}/${f}`);
    if (this.options.uploadOnly) rmSync(dir, { recursive: true, force: true });
    await this.pruneArtifacts(data.step);
    this.lastStep = data.step;
    this.saved.push(data.step);
    while (this.saved.length > this.options.keep) {
      const old = this.saved.shift()!;
      rmSync(join(this.options.localRoot, checkpointDirName(old)), { recursive: true, force: true });
    }
  }
}

/** Local checkpoint folders under `root`, oldest first. */
export function localCheckpoints(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((n) => /^step-\d{8}$/.test(n))
    .sort()
    .map((n) => join(root, n));
}
