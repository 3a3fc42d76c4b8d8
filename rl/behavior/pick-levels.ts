/**
 * Picks the behaviour levels of a mixed-quality dataset (issue 17) from a train-levels run: every
 * `--stride`-th snapshot in `--dir` is rolled out for `--episodes` stochastic episodes (the
 * behaviour that generates data samples its actions), and the run's `levels.json` records each
 * evaluation and the choice:
 *
 * - medium: the first snapshot whose mean return reaches a third of D4RL's expert reference
 *   (D4RL's medium policies score about a third of expert), so medium-replay is everything
 *   collected up to it;
 * - expert: the snapshot with the best mean return.
 *
 *   node dist/rl/behavior/pick-levels.js --dir .cache/ppo-hopper [--stride 50] [--episodes 5]
 *       [--seed 1000]
 *
 * Resumable: evaluations already in levels.json (same episodes and seed) are kept, so an
 * interrupted pick continues. levels.json is written atomically after every snapshot.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { errorMessage, writeFileAtomic } from '../../common/index.js';
import { evaluatePolicy, PpoPolicy } from '../ppo-policy.js';
import { d4rlReferenceScores } from '../score.js';

/** One snapshot's evaluation. */
export interface LevelEvaluation {
  update: number;
  envSteps: number;
  mean: number;
  std: number;
  episodes: number;
}

/** levels.json: the evaluations and the picked snapshots. */
export interface LevelsFile {
  envId: string;
  episodes: number;
  seed: number;
  stochastic: true;
  /** D4RL's expert reference return for the env, the scale "a third of expert" refers to. */
  expertReference: number;
  evaluations: LevelEvaluation[];
  medium?: LevelEvaluation;
  expert?: LevelEvaluation;
}

/**
 * The levels from evaluations sorted by update: medium the first at ≥ expertReference / 3,
 * expert the best. Undefined where none qualifies.
 */
export function chooseLevels(
  evaluations: LevelEvaluation[],
  expertReference: number,
): { medium?: LevelEvaluation; expert?: LevelEvaluation } {
  const sorted = [...evaluations].sort((a, b) => a.update - b.update);
  const medium = sorted.find((e) => e.mean >= expertReference / 3);
  const expert = sorted.reduce<LevelEvaluation | undefined>(
    (best, e) => (!best || e.mean > best.mean ? e : best),
    undefined,
  );
  return { ...(medium ? { medium } : {}), ...(expert ? { expert } : {}) };
}

class UsageError extends Error {}

function snapshotUpdates(dir: string, stride: number): number[] {
  const log = join(dir, 'log.jsonl');
  if (!existsSync(log)) throw new UsageError(`--dir: ${dir} has no log.jsonl (not a train-levels run)`);
  const updates: number[] = [];
  for (let u = stride; existsSync(join(dir, `snap-${u}.json`)); u += stride) updates.push(u);
  if (updates.length === 0)
    throw new UsageError(
      `--dir: ${dir} has no snap-${stride}.json (is --stride a multiple of the run's --every?)`,
    );
  return updates;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      dir: { type: 'string' },
      stride: { type: 'string', default: '50' },
      episodes: { type: 'string', default: '5' },
      seed: { type: 'string', default: '1000' },
    },
  });
  const int = (name: string, raw: string | undefined, min: number): number => {
    const v = Number(raw);
    if (!Number.isInteger(v) || v < min)
      throw new UsageError(`--${name}: expected an integer ≥ ${min}, got '${raw}'`);
    return v;
  };
  if (!values.dir) throw new UsageError('--dir: required (a train-levels output folder)');
  const dir = values.dir;
  const stride = int('stride', values.stride, 1);
  const episodes = int('episodes', values.episodes, 1);
  const seed = int('seed', values.seed, 0);
  const updates = snapshotUpdates(dir, stride);
  const first = PpoPolicy.fromJSONText(
    readFileSync(join(dir, `snap-${updates[0]}.json`), 'utf8'),
    `snap-${updates[0]}.json`,
  );
  const envId = first.json.envId;
  const refs = d4rlReferenceScores(envId);
  if (!refs)
    throw new UsageError(`${envId}: no D4RL reference scores (rl/score.ts), so no "medium" level to aim at`);
  const out = join(dir, 'levels.json');
  let prior: LevelsFile | undefined;
  if (existsSync(out)) {
    const p = JSON.parse(readFileSync(out, 'utf8')) as LevelsFile;
    if (p.episodes === episodes && p.seed === seed && p.envId === envId) prior = p;
  }
  const done = new Map((prior?.evaluations ?? []).map((e) => [e.update, e]));
  const file: LevelsFile = {
    envId,
    episodes,
    seed,
    stochastic: true,
    expertReference: refs.max,
    evaluations: [],
  };
  for (const update of updates) {
    let e = done.get(update);
    if (!e) {
      const name = `snap-${update}.json`;
      const policy = PpoPolicy.fromJSONText(readFileSync(join(dir, name), 'utf8'), name);
      const s = evaluatePolicy(policy, { episodes, seed, stochastic: true });
      e = { update, envSteps: policy.json.training.envSteps, mean: s.mean, std: s.std, episodes };
      process.stderr.write(`pick-levels: ${name} return ${s.mean.toFixed(1)} ± ${s.std.toFixed(1)}\n`);
    }
    file.evaluations.push(e);
    Object.assign(file, chooseLevels(file.evaluations, refs.max));
    writeFileAtomic(out, `${JSON.stringify(file, null, 1)}\n`);
  }
  const show = (e?: LevelEvaluation) => (e ? `snap-${e.update}.json (return ${e.mean.toFixed(1)})` : 'none');
  process.stdout.write(`${envId}: medium ${show(file.medium)}, expert ${show(file.expert)} → ${out}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`)
  await main().catch((err) => {
    process.stderr.write(`pick-levels: ${errorMessage(err)}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  });
