/**
 * Vector environments, as Gymnasium 1.x's `SyncVectorEnv` and `AsyncVectorEnv` with the default
 * NEXT_STEP autoreset: when sub-env i ends at step t (terminated or truncated) step t returns its
 * last observation; at step t + 1 its action is ignored, it is reset, and that step returns the
 * reset observation with reward 0 and terminated = truncated = false.
 *
 * Observations are batched into one flat typed array of shape (numEnvs, ...obsShape); actions
 * come the same way, (numEnvs, ...actShape) flat for Box actions or (numEnvs,) for Discrete.
 * Infos follow Gymnasium's dict-of-arrays: `infos[key][i]` with a mask `infos['_' + key][i]`.
 *
 * AsyncVectorEnv runs the sub-envs in worker threads (one MuJoCo wasm instance per worker, so the
 * CPU's cores step envs in parallel). Calls stay synchronous: the main thread posts a command on a
 * MessagePort, wakes the worker through a SharedArrayBuffer with Atomics.notify, blocks in
 * Atomics.wait until the worker signals back, then reads the reply with receiveMessageOnPort.
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { InputError } from '../../common/index.js';
import type { Env, Info, ResetArgs } from './core.js';
import { InvalidAction, InvalidArgument } from './errors.js';
import { make, type MakeOptions } from './registry.js';
import { checkSeed, describe } from './seeding.js';
import { Box, Discrete, MultiDiscrete, type Space } from './spaces.js';

/** Gymnasium's vector infos: per key an array over envs, and `_key` saying which envs set it. */
export type VectorInfo = { [key: string]: unknown };

/** Batched observations: (numEnvs, ...single obs shape), flat. */
export type BatchObs = Float32Array | Float64Array;

export type VectorStepResult = [
  observations: BatchObs,
  rewards: Float64Array,
  terminations: boolean[],
  truncations: boolean[],
  infos: VectorInfo,
];

/** Seeds for a vector reset: one int → [s, s+1, ...]; or one per env. */
export interface VectorResetArgs {
  seed?: number | (number | undefined)[];
  options?: Record<string, unknown>;
}

/** Adds one sub-env's info at index i (Gymnasium's `VectorEnv._add_info`), recursing into objects. */
export function addInfo(infos: VectorInfo, info: Info, i: number, numEnvs: number): VectorInfo {
  for (const [k, v] of Object.entries(info)) {
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v)) {
      const sub = (infos[k] as VectorInfo | undefined) ?? {};
      infos[k] = addInfo(sub, v as Info, i, numEnvs);
    } else {
      let arr = infos[k] as unknown[] | Float64Array | undefined;
      if (arr === undefined) {
        arr = typeof v === 'number' ? new Float64Array(numEnvs) : new Array<unknown>(numEnvs).fill(null);
        infos[k] = arr;
      } else if (arr instanceof Float64Array && typeof v !== 'number') {
        arr = Array.from(arr) as unknown[];
        infos[k] = arr;
      }
      (arr as unknown[])[i] = v;
    }
    const mk = `_${k}`;
    const mask = (infos[mk] as boolean[] | undefined) ?? new Array<boolean>(numEnvs).fill(false);
    mask[i] = true;
    infos[mk] = mask;
  }
  return infos;
}

function seedList(seed: VectorResetArgs['seed'], n: number, who: string): (number | undefined)[] {
  if (seed === undefined) return new Array(n).fill(undefined);
  if (typeof seed === 'number') {
    const s = checkSeed(seed, who)!;
    return Array.from({ length: n }, (_, i) => s + i);
  }
  if (!Array.isArray(seed) || seed.length !== n)
    throw new InvalidArgument(
      `${who}: seed must be an integer or a list of ${n} seeds; got ${describe(seed)}`,
    );
  return seed.map((s) => checkSeed(s, who));
}

/** Spaces a vector env supports: Box observations; Box or Discrete actions. */
function singleSpaces(obs: Space, act: Space, who: string): { obs: Box; act: Box | Discrete } {
  if (!(obs instanceof Box))
    throw new InvalidArgument(`${who}: vector envs need a Box observation space; got ${obs.toString()}`);
  if (!(act instanceof Box) && !(act instanceof Discrete))
    throw new InvalidArgument(
      `${who}: vector envs need a Box or Discrete action space; got ${act.toString()}`,
    );
  return { obs, act };
}

