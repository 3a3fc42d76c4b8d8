/**
 * The LLaMA model on ring devices (sequence parallelism, paper §3): the main thread sends every
 * device the same weights once (`loadModel`, kept in this worker's module state), then each call
 * hands a device its shard of the token sequence. With attention 'ring' every layer rotates the
 * key/value blocks around the ring, so a device holds only its c = T/N tokens' activations.
 *
 * Tasks: `forwardShard` (logits of the shard), `lossShard` (masked loss share and the weight
 * gradients summed over devices), `answerShard` (argmax tokens at asked global positions, with
 * the device's peak memory, real and tensor bytes: the line-retrieval evaluation, on one device
 * or the ring).
 */
import * as tf from '@tensorflow/tfjs';
import { InputError, Rng } from '../common/index.js';
import { type ProbedPeak, withPeakBytes } from '../native/index.js';
import { type DeviceContext, type RingLayout, type SequenceContext, tokenIndices } from '../ring/index.js';
import { GradientSum } from '../train/index.js';
import { argmax, type LlamaConfig, LlamaModel, type LlamaRuntime } from './model.js';

let model: LlamaModel | undefined;

export interface LoadModelArgs {
  config: LlamaConfig;
  runtime: LlamaRuntime;
  /** One array per variable, in `LlamaModel.variables()` order. */
  weights: Float32Array[];
}

/** The model's weights as plain arrays (what `loadModel` takes). */
export function modelWeights(m: LlamaModel): Float32Array[] {
  return m.variables().map((v) => v.dataSync() as Float32Array);
}

/** Builds a model with the given weights (any thread: the main thread's reference uses it too). */
export function buildModel(a: LoadModelArgs): LlamaModel {
  // the seed is irrelevant: every variable is overwritten
  const m = LlamaModel.init(a.config, new Rng(0), a.runtime);
  const vars = m.variables();
  const bad =
    vars.length !== a.weights.length
      ? `expected ${vars.length} weight arrays; got ${a.weights.length}`
      : vars
          .map((v, i) =>
            a.weights[i].length !== v.size
              ? `weight ${i} (shape [${v.shape}]): expected ${v.size} values; got ${a.weights[i].length}`
              : '',
          )
          .find((e) => e !== '');
  if (bad) {
    m.dispose(); // tfjs variable names are global: free them for the next attempt
    throw new InputError(`loadModel: ${bad}`);
  }
  vars.forEach((v, i) => {
    v.assign(tf.tensor(a.weights[i], v.shape));
  });
  return m;
}

export function loadModel(a: LoadModelArgs): { parameters: number } {
  model?.dispose();
  model = buildModel(a);
  return { parameters: model.variables().reduce((s, v) => s + v.size, 0) };
}

/** Frees the model (between experiments on the same group). */
export function unloadModel(): null {
  model?.dispose();
  model = undefined;
  return null;
}

export interface ShardArgs {
  /** This device's tokens (B, c) row-major, c = seqLen / N, in `layout` order. */
  ids: Int32Array;
  batch: number;
  /** Tokens per sequence over all devices. */
  seqLen: number;
  layout: RingLayout;
}

function current(): LlamaModel {
  if (!model) throw new Error('ring device: call loadModel first');
  return model;
}

function sequence(a: ShardArgs, ctx: DeviceContext): SequenceContext {
  return current().runtime.attention === 'ring'
    ? { ring: { transport: ctx.transport, seqLen: a.seqLen, layout: a.layout } }
    : {};
}

/** Logits (B, c, V) of this device's shard. */
export function forwardShard(a: ShardArgs, ctx: DeviceContext): { logits: Float32Array } {
  const m = current();
  const ids = tf.tensor2d(a.ids, [a.batch, a.ids.length / a.batch], 'int32');
  const logits = m.forward(ids, sequence(a, ctx));
  const out = logits.dataSync() as Float32Array;
  tf.dispose([ids, logits]);
  return { logits: out };
}

export interface LossShardArgs extends ShardArgs {
  /** Next-token targets of this shard (−100 ignored). */
  targets: Int32Array;
  /** Counted targets over all devices, so the devices' shares sum to the mean. */
  denominator: number;
}

/** This device's loss share and the gradients of the whole loss (summed over the ring), flat. */
export function lossShard(a: LossShardArgs, ctx: DeviceContext): { loss: number; grads: Float32Array } {
  const m = current();
  const ids = tf.tensor2d(a.ids, [a.batch, a.ids.length / a.batch], 'int32');
  const vars = m.variables();
  const { value, grads } = tf.variableGrads(
    () => m.loss(ids, a.targets, sequence(a, ctx), a.denominator),
    vars,
  );
  // one all-reduce for every gradient and the loss share (train/gradients.ts)
  const sum = new GradientSum(vars, 1);
  sum.add(grads, [value.dataSync()[0]]);
  tf.dispose([ids, value, ...Object.values(grads)]);
  sum.allReduce(ctx.transport);
  return { loss: sum.extras[0], grads: sum.flat.subarray(0, sum.parameters) };
}

export interface AnswerShardArgs extends ShardArgs {
  /** Per row, the global positions whose argmax next token is wanted. */
  positions: number[][];
  /** Measure the device's peak memory over the forward pass. */
  measure: boolean;
}

export interface AnswerShardResult {
  /** (row, global position, argmax token) triples of the asked positions this device holds. */
  hits: Int32Array;
  /**
   * With `measure`: the forward pass's peak tensor bytes and what the device really held at its
   * peak (wasm heap + JS + native, the resident weights included; issue 20). Zeros without.
   */
  peak: ProbedPeak;
}

/**
 * Greedy next tokens at the asked positions this device holds (teacher forcing: the tokens
 * before each position are the given ones), and the device's peak memory over the forward pass.
 * Any attention: 'ring' rotates K/V over the group, the others run this device's tokens alone
 * (a one-device group evaluates whole sequences).
 */
export async function answerShard(a: AnswerShardArgs, ctx: DeviceContext): Promise<AnswerShardResult> {
  const m = current();
  const c = a.ids.length / a.batch;
  const held = tokenIndices(ctx.rank, ctx.worldSize, a.seqLen, a.layout);
  const local = new Map<number, number>();
  held.forEach((g, i) => {
    local.set(g, i);
  });
  const ids = tf.tensor2d(a.ids, [a.batch, c], 'int32');
  // NOTE: the logits' read-back is inside the measured call: the device holds it as JS
  const {
    result: [all, V],
    peakBytes,
    memory,
  } = await withPeakBytes(() => {
    const logits = tf.tidy(() => m.forward(ids, sequence(a, ctx))); // (B, c, V)
    const out = logits.dataSync() as Float32Array;
    logits.dispose();
    return [out, logits.shape[2] as number] as const;
  }, a.measure);
  ids.dispose();
  const hits: number[] = [];
  a.positions.forEach((row, b) => {
    for (const p of row) {
      const t = local.get(p);
      if (t === undefined) continue;
      hits.push(b, p, argmax(all.subarray((b * c + t) * V, (b * c + t + 1) * V)));
    }
  });
  return {
    hits: Int32Array.from(hits),
    peak: { tensorBytes: peakBytes, realBytes: memory?.totalBytes ?? peakBytes },
  };
}
