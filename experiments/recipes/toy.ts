/**
 * `recipe: toy`: a one-hidden-layer MLP fitted to y = sin(2x) + noise with Adam, in tfjs. Small
 * and deterministic, so the runner, checkpoints, resume, Ctrl-C, sweeps and the notebook can be
 * tested end to end in seconds. Reads top to bottom like any training script:
 * data → init → loop (batch, step, log, checkpoint) → evaluate → tables and plots.
 *
 * Metrics: `train/loss` (batch MSE, every step), `eval/loss` (held-out MSE, every `evalEvery`
 * steps and at the end).
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import type { SavedTensor } from '../checkpoint.js';
import { type InferFields, s } from '../config/schema.js';
import { linePlotSvg } from '../plot/svg.js';
import type { Recipe, RecipeContext } from './types.js';

const fields = {
  steps: s.integer({ doc: 'Training steps', default: 200, min: 1 }),
  batchSize: s.integer({
    doc: 'Examples per step, drawn with replacement by the run RNG',
    default: 32,
    min: 1,
  }),
  hidden: s.integer({ doc: 'Hidden units of the MLP', default: 32, min: 1 }),
  lr: s.number({ doc: 'Adam learning rate', default: 0.01, min: 0, exclusiveMin: true }),
  datasetSize: s.integer({ doc: 'Training points in the synthetic dataset', default: 512, min: 1 }),
  evalSize: s.integer({ doc: 'Held-out points', default: 256, min: 1 }),
  noise: s.number({ doc: 'Std of the Gaussian noise added to the targets', default: 0.05, min: 0 }),
  evalEvery: s.integer({ doc: 'Steps between evaluations', default: 20, min: 1 }),
  failAtStep: s.integer({
    doc: 'Throw an error at this step (tests of FAILED runs); 0 never',
    default: 0,
    min: 0,
  }),
  stepDelayMs: s.number({
    doc: 'Sleep after each step, ms (demos and the Ctrl-C test; 0 in real use)',
    default: 0,
    min: 0,
  }),
};

export type ToyConfig = InferFields<typeof fields>;

/** The synthetic dataset; fixed by the seed, independent of the run RNG's later draws. */
function makeData(seed: number, n: number, noise: number): { x: Float32Array; y: Float32Array } {
  const rng = new Rng(seed ^ 0x5eed);
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = rng.next() * 4 - 2;
    y[i] = Math.sin(2 * x[i]) + noise * rng.normal();
  }
  return { x, y };
}

const PARAM_NAMES = ['w1', 'b1', 'w2', 'b2'] as const;

async function run(ctx: RecipeContext<ToyConfig>): Promise<void> {
  const c = ctx.config;
  const train = makeData(ctx.seed, c.datasetSize, c.noise);
  const evalSet = makeData(ctx.seed + 1_000_003, c.evalSize, c.noise);
  const digest = createHash('sha256')
    .update(new Uint8Array(train.x.buffer))
    .update(new Uint8Array(train.y.buffer))
    .digest('hex')
    .slice(0, 16);
  await ctx.tracker.dataset(
    {
      name: 'toy-sine',
      digest,
      sourceType: 'code',
      source: JSON.stringify({
        generator: 'experiments/recipes/toy.ts',
        seed: ctx.seed,
        rows: c.datasetSize,
      }),
      schema: JSON.stringify({
        mlflow_colspec: [
          { type: 'float', name: 'x', required: true },
          { type: 'float', name: 'y', required: true },
        ],
      }),
      profile: JSON.stringify({ num_rows: c.datasetSize, num_elements: 2 * c.datasetSize }),
    },
    'training',
  );

  // Parameters and Adam moments. Initialised from the run RNG, so the seed fixes everything.
  // NOTE: on resume the RNG is already restored past these draws, so draw only on a fresh start.
  const H = c.hidden;
  let start = 1;
  let saved: Record<string, SavedTensor>;
  if (ctx.resume) {
    saved = ctx.resume.tensors;
    start = ctx.resume.step + 1;
    ctx.log(`resuming at step ${start}`);
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

  const xTrain = tf.tensor2d(train.x, [c.datasetSize, 1]); // (N, 1)
  const yTrain = tf.tensor2d(train.y, [c.datasetSize, 1]);
  const xEval = tf.tensor2d(evalSet.x, [c.evalSize, 1]);
  const yEval = tf.tensor2d(evalSet.y, [c.evalSize, 1]);
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
    const tensors: Record<string, SavedTensor> = {};
    for (const [k, v] of Object.entries(vars))
      tensors[k] = { shape: v.shape, data: (await v.data()) as Float32Array };
    await ctx.checkpoints.save({ step, state: { step }, tensors });
  };

  const [beta1, beta2, eps] = [0.9, 0.999, 1e-8];
  const progress = ctx.progress('toy', c.steps);
  const trainCurve: { step: number; loss: number }[] = [];
  const evalCurve: { step: number; loss: number }[] = [];
  let last = start - 1;
  for (let step = start; step <= c.steps; step++) {
    if (ctx.signal.aborted) break;
    if (step === c.failAtStep) throw new Error(`toy: failing at step ${step} as configured (toy.failAtStep)`);
    // Batch drawn with the run RNG: its state is in every checkpoint (resume draws the same).
    const idx = new Int32Array(c.batchSize);
    for (let i = 0; i < c.batchSize; i++) idx[i] = ctx.rng.int(c.datasetSize);
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
        vars[n].assign(vars[n].sub(mHat.mul(c.lr).div(vHat.sqrt().add(eps))));
      }
      return value;
    });
    const lossValue = (await loss.data())[0];
    loss.dispose();
    ctx.tracker.metric('train/loss', lossValue, step);
    trainCurve.push({ step, loss: lossValue });
    if (step % c.evalEvery === 0 || step === c.steps) {
      const e = await evaluate();
      ctx.tracker.metric('eval/loss', e, step);
      evalCurve.push({ step, loss: e });
    }
    progress.update(step, { loss: lossValue });
    last = step;
    if (ctx.checkpoints.due(step) && step !== c.steps) await snapshot(step);
    if (c.stepDelayMs > 0) await new Promise((r) => setTimeout(r, c.stepDelayMs));
  }
  progress.finish();
  // The last completed step is always saved: at the end, and on Ctrl-C (for --resume).
  if (last >= start || !ctx.resume) await snapshot(last);

  if (!ctx.signal.aborted) {
    await ctx.tracker.table(
      'eval_curve',
      evalCurve.map((p) => ({ step: p.step, eval_loss: p.loss })),
    );
    await ctx.tracker.plot(
      'learning_curve',
      linePlotSvg({
        title: `toy: seed ${ctx.seed}`,
        xLabel: 'step',
        yLabel: 'MSE',
        logY: 10,
        series: [
          { name: 'train/loss', x: trainCurve.map((p) => p.step), y: trainCurve.map((p) => p.loss) },
          { name: 'eval/loss', x: evalCurve.map((p) => p.step), y: evalCurve.map((p) => p.loss) },
        ],
      }),
    );
  }
  tf.dispose([xTrain, yTrain, xEval, yEval, ...Object.values(vars)]);
}

export const toyRecipe: Recipe<ToyConfig> = {
  name: 'toy',
  describe: 'A small MLP regression (y = sin 2x) for testing the runner end to end',
  schema: s.object(fields, { doc: 'The toy regression recipe' }),
  run,
};
