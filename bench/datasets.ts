/**
 * Dataset benchmark (issue 3): writes a 1M-step dataset with 27-float observations and 8-float
 * actions, then measures, in the same run on the same file:
 *   - write time (streaming writer, single-file layout, incl. digest and the final rename),
 *   - full-scan read throughput (observation sums + reward sum) vs pyarrow reading the same file,
 *   - DT window sampler batches/s (batch 64, K 20) and AT chain sampler batches/s
 *     (batch 16, up to 4 × 1000-step trajectories, context 4000).
 * Usage: node dist/bench/datasets.js [--steps 1000000] [--out bench/results/datasets.json] [--repeats 3]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng, writeFileAtomic } from '../common/index.js';
import { AtChainSampler, boxSpace, createWriter, DtWindowSampler, openDataset } from '../datasets/index.js';
import { BenchArgError, benchArgs } from './args.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const EP_LEN = 1000;
const args = benchArgs(
  {
    script: 'datasets',
    usage: [
      'node dist/bench/datasets.js [--steps 1000000] [--out bench/results/datasets.json] [--repeats 3]',
    ],
    options: {
      steps: {
        kind: 'number',
        integer: true,
        min: EP_LEN,
        default: 1_000_000,
        description: `steps written, in ${EP_LEN}-step episodes`,
      },
      out: {
        kind: 'string',
        placeholder: 'FILE',
        defaultText: 'bench/results/datasets.json',
        description: 'where the JSON goes',
      },
      repeats: {
        kind: 'number',
        integer: true,
        min: 1,
        default: 3,
        description: "timed repeats of each read, ours and pyarrow's (the fastest kept)",
      },
    },
  },
  // the read checks count totalSteps + episodes rows, which holds for whole episodes only
  (a) => {
    if (a.steps % EP_LEN !== 0)
      throw new BenchArgError(
        '--steps is not a whole number of episodes',
        `a multiple of ${EP_LEN}`,
        String(a.steps),
      );
  },
);
const totalSteps = args.steps;
const outPath = args.out ?? join(root, 'bench', 'results', 'datasets.json');
const repeats = args.repeats;
const OBS = 27;
const ACT = 8;

const dir = join(tmpdir(), `ring-bench-ds-${process.pid}`);
mkdirSync(dir, { recursive: true });
const file = join(dir, 'bench.arrow');

// Episodes are generated before the clock starts, so the time is the writer's alone.
const rng = new Rng(1);
const pool = Array.from({ length: 4 }, () => ({
  observations: rng.normalArray((EP_LEN + 1) * OBS),
  actions: rng.normalArray(EP_LEN * ACT),
  rewards: Float64Array.from({ length: EP_LEN }, () => rng.normal()),
  terminations: new Uint8Array(EP_LEN),
  truncations: Uint8Array.from({ length: EP_LEN }, (_, t) => (t === EP_LEN - 1 ? 1 : 0)),
}));
const episodes = Math.ceil(totalSteps / EP_LEN);
const t0 = performance.now();
const w = createWriter(file, {
  datasetId: 'bench/ant-like-v0',
  observationSpace: boxSpace(OBS),
  actionSpace: boxSpace(ACT),
});
for (let e = 0; e < episodes; e++) {
  const ep = pool[e % pool.length];
  // Distinct returns per episode so AT chains sort something.
  w.addEpisode({ ...ep, rewards: ep.rewards.map((r) => r + e * 1e-3) });
}
const written = w.close();
const writeSeconds = (performance.now() - t0) / 1000;
const bytes = statSync(file).size;

/** Read only: every observation and reward delivered in memory as typed arrays. */
function readOnce(): number {
  const s0 = performance.now();
  const ds = openDataset(file);
  let rows = 0;
  for (const b of ds.scan(['observations', 'rewards'], { reuse: true })) rows += b.rows;
  ds.close();
  if (rows !== totalSteps + episodes) throw new Error('row count');
  return (performance.now() - s0) / 1000;
}

