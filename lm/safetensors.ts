/**
 * Hugging Face checkpoints: the safetensors format (u64 little-endian header length, a JSON
 * header of `{name: {dtype, shape, data_offsets}}` plus optional `__metadata__`, then the raw
 * little-endian data), sharded checkpoints with `model.safetensors.index.json`, and LLaMA's
 * `config.json` and key names, so a downloaded LLaMA folder can be loaded and finetuned and our
 * checkpoints load in `LlamaForCausalLM.from_pretrained`.
 *
 * RoPE layout: HF's q_proj/k_proj rows are already in the rotate_half layout (its conversion
 * script permuted Meta's interleaved weights once), and ring/'s `applyRope` uses rotate_half, so
 * the weights load as they are; only nn.Linear's (out, in) storage is transposed to our (in, out).
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { assertRegularFile, InputError, writeFileAtomic } from '../common/index.js';
import type { BlockWeights } from '../ring/index.js';
import {
  DEFAULT_RUNTIME,
  fromHfConfig,
  type HfLlamaConfig,
  type LlamaConfig,
  LlamaModel,
  type LlamaRuntime,
  toHfConfig,
} from './model.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A tensor read from a safetensors file, converted to float32. */
export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** IEEE half → float. */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function decode(dtype: string, bytes: Uint8Array, count: number, where: string): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      break;
    case 'BF16': {
      // bfloat16 is the top half of a float32
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = view.getUint16(2 * i, true) << 16;
      break;
    }
    default:
      throw new InputError(`${where}: dtype ${dtype} is not supported (F32, F16, BF16)`);
  }
  return out;
}

/** An open safetensors file: header parsed, tensors read on demand. */
export class SafetensorsFile {
  readonly header: Record<string, SafetensorsEntry>;
  readonly metadata: Record<string, string>;
  private readonly dataStart: number;

  constructor(readonly path: string) {
    if (!existsSync(path)) throw new InputError(`${path}: no such safetensors file`);
    assertRegularFile(path, 'safetensors file');
    const size = statSync(path).size;
    const fd = openSync(path, 'r');
    try {
      if (size < 8) throw new InputError(`${path}: too short for a safetensors file (${size} bytes)`);
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const n = Number(lenBuf.readBigUInt64LE(0));
      if (n > size - 8 || n > 100 * 2 ** 20)
        throw new InputError(`${path}: header length ${n} does not fit the file (${size} bytes)`);
      const hb = Buffer.alloc(n);
      readSync(fd, hb, 0, n, 8);
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(hb.toString('utf8')) as Record<string, unknown>;
      } catch (err) {
        throw new InputError(`${path}: header is not JSON (${(err as Error).message})`);
      }
      this.metadata = (parsed.__metadata__ ?? {}) as Record<string, string>;
      delete parsed.__metadata__;
      this.header = parsed as Record<string, SafetensorsEntry>;
      this.dataStart = 8 + n;
      for (const [name, e] of Object.entries(this.header)) {
        const ok =
          e &&
          typeof e.dtype === 'string' &&
          Array.isArray(e.shape) &&
          Array.isArray(e.data_offsets) &&
          e.data_offsets.length === 2 &&
          // NOTE: offsets are relative to the data section; a negative start would read header
          // bytes as weights (issue 16), a fraction or a huge number would read garbage.
          e.data_offsets.every((o) => Number.isSafeInteger(o) && o >= 0) &&
          e.shape.every((d) => Number.isSafeInteger(d) && d >= 0) &&
          e.data_offsets[1] >= e.data_offsets[0] &&
          this.dataStart + e.data_offsets[1] <= size;
        if (!ok)
          throw new InputError(`${path}: tensor "${name}": malformed header entry ${JSON.stringify(e)}`);
      }
    } finally {
      closeSync(fd);
    }
  }

  names(): string[] {
    return Object.keys(this.header);
  }

  /** Reads one tensor as float32. */
  read(name: string): NamedTensor {
    const e = this.header[name];
    if (!e) throw new InputError(`${this.path}: no tensor "${name}"`);
    const count = e.shape.reduce((a, b) => a * b, 1);
    const [start, end] = e.data_offsets;
    const width = BYTES[e.dtype as SafetensorsDtype];
    if (width === undefined)
      throw new InputError(
        `${this.path}: tensor "${name}": dtype ${e.dtype} is not supported (F32, F16, BF16)`,
      );
    if (end - start !== count * width)
      throw new InputError(
        `${this.path}: tensor "${name}": ${end - start} bytes for shape [${e.shape}] of ${e.dtype} (expected ${count * width})`,
      );
    const buf = Buffer.alloc(end - start);
    const fd = openSync(this.path, 'r');
    try {
      readSync(fd, buf, 0, buf.length, this.dataStart + start);
    } finally {
      closeSync(fd);
    }
    return { shape: e.shape.slice(), data: decode(e.dtype, buf, count, `${this.path}: tensor "${name}"`) };
  }
}

