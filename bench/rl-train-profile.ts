/**
 * Where an Agentic Transformer training step's time goes (issue 14): the step of
 * rl/policies/train-device.ts `trainStep` (blockwise attention, one device, native kernels when
 * the addon loads), in-process on random tokens of the preset's shapes, broken down
 *
 * - by phase, unprofiled: host (chain batch → tokens, `atTokens`), forward (`model.loss`),
 *   backward (the rest of `tf.variableGrads`), optimiser (clip + AdamW, `clipAndApply`: one
 *   native call, or the tfjs kernels with `fusedOptimiser: false`);
 * - the optimiser fused and on tfjs, steps alternated (same run, same load): step and
 *   optimiser ms of each, the before/after of issue 14's fused AdamW;
 * - by tfjs kernel, under `tf.profile`: ms and calls per step, share of the profiled step;
 *   custom ops (blockwise FFN, embedding lookup, attention) are recorded by tfjs as one entry
 *   spanning their inner kernels, so they are listed apart (inclusive) and not summed;
 * - by addon function (native/addon.ts `timeNativeCalls`): the fused attention runs outside any
 *   tfjs kernel, so `tf.profile` alone would not see it; sgemm runs inside BatchMatMul.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../common/index.js';
import type { AtBatch } from '../datasets/index.js';
import { initBackend, nativeAddon, nativeThreads, timeNativeCalls } from '../native/index.js';
import { atModelConfig, atTokens } from '../rl/policies/agentic-transformer.js';
import type { TokenBatch } from '../rl/policies/tokens.js';
import { TrajectoryTransformer } from '../rl/policies/trajectory-transformer.js';
import { AdamW } from '../train/index.js';
import { ANT, ANT_TRAIN, type PolicyPreset } from './rl-train-models.js';

export interface PhaseTimes {
  host: number;
  forward: number;
  backward: number;
  optimiser: number;
}
const PHASES: (keyof PhaseTimes)[] = ['host', 'forward', 'backward', 'optimiser'];

/** Mean ms per step with one optimiser form, from the alternated comparison. */
export interface OptimiserTiming {
  stepMs: number;
  optimiserMs: number;
}

export interface KernelRow {
  name: string;
  msPerStep: number;
  /** Of the profiled step's wall time. */
  share: number;
  callsPerStep: number;
  /** The most frequent input shapes, "shape;shape ×calls/step". */
  topShapes: string[];
}

export interface ProfileResult {
  preset: PolicyPreset;
  backend: string;
  kernelsLine: string;
  steps: number;
  /** Whether the phases and kernels ran with the fused (native) optimiser. */
  fusedOptimiser: boolean;
  /** The optimiser fused vs on tfjs kernels, steps alternated; `steps` pairs. */
  optimiserAB: { fused: OptimiserTiming; tfjs: OptimiserTiming; steps: number };
  /**
   * Mean step ms per helper polling time (the addon's `helperSpin`, µs), steps alternated over
   * the settings; absent where the addon lacks it or runs on one thread.
   */
  helperSpinAB?: { micros: number; stepMs: number }[];
  /** Mean ms per step of each phase, unprofiled. */
  phases: PhaseTimes & { total: number };
  /** Wall ms of a step under tf.profile (its bookkeeping included). */
  profiledStepMs: number;
  kernels: KernelRow[];
  kernelCallsPerStep: number;
  /** Σ kernel ms / profiled step: the rest is JS, autodiff and native calls outside kernels. */
  kernelShare: number;
  customOps: KernelRow[];
  addon: KernelRow[];
}

/** A random chain batch of the preset's shapes: full chains (no padding), as ant-medium's are. */
function randomChains(p: PolicyPreset, rng: Rng): AtBatch {
  const { batch: B, contextSteps: L } = p;
  const { obsDim: S, actDim: A } = ANT;
  const n = B * L;
  const timesteps = new Int32Array(n);
  for (let i = 0; i < n; i++) timesteps[i] = rng.int(ANT.maxTimestep);
  return {
    batchSize: B,
    contextSteps: L,
    obsDim: S,
    actDim: A,
    states: rng.normalArray(n * S),
    actions: rng.normalArray(n * A, 0.5),
    rewards: rng.normalArray(n),
    returnsToGo: rng.normalArray(n),
    completions: new Uint8Array(n),
    timesteps,
    trajectoryIndex: new Int32Array(n),
    mask: new Uint8Array(n).fill(1),
    numTrajectories: new Int32Array(B).fill(4),
    chainEpisodes: new Int32Array(B * 4),
    targets: new Float64Array(B),
  };
}

/** The helper polling times the profile compares (µs). */
const SPIN_MICROS = [0, 50, 200, 1000];

type Timer = (phase: keyof PhaseTimes, ms: number) => void;

