/**
 * LM training throughput (issue 8): tokens/s of one training step (forward + backward through
 * the tiny LLaMA of sharegpt-finetune.yaml's defaults, LLaMA vocabulary 32000, tied head,
 * checkpointed layers) for each single-device attention implementation, at the default window
 * (B=2, T=256) and at a longer one. Writes bench/results/lm.json and prints a Markdown table.
 *
 *   npm run build && node dist/bench/lm.js [--steps 3] [--lengths 256,1024]
 */
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Rng, writeFileAtomic } from '../common/index.js';
import { LlamaModel, shiftLabels } from '../lm/index.js';
import { initBackend } from '../native/index.js';
import { benchArgs } from './args.js';
import { sharegptDefaultModel } from './lm-config.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const { steps, lengths } = benchArgs({
  script: 'lm',
  usage: ['npm run build && node dist/bench/lm.js [--steps 3] [--lengths 256,1024]'],
  options: {
    steps: {
      kind: 'number',
      integer: true,
      min: 1,
      default: 3,
      description: 'timed training steps per row (the fastest kept), after one warm-up',
    },
    lengths: {
      kind: 'list',
      of: 'number',
      integer: true,
      min: 1,
      default: [256, 1024],
      description: 'window lengths T (batch 2)',
    },
  },
});
const batch = 2;
const config = sharegptDefaultModel(4096);

const backend = await initBackend({ backend: 'wasm' });
const rows: { attention: string; seqLen: number; batch: number; tokensPerSec: number; stepMs: number }[] = [];
for (const T of lengths)
  for (const attention of ['vanilla', 'memeff', 'blockwise'] as const) {
    const model = LlamaModel.init(config, new Rng(0), {
      attention,
      blockSize: 64,
      ffnChunk: attention === 'blockwise' ? 64 : 0,
      checkpointLayers: true,
    });
    const rng = new Rng(1);
    const ids = Array.from({ length: batch * T }, () => 3 + rng.int(config.vocabSize - 3));
    const targets = shiftLabels(ids, batch, T);
    const x = tf.tensor2d(ids, [batch, T], 'int32');
    const times: number[] = [];
    for (let s = 0; s <= steps; s++) {
      const t0 = performance.now();
      const { value, grads } = tf.variableGrads(() => model.loss(x, targets), model.variables());
      value.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
      if (s > 0) times.push(performance.now() - t0); // the first step warms up
    }
    x.dispose();
    model.dispose();
    const ms = Math.min(...times);
    rows.push({ attention, seqLen: T, batch, tokensPerSec: (batch * T) / (ms / 1000), stepMs: ms });
    console.error(`${attention} T=${T}: ${((batch * T) / (ms / 1000)).toFixed(0)} tokens/s`);
  }

const result = {
  benchmark: 'lm training tokens/s (forward+backward, one device)',
  backend: backend.name,
  machine: { cpus: cpus().length, model: cpus()[0]?.model },
  model: config,
  steps,
  rows,
  date: new Date().toISOString(),
};
writeFileAtomic(`${root}/bench/results/lm.json`, `${JSON.stringify(result, null, 2)}\n`);
console.log('| attention | B×T | tokens/s | step ms |\n|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.attention} | ${r.batch}×${r.seqLen} | ${r.tokensPerSec.toFixed(0)} | ${r.stepMs.toFixed(0)} |`,
  );