/** Read + compute: the same plus observation sums per dimension and the reward sum. */
function scanOnce(): { seconds: number; rows: number; rewardSum: number; obsSum0: number } {
  const s0 = performance.now();
  const ds = openDataset(file);
  const obsSum = new Float64Array(OBS);
  let rewardSum = 0;
  let rows = 0;
  for (const b of ds.scan(['observations', 'rewards'], { reuse: true })) {
    const o = b.observations;
    // Column j of row r sits at r*OBS + j: walk the flat array once, cycling the column.
    for (let k = 0, j = 0; k < o.length; k++) {
      obsSum[j] += o[k];
      if (++j === OBS) j = 0;
    }
    for (let r = 0; r < b.rows; r++) rewardSum += b.rewards[r];
    rows += b.rows;
  }
  ds.close();
  return { seconds: (performance.now() - s0) / 1000, rows, rewardSum, obsSum0: obsSum[0] };
}
scanOnce(); // warm the page cache for both readers
const scans = Array.from({ length: repeats }, scanOnce);
const scan = scans.reduce((a, b) => (a.seconds <= b.seconds ? a : b));
const readSeconds = Math.min(...Array.from({ length: repeats }, readOnce));

const py = spawnSync(
  join(root, '.venv', 'bin', 'python'),
  [join(root, 'bench', 'datasets_pyarrow.py'), file, String(repeats)],
  {
    encoding: 'utf8',
  },
);
if (py.status !== 0) throw new Error(`pyarrow anchor failed: ${py.stderr}`);
const anchor = JSON.parse(py.stdout) as {
  pyarrow: string;
  memory_map: { seconds: number; rows: number; reward_sum: number; obs_sum0: number };
  read_file: { seconds: number; rows: number; reward_sum: number; obs_sum0: number };
  read_only: { seconds: number; rows: number };
};
if (
  anchor.memory_map.rows !== scan.rows ||
  Math.abs(anchor.memory_map.reward_sum - scan.rewardSum) > 1e-6 * Math.abs(scan.rewardSum) + 1e-6
)
  throw new Error('scan results differ from pyarrow');

function rate(fn: () => void, minSeconds = 2): number {
  fn();
  let n = 0;
  const s0 = performance.now();
  while ((performance.now() - s0) / 1000 < minSeconds) {
    fn();
    n++;
  }
  return n / ((performance.now() - s0) / 1000);
}
const ds = openDataset(file);
const dt = new DtWindowSampler(ds, { batchSize: 64, context: 20, seed: 0 });
const dtRate = rate(() => dt.sample());
const at = new AtChainSampler(ds, {
  batchSize: 16,
  maxTrajectories: 4,
  minTrajectories: 4,
  seed: 0,
  contextSteps: 4 * EP_LEN,
});
const atRate = rate(() => at.sample());
ds.close();

const mb = bytes / 1e6;
const result = {
  bench: 'datasets',
  date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
  dataset: {
    steps: written.totalSteps,
    episodes: written.totalEpisodes,
    obsDim: OBS,
    actDim: ACT,
    bytes,
    digest: written.digest,
  },
  write: { seconds: writeSeconds, stepsPerSecond: written.totalSteps / writeSeconds, target: '< 10 s' },
  read: {
    ours: { seconds: readSeconds, MBps: mb / readSeconds },
    pyarrow: { seconds: anchor.read_only.seconds, MBps: mb / anchor.read_only.seconds },
    /** ours / pyarrow throughput, target ≥ 0.8 */
    ratio: anchor.read_only.seconds / readSeconds,
  },
  scan: {
    ours: { seconds: scan.seconds, MBps: mb / scan.seconds, rowsPerSecond: scan.rows / scan.seconds },
    pyarrowMemoryMap: { seconds: anchor.memory_map.seconds, MBps: mb / anchor.memory_map.seconds },
    pyarrowReadFile: { seconds: anchor.read_file.seconds, MBps: mb / anchor.read_file.seconds },
    pyarrowVersion: anchor.pyarrow,
    /** ours / pyarrow throughput (≥ 0.8 is the target), against pyarrow's faster mode. */
    ratio: Math.min(anchor.memory_map.seconds, anchor.read_file.seconds) / scan.seconds,
    ratioVsReadFile: anchor.read_file.seconds / scan.seconds,
  },
  samplers: {
    dtWindows: { batchSize: 64, context: 20, batchesPerSecond: dtRate },
    atChains: {
      batchSize: 16,
      trajectories: 4,
      trajectoryLength: EP_LEN,
      contextSteps: 4 * EP_LEN,
      batchesPerSecond: atRate,
    },
  },
};
writeFileAtomic(outPath, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
rmSync(dir, { recursive: true, force: true });
