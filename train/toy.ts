/**
 * The toy trainer (moved out of experiments/recipes/toy.ts, issue 13): a one-hidden-layer MLP
 * fitted to y = sin(2x) + noise with Adam, in tfjs. Small and deterministic, so the runner,
 * checkpoints, resume, Ctrl-C, sweeps and the notebook can be tested end to end in seconds. Reads
 * top to bottom like any training script: init → loop (batch, step, log, checkpoint) → evaluate.
 *
 * Metrics: `train/loss` (batch MSE, every step), `eval/loss` (held-out MSE, every `evalEvery`
 * steps and at the last).
 *
 * NOTE: its Adam is written out here rather than train/optim.ts's AdamW: AdamW divides before it
 * scales by lr (float32 rounds differently, and the same seed must log the same losses as before
 * issue 13), and this checkpoint names the moments `m_<param>`/`v_<param>`, which runs saved
 * before must resume from.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../common/index.js';
import type { CheckpointTensor, TrainContext } from './context.js';

export interface ToyOptions {
  /** Training steps. */
  steps: number;
  /** Examples per step, drawn with replacement by the run RNG. */
  batchSize: number;
  /** Hidden units of the MLP. */
  hidden: number;
  /** Adam learning rate. */
  lr: number;
  /** Steps between evaluations (and the last step). */
  evalEvery: number;
  /** Throw an error at this step (tests of FAILED runs); 0 never. */
  failAtStep: number;
  /** Sleep after each step, ms (demos and the Ctrl-C test; 0 in real use). */
  stepDelayMs: number;
}

/** What the synthetic data is drawn with. */
export interface ToyDataOptions {
  /** Training points. */
  datasetSize: number;
  /** Held-out points. */
  evalSize: number;
  /** Std of the Gaussian noise added to the targets. */
  noise: number;
}

export const TOY_DEFAULTS: ToyOptions & ToyDataOptions = {
  steps: 200,
  batchSize: 32,
  hidden: 32,
  lr: 0.01,
  datasetSize: 512,
  evalSize: 256,
  noise: 0.05,
  evalEvery: 20,
  failAtStep: 0,
  stepDelayMs: 0,
};

/** Points x ∈ [−2, 2) (N) and y = sin(2x) + noise (N). */
export interface ToyData {
  x: Float32Array;
  y: Float32Array;
}

/** The synthetic dataset; fixed by the seed, independent of the run RNG's later draws. */
export function toySineData(seed: number, n: number, noise: number): ToyData {
  const rng = new Rng(seed ^ 0x5eed);
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = rng.next() * 4 - 2;
    y[i] = Math.sin(2 * x[i]) + noise * rng.normal();
  }
  return { x, y };
}

/** The training and held-out sets of a run with seed `seed`. */
export function toyDatasets(seed: number, o: ToyDataOptions): { train: ToyData; eval: ToyData } {
  return {
    train: toySineData(seed, o.datasetSize, o.noise),
    eval: toySineData(seed + 1_000_003, o.evalSize, o.noise),
  };
}

/** A loss curve: one point per logged step. */
export type LossCurve = { step: number; loss: number }[];

const PARAM_NAMES = ['w1', 'b1', 'w2', 'b2'] as const;

/**
 * Trains on `data` from the context's RNG (initialisation and batches), logging through its
 * logger and saving checkpoints of every parameter and Adam moment; returns the loss curves.
 */
