/** `exp plan`: the paper's memory model (Table 1) and overlap condition, as a table. */
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../../../common/index.js';
import {
  HARDWARE_PRESETS,
  minBlockSize,
  parameterCount,
  parseModel,
  planTable,
} from '../../../ring/index.js';

interface PlanArgs {
  model: string;
  devices: number;
  'memory-gb': number;
  'memory-mib'?: number;
  implementation: 'paper' | 'harness';
  'runtime-mib': number;
  batch: number;
  'block-size': number;
  'bytes-per-param': number;
  'checkpoint-inputs': boolean;
  flops?: number;
  bandwidth?: number;
  json: boolean;
}

export const planCommand: CommandModule<object, PlanArgs> = {
  command: 'plan',
  describe:
    'Max context for vanilla, memeff, BPT and ring on N devices (paper Table 1/3), and the min block size c ≥ F/B',
  builder: (y: Argv) =>
    y
      .option('model', {
        type: 'string',
        default: '7b',
        describe: 'Preset (3b, 7b, 13b, 30b, context-scaling) or hidden,layers,heads[,ffn[,vocab[,kvHeads]]]',
      })
      .option('implementation', {
        choices: ['paper', 'harness'] as const,
        default: 'paper' as const,
        describe:
          "Memory model: the paper's Table 1 (bf16, FSDP) or this project's training step (fp32, replicated weights, the native block's backward; BPT and ring only)",
      })
      .option('memory-mib', {
        type: 'number',
        describe:
          'Memory per device in MiB (instead of --memory-gb; for the small models the harness trains)',
      })
      .option('runtime-mib', {
        type: 'number',
        default: 0,
        describe: "A device's fixed memory beside the step's, MiB (an idle wasm device: ≈ 40)",
      })
      .option('devices', { type: 'number', default: 8, describe: 'Number of devices N in the ring' })
      .option('memory-gb', { type: 'number', default: 80, describe: 'Memory per device, GB (1e9 bytes)' })
      .option('batch', { type: 'number', default: 1, describe: 'Batch size b' })
      .option('block-size', { type: 'number', default: 1024, describe: 'Block size c of memeff/BPT' })
      .option('bytes-per-param', {
        type: 'number',
        default: 16,
        describe: 'Training bytes per parameter (16: bf16 + fp32 Adam)',
      })
      .option('checkpoint-inputs', {
        type: 'boolean',
        default: true,
        describe: 'Count the checkpointed layer inputs',
      })
      .option('flops', {
        type: 'number',
        describe: 'FLOP/s per device for the overlap condition (default: presets)',
      })
      .option('bandwidth', {
        type: 'number',
        describe: 'Bytes/s between neighbours for the overlap condition',
      })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print one JSON object',
      }) as unknown as Argv<PlanArgs>,
  handler: (args) => {
    const model = parseModel(args.model);
    for (const [flag, value] of [
      ['--devices', args.devices],
      ['--memory-gb', args['memory-gb']],
      ['--memory-mib', args['memory-mib'] ?? 1],
      ['--batch', args.batch],
      ['--block-size', args['block-size']],
    ] as const) {
      if (!(value > 0) || !Number.isFinite(value))
        throw new InputError(`${flag}: expected a positive number; got ${value}`);
    }
    if (!Number.isInteger(args.devices))
      throw new InputError(`--devices: expected an integer; got ${args.devices}`);
    if (!(args['runtime-mib'] >= 0))
      throw new InputError(`--runtime-mib: expected a number ≥ 0; got ${args['runtime-mib']}`);
    const harness = args.implementation === 'harness';
    const memoryBytes =
      args['memory-mib'] !== undefined ? args['memory-mib'] * 2 ** 20 : args['memory-gb'] * 1e9;
    const options = {
      model,
      devices: args.devices,
      memoryBytes,
      implementation: args.implementation,
      runtimeBytes: args['runtime-mib'] * 2 ** 20,
      batch: args.batch,
      blockSize: args['block-size'],
      bytesPerParam: args['bytes-per-param'],
      checkpointInputs: args['checkpoint-inputs'],
    };
    const rows = planTable(options);
    const overlap =
      args.flops !== undefined || args.bandwidth !== undefined
        ? [{ label: 'given', minBlock: minBlockSize(args.flops ?? Number.NaN, args.bandwidth ?? Number.NaN) }]
        : Object.values(HARDWARE_PRESETS).map((h) => ({
            label: h.label,
            minBlock: minBlockSize(h.flops, h.bandwidth),
          }));
    const result = {
      model,
      parameters: parameterCount(model),
      devices: args.devices,
      memoryGB: memoryBytes / 1e9,
      implementation: args.implementation,
      rows: rows.map((r) => ({
        ...r,
        maxContext: Number.isNaN(r.maxContext) ? null : r.maxContext,
        bytesAtMax: Number.isNaN(r.bytesAtMax) ? null : r.bytesAtMax,
      })),
      overlap,
    };
    if (args.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    const k = (s: number) => (Number.isNaN(s) ? '–' : s >= 1024 ? `${(s / 1024).toFixed(1)}K` : `${s}`);
    const size = (b: number) =>
      Number.isNaN(b) ? '–' : harness ? (b / 2 ** 20).toFixed(1) : (b / 1e9).toFixed(1);
    const params = result.parameters;
    const out = [
      `model ${model.name}: ${params >= 1e8 ? `${(params / 1e9).toFixed(2)}B` : `${(params / 1e6).toFixed(3)}M`} parameters, ${args.devices} devices × ${args['memory-mib'] !== undefined ? `${args['memory-mib']} MiB` : `${args['memory-gb']} GB`}` +
        (harness ? " (this project's training step: fp32, tensor buffers)" : ''),
      `method     max context  ${harness ? 'MiB' : 'GB'}/device at max`,
      ...rows.map(
        (r) =>
          `${(r.method === 'blockwise' ? 'BPT' : r.method).padEnd(10)} ${k(r.maxContext).padStart(11)}  ${size(r.bytesAtMax).padStart(16)}`,
      ),
      ...(harness
        ? [
            '(– : vanilla and memeff keep every intermediate under tfjs autodiff: measure them with exp run context-scaling.yaml)',
          ]
        : []),
      '',
      'min block size for overlap (c ≥ F/B):',
      ...overlap.map((o) => `  ${o.label.padEnd(16)} ${k(Math.ceil(o.minBlock))} tokens`),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  },
};
