/**
 * `exp bench env <EnvId> [--num-envs N] [--steps S] [--vector sync|async] [--workers W] --json`:
 * env steps per second under a uniform random policy (actions drawn before timing), with
 * autoreset. N = 1 steps one `make`d env; N > 1 a vector env (async = worker threads).
 */
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../../../../common/index.js';
import { AsyncVectorEnv, make, makeVec, mujocoVersion } from '../../../../rl/envs/index.js';
import { parseKwargsFlag } from '../env.js';
import { countFlag, maxWorkerThreads } from '../../options.js';

/** Most envs one benchmark steps together. */
const MAX_BENCH_ENVS = 1024;

interface BenchEnvArgs {
  id: string;
  'num-envs': number;
  steps: number;
  warmup: number;
  vector: string;
  workers?: number;
  kwargs?: string;
  seed: number;
  json: boolean;
}

export const benchEnvCommand: CommandModule<object, BenchEnvArgs> = {
  command: 'env <id>',
  describe: 'Env steps per second with a random policy, single or vectorised',
  builder: (y: Argv) =>
    y
      .positional('id', { type: 'string', demandOption: true, describe: 'Env id, e.g. Ant-v5' })
      .option('num-envs', {
        type: 'number',
        default: 1,
        describe: 'Envs stepped together (1: no vector env)',
      })
      .option('steps', { type: 'number', default: 2000, describe: 'Env steps timed, summed over envs' })
      .option('warmup', { type: 'number', default: 100, describe: 'Untimed env steps first' })
      .option('vector', {
        type: 'string',
        default: 'async',
        describe: 'sync or async (worker threads) when --num-envs > 1',
      })
      .option('workers', {
        type: 'number',
        describe: 'Worker threads for async (default min(num-envs, CPUs))',
      })
      .option('kwargs', { type: 'string', describe: 'Env keywords as a JSON object' })
      .option('seed', { type: 'number', default: 0, describe: 'Seed of resets and actions' })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print one JSON object',
      }) as unknown as Argv<BenchEnvArgs>,
  handler: (args) => {
    // each env holds its own MuJoCo data (≈ 0.2–1 MB): a typo like 1e7 would exhaust memory
    const n = countFlag(args['num-envs'], '--num-envs', {
      limit: MAX_BENCH_ENVS,
      why: 'each env holds its own simulator state',
    });
    for (const [flag, v] of [['--steps', args.steps]] as const)
      if (!Number.isInteger(v) || v < 1)
        throw new InputError(`${flag}: expected a positive integer; got ${v}`);
    if (!Number.isInteger(args.warmup) || args.warmup < 0)
      throw new InputError(`--warmup: expected a non-negative integer; got ${args.warmup}`);
    if (args.vector !== 'sync' && args.vector !== 'async')
      throw new InputError(`--vector: expected sync or async; got ${args.vector}`);
    // each worker thread holds a MuJoCo wasm instance: bounded like every thread count (issue 16)
    if (args.workers !== undefined)
      countFlag(args.workers, '--workers', {
        limit: maxWorkerThreads(),
        why: "each a thread with its own MuJoCo instance, ≈ 64 MB, half of this machine's memory",
      });
    const kwargs = parseKwargsFlag(args.kwargs);
    const calls = Math.ceil(args.steps / n);
    const warmCalls = Math.ceil(args.warmup / n);
    let seconds: number;
    let workers = 0;
    if (n === 1) {
      const env = make<unknown, unknown>(args.id, kwargs);
      env.reset({ seed: args.seed });
      env.actionSpace.seed(args.seed);
      const actions = Array.from({ length: Math.min(calls, 1000) }, () => env.actionSpace.sample());
      const run = (k: number) => {
        for (let i = 0; i < k; i++) {
          const [, , term, trunc] = env.step(actions[i % actions.length]);
          if (term || trunc) env.reset();
        }
      };
      run(warmCalls);
      const t0 = performance.now();
      run(calls);
      seconds = (performance.now() - t0) / 1000;
      env.close();
    } else {
      const venv = makeVec(args.id, n, {
        vectorizationMode: args.vector as 'sync' | 'async',
        kwargs,
        numWorkers: args.workers,
      });
      workers = venv instanceof AsyncVectorEnv ? venv.numWorkers : 0;
      venv.reset({ seed: args.seed });
      const space = venv.actionSpace;
      space.seed(args.seed);
      const actions = Array.from({ length: Math.min(calls, 500) }, () => space.sample());
      const run = (k: number) => {
        for (let i = 0; i < k; i++) venv.step(actions[i % actions.length]);
      };
      run(warmCalls);
      const t0 = performance.now();
      run(calls);
      seconds = (performance.now() - t0) / 1000;
      venv.close();
    }
    const steps = calls * n;
    const result = {
      env: args.id,
      numEnvs: n,
      vector: n === 1 ? 'none' : args.vector,
      workers,
      steps,
      seconds,
      stepsPerSec: steps / seconds,
      mujoco: mujocoVersion(),
      node: process.version,
    };
    if (args.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    process.stdout.write(
      `${args.id} × ${n}${n > 1 ? ` (${args.vector}${workers ? `, ${workers} workers` : ''})` : ''}: ${result.stepsPerSec.toFixed(0)} env steps/s (${steps} steps in ${seconds.toFixed(2)} s)\n`,
    );
  },
};
