/**
 * `sweep.cases` (issue 17): a config names cells that are not a product (BC, DT, AT on one device,
 * AT on the ring). Each case runs over every seed (× any --grid), children are named by their
 * case, the summary has a `case` column, and a malformed case fails before anything runs.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseCases, sweepCells } from '../../experiments/sweep.js';
import { FileStore } from '../../experiments/tracking/index.js';
import { repoRoot, runExp, tempDir, testEnv } from './util.js';

describe('exp sweep with sweep.cases', () => {
  test('parseCases and sweepCells: cases × grid, the case overrides first, labels by case', () => {
    const cases = parseCases(['slow: toy.lr=0.01', ' fast :toy.lr=0.03  toy.steps=20']);
    assert.deepEqual(cases, [
      { name: 'slow', assignments: ['toy.lr=0.01'] },
      { name: 'fast', assignments: ['toy.lr=0.03', 'toy.steps=20'] },
    ]);
    const cells = sweepCells(cases, ['toy.hidden=8,16']);
    assert.deepEqual(
      cells.map((c) => [c.label, c.case, c.assignments.join(' ')]),
      [
        ['slow toy.hidden_8', 'slow', 'toy.lr=0.01 toy.hidden=8'],
        ['slow toy.hidden_16', 'slow', 'toy.lr=0.01 toy.hidden=16'],
        ['fast toy.hidden_8', 'fast', 'toy.lr=0.03 toy.steps=20 toy.hidden=8'],
        ['fast toy.hidden_16', 'fast', 'toy.lr=0.03 toy.steps=20 toy.hidden=16'],
      ],
    );
    assert.deepEqual(
      sweepCells([], ['toy.lr=1']).map((c) => c.label),
      ['toy.lr_1'],
    );
    assert.throws(
      () => parseCases(['no colon here']),
      /sweep\.cases\[0\] 'no colon here': expected 'name: key=value/,
    );
    assert.throws(() => parseCases(['a: toy.lr']), /'toy\.lr' is not key=value/);
    assert.throws(() => parseCases(['a: x=1', 'a: x=2']), /case 'a' given twice/);
  });

  test('2 cases × 2 seeds end to end: names, summary rows per case, parent metrics', async () => {
    const work = tempDir('sweep-cases');
    const store = join(work, 'mlruns');
    const env = testEnv(work);
    const config = join(work, 'toy-cases.yaml');
    const toy = readFileSync(join(repoRoot, 'experiments', 'configs', 'toy.yaml'), 'utf8');
    writeFileSync(
      config,
      `${toy}\nsweep:\n  cases:\n    - 'slow: toy.lr=0.001'\n    - 'fast: toy.lr=0.03 toy.hidden=16'\n`,
    );
    const common = ['--set', 'toy.steps=30', '--set', 'toy.evalEvery=10', '--tracking-uri', store];
    const dry = await runExp(['sweep', config, '--seeds', '0,1', '--dry-run', ...common], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /--seed 1 --set toy\.steps=30 --set toy\.evalEvery=10 --set toy\.lr=0\.03 --set toy\.hidden=16 --set runName=fast-seed1 /,
    );
    const r = await runExp(['sweep', config, '--seeds', '0,1', '--json', ...common], { env });
    assert.equal(r.code, 0, r.stderr);
    const sweep = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as {
      parent_run_id: string;
      children: { cell: string; seed: number; runId: string; status: string }[];
      summary: { cell: string; case: string; metric: string; n: number; 'toy.lr': string }[];
    };
    assert.deepEqual(
      sweep.children.map((c) => `${c.cell}/${c.seed}/${c.status}`),
      ['slow/0/FINISHED', 'slow/1/FINISHED', 'fast/0/FINISHED', 'fast/1/FINISHED'],
    );
    const fs = new FileStore(store);
    for (const c of sweep.children) {
      const run = await fs.getRun(c.runId);
      assert.equal(run.info.runName, `${c.cell}-seed${c.seed}`);
      assert.equal(run.params['toy.lr'], c.cell === 'slow' ? '0.001' : '0.03');
    }
    const row = sweep.summary.find((s) => s.case === 'fast' && s.metric === 'eval/loss');
    assert.ok(row, JSON.stringify(sweep.summary.slice(0, 3)));
    assert.equal(row.n, 2);
    assert.equal(row['toy.lr'], '0.03');
    const parent = await fs.getRun(sweep.parent_run_id);
    assert.ok('summary/slow/eval/loss/mean' in parent.metrics, Object.keys(parent.metrics).join(' '));

    // a malformed case in the config: exit 2 naming it, before any run starts
    writeFileSync(config, `${toy}\nsweep:\n  cases:\n    - 'broken toy.lr=1'\n`);
    const bad = await runExp(['sweep', config, '--seeds', '0', ...common], { env });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /sweep\.cases\[0\] 'broken toy\.lr=1'/);
    // …and a case naming an unknown key
    writeFileSync(config, `${toy}\nsweep:\n  cases:\n    - 'typo: toy.lrr=1'\n`);
    const typo = await runExp(['sweep', config, '--seeds', '0', ...common], { env });
    assert.equal(typo.code, 2, typo.stderr);
    assert.match(typo.stderr, /toy\.lrr: unknown key/);
  });
});
