/**
 * Ring transport benchmark (issue 9): per-step (forward) time of ring attention at N = 2 over
 * processes (ZeroMQ, `exp launch`), against the in-process ring (worker threads, shared memory)
 * and against compute alone (one device's work with a transport that costs nothing), at block
 * sizes c (tokens per device) below and above the overlap condition of paper §1:
 *
 *   compute per ring step 4·d·c² FLOPs at F FLOP/s  ≥  transfer of K and V, 2·c·d floats at B bytes/s
 *   ⇔ c ≥ 2·F/B in float32 (the paper's c ≥ F/B counts bf16, 4·c·d bytes)
 *
 * F is measured here (compute alone at the largest c); B is the loopback ZeroMQ link measured by
 * `exp ring-worker bandwidth` at each message size and at 4 MiB. On loopback B is so high that
 * c ≥ 2F/B holds for any useful c, so the ranks also run as two "hosts" (network namespaces)
 * over a veth link shaped by `tc tbf` to --shaped-mbit (a slow interconnect), where c* falls inside
 * the measured range and the crossover shows (needs root; skipped otherwise). Writes
 * bench/results/ring-transport.json and prints a Markdown table.
 *
 *   npm run build && node dist/bench/ring-transport.js [--repeats 3] [--sizes 8,32,128,512,2048] [--shaped-mbit 100]
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { RingGroup, ringAttention } from '../cluster/index.js';
import { Rng, writeFileAtomic } from '../common/index.js';
import { initBackend } from '../native/index.js';
import { type RingTransport, ringAttentionDevice } from '../ring/index.js';
import { benchArgs } from './args.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const args = benchArgs({
  script: 'ring-transport',
  usage: [
    'npm run build && node dist/bench/ring-transport.js [--repeats 3] [--sizes 8,32,128,512,2048] [--shaped-mbit 100]',
  ],
  options: {
    repeats: {
      kind: 'number',
      integer: true,
      min: 1,
      default: 3,
      description: 'timed steps per row (the best kept)',
    },
    sizes: {
      kind: 'list',
      of: 'number',
      integer: true,
      min: 1,
      default: [8, 32, 128, 512, 2048],
      description: 'block sizes c, tokens per device',
    },
    'shaped-mbit': {
      kind: 'number',
      default: 100,
      description: 'the shaped veth link between the two "hosts", in Mbit/s (needs root)',
    },
  },
});
const { repeats, sizes } = args;
const N = 2;
const shape = { B: 1, H: 4, D: 32 };
const d = shape.H * shape.D; // hidden size d of the paper's formulas
const blockSizeFor = (c: number) => Math.min(512, c);
const shapedMbit = args['shaped-mbit'];
type Net = 'loopback' | 'shaped';

/** Device 0 of a 2-ring whose neighbour is itself: the same compute, no communication cost. */
class LoopbackTransport implements RingTransport {
  readonly rank = 0;
  readonly worldSize = N;
  private readonly queue: Float32Array[][] = [];
  send(parts: Float32Array[]): void {
    this.queue.push(parts.map((p) => p.slice()));
  }
  recv(): Float32Array[] {
    return this.queue.shift()!;
  }
}

function computeAloneMs(c: number): number {
  const { B, H, D } = shape;
  const rng = new Rng(1);
  const [q, k, v] = [0, 1, 2].map(() => tf.tensor4d(rng.normalArray(B * H * c * D), [B, H, c, D]));
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r <= repeats; r++) {
    const timings = { fwdMs: 0, bwdMs: 0 };
    const opts = { seqLen: N * c, layout: 'contiguous' as const, causal: false, blockSize: blockSizeFor(c) };
    const out = ringAttentionDevice(q, k, v, { ...opts, transport: new LoopbackTransport(), timings });
    out.dataSync();
    out.dispose();
    if (r > 0) best = Math.min(best, timings.fwdMs); // r = 0: warm-up
  }
  tf.dispose([q, k, v]);
  return best;
}

async function inProcessMs(group: RingGroup, c: number): Promise<number> {
  const { B, H, D } = shape;
  const T = N * c;
  const rng = new Rng(2);
  const [q, k, v] = [0, 1, 2].map(() => tf.tensor4d(rng.normalArray(B * H * T * D), [B, H, T, D]));
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r <= repeats; r++) {
    const res = await ringAttention(group, q, k, v, { blockSize: blockSizeFor(c) });
    res.out.dispose();
    if (r > 0) best = Math.min(best, res.fwdMs);
  }
  tf.dispose([q, k, v]);
  return best;
}