export async function trainToy(
  o: ToyOptions,
  data: { train: ToyData; eval: ToyData },
  ctx: TrainContext,
): Promise<{ train: LossCurve; eval: LossCurve }> {
  const who = ctx.optionsPath ?? 'toy';
  // Parameters and Adam moments. Initialised from the run RNG, so the seed fixes everything.
  // NOTE: on resume the RNG is already restored past these draws, so draw only on a fresh start.
  const H = o.hidden;
  let start = 1;
  let saved: Record<string, CheckpointTensor>;
  if (ctx.resume) {
    saved = ctx.resume.tensors;
    start = ctx.resume.step + 1;
    ctx.log?.(`resuming at step ${start}`);
  } else {
    saved = {
      w1: { shape: [1, H], data: ctx.rng.normalArray(H, 1) },
      b1: { shape: [H], data: new Float32Array(H) },
      w2: { shape: [H, 1], data: ctx.rng.normalArray(H, 1 / Math.sqrt(H)) },
      b2: { shape: [1], data: new Float32Array(1) },
    };
  }
  const vars: Record<string, tf.Variable> = {};
  for (const n of PARAM_NAMES) {
    vars[n] = tf.variable(tf.tensor(saved[n].data, saved[n].shape));
    for (const mom of ['m', 'v']) {
      const key = `${mom}_${n}`;
      const t = ctx.resume?.tensors[key];
      vars[key] = tf.variable(t ? tf.tensor(t.data, t.shape) : tf.zerosLike(vars[n]));
    }
  }

  const [N, NE] = [data.train.x.length, data.eval.x.length];
  const xTrain = tf.tensor2d(data.train.x, [N, 1]); // (N, 1)
  const yTrain = tf.tensor2d(data.train.y, [N, 1]);
  const xEval = tf.tensor2d(data.eval.x, [NE, 1]); // (NE, 1)
  const yEval = tf.tensor2d(data.eval.y, [NE, 1]);
  const predict = (x: tf.Tensor2D) =>
    tf.tidy(() => tf.tanh(x.matMul(vars.w1).add(vars.b1)).matMul(vars.w2).add(vars.b2) as tf.Tensor2D); // (B, 1)
  const mse = (x: tf.Tensor2D, y: tf.Tensor2D) =>
    tf.tidy(() => tf.mean(tf.square(predict(x).sub(y))) as tf.Scalar);
  const evaluate = async (): Promise<number> => {
    const l = mse(xEval, yEval);
    const v = (await l.data())[0];
    l.dispose();
    return v;
  };
  const snapshot = async (step: number) => {
    const tensors: Record<string, CheckpointTensor> = {};
    for (const [k, v] of Object.entries(vars))
      tensors[k] = { shape: v.shape, data: (await v.data()) as Float32Array };
    await ctx.checkpoints?.save({ step, state: { step }, tensors });
  };

  const [beta1, beta2, eps] = [0.9, 0.999, 1e-8];
  const progress = ctx.progress?.('toy', o.steps);
  const curves: { train: LossCurve; eval: LossCurve } = { train: [], eval: [] };
  let last = start - 1;
  try {
    for (let step = start; step <= o.steps; step++) {
      if (ctx.signal?.aborted) break;
      if (step === o.failAtStep)
        throw new Error(`${who}: failing at step ${step} as configured (${who}.failAtStep)`);
      // Batch drawn with the run RNG: its state is in every checkpoint (resume draws the same).
      const idx = new Int32Array(o.batchSize);
      for (let i = 0; i < o.batchSize; i++) idx[i] = ctx.rng.int(N);
      const loss = tf.tidy(() => {
        const ids = tf.tensor1d(idx, 'int32');
        const xb = tf.gather(xTrain, ids) as tf.Tensor2D; // (B, 1)
        const yb = tf.gather(yTrain, ids) as tf.Tensor2D;
        const { value, grads } = tf.variableGrads(() => mse(xb, yb));
        // Adam with bias correction (Kingma & Ba, Algorithm 1).
        const bc1 = 1 - beta1 ** step;
        const bc2 = 1 - beta2 ** step;
        for (const n of PARAM_NAMES) {
          const g = grads[vars[n].name];
          vars[`m_${n}`].assign(vars[`m_${n}`].mul(beta1).add(g.mul(1 - beta1)));
          vars[`v_${n}`].assign(vars[`v_${n}`].mul(beta2).add(g.square().mul(1 - beta2)));
          const mHat = vars[`m_${n}`].div(bc1);
          const vHat = vars[`v_${n}`].div(bc2);
          vars[n].assign(vars[n].sub(mHat.mul(o.lr).div(vHat.sqrt().add(eps))));
        }
        return value;
      });
      const lossValue = (await loss.data())[0];
      loss.dispose();
      ctx.logger.metrics({ 'train/loss': lossValue }, step);
      curves.train.push({ step, loss: lossValue });
      if (step % o.evalEvery === 0 || step === o.steps) {
        const e = await evaluate();
        ctx.logger.metrics({ 'eval/loss': e }, step);
        curves.eval.push({ step, loss: e });
      }
      progress?.update(step, { loss: lossValue });
      last = step;
      if (ctx.checkpoints?.due(step) && step !== o.steps) await snapshot(step);
      if (o.stepDelayMs > 0) await new Promise((r) => setTimeout(r, o.stepDelayMs));
    }
    progress?.finish();
    // The last completed step is always saved: at the end, and on Ctrl-C (for --resume).
    if (last >= start || !ctx.resume) await snapshot(last);
    return curves;
  } finally {
    tf.dispose([xTrain, yTrain, xEval, yEval, ...Object.values(vars)]);
  }
}
