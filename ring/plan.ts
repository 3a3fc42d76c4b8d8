/**
 * The memory model of the paper's Table 1 and the overlap condition of §3: how long a context
 * fits on N devices with M bytes each, and the smallest block that hides communication.
 *
 * Bytes per device (bf16 activations, b = batch, s = tokens held, h = hidden, n = heads,
 * c = block size, L = layers):
 *   parameters and optimizer state: bytesPerParam · P / N   (sharded over the N devices, FSDP)
 *   checkpointed layer inputs:      L · 2·b·s·h               (full checkpointing, as the paper)
 *   one layer's working set (Table 1):
 *     vanilla  max(2·b·n·s², 8·b·s·h)
 *     memeff   max(2·b·s·h + 4·b·c·h, 8·b·s·h)
 *     BPT      2·b·s·h
 *     ring     6·b·c·h with c = s/N (query, K, V, two receive buffers, output)
 * Every method but ring holds the whole sequence on each device; ring holds s/N tokens.
 *
 * `implementation: 'harness'` models this project's own training step instead (issue 14: a plan
 * for the small models it trains that agrees with what `exp run context-scaling.yaml` measures as
 * distinct tensor buffers, `buffer_mib`): fp32 activations, weights replicated on every device (the
 * ring is sequence-parallel, not FSDP) with their gradient and AdamW's two moments (16 bytes per
 * parameter), and the native block (ring/transformer.ts). BPT's peak is the largest of three
 * moments, each with the L saved layer inputs (h_kv = h·kvHeads/heads):
 *   the last block's forward      q, k, v and the attention output     L·h + 2·h + 2·h_kv
 *   the final norm's backward     its input, dy and dx, the head's dX  (L + 3)·h
 *   the last block's backward     k, v, dk, dv whole, dy taking dx's rows in place (causal), and
 *                                 q, dq, dO per 1,024 query rows (block/chunked-backward.ts, ≈ 6·h a
 *                                 row with the chunk's slices of x and dy)   L·h + h + 4·h_kv
 * A ring device holds its whole block in the backward (q, dq, dO, dy, dx): L·h + 4·h + 4·h_kv.
 * For the s tokens a device holds (s/N on the ring), in bytes:
 *   BPT   4·b·(s·max(…) + min(s, 1024)·6·h) + 16·P,   ring  4·b·(s/N)·(L·h + 4·h + 4·h_kv) + 16·P
 * (+ a runtime's fixed bytes, `runtimeBytes`).
 * The harness's vanilla and memory-efficient attention run under tfjs autodiff, which keeps every
 * intermediate to the end of the step: they are not modelled (NaN) and are measured instead.
 */
import { InputError } from '../common/index.js';
import type { AttentionImpl } from './attention/types.js';

export interface ModelShape {
  name: string;
  hidden: number;
  layers: number;
  heads: number;
  /** MLP inner size (SwiGLU). */
  ffn: number;
  vocab: number;
  /** Key/value heads (GQA; default: heads). */
  kvHeads?: number;
}

/** LLaMA presets (hidden, layers, heads, ffn from the published configs). */
export const MODEL_PRESETS: Record<string, ModelShape> = {
  '3b': { name: 'llama-3b', hidden: 3200, layers: 26, heads: 32, ffn: 8640, vocab: 32000 },
  '7b': { name: 'llama-7b', hidden: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 32000 },
  '13b': { name: 'llama-13b', hidden: 5120, layers: 40, heads: 40, ffn: 13824, vocab: 32000 },
  '30b': { name: 'llama-30b', hidden: 6656, layers: 60, heads: 52, ffn: 17920, vocab: 32000 },
  // the project's own: experiments/configs/context-scaling.yaml's model
  'context-scaling': {
    name: 'context-scaling',
    hidden: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    ffn: 172,
    vocab: 256,
  },
};

/** Hidden size of the keys (and of the values): h·kvHeads/heads. */
const kvHidden = (m: ModelShape) => (m.hidden * (m.kvHeads ?? m.heads)) / m.heads;

/** Parameter count of a LLaMA-style decoder with untied embeddings (GQA: smaller wk, wv). */
export function parameterCount(m: ModelShape): number {
  const perLayer = 2 * m.hidden * m.hidden + 2 * m.hidden * kvHidden(m) + 3 * m.hidden * m.ffn + 2 * m.hidden;
  return m.layers * perLayer + 2 * m.vocab * m.hidden + m.hidden;
}

export interface PlanOptions {
  model: ModelShape;
  devices: number;
  /** Bytes of memory per device. */
  memoryBytes: number;
  batch?: number;
  /** Block size c of memeff/BPT/ring inner loops (default 1024). */
  blockSize?: number;
  /** Training bytes per parameter: bf16 weights and grads, fp32 master and Adam m, v = 16. */
  bytesPerParam?: number;
  /** Count the checkpointed layer inputs (default true). */
  checkpointInputs?: boolean;
  /** The paper's memory model (default) or this project's training step (see the file's top). */
  implementation?: 'paper' | 'harness';
  /** A device's fixed bytes beside the step's (harness: an idle wasm device is ≈ 40 MiB). */
  runtimeBytes?: number;
}

/** Query rows per chunk of the native block's backward (ring/transformer.ts's default). */
const HARNESS_BACKWARD_CHUNK = 1024;