/** Common surface of the synchronous and asynchronous vector envs. */
export abstract class VectorEnv {
  abstract readonly numEnvs: number;
  abstract readonly singleObservationSpace: Box;
  abstract readonly singleActionSpace: Box | Discrete;
  abstract reset(args?: VectorResetArgs): [BatchObs, VectorInfo];
  abstract step(actions: ArrayLike<number>): VectorStepResult;
  abstract close(): void;

  /** Batched observation space: shape (numEnvs, ...single shape). */
  get observationSpace(): Box {
    const s = this.singleObservationSpace;
    const tile = (a: ArrayLike<number>) => Array.from({ length: this.numEnvs }, () => Array.from(a)).flat();
    return new Box(tile(s.low), tile(s.high), [this.numEnvs, ...s.shape], s.dtype);
  }
  /** Batched action space: Box (numEnvs, ...shape) or MultiDiscrete of numEnvs × n. */
  get actionSpace(): Box | MultiDiscrete {
    const s = this.singleActionSpace;
    if (s instanceof Discrete)
      return new MultiDiscrete(new Array(this.numEnvs).fill(s.n), new Array(this.numEnvs).fill(s.start));
    const tile = (a: ArrayLike<number>) => Array.from({ length: this.numEnvs }, () => Array.from(a)).flat();
    return new Box(tile(s.low), tile(s.high), [this.numEnvs, ...s.shape], s.dtype);
  }

  /** Number of action values per env (1 for Discrete). */
  protected get actionSize(): number {
    const s = this.singleActionSpace;
    return s instanceof Box ? s.size : 1;
  }

  protected checkActions(actions: ArrayLike<number>, who: string): void {
    const want = this.numEnvs * this.actionSize;
    if (!actions || typeof actions !== 'object' || typeof actions.length !== 'number')
      throw new InvalidAction(
        `${who}.step: actions must be a flat array of ${want} numbers; got ${describe(actions)}`,
      );
    if (actions.length !== want)
      throw new InvalidAction(
        `${who}.step: expected ${want} action values (${this.numEnvs} envs × ${this.actionSize}); got ${actions.length}`,
      );
  }
}

/**
 * A batch of envs stepped in order with NEXT_STEP autoreset; the engine of SyncVectorEnv and of
 * each AsyncVectorEnv worker. Writes observations into `obs` and returns per-env infos.
 */
export class EnvBatch {
  readonly obsSize: number;
  readonly actSize: number;
  readonly discrete: boolean;
  readonly obs: BatchObs;
  readonly rewards: Float64Array;
  readonly terminations: boolean[];
  readonly truncations: boolean[];
  private autoreset: boolean[];

  constructor(
    readonly envs: Env<unknown, unknown>[],
    who: string,
  ) {
    const first = envs[0];
    const { obs, act } = singleSpaces(first.observationSpace, first.actionSpace, who);
    this.obsSize = obs.size;
    this.discrete = act instanceof Discrete;
    this.actSize = act instanceof Box ? act.size : 1;
    const n = envs.length;
    this.obs = obs.dtype === 'float32' ? new Float32Array(n * obs.size) : new Float64Array(n * obs.size);
    this.rewards = new Float64Array(n);
    this.terminations = new Array(n).fill(false);
    this.truncations = new Array(n).fill(false);
    this.autoreset = new Array(n).fill(false);
  }

  reset(seeds: (number | undefined)[], options?: Record<string, unknown>): Info[] {
    const infos: Info[] = [];
    this.envs.forEach((env, i) => {
      const args: ResetArgs = { seed: seeds[i], options };
      const [o, info] = env.reset(args);
      this.obs.set(o as ArrayLike<number>, i * this.obsSize);
      infos.push(info);
    });
    this.terminations.fill(false);
    this.truncations.fill(false);
    this.autoreset.fill(false);
    this.rewards.fill(0);
    return infos;
  }

