// A device's reported real memory (native/memory.ts, issue 20) against an independent
// measurement: the process's peak resident memory (Linux VmHWM, reset before the call) grown over
// one forward + backward blockwise call on a fresh device, plus the inputs moved into the device
// (resident before the call). Per backend path: native kernels and RING_NATIVE=0. The figure
// before issue 20 (peak tensor bytes) is 0.35–0.5 of the measurement, so the test fails on it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeAddon } from '../../native/index.js';
import { deviceBytes } from '../../ring/index.js';
import { exp } from '../helpers/cli.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const probe = fileURLToPath(new URL('./memory-probe.js', import.meta.url));

interface ProbeResult {
  reportedGrowth: number;
  rssGrowth: number;
  movedIn: number;
  tensorBytes: number;
  idle: number[];
}

function runProbe(native: boolean, seed: number): ProbeResult {
  const args = { devices: 1, seqLen: 4096, heads: 8, headDim: 64, seed };
  const r = spawnSync(process.execPath, [probe, JSON.stringify(args)], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, RING_NATIVE: native ? '1' : '0' },
    timeout: 240_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ProbeResult;
}

const linux = existsSync('/proc/self/clear_refs');
const MiB = 2 ** 20;

describe('a device reports the memory it really holds (issue 20)', {
  skip: !linux && 'needs Linux /proc',
}, () => {
  for (const native of [true, false]) {
    const path = native ? 'native kernels' : 'RING_NATIVE=0';
    test(`${path}: blockwise L=4096 H=8 D=64 causal fwd+bwd, reported peak within 10% of RSS growth`, {
      skip: native && !nativeAddon() && 'the addon is not built',
    }, (t) => {
      // NOTE: two runs, averaged: the process's high-water moves by a few % with GC timing
      const seeds = [0, 1].map(() => Math.floor(Math.random() * 2 ** 31));
      const runs = seeds.map((seed) => runProbe(native, seed));
      const ratios = runs.map((r) => r.reportedGrowth / (r.rssGrowth + r.movedIn));
      const mean = (ratios[0] + ratios[1]) / 2;
      const detail = runs
        .map(
          (r, i) =>
            `seed ${seeds[i]}: reported ${(r.reportedGrowth / MiB).toFixed(1)} MiB, RSS growth ${(r.rssGrowth / MiB).toFixed(1)} + moved in ${(r.movedIn / MiB).toFixed(1)} MiB, tensors ${(r.tensorBytes / MiB).toFixed(1)} MiB`,
        )
        .join('; ');
      t.diagnostic(`mean ratio ${mean.toFixed(3)} (${ratios.map((x) => x.toFixed(3))}): ${detail}`);
      assert.ok(
        Math.abs(mean - 1) <= 0.1,
        `mean ratio ${mean.toFixed(3)} (${ratios.map((x) => x.toFixed(3))}): ${detail}`,
      );
      // an idle device's figure (the runtime's fixed cost) is part of every peak: 20–200 MiB
      for (const r of runs)
        assert.ok(r.idle[0] > 20 * MiB && r.idle[0] < 200 * MiB, `idle ${r.idle[0] / MiB} MiB`);
    });
  }
});

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

/** The longest context the run probes. */
const MAX_LEN = 32768;

describe('context-scaling under a real-memory budget (issue 20)', () => {
  test('exp run context-scaling.yaml: every cell within the budget by real memory, tensors below it, process RSS logged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctx-real-'));
    try {
      // 72 MiB: an idle device's fixed cost (≈40 MiB) leaves room for the methods to differ by
      // more than the noise of real memory (at 60 MiB ring and BPT could tie at one length)
      const budget = 72;
      const r = exp(
        [
          'run',
          'context-scaling.yaml',
          ...[
            // N=4: BPT's chunked backward holds less a token than a ring device's whole block, so at
            // N=2 the ring only ties BPT on this 1-layer model (issue 14)
            'devices=[4]',
            `budgetMiB=${budget}`,
            `maxLen=${MAX_LEN}`,
            'refineSteps=1',
            'throughputSteps=0',
            'model.dModel=32',
            'model.layers=1',
            'model.ffnHidden=64',
          ].flatMap((kv) => ['--set', `context-scaling.${kv}`]),
        ],
        { cwd: dir, env: { MLFLOW_TRACKING_URI: '' }, timeoutMs: 300_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      const split = JSON.parse(
        readFileSync(findFile(join(dir, 'mlruns'), 'context_scaling.json')!, 'utf8'),
      ) as {
        columns: string[];
        data: unknown[][];
      };
      const rows = split.data.map((d) => Object.fromEntries(split.columns.map((c, i) => [c, d[i]]))) as {
        method: string;
        devices: number;
        max_context: number;
        peak_mib: number;
        tensor_mib: number;
        buffer_mib: number;
      }[];
      assert.equal(rows.length, 4, JSON.stringify(rows));
      for (const row of rows) {
        assert.ok(
          row.max_context > 0,
          `${row.method}: nothing fits in ${budget} MiB: ${JSON.stringify(rows)}`,
        );
        assert.ok(row.peak_mib <= budget, `${row.method}: real ${row.peak_mib} MiB over the budget`);
        // the runtime's fixed cost (an idle device ≈ 40 MiB, part of it reused by tensors) comes on top
        assert.ok(
          row.peak_mib > row.tensor_mib + 15,
          `${row.method}: real ${row.peak_mib} vs tensors ${row.tensor_mib}`,
        );
      }
      // `exp plan --implementation harness` (ring/plan.ts) predicts the distinct tensor buffers of
      // BPT and ring at the context each reached (issue 14: a plan that agrees with the measurement)
      const model = { name: 'test', hidden: 32, layers: 1, heads: 4, kvHeads: 2, ffn: 64, vocab: 256 };
      for (const row of rows.filter((x) => x.method === 'BPT' || x.method === 'ring')) {
        const method = row.method === 'BPT' ? 'blockwise' : 'ring';
        const planned =
          deviceBytes(method, row.max_context, {
            model,
            devices: row.devices,
            memoryBytes: 0,
            implementation: 'harness',
          }) /
          2 ** 20;
        const rel = Math.abs(planned - row.buffer_mib) / row.buffer_mib;
        assert.ok(
          rel < 0.1,
          `${row.method} N=${row.devices} at ${row.max_context}: plan ${planned.toFixed(2)} MiB vs measured ${row.buffer_mib} MiB`,
        );
      }
      const ctx = (m: string) => rows.find((x) => x.method === m)!.max_context;
      // ring holds more than BPT, unless both reached the longest context probed (maxLen)
      assert.ok(ctx('BPT') >= ctx('vanilla'), JSON.stringify(rows));
      assert.ok(
        ctx('ring') > ctx('BPT') || (ctx('ring') === MAX_LEN && ctx('BPT') === MAX_LEN),
        JSON.stringify(rows),
      );
      const rss = findFile(join(dir, 'mlruns'), 'scaling.process_peak_rss_mib');
      assert.ok(rss && Number(readFileSync(rss, 'utf8')) > 2 * budget, 'process peak RSS param');
      assert.match(r.stderr, /budget on real memory \(peak_mib\); process peak RSS of the run: \d+ MiB/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
