// bench/ring-cost.ts (issue 17 item 4, Table 4 in miniature) as a user runs it: a small run
// writes its JSON atomically to --out and prints the Markdown table, its figures agree with each
// other (tokens/s with the step time, model FLOPs with lm/flops.ts, MFU with the peak, the
// ring's cost with BPT's MFU), the same run logged with --tracking-uri reads back through the
// Python MLflow client (metrics, table, plot: what notebook section 9 reads), and bad arguments
// exit 2 naming the argument.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sharegptDefaultModel } from '../../bench/lm-config.js';
import { llamaTrainingFlops } from '../../lm/index.js';
import { runPython } from '../helpers/python.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const bench = fileURLToPath(new URL('../../bench/ring-cost.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ring-cost-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function runBench(args: string[]) {
  return spawnSync(process.execPath, [bench, ...args], { cwd: root, encoding: 'utf8', timeout: 240_000 });
}

interface Row {
  method: 'bpt' | 'ring';
  devices: number;
  cores: number;
  seqLen: number;
  tokensPerStep: number;
  stepMs: number;
  tokensPerSec: number;
  modelGflopPerStep: number;
  modelGflops: number;
  mfu: number;
  mfuOfAllCores: number;
  costMfuPoints: number | null;
  loadBefore: number;
  loadAfter: number;
  otherCpuShare: number | null;
}