/** Serialises float32 tensors as one safetensors file (keys sorted, as the Python library does). */
export function encodeSafetensors(
  tensors: Record<string, NamedTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const n of names) {
    const t = tensors[n];
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new InputError(
        `encodeSafetensors: tensor "${n}": shape [${t.shape}] holds ${count} values; got ${t.data.length}`,
      );
    header[n] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * count] };
    offset += 4 * count;
  }
  let json = JSON.stringify(header);
  // pad the header with spaces so the data starts 8-byte aligned (as the Python library does)
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + hb.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let at = 8 + hb.length;
  for (const n of names) {
    const d = tensors[n].data;
    for (let i = 0; i < d.length; i++) view.setFloat32(at + 4 * i, d[i], true);
    at += 4 * d.length;
  }
  return out;
}

/** All tensors of a checkpoint folder: `model.safetensors` or shards named by the index. */
export class CheckpointReader {
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly where = new Map<string, string>();

  constructor(readonly dir: string) {
    const index = join(dir, 'model.safetensors.index.json');
    const single = join(dir, 'model.safetensors');
    if (existsSync(index)) {
      let weightMap: Record<string, string>;
      try {
        weightMap = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> })
          .weight_map;
      } catch (err) {
        throw new InputError(`${index}: not valid JSON (${(err as Error).message})`);
      }
      if (!weightMap || typeof weightMap !== 'object')
        throw new InputError(`${index}: key "weight_map" is missing`);
      for (const [name, file] of Object.entries(weightMap)) {
        // A shard is a file name inside this folder: `../../etc/passwd` or an absolute path
        // would open a file the checkpoint does not own (issue 16).
        const inside = typeof file === 'string' && resolve(dir, file).startsWith(resolve(dir) + sep);
        if (!inside || typeof file !== 'string' || !/\.safetensors$/.test(file))
          throw new InputError(
            `${index}: weight_map["${name}"]: expected a .safetensors file name inside ${dir}; got ${JSON.stringify(file)}`,
          );
        this.where.set(name, file);
      }
    } else if (existsSync(single)) {
      const f = new SafetensorsFile(single);
      this.files.set('model.safetensors', f);
      for (const n of f.names()) this.where.set(n, 'model.safetensors');
    } else throw new InputError(`${dir}: no model.safetensors or model.safetensors.index.json`);
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  private file(name: string): SafetensorsFile {
    const fname = this.where.get(name) as string;
    let f = this.files.get(fname);
    if (!f) {
      f = new SafetensorsFile(join(this.dir, fname));
      this.files.set(fname, f);
    }
    return f;
  }

  /** Reads `name`, checking it is there with `expected` shape; the error names both shapes. */
  read(name: string, expected: number[]): NamedTensor {
    if (!this.where.has(name))
      throw new InputError(`${this.dir}: tensor "${name}" is missing (expected shape [${expected}])`);
    const f = this.file(name);
    const shape = f.header[name]?.shape;
    if (!shape)
      throw new InputError(
        `${this.dir}: tensor "${name}" is missing from ${f.path} (expected shape [${expected}])`,
      );
    if (shape.join() !== expected.join())
      throw new InputError(`${this.dir}: tensor "${name}": expected shape [${expected}]; got [${shape}]`);
    return f.read(name);
  }
}

/** (rows, cols) row-major → (cols, rows). */
function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/** Our variable name → HF key, HF shape (out, in) and whether it is an nn.Linear (transposed). */
interface KeyMap {
  hf: string;
  shape: number[];
  linear: boolean;
}

function layerKeys(c: LlamaConfig, i: number): Record<keyof BlockWeights, KeyMap> {
  const Dm = c.hiddenSize;
  const Dh = Dm / c.numHeads;
  const p = `model.layers.${i}`;
  const lin = (hf: string, out: number, inp: number): KeyMap => ({
    hf: `${p}.${hf}`,
    shape: [out, inp],
    linear: true,
  });
  return {
    attnNorm: { hf: `${p}.input_layernorm.weight`, shape: [Dm], linear: false },
    wq: lin('self_attn.q_proj.weight', c.numHeads * Dh, Dm),
    wk: lin('self_attn.k_proj.weight', c.numKvHeads * Dh, Dm),
    wv: lin('self_attn.v_proj.weight', c.numKvHeads * Dh, Dm),
    wo: lin('self_attn.o_proj.weight', Dm, c.numHeads * Dh),
    ffnNorm: { hf: `${p}.post_attention_layernorm.weight`, shape: [Dm], linear: false },
    gate: lin('mlp.gate_proj.weight', c.intermediateSize, Dm),
    up: lin('mlp.up_proj.weight', c.intermediateSize, Dm),
    down: lin('mlp.down_proj.weight', Dm, c.intermediateSize),
  };
}