  step(actions: ArrayLike<number>): Info[] {
    const infos: Info[] = [];
    for (let i = 0; i < this.envs.length; i++) {
      const env = this.envs[i];
      let info: Info;
      if (this.autoreset[i]) {
        let o: unknown;
        [o, info] = env.reset();
        this.obs.set(o as ArrayLike<number>, i * this.obsSize);
        this.rewards[i] = 0;
        this.terminations[i] = false;
        this.truncations[i] = false;
      } else {
        const a = this.discrete
          ? actions[i]
          : (actions as Float64Array).subarray
            ? (actions as Float64Array).subarray(i * this.actSize, (i + 1) * this.actSize)
            : Array.prototype.slice.call(actions, i * this.actSize, (i + 1) * this.actSize);
        const [o, r, term, trunc, inf] = env.step(a);
        this.obs.set(o as ArrayLike<number>, i * this.obsSize);
        this.rewards[i] = r;
        this.terminations[i] = term;
        this.truncations[i] = trunc;
        info = inf;
      }
      infos.push(info);
    }
    for (let i = 0; i < this.envs.length; i++)
      this.autoreset[i] = this.terminations[i] || this.truncations[i];
    return infos;
  }

  close(): void {
    for (const env of this.envs) env.close();
  }
}

/** Steps its envs one after another in this thread (Gymnasium's SyncVectorEnv). */
export class SyncVectorEnv extends VectorEnv {
  readonly numEnvs: number;
  readonly singleObservationSpace: Box;
  readonly singleActionSpace: Box | Discrete;
  private readonly batch: EnvBatch;

  /** `envFns`: one factory per sub-env (as Gymnasium's env_fns). */
  constructor(envFns: (() => Env<unknown, unknown>)[]) {
    super();
    if (!Array.isArray(envFns) || envFns.length === 0)
      throw new InvalidArgument(`SyncVectorEnv: expected at least one env factory; got ${describe(envFns)}`);
    const envs = envFns.map((f) => f());
    this.numEnvs = envs.length;
    const { obs, act } = singleSpaces(envs[0].observationSpace, envs[0].actionSpace, 'SyncVectorEnv');
    this.singleObservationSpace = obs;
    this.singleActionSpace = act;
    this.batch = new EnvBatch(envs, 'SyncVectorEnv');
  }

  /** The sub-envs, in order. */
  get envs(): Env<unknown, unknown>[] {
    return this.batch.envs;
  }

  reset(args: VectorResetArgs = {}): [BatchObs, VectorInfo] {
    const infos = this.batch.reset(seedList(args.seed, this.numEnvs, 'SyncVectorEnv.reset'), args.options);
    const out: VectorInfo = {};
    for (const [i, info] of infos.entries()) addInfo(out, info, i, this.numEnvs);
    return [this.batch.obs.slice(), out];
  }

  step(actions: ArrayLike<number>): VectorStepResult {
    this.checkActions(actions, 'SyncVectorEnv');
    const infos = this.batch.step(actions);
    const out: VectorInfo = {};
    for (const [i, info] of infos.entries()) addInfo(out, info, i, this.numEnvs);
    const b = this.batch;
    return [b.obs.slice(), b.rewards.slice(), [...b.terminations], [...b.truncations], out];
  }

  close(): void {
    this.batch.close();
  }
}

/** How a worker builds its envs: a registered id (functions cannot cross threads). */
export interface EnvRecipe {
  id: string;
  kwargs?: Record<string, unknown>;
  makeOptions?: MakeOptions;
  /** Module URLs (file://...) the worker imports first, to `register` custom envs. */
  modules?: string[];
}

export interface AsyncVectorEnvOptions {
  /** Worker threads; default min(numEnvs, available CPUs). Envs are split in contiguous shards. */
  numWorkers?: number;
  /** Seconds to wait for a worker's reply before giving up (a crashed worker never replies). */
  timeoutSec?: number;
}

/** Messages to a worker. */
export type WorkerCommand =
  | { cmd: 'reset'; seeds: (number | undefined)[]; options?: Record<string, unknown> }
  | { cmd: 'step'; actions: Float32Array | Float64Array }
  | { cmd: 'close' };
