/**
 * `exp ring-worker attention`: one rank of ring attention across processes (issue 9). Run N of
 * them under `exp launch --nproc N`, srun, or a Kubernetes indexed Job: each reads its rank from
 * the environment, builds the same random problem from --seed, keeps its shard of the sequence,
 * joins the ring over ZeroMQ and times forward (and backward) passes. With --check the ranks
 * compare their shards with vanilla attention on the whole problem and sum the error norms over
 * the ring, so every rank prints the global ‖ring − vanilla‖ / ‖vanilla‖.
 *
 * A length L not divisible by N is padded at the end to ⌈L/N⌉·N with zero tokens in a segment of
 * their own (so no real token attends to them, causal or not) and zero output gradient, as the
 * in-process ring does; --check compares the L real positions with vanilla on the unpadded problem.
 *
 * Inputs: q, k, v, dOut drawn in that order from Rng(seed).normalArray, as the tests' makeProblem.
 */
import * as tf from '@tensorflow/tfjs';
import type { Argv, CommandModule } from 'yargs';
import { errorMessage, InputError, Rng } from '../../../common/index.js';
import { initBackend } from '../../../native/index.js';
import {
  allReduceSum,
  type RingLayout,
  ringAttentionDevice,
  tokenIndices,
  vanillaAttention,
} from '../../../ring/index.js';
import { gatherTokens, transportFromEnvironment, ZeroMqTransport } from '../../../cluster/index.js';
import { gib, machineMemoryBytes } from '../../config/machine.js';
import { backendFromArgs, withBackend } from '../options.js';

interface Args {
  'seq-len': number;
  batch: number;
  heads: number;
  'kv-heads'?: number;
  'head-dim': number;
  'block-size': number;
  causal: boolean;
  layout: string;
  backward: boolean;
  check: boolean;
  seed: number;
  steps: number;
  'segment-length'?: number;
  backend: string;
}

export interface RingWorkerResult {
  rank: number;
  worldSize: number;
  /** Which launcher convention gave the rank: torchrun, slurm or kubernetes. */
  source: string;
  backend: string;
  /** L, the real tokens. */
  seqLen: number;
  /** L padded to a multiple of N (= L when N divides it). */
  paddedSeqLen: number;
  tokensPerRank: number;
  /** Wall time of each step (forward, and backward with --backward), ms. */
  stepMs: number[];
  /** Fastest step's forward and backward compute time inside the ring op, ms. */
  fwdMs: number;
  bwdMs: number;
  connectMs: number;
  /** Ring-link address of every rank, from the rendezvous. */
  peers: string[];
  /** With --check: global relative errors against vanilla. */
  relErr?: { out: number; dq?: number; dk?: number; dv?: number };
  maxRelErr?: number;
}

