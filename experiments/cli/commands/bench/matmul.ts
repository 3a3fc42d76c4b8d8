/**
 * `exp bench matmul`: GFLOP/s of one 2-D float32 matMul (M×K)·(K×N) on the chosen backend — the
 * kernel under every dense layer and the blockwise attention loops (issue 7). Prints one JSON
 * object; bench/matmul.ts puts backends side by side with numpy's BLAS sgemm and torch.mm.
 */
import * as tf from '@tensorflow/tfjs';
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../../../../common/index.js';
import { initBackend } from '../../../../native/index.js';
import { backendFromArgs, withBackend } from '../../options.js';

interface Args {
  size: number;
  m?: number;
  k?: number;
  n?: number;
  repeats: number;
  json: boolean;
  backend: string;
}

export interface MatmulBenchResult {
  backend: string;
  m: number;
  k: number;
  n: number;
  /** Fastest of `repeats` timed products after a warm-up (product left on the backend). */
  ms: number;
  gflops: number;
  repeats: number;
}

/** Times `repeats` products of fresh random operands; 2·M·K·N flops each. */
export async function benchMatmul(m: number, k: number, n: number, repeats: number, backend: string) {
  const a = tf.randomNormal([m, k], 0, 1, 'float32', 1);
  const b = tf.randomNormal([k, n], 0, 1, 'float32', 2);
  const once = async () => {
    const t = performance.now();
    const c = tf.matMul(a, b);
    // NOTE: kernels may run lazily, so the timed work ends with a read back; one element of the
    // product depends on all of it, and reading only that keeps the copy of the M×N product to
    // host memory out of the timing, as numpy's a @ b, whose product stays in memory, is timed
    const corner = tf.slice(c, [0, 0], [1, 1]);
    await corner.data();
    const ms = performance.now() - t;
    tf.dispose([c, corner]);
    return ms;
  };
  await once(); // warm-up: kernel set-up, thread pools
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < repeats; i++) best = Math.min(best, await once());
  a.dispose();
  b.dispose();
  const result: MatmulBenchResult = {
    backend,
    m,
    k,
    n,
    ms: best,
    gflops: (2 * m * k * n) / best / 1e6,
    repeats,
  };
  return result;
}

export const benchMatmulCommand: CommandModule<object, Args> = {
  command: 'matmul',
  describe: 'Time a 2-D float32 matMul and print GFLOP/s as JSON',
  builder: (y: Argv) =>
    withBackend(
      y
        .option('size', { type: 'number', default: 1024, describe: 'M = K = N unless given' })
        .option('m', { type: 'number', describe: 'Rows of the left operand' })
        .option('k', { type: 'number', describe: 'Inner dimension' })
        .option('n', { type: 'number', describe: 'Columns of the right operand' })
        .option('repeats', {
          type: 'number',
          default: 5,
          describe: 'Timed products; the fastest is reported',
        })
        .option('json', { type: 'boolean', default: false, describe: 'Print only the JSON object' }),
    ) as unknown as Argv<Args>,
  handler: async (a) => {
    const [m, k, n] = [a.m ?? a.size, a.k ?? a.size, a.n ?? a.size];
    for (const [name, v] of [
      ['m', m],
      ['k', k],
      ['n', n],
      ['repeats', a.repeats],
    ] as const)
      if (!Number.isInteger(v) || v < 1)
        throw new InputError(`exp bench matmul: --${name} must be a positive integer, got ${v}`);
    const info = await initBackend({ backend: backendFromArgs(a.backend), notice: !a.json });
    const result = await benchMatmul(m, k, n, a.repeats, info.name);
    if (!a.json)
      process.stderr.write(
        `matmul ${m}x${k}x${n} ${result.backend}: ${result.ms.toFixed(1)} ms, ${result.gflops.toFixed(1)} GFLOP/s\n`,
      );
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
};
