/**
 * How many trajectories fit in Agentic Transformer's context under a fixed per-device memory
 * budget, per attention implementation (issue 6; the paper's Table 5: AT + BPT holds 32
 * trajectories, AT + ring 128, mem-eff runs out of memory at 32). Memory is measured, not
 * modelled: one forward+backward of the AT model on the devices (offline-rl's `probeMemory`) plus
 * the ring's receive buffers. The budget is on what a device really holds (issue 20: wasm heap,
 * JS, native; `--budget-on tensors` for peak tensor bytes, the paper's activation count); a wasm
 * heap never shrinks, so every probe runs on fresh devices. Writes bench/results/at-context.json
 * and prints a Markdown table.
 *
 *   npm run build && node dist/bench/at-context.js [--budget-mib 96] [--budget-on real|tensors] [--steps 50]
 */
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { RingGroup } from '../cluster/index.js';
import { Rng, writeFileAtomic } from '../common/index.js';
import { initBackend, type ProbedPeak, processPeakRssBytes } from '../native/index.js';
import { type AttentionImpl, tokenIndices } from '../ring/index.js';
import { atModelConfig } from '../rl/policies/agentic-transformer.js';
import { emptyTokenBatch, selectTokens, type TokenBatch } from '../rl/policies/tokens.js';
import { type InitArgs, type StepArgs, trainMessageFloats } from '../rl/policies/train-device.js';
import { TrajectoryTransformer } from '../rl/policies/trajectory-transformer.js';
import { benchArgs } from './args.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const args = benchArgs({
  script: 'at-context',
  usage: [
    'npm run build && node dist/bench/at-context.js [--budget-mib 96] [--budget-on real|tensors] [--steps 50]',
  ],
  options: {
    'budget-mib': { kind: 'number', default: 96, description: 'the memory budget per device, in MiB' },
    'budget-on': {
      kind: 'string',
      choices: ['real', 'tensors'],
      default: 'real',
      description:
        "what the budget limits: a device's real memory (wasm heap, JS, native) or its peak tensor bytes",
    },
    steps: {
      kind: 'number',
      integer: true,
      min: 1,
      default: 50,
      description: 'steps per trajectory (4 tokens a step)',
    },
    'max-trajectories': {
      kind: 'number',
      integer: true,
      min: 1,
      default: 256,
      description: 'the most trajectories a method is probed at',
    },
  },
});
const budgetMiB = args['budget-mib'];
const budgetOn = args['budget-on'];
const stepsPerTrajectory = args.steps;
const maxTrajectories = args['max-trajectories'];
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

/** What one probe measured, in MiB per device (receive buffers included on a ring). */
interface Probe {
  realMib: number;
  tensorMib: number;
}

async function main(): Promise<void> {
  const backend = await initBackend({ notice: true });
  const rows: {
    method: string;
    devices: number;
    maxTrajectories: number;
    tokens: number;
    mibPerDevice: number;
    tensorMibPerDevice: number;
  }[] = [];
  const module = new URL('../rl/policies/train-device.js', import.meta.url);
  for (const [method, devices] of [
    ['memeff', 1],
    ['blockwise', 1],
    ['ring', 2],
    ['ring', 4],
  ] as [AttentionImpl, number][]) {
    const config = atModelConfig(obsDim, actDim, { ...model, attention: method });
    const probe = new TrajectoryTransformer(config, new Rng(0));
    const parameters = probe.parameterCount();
    probe.dispose();
    /** One forward+backward of a chain of n trajectories on fresh devices. */
    const measure = async (n: number): Promise<Probe> => {
      const tokens = chain(n, new Rng(n));
      const T = tokens.length;
      const messageFloats = trainMessageFloats(config, 1, T / devices, parameters, devices);
      const group = await RingGroup.create({ devices, backend: backend.name });
      try {
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
        const peaks = await group.run<StepArgs, ProbedPeak>(module, 'probeMemory', args, messageFloats);
        // the recipe's check: + on a ring the receive buffers and the all-reduce's 4 B/parameter
        const ringBytes = devices > 1 ? group.commBytesPerDevice + 4 * (parameters + 1) : 0;
        const p = {
          realMib: (Math.max(...peaks.map((x) => x.realBytes)) + ringBytes) / 2 ** 20,
          tensorMib: (Math.max(...peaks.map((x) => x.tensorBytes)) + ringBytes) / 2 ** 20,
        };
        process.stderr.write(
          `${method} N=${devices} n=${n} (${T} tokens): ${p.realMib.toFixed(1)} MiB/device real, ${p.tensorMib.toFixed(1)} tensors\n`,
        );
        return p;
      } finally {
        await group.dispose();
      }
    };
    const within = (p: Probe) => (budgetOn === 'real' ? p.realMib : p.tensorMib) <= budgetMiB;
    // doubling, then one bisection step
    let lo = 0;
    let loProbe: Probe = { realMib: 0, tensorMib: 0 };
    let hi = 0;
    for (let n = 1; n <= maxTrajectories; n *= 2) {
      const p = await measure(n);
      if (within(p)) {
        lo = n;
        loProbe = p;
      } else {
        hi = n;
        break;
      }
    }
    if (lo > 0 && hi > lo + 1) {
      const mid = Math.floor((lo + hi) / 2);
      const p = await measure(mid);
      if (within(p)) {
        lo = mid;
        loProbe = p;
      }
    }
    rows.push({
      method,
      devices,
      maxTrajectories: lo,
      tokens: 4 * lo * stepsPerTrajectory,
      mibPerDevice: loProbe.realMib,
      tensorMibPerDevice: loProbe.tensorMib,
    });
  }
  const result = {
    date: new Date().toISOString(),
    backend: backend.name,
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cpus: cpus().length },
    budgetMiB,
    budgetOn,
    processPeakRssMib: Math.round((processPeakRssBytes() ?? 0) / 2 ** 20),
    stepsPerTrajectory,
    model,
    rows,
  };
  writeFileAtomic(`${root}/bench/results/at-context.json`, `${JSON.stringify(result, null, 2)}\n`);
  const lines = [
    `AT (d=${model.dModel}, ${model.layers} layers, ${stepsPerTrajectory}-step trajectories, 4 tokens/step), budget ${budgetMiB} MiB/device on ${budgetOn === 'real' ? 'real memory' : 'tensor bytes'}, ${backend.name}, ${result.machine.cpu}`,
    '',
    '| attention | devices | max trajectories in context | tokens | real MiB/device | tensor MiB/device |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.method === 'blockwise' ? 'BPT' : r.method} | ${r.devices} | ${r.maxTrajectories} | ${r.tokens} | ${r.mibPerDevice.toFixed(1)} | ${r.tensorMibPerDevice.toFixed(1)} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