const attentionWorker: CommandModule<object, Args> = {
  command: 'attention',
  describe: 'One rank of ring attention over ZeroMQ; prints one JSON line (run under exp launch)',
  builder: (y: Argv) =>
    withBackend(
      y
        .option('seq-len', {
          type: 'number',
          default: 1024,
          describe: 'Global sequence length L (padded to a multiple of N with masked tokens)',
        })
        .option('batch', { type: 'number', default: 1, describe: 'Batch size B' })
        .option('heads', { type: 'number', default: 4, describe: 'Query heads H' })
        .option('kv-heads', { type: 'number', describe: 'Key/value heads (GQA); default = heads' })
        .option('head-dim', { type: 'number', default: 32, describe: 'Head dimension D' })
        .option('block-size', {
          type: 'number',
          default: 512,
          describe: 'Block size of the loops inside a rank',
        })
        .option('causal', { type: 'boolean', default: false, describe: 'Causal mask' })
        .option('layout', {
          type: 'string',
          default: 'contiguous',
          describe: 'Token layout: contiguous or striped',
        })
        .option('backward', { type: 'boolean', default: false, describe: 'Also run the backward pass' })
        .option('check', {
          type: 'boolean',
          default: false,
          describe: 'Compare with vanilla (global relative error)',
        })
        .option('seed', {
          type: 'number',
          default: 0,
          describe: 'Seed of the inputs (the same on every rank)',
        })
        .option('steps', { type: 'number', default: 1, describe: 'Timed steps' })
        .option('segment-length', { type: 'number', describe: 'Packed segments of this many tokens' }),
    ) as unknown as Argv<Args>,
  handler: async (a) => {
    const env = transportFromEnvironment();
    const { rank, worldSize: N } = env;
    const T = a['seq-len'];
    const { batch: B, heads: H } = a;
    const Hk = a['kv-heads'] ?? H;
    const D = a['head-dim'];
    const layout = a.layout as RingLayout;
    for (const [flag, v] of [
      ['--seq-len', T],
      ['--batch', B],
      ['--heads', H],
      ['--kv-heads', Hk],
      ['--head-dim', D],
      ['--block-size', a['block-size']],
      ['--steps', a.steps],
    ] as const)
      if (!Number.isInteger(v) || v < 1)
        throw new InputError(`ring-worker: ${flag} must be a positive integer; got ${v}`);
    if (T < N)
      throw new InputError(
        `ring-worker: ${N} ranks need at least ${N} tokens (one per rank); got --seq-len ${T}`,
      );
    if (H % Hk !== 0)
      throw new InputError(`ring-worker: query heads (${H}) must be a multiple of key/value heads (${Hk})`);
    if (layout !== 'contiguous' && layout !== 'striped')
      throw new InputError(`ring-worker: --layout must be contiguous or striped; got '${a.layout}'`);
    // NOTE: every rank draws the whole problem (q, k, v, dOut in float32) before sharding it: a
    // size this machine cannot hold is refused here, not as a RangeError mid-draw (issue 16)
    const problemBytes = 4 * (2 * B * H * T * D + 2 * B * Hk * T * D);
    if (problemBytes > machineMemoryBytes())
      throw new InputError(
        `ring-worker: --seq-len ${T} --batch ${B} --heads ${H} --kv-heads ${Hk} --head-dim ${D}: every rank draws q, k, v and dOut (4·(2·B·H·T·D + 2·B·Hk·T·D) bytes = ${gib(problemBytes)}); this machine has ${gib(machineMemoryBytes())}: use a shorter --seq-len or fewer heads`,
      );
    const info = await initBackend({ backend: backendFromArgs(a.backend), notice: false });
    const Tp = Math.ceil(T / N) * N;
    const c = Tp / N;

    // NOTE: every rank draws the whole problem from the seed, in the order of the tests' makeProblem
    const rng = new Rng(a.seed);
    const q = rng.normalArray(B * H * T * D);
    const k = rng.normalArray(B * Hk * T * D);
    const v = rng.normalArray(B * Hk * T * D);
    const dOut = rng.normalArray(B * H * T * D);
    const seg = a['segment-length'];
    const segmentIds = seg
      ? Int32Array.from({ length: B * T }, (_, i) => Math.floor(((i % T) + 3 * Math.floor(i / T)) / seg))
      : undefined;
    // (B, Tp): the real tokens' segments (0 without --segment-length), padding in PAD_SEGMENT
    const paddedSegmentIds = Tp === T ? segmentIds : padSegments(segmentIds, B, T, Tp);
    const idx = tokenIndices(rank, N, Tp, layout);
    // (B·heads, T, D) → this rank's (B·heads, c, D), padded first
    const shard = (x: Float32Array, heads: number) =>
      gatherTokens(padTokens(x, B * heads, T, Tp, D), B * heads, Tp, D, idx);

    const started = performance.now();
    const transport = await ZeroMqTransport.connect({
      ...env,
      maxMessageFloats: 2 * B * Hk * c * D,
      spec: {
        'q shard shape': [B, H, c, D],
        'k/v shard shape': [B, Hk, c, D],
        dtype: 'float32',
        'sequence length': T,
        'padded length': Tp,
        layout,
        causal: a.causal,
        backward: a.backward,
        steps: a.steps,
        check: a.check,
        seed: a.seed,
        'segment length': seg ?? 0,
      },
    });
    const connectMs = performance.now() - started;
    process.stderr.write(
      `ring rank ${rank}: joined a ring of ${N} in ${Math.round(connectMs)} ms; links ${transport.peers.join(' ')}\n`,
    );
    try {
      const opts = {
        transport,
        seqLen: Tp,
        layout,
        causal: a.causal,
        blockSize: Math.min(a['block-size'], c),
        segmentIds: paddedSegmentIds,
      };
      const qs = tf.tensor4d(shard(q, H), [B, H, c, D]);
      const ks = tf.tensor4d(shard(k, Hk), [B, Hk, c, D]);
      const vs = tf.tensor4d(shard(v, Hk), [B, Hk, c, D]);
      const dys = tf.tensor4d(shard(dOut, H), [B, H, c, D]);
      const stepMs: number[] = [];
      let best = { fwdMs: Number.POSITIVE_INFINITY, bwdMs: 0 };
      let last: Float32Array[] = [];
      for (let s = 0; s < a.steps; s++) {
        const timings = { fwdMs: 0, bwdMs: 0 };
        const t0 = performance.now();
        const f = (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) =>
          ringAttentionDevice(x, y, z, { ...opts, timings });
        if (a.backward) {
          const { value, grads } = tf.valueAndGrads(f)([qs, ks, vs], dys);
          last = [value, ...grads].map((t) => t.dataSync() as Float32Array);
          tf.dispose([value, ...grads]);
        } else {
          const out = f(qs, ks, vs);
          last = [out.dataSync() as Float32Array];
          out.dispose();
        }
        stepMs.push(performance.now() - t0);
        if (timings.fwdMs + timings.bwdMs < best.fwdMs + best.bwdMs) best = timings;
      }
      tf.dispose([qs, ks, vs, dys]);

      const result: RingWorkerResult = {
        rank,
        worldSize: N,
        source: env.source,
        backend: info.name,
        seqLen: T,
        paddedSeqLen: Tp,
        tokensPerRank: c,
        stepMs,
        fwdMs: best.fwdMs,
        bwdMs: best.bwdMs,
        connectMs,
        peers: transport.peers,
      };
      if (a.check) {
        const names = ['out', 'dq', 'dk', 'dv'] as const;
        const ref = vanillaReference(q, k, v, dOut, [B, H, Hk, T, D], a.causal, segmentIds, a.backward);
        // squared error and squared reference norm of this rank's real tokens, summed over the ring
        const sums = new Float32Array(2 * last.length);
        last.forEach((got, i) => {
          const rows = B * (i === 0 || i === 1 ? H : Hk);
          const want = ref[i]; // (rows, T, D); got: (rows, c, D) in the order of idx
          for (let r = 0; r < rows; r++)
            for (let j = 0; j < c; j++) {
              if (idx[j] >= T) continue; // padding
              for (let d = 0; d < D; d++) {
                const w = want[(r * T + idx[j]) * D + d];
                sums[2 * i] += (got[(r * c + j) * D + d] - w) ** 2;
                sums[2 * i + 1] += w ** 2;
              }
            }
        });
        allReduceSum(transport, sums);
        const rel: Record<string, number> = {};
        last.forEach((_, i) => {
          rel[names[i]] = Math.sqrt(sums[2 * i]) / Math.max(Math.sqrt(sums[2 * i + 1]), 1e-30);
        });
        result.relErr = rel as RingWorkerResult['relErr'];
        result.maxRelErr = Math.max(...Object.values(rel));
      }
      await transport.close();
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } catch (err) {
      await transport.abort(`rank ${rank} failed: ${errorMessage(err)}`);
      throw err;
    }
  },
};