test('ring-cost --steps 1 --tokens-per-device 64 --devices 1,2 --out <tmp> --tracking-uri <store>: BPT and ring N=1, 2', () => {
  const out = join(dir, 'ring-cost.json');
  const store = join(dir, 'mlruns');
  const r = runBench([
    '--steps',
    '1',
    '--tokens-per-device',
    '64',
    '--devices',
    '1,2',
    '--out',
    out,
    '--tracking-uri',
    store,
    '--experiment',
    'table4-test',
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(
    readdirSync(dir).sort(),
    ['mlruns', 'ring-cost.json'],
    'no temporary left beside the result',
  );
  const result = JSON.parse(readFileSync(out, 'utf8')) as {
    machine: { model: string; coresUsed: number; threadsPerDevice: number };
    peakGflopsPerCore: { before: number; after: number; used: number };
    rows: Row[];
  };
  const { rows, peakGflopsPerCore: peak, machine } = result;
  assert.equal(machine.threadsPerDevice, 1);
  assert.ok(peak.used > 0 && peak.used === Math.max(peak.before, peak.after), JSON.stringify(peak));
  assert.deepEqual(
    rows.map((x) => [x.method, x.devices, x.seqLen, x.tokensPerStep]),
    [
      ['bpt', machine.coresUsed, 64, 64 * machine.coresUsed],
      ['ring', 1, 64, 64],
      ['ring', 2, 128, 128],
    ],
  );
  const config = sharegptDefaultModel(1 << 20);
  const bpt = rows[0];
  for (const x of rows) {
    const name = `${x.method} N=${x.devices}`;
    assert.ok(x.stepMs > 0, name);
    assert.ok(Math.abs(x.tokensPerSec - x.tokensPerStep / (x.stepMs / 1000)) <= 1, `${name}: tokens/s`);
    const windows = x.method === 'bpt' ? x.devices : 1;
    const flops = llamaTrainingFlops(config, x.seqLen, windows);
    assert.ok(Math.abs(x.modelGflopPerStep - flops / 1e9) < 1e-3, `${name}: model GFLOP per step`);
    assert.ok(Math.abs(x.modelGflops - flops / 1e6 / x.stepMs) / x.modelGflops < 0.01, `${name}: GFLOP/s`);
    assert.equal(x.cores, Math.min(x.devices, machine.coresUsed), `${name}: cores`);
    assert.ok(Math.abs(x.mfu - x.modelGflops / (x.cores * peak.used)) < 1e-4, `${name}: MFU`);
    assert.ok(x.mfu > 0 && x.mfu < 1, `${name}: MFU ${x.mfu}`);
    const allCores = x.modelGflops / (machine.coresUsed * peak.used);
    assert.ok(Math.abs(x.mfuOfAllCores - allCores) < 1e-4, `${name}: MFU of all cores`);
    if (x.method === 'ring')
      assert.ok(Math.abs(x.costMfuPoints! - 100 * (bpt.mfu - x.mfu)) < 0.01, `${name}: cost`);
    else assert.equal(x.costMfuPoints, null);
    assert.ok(x.loadBefore >= 0 && x.loadAfter >= 0, `${name}: load`);
    const other = x.otherCpuShare;
    assert.ok(other === null || (other >= 0 && other <= 1), `${name}: other processes' CPU ${other}`);
  }
  // the table: the CPU model, a header and one line per row
  assert.ok(r.stdout.includes(machine.model), r.stdout);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('| '));
  assert.equal(lines.length, 1 + rows.length, r.stdout);
  assert.match(
    lines[0],
    /tokens\/s.*MFU.*ring cost \(MFU points\).*load before → after.*CPU of other processes/,
  );
  assert.ok(lines[1].startsWith(`| BPT (data-parallel) | ${machine.coresUsed} |`), lines[1]);

  // the same figures, read back from the file store by the real MLflow client
  const py = runPython(
    `
import json, mlflow
from mlflow import MlflowClient
mlflow.set_tracking_uri(${JSON.stringify(store)})
c = MlflowClient()
e = c.get_experiment_by_name("table4-test")
runs = c.search_runs([e.experiment_id])
run = runs[0]
rid = run.info.run_id
df = c.load_table(e.experiment_id, artifact_file="tables/table4.json", run_ids=[rid])
print(json.dumps({
  "runs": len(runs), "status": run.info.status, "recipe": run.data.tags.get("exp.recipe"),
  "params": run.data.params, "metrics": run.data.metrics,
  "table": json.loads(df.drop(columns=["run_id"], errors="ignore").to_json(orient="records")),
  "plots": sorted(a.path for a in c.list_artifacts(rid, "plots")),
}))
`,
    { env: { MLFLOW_ALLOW_FILE_STORE: 'true' } },
  );
  assert.equal(py.code, 0, py.stderr);
  const seen = JSON.parse(py.stdout.trim().split('\n').at(-1)!) as {
    runs: number;
    status: string;
    recipe: string;
    params: Record<string, string>;
    metrics: Record<string, number>;
    table: {
      row: string;
      devices: number;
      tokens_per_sec: number;
      mfu: number;
      ring_cost_mfu_points: number | null;
    }[];
    plots: string[];
  };
  assert.equal(seen.runs, 1);
  assert.equal(seen.status, 'FINISHED');
  assert.equal(seen.recipe, 'ring-cost');
  assert.equal(seen.params.tokens_per_device, '64');
  assert.equal(seen.params['machine.cpu'], machine.model);
  const keys = ['bpt', 'ring_n1', 'ring_n2'];
  assert.deepEqual(
    seen.table.map((t) => [t.row, t.devices, t.tokens_per_sec]),
    rows.map((x, i) => [keys[i], x.devices, x.tokensPerSec]),
  );
  rows.forEach((x, i) => {
    const k = keys[i];
    assert.equal(seen.metrics[`result/${k}/tokens_per_sec`], x.tokensPerSec, k);
    assert.ok(Math.abs(seen.metrics[`result/${k}/mfu`] - x.mfu) < 1e-4, `${k}: MFU`);
    assert.ok(Math.abs(seen.table[i].mfu - x.mfu) < 1e-4, `${k}: MFU in the table`);
    if (x.costMfuPoints === null) assert.equal(seen.table[i].ring_cost_mfu_points, null, k);
    else assert.equal(seen.metrics[`result/${k}/ring_cost_mfu_points`], x.costMfuPoints, k);
  });
  assert.deepEqual(seen.plots, ['plots/table4-mfu.svg']);
});

for (const [args, named] of [
  [['--devices', '0,2'], /bad value for --devices \(expected integers ≥ 1 separated by commas, got '0,2'\)/],
  [
    ['--tokens-per-device', '100'],
    /--tokens-per-device is not a multiple of the block size 64 \(expected a multiple of 64, got 100\)/,
  ],
  [['--steps', 'x'], /bad value for --steps \(expected an integer ≥ 1, got 'x'\)/],
  [['--tokens'], /unknown argument '--tokens'/],
  [['--cores', '4096'], /--cores 4096 exceeds this machine's \d+ cores/],
  [['--out'], /--out needs a value/],
] as const) {
  test(`ring-cost ${args.join(' ')}: exit 2 naming the argument`, () => {
    const r = runBench([...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, named);
  });
}