/** Two namespaces joined by a veth pair in 10.209.250.0/30, both ends rate-limited by tc tbf. */
const NS = ['ring9-bench-a', 'ring9-bench-b'];
const ADDR = ['10.209.250.1', '10.209.250.2'];
const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
function shapedNetwork(): string | undefined {
  try {
    removeShapedNetwork();
    for (const ns of NS) ip('netns', 'add', ns);
    ip('link', 'add', 'r9bench-a', 'type', 'veth', 'peer', 'name', 'r9bench-b');
    ['r9bench-a', 'r9bench-b'].forEach((dev, i) => {
      ip('link', 'set', dev, 'netns', NS[i]);
      ip('-n', NS[i], 'addr', 'add', `${ADDR[i]}/30`, 'dev', dev);
      ip('-n', NS[i], 'link', 'set', dev, 'up');
      ip('-n', NS[i], 'link', 'set', 'lo', 'up');
      execFileSync('ip', [
        'netns',
        'exec',
        NS[i],
        'tc',
        'qdisc',
        'add',
        'dev',
        dev,
        'root',
        'tbf',
        'rate',
        `${shapedMbit}mbit`,
        'burst',
        '64kb',
        'latency',
        '500ms',
      ]);
    });
    return undefined;
  } catch (err) {
    removeShapedNetwork();
    return (err as Error).message.split('\n')[0];
  }
}
function removeShapedNetwork(): void {
  for (const ns of NS) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // absent
    }
  }
}

async function runRanks(workerArgs: string[], net: Net): Promise<Record<string, number>[]> {
  if (net === 'loopback') return launch(workerArgs);
  const secret = randomBytes(24).toString('hex');
  const outs = await Promise.all(
    [0, 1].map(
      (rank) =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(
            'ip',
            ['netns', 'exec', NS[rank], process.execPath, `${root}/bin/exp.js`, 'ring-worker', ...workerArgs],
            {
              cwd: root,
              env: {
                ...process.env,
                RANK: String(rank),
                WORLD_SIZE: '2',
                MASTER_ADDR: ADDR[0],
                MASTER_PORT: '29500',
                RING_BIND_ADDR: ADDR[rank],
                RING_SECRET: secret,
              },
              stdio: ['ignore', 'pipe', 'pipe'],
            },
          );
          let out = '';
          let err = '';
          child.stdout.on('data', (d) => {
            out += d;
          });
          child.stderr.on('data', (d) => {
            err += d;
          });
          child.on('close', (code) =>
            code === 0 ? resolve(out) : reject(new Error(`rank ${rank} failed:\n${err}`)),
          );
        }),
    ),
  );
  return outs.flatMap((o) =>
    o
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, number>),
  );
}

function launch(workerArgs: string[]): Record<string, number>[] {
  const res = spawnSync(
    process.execPath,
    [`${root}/bin/exp.js`, 'launch', `--nproc=${N}`, '--', 'exp', 'ring-worker', ...workerArgs],
    { cwd: root, encoding: 'utf8', timeout: 600_000 },
  );
  if (res.status !== 0) throw new Error(`exp launch ${workerArgs.join(' ')} failed:\n${res.stderr}`);
  return res.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, number>);
}

async function processMs(c: number, net: Net): Promise<number> {
  const ranks = await runRanks(
    [
      'attention',
      '--backend=wasm',
      `--seq-len=${N * c}`,
      `--heads=${shape.H}`,
      `--head-dim=${shape.D}`,
      `--block-size=${blockSizeFor(c)}`,
      `--steps=${repeats + 5}`, // a fresh process needs a few steps to warm up (wasm, kernels)
    ],
    net,
  );
  return Math.max(...ranks.map((r) => r.fwdMs)); // each rank's fastest step; the slower rank
}

async function bandwidth(
  floats: number,
  count: number,
  net: Net,
): Promise<{ bytesPerSec: number; msPerMessage: number }> {
  const ranks = await runRanks(['bandwidth', `--floats=${floats}`, `--repeats=${count}`], net);
  return {
    bytesPerSec: Math.min(...ranks.map((r) => r.bytesPerSec)),
    msPerMessage: Math.max(...ranks.map((r) => r.msPerMessage)),
  };
}

const loadBefore = loadavg();
await initBackend({ backend: 'wasm', notice: false });
const link = await bandwidth(1 << 20, 30, 'loopback');
const shapedSkip = shapedNetwork();
if (shapedSkip)
  process.stderr.write(
    `ring-transport bench: shaped link skipped (network namespaces unavailable: ${shapedSkip})\n`,
  );
