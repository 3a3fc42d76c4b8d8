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
 * - where the process has more than one native thread: each addon function's ms per step at one
 *   thread and at all of them, steps alternated (how far the calls scale inside a step), and the
 *   layer's attention forward alone after 0–2 ms of other work on the calling thread (a step's
 *   tfjs work between native calls, during which the helpers park), one thread against all.
 */
import * as tf from '@tensorflow/tfjs';
import { median, Rng } from '../common/index.js';
import type { AtBatch } from '../datasets/index.js';
import {
  configureNative,
  initBackend,
  nativeAddon,
  nativeSettings,
  nativeThreads,
  timeNativeCalls,
} from '../native/index.js';
import { blockwiseAttention } from '../ring/index.js';
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
  /** Inside a step, 1 thread against `threads` (steps alternated); absent on one thread. */
  threadAB?: ThreadAB;
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

/** One native thread against all of them, inside the step and after idle gaps. */
export interface ThreadAB {
  threads: number;
  steps: number;
  /** Mean step ms at 1 thread and at `threads`. */
  stepMs: [number, number];
  /** Per addon function, ms per step at 1 thread and at `threads` (largest first). */
  addon: { name: string; msPerStep: [number, number] }[];
  /**
   * The layer's causal attention forward (B, H, 4·contextSteps, dModel/H) alone, median µs a
   * call at 1 thread and at `threads`, each call after `gapMs` of JS work on the calling thread.
   */
  attentionAfterGap: { gapMs: number; micros: [number, number] }[];
}

/** Idle gaps before each attention call in the thread comparison (ms). */
const GAPS_MS = [0, 0.2, 0.5, 2];

/** Keeps the calling thread busy for `ms` (the helpers, with nothing to do, park meanwhile). */
function busyFor(ms: number): number {
  const until = performance.now() + ms;
  let x = 0;
  while (performance.now() < until) x += Math.sqrt(x + 1);
  return x;
}

/**
 * 1 thread against `threads`: steps alternated with the addon's calls timed per setting, then the
 * layer's attention forward after each gap, calls alternated in rounds. Leaves the setting as it was.
 */
async function compareThreads(
  preset: PolicyPreset,
  threads: number,
  steps: number,
  runStep: (time: Timer) => void,
): Promise<ThreadAB> {
  const counts = [1, threads];
  const before = nativeSettings().threads;
  const stepMs: [number, number] = [0, 0];
  const tallies = [new Map<string, Tally>(), new Map<string, Tally>()];
  try {
    for (let i = 0; i < steps; i++)
      for (const k of [0, 1]) {
        configureNative({ threads: counts[k] });
        await withAddonTimers(tallies[k], async () => runStep((_, ms) => (stepMs[k] += ms / steps)));
      }
    const { batch: B, heads: H, dModel, contextSteps } = preset;
    const T = 4 * contextSteps;
    const Dh = dModel / H;
    const rng = new Rng(1);
    const [q, k, v] = [0, 1, 2].map(() => tf.tensor4d(rng.normalArray(B * H * T * Dh), [B, H, T, Dh]));
    const attentionAfterGap: ThreadAB['attentionAfterGap'] = [];
    try {
      for (const gapMs of GAPS_MS) {
        const samples: [number[], number[]] = [[], []];
        for (let round = 0; round < 6; round++)
          for (const c of [0, 1]) {
            configureNative({ threads: counts[c] });
            for (let call = 0; call < 10; call++) {
              busyFor(gapMs);
              const t = performance.now();
              const out = blockwiseAttention(q, k, v, { causal: true, blockSize: ANT_TRAIN.blockSize });
              out.dataSync();
              samples[c].push(1000 * (performance.now() - t));
              out.dispose();
            }
          }
        attentionAfterGap.push({ gapMs, micros: [median(samples[0]), median(samples[1])] });
      }
    } finally {
      tf.dispose([q, k, v]);
    }
    const names = new Set([...tallies[0].keys(), ...tallies[1].keys()]);
    const perStep = (k: number, name: string) => (tallies[k].get(name)?.ms ?? 0) / steps;
    const addon = [...names]
      .map((name) => ({ name, msPerStep: [perStep(0, name), perStep(1, name)] as [number, number] }))
      .sort((a, b) => b.msPerStep[0] - a.msPerStep[0]);
    return { threads, steps, stepMs, addon, attentionAfterGap };
  } finally {
    configureNative({ threads: before });
  }
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

    // one thread against all, inside the step and after idle gaps
    const threads = nativeThreads();
    const threadAB =
      nativeAddon() && threads > 1
        ? await compareThreads(preset, threads, o.steps, (time) => step(model, optimizer, chains, time))
        : undefined;

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
      threadAB,
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
    ...(r.threadAB ? threadTable(r.threadAB) : []),
    '',
    `profiled step ${r.profiledStepMs.toFixed(1)} ms; tfjs kernels ${pct(r.kernelShare)} of it, ${r.kernelCallsPerStep.toFixed(0)} kernel calls/step`,
    ...table('tfjs kernel', r.kernels),
    ...table('custom op (inclusive, not summed)', r.customOps),
    ...table('addon function (inside or outside kernels)', r.addon),
  ].join('\n');
}

function threadTable(t: ThreadAB): string[] {
  const n = t.threads;
  const ratio = ([one, all]: [number, number]) => (all > 0 ? `${(one / all).toFixed(2)}×` : '–');
  return [
    '',
    `1 thread against ${n}, ${t.steps} steps each, alternated: step ${t.stepMs[0].toFixed(1)} ms vs ${t.stepMs[1].toFixed(1)} ms (${ratio(t.stepMs)})`,
    '',
    `| addon function | ms/step, 1 thread | ms/step, ${n} threads | speed-up |`,
    '|---|---|---|---|',
    ...t.addon.map(
      (a) =>
        `| ${a.name} | ${a.msPerStep[0].toFixed(2)} | ${a.msPerStep[1].toFixed(2)} | ${ratio(a.msPerStep)} |`,
    ),
    '',
    `| the layer's attention forward, after a gap of | µs, 1 thread | µs, ${n} threads | speed-up |`,
    '|---|---|---|---|',
    ...t.attentionAfterGap.map(
      (g) => `| ${g.gapMs} ms | ${g.micros[0].toFixed(0)} | ${g.micros[1].toFixed(0)} | ${ratio(g.micros)} |`,
    ),
  ];
}
