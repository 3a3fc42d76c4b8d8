/**
 * The policies behind the mixed-quality datasets (issue 17): trains PPO on one env for a long
 * run and keeps a snapshot (actor + critic + statistics) every `--every` updates, with one log
 * line per update (training-episode returns). The levels are picked from the snapshots
 * afterwards: "medium" about a third of D4RL's expert reference, "expert" the best late one; a
 * medium-replay dataset is rolled out from the snapshots up to the medium one, a medium-expert
 * dataset from the medium and the expert policy.
 *
 *   node dist/rl/behavior/train-levels.js --env Hopper-v5 --out .cache/ppo-hopper [--seed 1]
 *       [--steps 3000000] [--every 10] [--input-dim 0] [--resume]
 *
 * Long runs outlive a session: `--resume` continues from the newest snapshot in `--out` (weights,
 * statistics and counters; Adam's moments restart, as in rl/behavior/train-ant-medium.ts), so
 * the log and snapshots continue where they stopped. Snapshots are written atomically.
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { errorMessage, writeFileAtomic } from '../../common/index.js';
import { snapshotFiles } from '../levels.js';
import { trainPpo } from '../ppo.js';
import type { PolicyJSON } from '../ppo-policy.js';

interface Options {
  env: string;
  out: string;
  seed: number;
  steps: number;
  every: number;
  inputDim: number;
  resume: boolean;
}

/** The newest `snap-<update>.json` in `dir`, or undefined. */
export function newestSnapshot(dir: string): { update: number; file: string } | undefined {
  return snapshotFiles(dir).at(-1);
}

function parse(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      env: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string', default: '1' },
      steps: { type: 'string', default: '3000000' },
      every: { type: 'string', default: '10' },
      'input-dim': { type: 'string', default: '0' },
      resume: { type: 'boolean', default: false },
    },
  });
  const int = (name: string, raw: string | undefined, min: number): number => {
    const v = Number(raw);
    if (!Number.isInteger(v) || v < min)
      throw new UsageError(`--${name}: expected an integer ≥ ${min}, got '${raw}'`);
    return v;
  };
  if (!values.env) throw new UsageError('--env: required (a registered env id, e.g. Hopper-v5)');
  if (!values.out) throw new UsageError('--out: required (a folder for log.jsonl and snapshots)');
  return {
    env: values.env,
    out: values.out,
    seed: int('seed', values.seed, 0),
    steps: int('steps', values.steps, 1),
    every: int('every', values.every, 1),
    inputDim: int('input-dim', values['input-dim'], 0),
    resume: values.resume ?? false,
  };
}

class UsageError extends Error {}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  mkdirSync(o.out, { recursive: true });
  const from = o.resume ? newestSnapshot(o.out) : undefined;
  if (!o.resume && newestSnapshot(o.out))
    throw new UsageError(`${o.out} already holds snapshots: pass --resume to continue, or another --out`);
  const init = from ? (JSON.parse(readFileSync(from.file, 'utf8')) as PolicyJSON) : undefined;
  if (from) process.stderr.write(`train-levels: resuming from ${from.file}\n`);
  const log = join(o.out, 'log.jsonl');
  let returns: number[] = [];
  let lastLine = Date.now();
  await trainPpo({
    envId: o.env,
    seed: o.seed,
    totalSteps: o.steps,
    numEnvs: 4,
    numSteps: 512,
    vectorization: 'async',
    ...(o.inputDim > 0 ? { inputDim: o.inputDim } : {}),
    init,
    onEpisode: (ret) => {
      returns.push(ret);
    },
    onUpdate: (u, tr) => {
      const mean = returns.length ? returns.reduce((a, b) => a + b, 0) / returns.length : null;
      appendFileSync(
        log,
        `${JSON.stringify({ ...u, episodes: returns.length, returnMean: mean, t: tr.wallSec })}\n`,
      );
      returns = [];
      if (u.update % o.every === 0)
        writeFileAtomic(join(o.out, `snap-${u.update}.json`), JSON.stringify(tr.policyJSON(true)));
      if (Date.now() - lastLine > 30_000) {
        lastLine = Date.now();
        process.stderr.write(
          `train-levels: update ${u.update}, env step ${u.envStep}, return ${mean?.toFixed(1)}\n`,
        );
      }
      return undefined;
    },
  });
}

if (import.meta.url === `file://${process.argv[1]}`)
  await main().catch((err) => {
    process.stderr.write(`train-levels: ${errorMessage(err)}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  });