/** Replies from a worker. */
export type WorkerReply =
  | {
      ok: true;
      obs?: BatchObs;
      rewards?: Float64Array;
      terminations?: boolean[];
      truncations?: boolean[];
      infos?: Info[];
    }
  | { ok: false; message: string; inputError: boolean };

/** Shared state between the main thread and one worker: [commands posted, replies posted]. */
interface WorkerHandle {
  worker: Worker;
  port: MessagePort;
  ctrl: Int32Array;
  first: number;
  count: number;
  posted: number;
}

/** Steps its envs in worker threads (Gymnasium's AsyncVectorEnv; threads instead of processes). */
export class AsyncVectorEnv extends VectorEnv {
  readonly singleObservationSpace: Box;
  readonly singleActionSpace: Box | Discrete;
  readonly numWorkers: number;
  private readonly workers: WorkerHandle[] = [];
  private readonly obs: BatchObs;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(
    readonly recipe: EnvRecipe,
    readonly numEnvs: number,
    options: AsyncVectorEnvOptions = {},
  ) {
    super();
    if (!Number.isInteger(numEnvs) || numEnvs < 1)
      throw new InvalidArgument(
        `AsyncVectorEnv: numEnvs must be a positive integer; got ${describe(numEnvs)}`,
      );
    const numWorkers = options.numWorkers ?? Math.min(numEnvs, availableParallelism());
    if (!Number.isInteger(numWorkers) || numWorkers < 1 || numWorkers > numEnvs)
      throw new InvalidArgument(
        `AsyncVectorEnv: numWorkers must be an integer in [1, ${numEnvs}]; got ${describe(numWorkers)}`,
      );
    this.numWorkers = numWorkers;
    this.timeoutMs = (options.timeoutSec ?? 120) * 1000;
    // Spaces come from one env built here: it also surfaces a bad id or keyword before any thread starts.
    const probe = make<unknown, unknown>(recipe.id, recipe.kwargs ?? {}, recipe.makeOptions);
    const { obs, act } = singleSpaces(probe.observationSpace, probe.actionSpace, 'AsyncVectorEnv');
    this.singleObservationSpace = obs;
    this.singleActionSpace = act;
    probe.close();
    this.obs =
      obs.dtype === 'float32' ? new Float32Array(numEnvs * obs.size) : new Float64Array(numEnvs * obs.size);

    let first = 0;
    for (let w = 0; w < numWorkers; w++) {
      const count = Math.floor(numEnvs / numWorkers) + (w < numEnvs % numWorkers ? 1 : 0);
      const { port1, port2 } = new MessageChannel();
      const ctrl = new Int32Array(new SharedArrayBuffer(8));
      const worker = new Worker(new URL('./vector_worker.js', import.meta.url), {
        workerData: { recipe, count, port: port2, ctrl },
        transferList: [port2],
      });
      worker.unref();
      this.workers.push({ worker, port: port1, ctrl, first, count, posted: 0 });
      first += count;
    }
    // The first reply of each worker says its envs are built (or why not).
    try {
      for (const h of this.workers) this.wait(h);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private post(h: WorkerHandle, command: WorkerCommand): void {
    h.port.postMessage(command);
    h.posted += 1;
    Atomics.store(h.ctrl, 0, h.posted);
    Atomics.notify(h.ctrl, 0);
  }

  /** Blocks until worker `h` has replied to every command posted, and returns the last reply. */
  private wait(h: WorkerHandle): WorkerReply & { ok: true } {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const done = Atomics.load(h.ctrl, 1);
      // Reply 1 is the worker's "ready"; reply k + 1 answers command k.
      if (done >= h.posted + 1) break;
      if (done === -1)
        throw new Error(`AsyncVectorEnv: worker for envs ${h.first}..${h.first + h.count - 1} died`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `AsyncVectorEnv: no reply from the worker for envs ${h.first}..${h.first + h.count - 1} in ${this.timeoutMs / 1000}s`,
        );
      Atomics.wait(h.ctrl, 1, done, Math.min(left, 1000));
    }
    const msg = receiveMessageOnPort(h.port);
    if (!msg) throw new Error('AsyncVectorEnv: worker signalled a reply but none arrived');
    const reply = msg.message as WorkerReply;
    if (!reply.ok) throw reply.inputError ? new InputError(reply.message) : new Error(reply.message);
    return reply;
  }

  private gather(replies: (WorkerReply & { ok: true })[], withStep: boolean) {
    const n = this.numEnvs;
    const size = this.singleObservationSpace.size;
    const rewards = new Float64Array(n);
    const terminations = new Array<boolean>(n).fill(false);
    const truncations = new Array<boolean>(n).fill(false);
    const infos: VectorInfo = {};
    replies.forEach((r, w) => {
      const h = this.workers[w];
      this.obs.set(r.obs!, h.first * size);
      if (withStep) {
        rewards.set(r.rewards!, h.first);
        for (let j = 0; j < h.count; j++) {
          terminations[h.first + j] = r.terminations![j];
          truncations[h.first + j] = r.truncations![j];
        }
      }
      for (const [j, info] of r.infos!.entries()) addInfo(infos, info, h.first + j, n);
    });
    return { rewards, terminations, truncations, infos };
  }

  reset(args: VectorResetArgs = {}): [BatchObs, VectorInfo] {
    this.assertOpen();
    const seeds = seedList(args.seed, this.numEnvs, 'AsyncVectorEnv.reset');
    for (const h of this.workers)
      this.post(h, { cmd: 'reset', seeds: seeds.slice(h.first, h.first + h.count), options: args.options });
    const replies = this.workers.map((h) => this.wait(h));
    const { infos } = this.gather(replies, false);
    return [this.obs.slice(), infos];
  }

  step(actions: ArrayLike<number>): VectorStepResult {
    this.assertOpen();
    this.checkActions(actions, 'AsyncVectorEnv');
    const k = this.actionSize;
    for (const h of this.workers) {
      // NOTE: keep float32 actions float32: the control cost is computed in the action's precision.
      const shard =
        actions instanceof Float32Array ? new Float32Array(h.count * k) : new Float64Array(h.count * k);
      for (let j = 0; j < shard.length; j++) shard[j] = actions[h.first * k + j];
      this.post(h, { cmd: 'step', actions: shard });
    }
    const replies = this.workers.map((h) => this.wait(h));
    const { rewards, terminations, truncations, infos } = this.gather(replies, true);
    return [this.obs.slice(), rewards, terminations, truncations, infos];
  }

  private assertOpen(): void {
    if (this.closed) throw new InvalidArgument('AsyncVectorEnv: the env is closed');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const h of this.workers) {
      try {
        this.post(h, { cmd: 'close' });
      } catch {
        // the port may already be closed
      }
      void h.worker.terminate();
      h.port.close();
    }
  }
}

