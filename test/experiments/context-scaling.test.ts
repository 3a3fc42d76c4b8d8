// `exp run context-scaling.yaml` end to end (shrunk with --set): the table artifact shows the
// paper's shape — ring's max context ≈ N × BPT's, BPT ≥ memeff ≥ vanilla.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { exp, repoRoot } from '../helpers/cli.js';

function findFile(dir: string, name: string): string | undefined {
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) {
      const hit = findFile(p, name);
      if (hit) return hit;
    } else if (entry === name) return p;
  }
  return undefined;
}

describe('context-scaling recipe', () => {
  test('ring ≈ N × BPT ≥ memeff ≥ vanilla under one budget, logged as a table and a plot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctx-scaling-'));
    try {
      const r = exp(
        [
          'run',
          'context-scaling.yaml',
          '--set',
          'context-scaling.devices=[2,4]',
          '--set',
          'context-scaling.budgetMiB=24',
          // the paper's count (activations); the real-memory budget: test/ring/memory-real.test.ts
          '--set',
          'context-scaling.budgetOn=tensors',
          '--set',
          'context-scaling.maxLen=16384',
          '--set',
          'context-scaling.throughputSteps=1',
        ],
        { cwd: dir, env: { MLFLOW_TRACKING_URI: '' }, timeoutMs: 600_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      const table = findFile(join(dir, 'mlruns'), 'context_scaling.json');
      assert.ok(table, 'table artifact missing');
      assert.ok(findFile(join(dir, 'mlruns'), 'max_context.svg'), 'plot artifact missing');
      assert.ok(findFile(join(dir, 'mlruns'), 'context_scaling.arrow'), 'arrow table missing');
      // pandas' split form, as MlflowClient.log_table writes it (issue 15)
      const split = JSON.parse(readFileSync(table, 'utf8')) as { columns: string[]; data: unknown[][] };
      const rows = split.data.map((d) => Object.fromEntries(split.columns.map((c, i) => [c, d[i]]))) as {
        method: string;
        devices: number;
        max_context: number;
        tokens_per_sec: number | null;
      }[];
      const ctx = (m: string, n = 1) => rows.find((x) => x.method === m && x.devices === n)!.max_context;
      const bpt = ctx('BPT');
      assert.ok(bpt > 0, 'BPT fits nothing');
      assert.ok(ctx('vanilla') <= ctx('memeff') && ctx('memeff') <= bpt, JSON.stringify(rows));
      // NOTE: a ring device holds BPT's working set for its s/N tokens plus what the ring adds per
      // local token: the next K, V pair and the travelling dK, dV accumulators (double buffers, so
      // the exchange overlaps compute). By tf.profile's count (budgetOn: tensors) BPT holds ≈ 2.2 KB
      // a token (its backward in query chunks, issue 14) and a ring device more a local token (its
      // whole query block), so ring N holds ≈ 0.8 N × BPT's context or more. The
      // paper's own memory model (ring/plan.ts: (2L + 6)·b·h per local token against BPT's
      // (L + 1)·2b·h) gives 0.6 N at L = 2 layers; N× holds where L is large.
      for (const n of [2, 4])
        assert.ok(
          ctx('ring', n) >= Math.min(16384, 0.8 * n * bpt),
          `ring N=${n}: ${ctx('ring', n)} vs BPT ${bpt}`,
        );
      assert.ok(rows.find((x) => x.method === 'ring' && x.devices === 4)!.tokens_per_sec! > 0);
      // issue 15: per-cell values are params, not one-point metrics; no empty checkpoints
      const param = findFile(join(dir, 'mlruns'), 'cell.ring_n4.max_context');
      assert.ok(param, 'per-cell param missing');
      assert.equal(Number(readFileSync(param, 'utf8')), ctx('ring', 4));
      const hasScalingMetrics = (d: string): boolean =>
        readdirSync(d).some((e) => {
          const p = join(d, e);
          return (
            statSync(p).isDirectory() && ((e === 'scaling' && d.endsWith('metrics')) || hasScalingMetrics(p))
          );
        });
      assert.equal(hasScalingMetrics(join(dir, 'mlruns')), false, 'no scaling/ metrics');
      assert.equal(findFile(join(dir, 'mlruns'), 'checkpoint.json'), undefined, 'no checkpoint uploaded');
      // the final table is printed, and the ring line is drawn last (on top of N × BPT, dashed)
      assert.match(r.stderr, /context scaling under 24 MiB\/device:\n +method +devices +max_context/);
      assert.match(r.stderr, new RegExp(` ring +4 +${ctx('ring', 4)} `));
      const svg = readFileSync(findFile(join(dir, 'mlruns'), 'max_context.svg') as string, 'utf8');
      assert.ok(svg.indexOf('>ring<') > svg.indexOf('>N × BPT<'), 'ring drawn after N × BPT');
      assert.match(svg, /stroke-dasharray/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the config file's suggested command is accepted as written", () => {
    const yaml = readFileSync(join(repoRoot, 'experiments', 'configs', 'context-scaling.yaml'), 'utf8');
    const suggested = yaml
      .split('\n')
      .filter((l) => /^#\s+exp run /.test(l))
      .map((l) => l.replace(/^#\s+exp /, '').split(/\s+/));
    assert.ok(suggested.length >= 2, yaml);
    for (const args of suggested) {
      const r = exp([...args, '--dry-run']);
      assert.equal(r.code, 0, `exp ${args.join(' ')}: ${r.stderr}`);
    }
  });

  test('a bad value is a config error naming the key', () => {
    const r = exp(['run', 'context-scaling.yaml', '--dry-run', '--set', 'context-scaling.layout=zigzag']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /context-scaling\.layout/);
  });
});