/** Segment of the padding tokens: no real segment (those are ≥ 0) shares it. */
const PAD_SEGMENT = -1;

/** (rows, T, D) → (rows, Tp, D) with zero tokens appended. */
function padTokens(x: Float32Array, rows: number, T: number, Tp: number, D: number): Float32Array {
  if (Tp === T) return x;
  const out = new Float32Array(rows * Tp * D);
  for (let r = 0; r < rows; r++) out.set(x.subarray(r * T * D, (r + 1) * T * D), r * Tp * D);
  return out;
}

/** (B, T) segment ids (all 0 when undefined) → (B, Tp) with the padding in PAD_SEGMENT. */
function padSegments(segmentIds: Int32Array | undefined, B: number, T: number, Tp: number): Int32Array {
  const out = new Int32Array(B * Tp).fill(PAD_SEGMENT);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) out[b * Tp + t] = segmentIds ? segmentIds[b * T + t] : 0;
  return out;
}

/** Vanilla attention on the whole problem: out, and with `backward` dq, dk, dv (float32). */
function vanillaReference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  dOut: Float32Array,
  [B, H, Hk, T, D]: number[],
  causal: boolean,
  segmentIds: Int32Array | undefined,
  backward: boolean,
): Float32Array[] {
  return tf.tidy(() => {
    const qt = tf.tensor4d(q, [B, H, T, D]);
    const kt = tf.tensor4d(k, [B, Hk, T, D]);
    const vt = tf.tensor4d(v, [B, Hk, T, D]);
    const f = (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) => vanillaAttention(x, y, z, { causal, segmentIds });
    if (!backward) return [f(qt, kt, vt).dataSync() as Float32Array];
    const { value, grads } = tf.valueAndGrads(f)([qt, kt, vt], tf.tensor4d(dOut, [B, H, T, D]));
    return [value, ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

interface BandwidthArgs {
  floats: number;
  repeats: number;
}

/**
 * `exp ring-worker bandwidth`: every rank passes messages of --floats floats to rank + 1 while
 * receiving from rank − 1 (as the ring's K/V rotation does, with the send overlapped), and
 * prints the bytes/s of its link and the time per message: the B of the overlap condition c ≥ F/B.
 */
const bandwidthWorker: CommandModule<object, BandwidthArgs> = {
  command: 'bandwidth',
  describe: 'Measure the bytes/s of each ring link (raw float messages around the ring)',
  builder: (y: Argv) =>
    y
      .option('floats', { type: 'number', default: 1 << 20, describe: 'Floats per message' })
      .option('repeats', {
        type: 'number',
        default: 50,
        describe: 'Timed messages per rank',
      }) as unknown as Argv<BandwidthArgs>,
  handler: async (a) => {
    const env = transportFromEnvironment();
    if (!Number.isInteger(a.floats) || a.floats < 1 || !Number.isInteger(a.repeats) || a.repeats < 1)
      throw new InputError(
        `ring-worker bandwidth: --floats and --repeats must be positive integers; got ${a.floats}, ${a.repeats}`,
      );
    const transport = await ZeroMqTransport.connect({
      ...env,
      maxMessageFloats: a.floats,
      spec: { 'message floats': a.floats, repeats: a.repeats },
    });
    try {
      const buf = new Float32Array(a.floats).fill(env.rank);
      const round = () => {
        transport.send([buf]);
        transport.recv();
      };
      for (let i = 0; i < 3; i++) round(); // warm-up: connections and buffers
      const t0 = performance.now();
      for (let i = 0; i < a.repeats; i++) round();
      const seconds = (performance.now() - t0) / 1000;
      await transport.close();
      const bytes = a.floats * 4 * a.repeats;
      const out = { rank: env.rank, worldSize: env.worldSize, floats: a.floats, repeats: a.repeats, seconds };
      process.stdout.write(
        `${JSON.stringify({ ...out, bytesPerSec: bytes / seconds, msPerMessage: (1000 * seconds) / a.repeats })}\n`,
      );
    } catch (err) {
      await transport.abort(`rank ${env.rank} failed: ${errorMessage(err)}`);
      throw err;
    }
  },
};

export const ringWorkerCommand: CommandModule = {
  command: 'ring-worker <what>',
  describe: 'Run one rank of the multi-process ring (attention, bandwidth); ranks come from the environment',
  builder: (y: Argv) =>
    y
      .command(attentionWorker)
      .command(bandwidthWorker)
      .demandCommand(1, 'exp ring-worker: name a task (attention, bandwidth)'),
  handler: () => {},
};