export interface MakeVecOptions {
  /** 'sync' (one thread) or 'async' (worker threads). Default 'sync'. */
  vectorizationMode?: 'sync' | 'async';
  kwargs?: Record<string, unknown>;
  makeOptions?: MakeOptions;
  numWorkers?: number;
}

/** Gymnasium's `make_vec`: `numEnvs` copies of a registered env. */
export function makeVec(id: string, numEnvs: number, options: MakeVecOptions = {}): VectorEnv {
  if (!Number.isInteger(numEnvs) || numEnvs < 1)
    throw new InvalidArgument(`makeVec: numEnvs must be a positive integer; got ${describe(numEnvs)}`);
  const mode = options.vectorizationMode ?? 'sync';
  if (mode === 'async')
    return new AsyncVectorEnv({ id, kwargs: options.kwargs, makeOptions: options.makeOptions }, numEnvs, {
      numWorkers: options.numWorkers,
    });
  if (mode !== 'sync')
    throw new InvalidArgument(`makeVec: vectorizationMode must be "sync" or "async"; got ${describe(mode)}`);
  return new SyncVectorEnv(
    Array.from(
      { length: numEnvs },
      () => () => make<unknown, unknown>(id, options.kwargs ?? {}, options.makeOptions),
    ),
  );
}