/** The harness's bytes on one device (see the file's top); NaN for vanilla and memeff. */
function harnessBytes(method: AttentionImpl, s: number, o: PlanOptions): number {
  if (method !== 'blockwise' && method !== 'ring') return Number.NaN;
  const b = o.batch ?? 1;
  const { hidden: h, layers: L } = o.model;
  const hkv = kvHidden(o.model);
  // NOTE: at most one chunk of rows: the backward is not chunked
  const chunked = Math.max(L * h + 2 * h + 2 * hkv, (L + 3) * h, L * h + h + 4 * hkv);
  const floats =
    method === 'ring'
      ? (s / o.devices) * (L * h + 4 * h + 4 * hkv)
      : s > HARNESS_BACKWARD_CHUNK
        ? s * chunked + HARNESS_BACKWARD_CHUNK * 6 * h
        : s * (L * h + 4 * h + 4 * hkv);
  return 4 * b * floats + (o.bytesPerParam ?? 16) * parameterCount(o.model) + (o.runtimeBytes ?? 0);
}

/** Bytes one device needs for `method` at sequence length s. */
export function deviceBytes(method: AttentionImpl, s: number, o: PlanOptions): number {
  if (o.implementation === 'harness') return harnessBytes(method, s, o);
  const b = o.batch ?? 1;
  const c = o.blockSize ?? 1024;
  const { hidden: h, heads: n, layers: L } = o.model;
  const N = o.devices;
  const sDev = method === 'ring' ? s / N : s;
  const params = ((o.bytesPerParam ?? 16) * parameterCount(o.model)) / N;
  const checkpoints = (o.checkpointInputs ?? true) ? L * 2 * b * sDev * h : 0;
  let working: number;
  switch (method) {
    case 'vanilla':
      working = Math.max(2 * b * n * s * s, 8 * b * s * h);
      break;
    case 'memeff':
      working = Math.max(2 * b * s * h + 4 * b * Math.min(c, s) * h, 8 * b * s * h);
      break;
    case 'blockwise':
      working = 2 * b * s * h;
      break;
    case 'ring':
      working = 6 * b * sDev * h;
      break;
  }
  return params + checkpoints + working;
}

/** Largest s (a multiple of `granularity`) with deviceBytes ≤ memory; 0 if none fits. */
export function maxContext(method: AttentionImpl, o: PlanOptions, granularity = 256): number {
  if (Number.isNaN(deviceBytes(method, granularity, o))) return Number.NaN; // not modelled
  if (deviceBytes(method, granularity, o) > o.memoryBytes) return 0;
  let lo = granularity;
  let hi = granularity;
  while (deviceBytes(method, hi * 2, o) <= o.memoryBytes && hi < 2 ** 40) hi *= 2;
  hi *= 2;
  while (hi - lo > granularity) {
    const mid = Math.floor((lo + hi) / 2 / granularity) * granularity;
    if (deviceBytes(method, mid, o) <= o.memoryBytes) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * Smallest block size that hides communication (paper §3): compute per ring step 4·d·c² FLOPs
 * against a transfer of K and V, 2·c·d values of `bytesPerValue` bytes each, so c ≥ F·bytes/(2·B)
 * … which for bf16 (2 bytes) is the paper's c ≥ F/B.
 */
export function minBlockSize(flopsPerSec: number, bytesPerSec: number, bytesPerValue = 2): number {
  if (!(flopsPerSec > 0) || !(bytesPerSec > 0))
    throw new InputError(
      `minBlockSize: FLOP/s and bandwidth must be positive; got ${flopsPerSec} and ${bytesPerSec}`,
    );
  return (flopsPerSec * bytesPerValue) / (2 * bytesPerSec);
}

/** Hardware presets for the overlap condition: bf16 FLOP/s and neighbour bandwidth (bytes/s). */
export const HARDWARE_PRESETS: Record<string, { flops: number; bandwidth: number; label: string }> = {
  'a100-nvlink': { flops: 312e12, bandwidth: 300e9, label: 'A100 NVLink' },
  'a100-infiniband': { flops: 312e12, bandwidth: 12.5e9, label: 'A100 InfiniBand' },
  tpuv4: { flops: 275e12, bandwidth: 268e9, label: 'TPUv4' },
};

export interface PlanRow {
  method: AttentionImpl;
  maxContext: number;
  bytesAtMax: number;
}

export function planTable(o: PlanOptions): PlanRow[] {
  return (['vanilla', 'memeff', 'blockwise', 'ring'] as const).map((method) => {
    const s = maxContext(method, o);
    if (Number.isNaN(s)) return { method, maxContext: Number.NaN, bytesAtMax: Number.NaN };
    return { method, maxContext: s, bytesAtMax: s > 0 ? deviceBytes(method, s, o) : 0 };
  });
}

/** Parses `--model`: a preset name or `hidden,layers,heads[,ffn[,vocab[,kvHeads]]]`. */
export function parseModel(spec: string): ModelShape {
  const preset = MODEL_PRESETS[spec.toLowerCase().replace(/^llama-?/, '')];
  if (preset) return preset;
  const parts = spec.split(',').map(Number);
  if (parts.length >= 3 && parts.length <= 6 && parts.every((x) => Number.isInteger(x) && x > 0)) {
    const [hidden, layers, heads, ffn = Math.round((8 * hidden) / 3), vocab = 32000, kvHeads = heads] = parts;
    if (hidden % heads !== 0 || heads % kvHeads !== 0)
      throw new InputError(
        `--model: hidden (${hidden}) must be a multiple of heads (${heads}), and heads of kvHeads (${kvHeads}); got '${spec}'`,
      );
    return { name: `custom-${hidden}x${layers}`, hidden, layers, heads, ffn, vocab, kvHeads };
  }
  throw new InputError(
    `--model: expected a preset (${Object.keys(MODEL_PRESETS).join(', ')}) or hidden,layers,heads[,ffn[,vocab[,kvHeads]]]; got '${spec}'`,
  );
}
