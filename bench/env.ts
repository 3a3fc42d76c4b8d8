/**
 * Env stepping speed, ours against Python Gymnasium's in the same run (issue 4):
 * Ant-v5 single and vectorised over 2 workers (`exp bench env`), Gymnasium's Ant-v5 single and
 * AsyncVectorEnv with 2 processes, each repeated and the median kept. Writes
 * bench/results/env.json. Run: `node dist/bench/env.js [--steps 3000] [--repeats 3]`.
 */
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../common/index.js';
import { benchArgs } from './args.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const { steps, repeats } = benchArgs({
  script: 'env',
  usage: ['node dist/bench/env.js [--steps 3000] [--repeats 3]'],
  options: {
    steps: { kind: 'number', integer: true, min: 1, default: 3000, description: 'env steps per run' },
    repeats: {
      kind: 'number',
      integer: true,
      min: 1,
      default: 3,
      description: 'runs per configuration, interleaved (the median kept)',
    },
  },
});
const envId = 'Ant-v5';

interface Measure {
  stepsPerSec: number;
  [k: string]: unknown;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function ours(numEnvs: number): Measure[] {
  const out = execFileSync(
    process.execPath,
    [
      join(root, 'bin/exp.js'),
      'bench',
      'env',
      envId,
      '--steps',
      String(steps),
      '--num-envs',
      String(numEnvs),
      '--json',
    ],
    { encoding: 'utf8' },
  );
  return [JSON.parse(out) as Measure];
}
function gymnasium(numEnvs: number): Measure[] {
  const py = join(root, '.venv/bin/python');
  const out = execFileSync(
    py,
    [join(root, 'bench/env_gymnasium.py'), envId, String(steps), String(numEnvs)],
    {
      encoding: 'utf8',
      env: { ...process.env, PYTHONWARNINGS: 'ignore' },
    },
  );
  return [JSON.parse(out) as Measure];
}

const rows: Record<string, number[]> = { oursSingle: [], oursVec2: [], gymSingle: [], gymVec2: [] };
// Interleaved, so load from other processes on the machine hits every configuration alike.
for (let r = 0; r < repeats; r++) {
  rows.oursSingle.push(ours(1)[0].stepsPerSec);
  rows.gymSingle.push(gymnasium(1)[0].stepsPerSec);
  rows.oursVec2.push(ours(2)[0].stepsPerSec);
  rows.gymVec2.push(gymnasium(2)[0].stepsPerSec);
  process.stderr.write(`bench env: repeat ${r + 1}/${repeats} done\n`);
}
const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)])) as Record<string, number>;
const result = {
  env: envId,
  stepsPerRun: steps,
  repeats,
  machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
  stepsPerSec: m,
  runs: rows,
  ratios: {
    singleOursOverGymnasium: m.oursSingle / m.gymSingle,
    vec2OursOverGymnasium: m.oursVec2 / m.gymVec2,
    oursVec2OverSingle: m.oursVec2 / m.oursSingle,
    gymVec2OverSingle: m.gymVec2 / m.gymSingle,
  },
  note: 'ours: @mujoco/mujoco 3.14 wasm via `exp bench env`; vec2 = AsyncVectorEnv over 2 worker threads. Gymnasium 1.4 + mujoco 3.14 native; vec2 = AsyncVectorEnv, 2 processes. Medians.',
};
writeFileAtomic(join(root, 'bench/results/env.json'), `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result.stepsPerSec)}\n${JSON.stringify(result.ratios)}\n`);