/** One training step as `trainStep` does it on one device, each phase reported to `time`. */
function step(model: TrajectoryTransformer, optimizer: AdamW, chains: AtBatch, time: Timer): void {
  let t = performance.now();
  const tokens: TokenBatch = atTokens(chains, ANT.maxTimestep);
  const totalWeight = tokens.weights.reduce((a, x) => a + x, 0);
  time('host', performance.now() - t);
  t = performance.now();
  let forwardMs = 0;
  const vars = model.variables();
  const { value, grads } = tf.variableGrads(() => {
    // wasm kernels run synchronously: the forward's compute is done when loss() returns
    const f = performance.now();
    const loss = model.loss(tokens, totalWeight);
    forwardMs = performance.now() - f;
    return loss;
  }, vars);
  value.dataSync();
  value.dispose();
  time('forward', forwardMs);
  time('backward', performance.now() - t - forwardMs);
  t = performance.now();
  optimizer.clipAndApply(
    vars.map((v) => grads[v.name]),
    ANT_TRAIN.clip,
    ANT_TRAIN.lr,
  );
  time('optimiser', performance.now() - t);
}

interface Tally {
  ms: number;
  calls: number;
  shapes: Map<string, number>;
}

function rowsOf(tallies: Map<string, Tally>, steps: number, stepMs: number): KernelRow[] {
  return [...tallies.entries()]
    .map(([name, t]) => ({
      name,
      msPerStep: t.ms / steps,
      share: t.ms / steps / stepMs,
      callsPerStep: t.calls / steps,
      topShapes: [...t.shapes.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([s, c]) => `${s} ×${(c / steps).toFixed(1)}`),
    }))
    .sort((a, b) => b.msPerStep - a.msPerStep);
}

function tally(into: Map<string, Tally>, name: string, ms: number, shape: string): void {
  const t = into.get(name) ?? { ms: 0, calls: 0, shapes: new Map<string, number>() };
  into.set(name, t);
  t.ms += ms;
  t.calls++;
  t.shapes.set(shape, (t.shapes.get(shape) ?? 0) + 1);
}

/** Times every addon call (native/addon.ts `timeNativeCalls`) for the duration of `f`. */
async function withAddonTimers<T>(into: Map<string, Tally>, f: () => Promise<T>): Promise<T> {
  timeNativeCalls((name, ms) => tally(into, name, ms, ''));
  try {
    return await f();
  } finally {
    timeNativeCalls(undefined);
  }
}

export async function profileTraining(
  preset: PolicyPreset,
  o: { steps: number; warmup: number; fusedOptimiser: boolean },
): Promise<ProfileResult> {
  const info = await initBackend({ backend: 'wasm' });
  const config = atModelConfig(ANT.obsDim, ANT.actDim, {
    dModel: preset.dModel,
    layers: preset.layers,
    heads: preset.heads,
    maxTimestep: ANT.maxTimestep,
    attention: 'blockwise',
    blockSize: ANT_TRAIN.blockSize,
    // NOTE: as ant-medium.yaml, which the throughput bench runs: the native block keeps q, k, v
    keepAttention: ANT_TRAIN.keepAttention,
    keepFfn: ANT_TRAIN.keepFfn,
  });
  const rng = new Rng(0);
  const model = new TrajectoryTransformer(config, rng);
  const adamw = (native: boolean) =>
    new AdamW(model.variables(), { lr: 0, weightDecay: ANT_TRAIN.weightDecay, native });
  const fused = adamw(true);
  const plain = adamw(false);
  const optimizer = o.fusedOptimiser ? fused : plain;
  const chains = randomChains(preset, rng);
  try {
    const noop: Timer = () => {};
    for (let i = 0; i < o.warmup; i++) {
      step(model, fused, chains, noop);
      step(model, plain, chains, noop);
    }

    // the optimiser fused vs on tfjs, alternated step by step (both update the same weights:
    // only the time matters here)
    const ab = { fused: { stepMs: 0, optimiserMs: 0 }, tfjs: { stepMs: 0, optimiserMs: 0 } };
    for (let i = 0; i < o.steps; i++)
      for (const [key, opt] of [
        ['fused', fused],
        ['tfjs', plain],
      ] as const)
        step(model, opt, chains, (p, ms) => {
          ab[key].stepMs += ms / o.steps;
          if (p === 'optimiser') ab[key].optimiserMs += ms / o.steps;
        });

    // the helper threads' polling time, alternated step by step (native/src `spinMicros`)
    const addonNow = nativeAddon();
    let helperSpinAB: ProfileResult['helperSpinAB'];
    if (addonNow?.helperSpin && nativeThreads() > 1) {
      const before = addonNow.helperSpin();
      helperSpinAB = SPIN_MICROS.map((micros) => ({ micros, stepMs: 0 }));
      try {
        for (let i = 0; i < o.steps; i++)
          for (const row of helperSpinAB) {
            addonNow.helperSpin(row.micros);
            step(model, optimizer, chains, (_, ms) => (row.stepMs += ms / o.steps));
          }
      } finally {
        addonNow.helperSpin(before);
      }
    }

    // phases, unprofiled
    const phases: PhaseTimes = { host: 0, forward: 0, backward: 0, optimiser: 0 };
    for (let i = 0; i < o.steps; i++) step(model, optimizer, chains, (p, ms) => (phases[p] += ms));
    for (const p of PHASES) phases[p] /= o.steps;
    const total = PHASES.reduce((a, p) => a + phases[p], 0);

    // kernels and addon calls, profiled
    const kernelNames = new Set(tf.getKernelsForBackend(tf.getBackend()).map((k) => k.kernelName));
    const kernels = new Map<string, Tally>();
    const custom = new Map<string, Tally>();
    const addon = new Map<string, Tally>();
    let profiledMs = 0;
    await withAddonTimers(addon, async () => {
      for (let i = 0; i < o.steps; i++) {
        const t = performance.now();
        const info = await tf.profile(() => step(model, optimizer, chains, noop));
        profiledMs += performance.now() - t;
        for (const k of info.kernels) {
          const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
          const shape = k.inputShapes.map((s) => `[${s}]`).join(';');
          tally(kernelNames.has(k.name) ? kernels : custom, k.name, ms, shape);
        }
      }
    });
    // NOTE: profiledMs includes awaiting tf.profile's bookkeeping; the kernels' own times do not
    const profiledStepMs = profiledMs / o.steps;
    const kernelRows = rowsOf(kernels, o.steps, profiledStepMs);
    return {
      preset,
      backend: info.name,
      kernelsLine: info.kernels ?? '',
      steps: o.steps,
      fusedOptimiser: o.fusedOptimiser,
      optimiserAB: { ...ab, steps: o.steps },
      helperSpinAB,
      phases: { ...phases, total },
      profiledStepMs,
      kernels: kernelRows,
      kernelCallsPerStep: kernelRows.reduce((a, k) => a + k.callsPerStep, 0),
      kernelShare: kernelRows.reduce((a, k) => a + k.share, 0),
      customOps: rowsOf(custom, o.steps, profiledStepMs),
      addon: rowsOf(addon, o.steps, profiledStepMs),
    };
  } finally {
    model.dispose();
    fused.dispose();
    plain.dispose();
  }
}

