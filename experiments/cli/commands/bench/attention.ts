/** `exp bench attention`: time one attention implementation and print one JSON object. */
import type { Argv, CommandModule } from 'yargs';
import { initBackend } from '../../../../native/index.js';
import { ATTENTION_IMPLS, type AttentionImpl, type RingLayout } from '../../../../ring/index.js';
import { benchAttention } from '../../../bench/attention.js';
import { backendFromArgs, withBackend } from '../../options.js';

interface Args {
  impl: string;
  'seq-len': number;
  batch: number;
  heads: number;
  'kv-heads'?: number;
  'head-dim': number;
  devices: number;
  'block-size': number;
  causal: boolean;
  layout: string;
  backward: boolean;
  check: boolean;
  json: boolean;
  seed: number;
  repeats: number;
  backend: string;
}

export const benchAttentionCommand: CommandModule<object, Args> = {
  command: 'attention',
  describe: 'Time vanilla, memeff, blockwise or ring attention (forward, optionally backward) and print JSON',
  builder: (y: Argv) =>
    withBackend(
      y
        .option('impl', {
          type: 'string',
          default: 'blockwise',
          describe: `Implementation: ${ATTENTION_IMPLS.join(', ')}`,
        })
        .option('seq-len', { type: 'number', default: 2048, describe: 'Sequence length L' })
        .option('batch', { type: 'number', default: 1, describe: 'Batch size B' })
        .option('heads', { type: 'number', default: 8, describe: 'Query heads H' })
        .option('kv-heads', {
          type: 'number',
          describe: 'Key/value heads (grouped-query attention); default = heads',
        })
        .option('head-dim', { type: 'number', default: 64, describe: 'Head dimension D' })
        .option('devices', {
          type: 'number',
          default: 1,
          describe: 'Ring devices N (worker threads), ring only',
        })
        .option('block-size', {
          type: 'number',
          default: 512,
          describe: 'Block size C of the blockwise loops',
        })
        .option('causal', { type: 'boolean', default: false, describe: 'Causal mask' })
        .option('layout', {
          type: 'string',
          default: 'contiguous',
          describe: 'Ring token layout: contiguous or striped',
        })
        .option('backward', { type: 'boolean', default: false, describe: 'Also time the backward pass' })
        .option('check', {
          type: 'boolean',
          default: false,
          describe: 'Report maxRelErr against vanilla (forward, and gradients with --backward)',
        })
        .option('seed', { type: 'number', default: 0, describe: 'Seed of the random inputs' })
        .option('repeats', {
          type: 'number',
          default: 1,
          describe: 'Timed repetitions after a warm-up; the fastest is reported',
        })
        .option('json', {
          type: 'boolean',
          default: false,
          describe: 'Print one JSON object (default: a readable line and the JSON)',
        }),
    ) as unknown as Argv<Args>,
  handler: async (a) => {
    const backend = backendFromArgs(a.backend);
    const info = await initBackend({ backend, notice: !a.json });
    const result = await benchAttention({
      impl: a.impl as AttentionImpl,
      seqLen: a['seq-len'],
      batch: a.batch,
      heads: a.heads,
      kvHeads: a['kv-heads'] ?? a.heads,
      headDim: a['head-dim'],
      devices: a.devices,
      blockSize: a['block-size'],
      causal: a.causal,
      layout: a.layout as RingLayout,
      backward: a.backward,
      check: a.check,
      backend: info.name,
      seed: a.seed,
      repeats: a.repeats,
    });
    if (!a.json) {
      const mb = (x: number) => `${(x / 2 ** 20).toFixed(1)} MiB`;
      process.stderr.write(
        `${result.impl} L=${result.seqLen} N=${result.devices} ${result.backend}: fwd ${result.fwdMs.toFixed(0)} ms` +
          (result.bwdMs !== undefined ? `, bwd ${result.bwdMs.toFixed(0)} ms` : '') +
          `, ${result.gflops.toFixed(2)} GFLOP/s, peak ${mb(result.peakBytesPerDevice)}/device` +
          ` (tensors ${mb(result.peakTensorBytesPerDevice)}, idle device ${mb(result.idleBytesPerDevice)})` +
          (result.maxRelErr !== undefined ? `, maxRelErr ${result.maxRelErr.toExponential(2)}` : '') +
          '\n',
      );
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
};
