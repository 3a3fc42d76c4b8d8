/**
 * How many trajectories fit in Agentic Transformer's context under a fixed per-device memory
 * budget, per attention implementation (issue 6; the paper's Table 5: AT + BPT holds 32
 * trajectories, AT + ring 128, mem-eff runs out of memory at 32). Memory is measured, not
 * modelled: one forward+backward of the AT model on the devices (peak tensor bytes) plus the
 * ring's receive buffers. Writes bench/results/at-context.json and prints a Markdown table.
 *
 *   npm run build && node dist/bench/at-context.js [--budget-mib 64] [--steps 50]
 */
import { fileURLToPath } from 'node:url';
import { Rng, writeFileAtomic } from '../common/index.js';
import { initBackend } from '../native/index.js';
import { type AttentionImpl, tokenIndices } from '../ring/index.js';
import { RingGroup } from '../cluster/index.js';
import { atModelConfig } from '../rl/policies/agentic-transformer.js';
import { emptyTokenBatch, selectTokens, type TokenBatch } from '../rl/policies/tokens.js';
import { type InitArgs, type StepArgs, trainMessageFloats } from '../rl/policies/train-device.js';
import { TrajectoryTransformer } from '../rl/policies/trajectory-transformer.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const argv = process.argv.slice(2);
const flag = (name: string, dflt: number) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const budgetMiB = flag('--budget-mib', 64);
const stepsPerTrajectory = flag('--steps', 50);
const maxTrajectories = flag('--max-trajectories', 256);
const obsDim = 27;
const actDim = 8;
const model = { dModel: 64, layers: 2, heads: 2, maxTimestep: stepsPerTrajectory + 1, blockSize: 128 };

/** A chain of n random trajectories as AT tokens (4 per step). */
function chain(n: number, rng: Rng): TokenBatch {
  const T = 4 * n * stepsPerTrajectory;
  const F = Math.max(obsDim, actDim);
  const b = emptyTokenBatch(1, T, F, actDim);
  for (let t = 0; t < T; t++) {
    b.types[t] = t % 4;
    b.timesteps[t] = Math.floor(t / 4) % stepsPerTrajectory;
    b.segments[t] = 1;
    for (let f = 0; f < F; f++) b.feats[t * F + f] = rng.normal();
    if (t % 4 === 1) {
      b.weights[t] = 1;
      for (let a = 0; a < actDim; a++) b.targets[t * actDim + a] = Math.tanh(rng.normal());
    }
  }
  return b;
}

async function main(): Promise<void> {
  const backend = await initBackend({ notice: true });
  const rows: {
    method: string;
    devices: number;
    maxTrajectories: number;
    tokens: number;
    mibPerDevice: number;
  }[] = [];
  const module = new URL('../rl/policies/train-device.js', import.meta.url);
  for (const [method, devices] of [
    ['memeff', 1],
    ['blockwise', 1],
    ['ring', 2],
    ['ring', 4],
  ] as [AttentionImpl, number][]) {
    const group = await RingGroup.create({ devices, backend: backend.name });
    const config = atModelConfig(obsDim, actDim, { ...model, attention: method });
    const probe = new TrajectoryTransformer(config, new Rng(0));
    const parameters = probe.parameterCount();
    probe.dispose();
    const fits = async (n: number) => {
      const tokens = chain(n, new Rng(n));
      const T = tokens.length;
      const messageFloats = trainMessageFloats(config, 1, T / devices, parameters, devices);
      const init: InitArgs = { config, seed: 0, weightDecay: 0 };
      await group.run(module, 'initTrainer', Array(devices).fill(init), messageFloats);
      const args: StepArgs[] = Array.from({ length: devices }, (_, r) => ({
        tokens: devices === 1 ? tokens : selectTokens(tokens, tokenIndices(r, devices, T, 'striped')),
        totalWeight: n * stepsPerTrajectory,
        seqLen: T,
        layout: 'striped',
        lr: 0,
        clip: 0,
      }));
      const peaks = await group.run<StepArgs, number>(module, 'probeMemory', args, messageFloats);
      const mib = (Math.max(...peaks) + (devices > 1 ? group.commBytesPerDevice : 0)) / 2 ** 20;
      process.stderr.write(`${method} N=${devices} n=${n} (${T} tokens): ${mib.toFixed(1)} MiB/device\n`);
      return mib;
    };
    // doubling, then one bisection step
    let lo = 0;
    let loMib = 0;
    let hi = 0;
    for (let n = 1; n <= maxTrajectories; n *= 2) {
      const mib = await fits(n);
      if (mib <= budgetMiB) {
        lo = n;
        loMib = mib;
      } else {
        hi = n;
        break;
      }
    }
    if (lo > 0 && hi > lo + 1) {
      const mid = Math.floor((lo + hi) / 2);
      const mib = await fits(mid);
      if (mib <= budgetMiB) {
        lo = mid;
        loMib = mib;
      }
    }
    rows.push({
      method,
      devices,
      maxTrajectories: lo,
      tokens: 4 * lo * stepsPerTrajectory,
      mibPerDevice: loMib,
    });
    await group.dispose();
  }
  const result = {
    date: new Date().toISOString(),
    backend: backend.name,
    budgetMiB,
    stepsPerTrajectory,
    model,
    rows,
  };
  writeFileAtomic(`${root}/bench/results/at-context.json`, `${JSON.stringify(result, null, 2)}\n`);
  const lines = [
    `AT (d=${model.dModel}, ${model.layers} layers, ${stepsPerTrajectory}-step trajectories, 4 tokens/step), budget ${budgetMiB} MiB/device, ${backend.name}`,
    '',
    '| attention | devices | max trajectories in context | tokens | MiB/device |',
    '|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.method === 'blockwise' ? 'BPT' : r.method} | ${r.devices} | ${r.maxTrajectories} | ${r.tokens} | ${r.mibPerDevice.toFixed(1)} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