/** Reads `config.json` of a checkpoint folder. */
export function readLlamaConfig(dir: string): LlamaConfig {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new InputError(`${dir}: no config.json`);
  let hf: HfLlamaConfig;
  try {
    hf = JSON.parse(readFileSync(path, 'utf8')) as HfLlamaConfig;
  } catch (err) {
    throw new InputError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  return fromHfConfig(hf, path);
}

/** Loads a HF LLaMA checkpoint folder (config.json + safetensors, single or sharded). */
export function loadLlama(dir: string, runtime: LlamaRuntime = DEFAULT_RUNTIME): LlamaModel {
  const c = readLlamaConfig(dir);
  const r = new CheckpointReader(dir);
  const made: tf.Variable[] = [];
  const variable = (m: KeyMap, name: string): tf.Variable => {
    const t = r.read(m.hf, m.shape);
    const data = m.linear ? transpose2d(t.data, m.shape[0], m.shape[1]) : t.data;
    const shape = m.linear ? [m.shape[1], m.shape[0]] : m.shape;
    const v = tf.variable(tf.tensor(data, shape), true, name);
    made.push(v);
    return v;
  };
  try {
    const V = c.vocabSize;
    const Dm = c.hiddenSize;
    const embed = variable({ hf: 'model.embed_tokens.weight', shape: [V, Dm], linear: false }, 'embed');
    const layers: BlockWeights[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const keys = layerKeys(c, i);
      const w = {} as Record<keyof BlockWeights, tf.Variable>;
      for (const k of Object.keys(keys) as (keyof BlockWeights)[]) w[k] = variable(keys[k], `layer${i}.${k}`);
      layers.push(w);
    }
    const norm = variable({ hf: 'model.norm.weight', shape: [Dm], linear: false }, 'norm');
    // a tied checkpoint may still carry lm_head.weight (a copy of the embedding): ignored
    const lmHead = c.tieWordEmbeddings
      ? undefined
      : variable({ hf: 'lm_head.weight', shape: [V, Dm], linear: true }, 'lmHead');
    return new LlamaModel(c, { embed, layers, norm, lmHead }, runtime);
  } catch (err) {
    tf.dispose(made);
    throw err;
  }
}

/** The model's tensors under HF's names and layout (float32). */
export function hfStateDict(model: LlamaModel): Record<string, NamedTensor> {
  const c = model.config;
  const out: Record<string, NamedTensor> = {};
  const put = (m: KeyMap, v: tf.Variable) => {
    const data = v.dataSync() as Float32Array;
    out[m.hf] = {
      shape: m.shape,
      data: m.linear ? transpose2d(data, m.shape[1], m.shape[0]) : Float32Array.from(data),
    };
  };
  const w = model.weights;
  put({ hf: 'model.embed_tokens.weight', shape: [c.vocabSize, c.hiddenSize], linear: false }, w.embed);
  w.layers.forEach((lw, i) => {
    const keys = layerKeys(c, i);
    for (const k of Object.keys(keys) as (keyof BlockWeights)[]) {
      const v = lw[k];
      if (!v) throw new InputError(`saveLlama: layer ${i} has no ${k} (LLaMA needs a SwiGLU gate)`);
      put(keys[k], v);
    }
  });
  put({ hf: 'model.norm.weight', shape: [c.hiddenSize], linear: false }, w.norm);
  if (w.lmHead) put({ hf: 'lm_head.weight', shape: [c.vocabSize, c.hiddenSize], linear: true }, w.lmHead);
  return out;
}

export interface SaveOptions {
  /** Start a new shard past this many bytes (HF's max_shard_size); 0 = one file. */
  maxShardBytes?: number;
}

/**
 * Writes config.json and the weights (model.safetensors, or model-0000i-of-0000n.safetensors and
 * model.safetensors.index.json) into `dir`, each file atomically.
 */
export function saveLlama(model: LlamaModel, dir: string, options: SaveOptions = {}): void {
  mkdirSync(dir, { recursive: true });
  const state = hfStateDict(model);
  const names = Object.keys(state).sort();
  const max = options.maxShardBytes ?? 0;
  const shards: string[][] = [[]];
  let bytes = 0;
  for (const n of names) {
    const b = 4 * state[n].data.length;
    if (max > 0 && bytes > 0 && bytes + b > max) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1].push(n);
    bytes += b;
  }
  const metadata = { format: 'pt' };
  writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(toHfConfig(model.config), null, 2)}\n`);
  if (shards.length === 1) {
    writeFileAtomic(join(dir, 'model.safetensors'), encodeSafetensors(state, metadata));
    return;
  }
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((keys, i) => {
    const file = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
    const part: Record<string, NamedTensor> = {};
    for (const k of keys) {
      part[k] = state[k];
      weightMap[k] = file;
      total += 4 * state[k].data.length;
    }
    writeFileAtomic(join(dir, file), encodeSafetensors(part, metadata));
  });
  writeFileAtomic(
    join(dir, 'model.safetensors.index.json'),
    `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
  );
}
