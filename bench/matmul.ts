/**
 * Matmul benchmark (issue 7): GFLOP/s of a 2-D float32 (n×n)·(n×n) through `exp bench matmul`
 * (one child process each): the native sgemm, each installed tfjs backend's own kernel, beside
 * numpy's BLAS sgemm and torch.mm on the same sizes in the same run, and the native kernel
 * called directly (as numpy is timed). Writes bench/results/matmul.json and prints a table.
 *
 *   npm run build && node dist/bench/matmul.js [--sizes 512,1024,2048] [--repeats 15] [--no-torch]
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Rng, writeFileAtomic } from '../common/index.js';
import type { MatmulBenchResult } from '../experiments/cli/commands/bench/matmul.js';
import { nativeAddon, nativeThreads } from '../native/index.js';
import { benchArgs } from './args.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const args = benchArgs({
  script: 'matmul',
  usage: ['npm run build && node dist/bench/matmul.js [--sizes 512,1024,2048] [--repeats 15] [--no-torch]'],
  options: {
    sizes: {
      kind: 'list',
      of: 'number',
      integer: true,
      min: 1,
      default: [512, 1024, 2048],
      description: 'matrix sizes n of the (n×n)·(n×n) products',
    },
    repeats: {
      kind: 'number',
      integer: true,
      min: 1,
      default: 15,
      description: 'samples per product (the best kept), scaled up as 2048/n below n = 2048',
    },
    'no-torch': { kind: 'boolean', description: "skip numpy's and torch's anchors" },
  },
});
const sizes = args.sizes;
// NOTE: a 2-thread product of 1–2 ms often runs at 1-thread speed while the scheduler places the
// woken helper, so short products need many samples: `exp bench matmul` at n=512 read 0.55–0.78×
// numpy as best of 5–15 and 0.91× as best of 60. Repeats scale as 512/n (60, 30, 15 by default).
const repeats = args.repeats;
const repeatsFor = (n: number) => Math.max(repeats, Math.round((repeats * 4 * 512) / n));
const withBlas = !args['no-torch'];

interface Row {
  what: string;
  n: number;
  ms: number;
  gflops: number;
}
const rows: Row[] = [];
const log = (msg: string) => process.stderr.write(`${msg}\n`);

/**
 * What runs `exp bench matmul`: the native sgemm (native/kernels.ts, the default on wasm when
 * the addon loads), wasm's own kernel (RING_NATIVE=0), and the tensorflow backend if installed.
 */
const RUNS = [
  { what: 'native sgemm (ring_native, wasm backend)', backend: 'wasm', env: { RING_NATIVE: '1' } },
  { what: 'tfjs tensorflow', backend: 'tensorflow', env: {} },
  { what: 'tfjs wasm (RING_NATIVE=0)', backend: 'wasm', env: { RING_NATIVE: '0' } },
] as const;

for (const { what, backend, env } of RUNS) {
  for (const n of sizes) {
    const r = spawnSync(
      process.execPath,
      [
        `${root}/bin/exp.js`,
        'bench',
        'matmul',
        '--backend',
        backend,
        '--size',
        String(n),
        '--repeats',
        String(repeatsFor(n)),
        '--json',
      ],
      { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } },
    );
    if (r.status !== 0) {
      log(`matmul: ${what} skipped (${(r.stderr.trim().split('\n').at(-1) ?? '').slice(0, 160)})`);
      break;
    }
    const res = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as MatmulBenchResult;
    rows.push({ what, n, ms: res.ms, gflops: res.gflops });
    log(`${what} n=${n}: ${res.gflops.toFixed(1)} GFLOP/s (load ${loadavg()[0].toFixed(1)})`);
  }
}