/** The profile as Markdown: phases, then the top kernels, custom ops and addon calls. */
export function profileTable(r: ProfileResult, top = 15): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const table = (title: string, rows: KernelRow[]) => [
    '',
    `| ${title} | ms/step | share of profiled step | calls/step | most frequent input shapes |`,
    '|---|---|---|---|---|',
    ...rows
      .slice(0, top)
      .map(
        (k) =>
          `| ${k.name} | ${k.msPerStep.toFixed(2)} | ${pct(k.share)} | ${k.callsPerStep.toFixed(0)} | ${k.topShapes.join(' · ')} |`,
      ),
  ];
  const p = r.phases;
  const ab = r.optimiserAB;
  return [
    `${r.preset.name}: dModel ${r.preset.dModel}, ${r.preset.layers} layers, ${r.preset.heads} heads, ${4 * r.preset.contextSteps} tokens, batch ${r.preset.batch}; ${r.backend} (${r.kernelsLine}); ${r.steps} steps; optimiser ${r.fusedOptimiser ? 'fused (native)' : 'tfjs kernels'}`,
    '',
    '| phase | ms/step | share |',
    '|---|---|---|',
    ...PHASES.map((k) => `| ${k} | ${p[k].toFixed(1)} | ${pct(p[k] / p.total)} |`),
    `| step (unprofiled) | ${p.total.toFixed(1)} | 100% |`,
    '',
    `optimiser (clip + AdamW), ${r.optimiserAB.steps} steps each, alternated: fused native ${ab.fused.optimiserMs.toFixed(2)} ms (step ${ab.fused.stepMs.toFixed(1)} ms); tfjs kernels ${ab.tfjs.optimiserMs.toFixed(2)} ms (step ${ab.tfjs.stepMs.toFixed(1)} ms); step ratio ${(ab.tfjs.stepMs / ab.fused.stepMs).toFixed(3)}`,
    ...(r.helperSpinAB
      ? [
          '',
          `helper polling (addon helperSpin), ${r.steps} steps each, alternated: ${r.helperSpinAB.map((h) => `${h.micros} µs ${h.stepMs.toFixed(1)} ms`).join('; ')}`,
        ]
      : []),
    '',
    `profiled step ${r.profiledStepMs.toFixed(1)} ms; tfjs kernels ${pct(r.kernelShare)} of it, ${r.kernelCallsPerStep.toFixed(0)} kernel calls/step`,
    ...table('tfjs kernel', r.kernels),
    ...table('custom op (inclusive, not summed)', r.customOps),
    ...table('addon function (inside or outside kernels)', r.addon),
  ].join('\n');
}