const shapedLink = shapedSkip ? undefined : await bandwidth(1 << 18, 10, 'shaped');
const group = await RingGroup.create({ devices: N, backend: 'wasm' });
const rows = [];
for (const c of sizes) {
  const alone = computeAloneMs(c);
  const inProc = await inProcessMs(group, c);
  const msgFloats = 2 * shape.B * shape.H * c * shape.D;
  const procs = await processMs(c, 'loopback');
  const comm = await bandwidth(msgFloats, 30, 'loopback');
  const shaped = shapedSkip ? undefined : await processMs(c, 'shaped');
  const shapedComm = shapedSkip ? undefined : await bandwidth(msgFloats, 10, 'shaped');
  const row = {
    c,
    seqLen: N * c,
    aloneMs: alone,
    inProcessMs: inProc,
    processMs: procs,
    computeMsPerStep: alone / N,
    commMsPerStep: comm.msPerMessage,
    processOverAlone: procs / alone,
    inProcessOverAlone: inProc / alone,
    shapedProcessMs: shaped,
    shapedCommMsPerStep: shapedComm?.msPerMessage,
    shapedOverAlone: shaped === undefined ? undefined : shaped / alone,
  };
  rows.push(row);
  process.stderr.write(`${JSON.stringify(row)}\n`);
}
await group.dispose();
removeShapedNetwork();
const cMax = Math.max(...sizes);
const F = (N * 4 * d * cMax * cMax) / (rows.find((r) => r.c === cMax)!.aloneMs / 1000);
const B = link.bytesPerSec;
const result = {
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    loadavgBefore: loadBefore,
    loadavgAfter: loadavg(),
  },
  backend: 'wasm',
  shape: { ...shape, d, devices: N, causal: false, pass: 'forward' },
  repeats,
  flopsPerSec: F,
  bytesPerSec: B,
  linkMsPer4MiB: link.msPerMessage,
  /** c ≥ F/B as the paper writes it (bf16: 4·c·d bytes per step). */
  minBlockPaper: F / B,
  /** c ≥ 2F/B for float32 K and V (8·c·d bytes per step), what applies here. */
  minBlockFloat32: (2 * F) / B,
  shaped: shapedLink
    ? {
        mbit: shapedMbit,
        bytesPerSec: shapedLink.bytesPerSec,
        minBlockFloat32: (2 * F) / shapedLink.bytesPerSec,
      }
    : { skipped: shapedSkip },
  rows,
};
writeFileAtomic(`${root}/bench/results/ring-transport.json`, `${JSON.stringify(result, null, 2)}\n`);

const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const lines = [
  `F = ${(F / 1e9).toFixed(2)} GFLOP/s per device (wasm), B = ${(B / 1e6).toFixed(0)} MB/s (ZeroMQ loopback, 4 MiB messages) → c ≥ 2F/B = ${f((2 * F) / B)} tokens (fp32; paper's F/B = ${f(F / B)})`,
  shapedLink
    ? `shaped link (tc tbf ${shapedMbit} Mbit/s between two network namespaces): B = ${(shapedLink.bytesPerSec / 1e6).toFixed(1)} MB/s → c ≥ 2F/B = ${f((2 * F) / shapedLink.bytesPerSec)} tokens`
    : `shaped link skipped: ${shapedSkip}`,
  `load average ${loadBefore.map((x) => x.toFixed(1)).join(' ')} → ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')} on ${cpus().length} cores`,
  '',
  '| c (tokens/device) | L | compute alone ms | in-process ring ms | processes, loopback ms | processes, shaped link ms | compute/step ms | comm/step loopback ms | comm/step shaped ms | loopback ÷ alone | shaped ÷ alone |',
  '|---|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.c} | ${r.seqLen} | ${f(r.aloneMs)} | ${f(r.inProcessMs)} | ${f(r.processMs)} | ${r.shapedProcessMs === undefined ? '—' : f(r.shapedProcessMs)} | ${f(r.computeMsPerStep)} | ${f(r.commMsPerStep)} | ${r.shapedCommMsPerStep === undefined ? '—' : f(r.shapedCommMsPerStep)} | ${r.processOverAlone.toFixed(2)} | ${r.shapedOverAlone === undefined ? '—' : r.shapedOverAlone.toFixed(2)} |`,
  ),
];
process.stdout.write(`${lines.join('\n')}\n`);