// The kernel alone, as numpy's `a @ b` is timed (no tfjs op, no read back of the result):
// `exp bench matmul` above includes copying the product out of the wasm heap (≈0.6 ms at n=512).
const addon = nativeAddon();
if (addon) {
  for (const n of sizes) {
    const rng = new Rng(n);
    const a = rng.normalArray(n * n);
    const b = rng.normalArray(n * n);
    const c = new Float32Array(n * n);
    addon.sgemm(a, b, c, n, n, n, false, false, nativeThreads()); // warm-up
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < repeatsFor(n); i++) {
      const t = performance.now();
      addon.sgemm(a, b, c, n, n, n, false, false, nativeThreads());
      best = Math.min(best, performance.now() - t);
    }
    const what = 'native sgemm kernel (addon call)';
    rows.push({ what, n, ms: best, gflops: (2 * n ** 3) / best / 1e6 });
    log(
      `${what} n=${n}: ${((2 * n ** 3) / best / 1e6).toFixed(1)} GFLOP/s (load ${loadavg()[0].toFixed(1)})`,
    );
  }
}

if (withBlas) {
  const setup = spawnSync('bash', ['scripts/bench-torch-env.sh'], { cwd: root, stdio: 'inherit' });
  if (setup.status !== 0) log('matmul: .venv-bench unavailable, no BLAS anchor');
  else {
    const r = spawnSync(`${root}/.venv-bench/bin/python`, [`${root}/bench/matmul_blas.py`], {
      cwd: root,
      encoding: 'utf8',
      input: JSON.stringify({
        sizes,
        repeats,
        repeats_by_size: Object.fromEntries(sizes.map((n) => [String(n), repeatsFor(n)])),
      }),
    });
    if (r.status !== 0) log(`matmul: BLAS anchor failed: ${r.stderr.slice(-500)}`);
    else
      for (const x of JSON.parse(r.stdout) as { lib: string; n: number; ms: number; gflops: number }[])
        rows.push({ what: x.lib, n: x.n, ms: x.ms, gflops: x.gflops });
  }
}

const machine = { cpus: cpus().length, model: cpus()[0]?.model ?? '?', loadavg1: loadavg()[0] };
// issue 7's target: the native sgemm ≥ 0.8× the machine's BLAS sgemm (numpy's OpenBLAS), same run
const gflopsOf = (prefix: string, n: number) =>
  rows.find((r) => r.what.startsWith(prefix) && r.n === n)?.gflops;
const targets = Object.fromEntries(
  sizes.flatMap((n) => {
    const native = gflopsOf('native sgemm (', n);
    const kernel = gflopsOf('native sgemm kernel', n);
    const blas = gflopsOf('numpy', n);
    return [
      [`nativeVsNumpy_n${n}`, native && blas ? native / blas : undefined],
      [`nativeKernelVsNumpy_n${n}`, kernel && blas ? kernel / blas : undefined],
    ];
  }),
);
writeFileAtomic(
  `${root}/bench/results/matmul.json`,
  `${JSON.stringify({ date: new Date().toISOString(), machine, repeats, targets, rows }, null, 2)}\n`,
);
const whats = [...new Set(rows.map((r) => r.what))];
const lines = [
  `| GFLOP/s (float32 n×n·n×n, ${machine.cpus} cores, load ${machine.loadavg1.toFixed(1)}) | ${sizes.map((n) => `n=${n}`).join(' | ')} |`,
  `|---|${sizes.map(() => '---:').join('|')}|`,
  ...whats.map(
    (w) =>
      `| ${w} | ${sizes.map((n) => rows.find((r) => r.what === w && r.n === n)?.gflops.toFixed(1) ?? '—').join(' | ')} |`,
  ),
  '',
  `native (exp bench matmul) / numpy sgemm: ${sizes.map((n) => `n=${n} ${targets[`nativeVsNumpy_n${n}`]?.toFixed(2) ?? '—'}×`).join(', ')} (target ≥ 0.8×)`,
  `native kernel / numpy sgemm: ${sizes.map((n) => `n=${n} ${targets[`nativeKernelVsNumpy_n${n}`]?.toFixed(2) ?? '—'}×`).join(', ')}`,
];
process.stdout.write(`${lines.join('\n')}\n`);
