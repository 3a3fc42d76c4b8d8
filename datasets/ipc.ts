/**
 * Low-level Arrow IPC *file* access with positioned reads, so a reader touches only the bytes it
 * needs: the footer on open, one record batch's message header per batch, and then either a whole
 * body (scans) or a byte range of one column's buffer (random access to a few rows). arrow-js
 * decodes the flatbuffers (footer, messages); the buffer layout walk is ours, because arrow-js's
 * own file reader wants the whole file in memory or an async handle and always loads whole batches.
 *
 * Writing goes through arrow-js's writers with a synchronous file sink, in two phases (see
 * `finalizeArrowFile`): the schema's metadata (totals, digest, episode index) is only known at the
 * end, and an IPC file carries the schema both at the start and in the footer.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import {
  AsyncByteQueue,
  type DataType,
  type Field,
  Message,
  MetadataVersion,
  RecordBatchFileWriter,
  RecordBatchStreamWriter,
  type Schema,
  Type,
} from 'apache-arrow';
import { FileBlock, Footer } from 'apache-arrow/ipc/metadata/file';
import type { RecordBatch as BatchHeader } from 'apache-arrow/ipc/metadata/message';
import { assertRegularFile, InputError } from '../common/index.js';

const MAGIC = 'ARROW1';

/** Element kinds a leaf column may hold (fixed-width only: that is what trajectories need). */
export type LeafKind = 'f32' | 'f64' | 'i8' | 'i16' | 'i32' | 'i64' | 'u8' | 'u16' | 'u32' | 'u64' | 'bool';

/** Where one fixed-width leaf column of one record batch lives in the file. */
export interface LeafLayout {
  /** Dotted path: `observations`, `infos.qpos`. */
  name: string;
  kind: LeafKind;
  /** Values per row (a FixedSizeList's size; 1 for scalars). */
  width: number;
  /** Absolute file offset of the values buffer. */
  offset: number;
  /** Byte length of the values buffer. */
  byteLength: number;
  nullCount: number;
}

/** One record batch: its rows and the layout of each fixed-width leaf. */
export interface BatchLayout {
  rows: number;
  bodyOffset: number;
  bodyLength: number;
  leaves: Map<string, LeafLayout>;
  /** Leaves with a type we do not read (strings in infos, lists): name → type. */
  skipped: Map<string, string>;
}

const BYTES: Record<LeafKind, number> = {
  f32: 4,
  f64: 8,
  i8: 1,
  i16: 2,
  i32: 4,
  i64: 8,
  u8: 1,
  u16: 2,
  u32: 4,
  u64: 8,
  bool: 0, // bit-packed
};

/** Arrow type → our leaf kind, or undefined when it is not a fixed-width primitive. */
export function leafKind(type: DataType): LeafKind | undefined {
  switch (type.typeId) {
    case Type.Float: {
      const p = (type as unknown as { precision: number }).precision;
      return p === 1 ? 'f32' : p === 2 ? 'f64' : undefined;
    }
    case Type.Int: {
      const t = type as unknown as { bitWidth: number; isSigned: boolean };
      return `${t.isSigned ? 'i' : 'u'}${t.bitWidth}` as LeafKind;
    }
    case Type.Bool:
      return 'bool';
    default:
      return undefined;
  }
}

/** A short readable name of an Arrow type for error messages: `fixed_size_list<float32>[27]`. */
export function typeName(type: DataType): string {
  if (type.typeId === Type.FixedSizeList) {
    const t = type as unknown as { listSize: number; children: Field[] };
    return `fixed_size_list<${typeName(t.children[0].type)}>[${t.listSize}]`;
  }
  const kind = leafKind(type);
  if (kind === 'f32') return 'float32';
  if (kind === 'f64') return 'float64';
  if (kind === 'bool') return 'bool';
  if (kind) return kind.startsWith('i') ? `int${kind.slice(1)}` : `uint${kind.slice(1)}`;
  return String(type);
}

/** A read-only Arrow IPC file opened for positioned reads. */
export class ArrowFile {
  readonly schema: Schema;
  readonly blocks: FileBlock[];
  readonly size: number;
  private fd: number;
  private layouts: (BatchLayout | undefined)[];

  constructor(readonly path: string) {
    let fd: number;
    // A FIFO or device would block the open below (and ignore Ctrl-C): refuse it first.
    assertRegularFile(path, 'Arrow dataset');
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new InputError(`${path}: cannot open (${(err as Error).message})`);
    }
    this.fd = fd;
    try {
      this.size = fstatSync(fd).size;
      const tail = this.read(Math.max(0, this.size - 10), Math.min(10, this.size));
      const head = this.read(0, Math.min(8, this.size));
      const headMagic = Buffer.from(head.subarray(0, 6)).toString('latin1');
      if (this.size < 18 || headMagic !== MAGIC)
        throw new InputError(`${path}: not an Arrow IPC file (expected magic "${MAGIC}" at the start)`);
      if (Buffer.from(tail.subarray(4, 10)).toString('latin1') !== MAGIC)
        throw new InputError(
          `${path}: truncated or corrupt Arrow IPC file (no "${MAGIC}" footer magic at the end; was the write interrupted?)`,
        );
      const footerLength = new DataView(tail.buffer, tail.byteOffset, 4).getInt32(0, true);
      if (footerLength <= 0 || footerLength > this.size - 18)
        throw new InputError(`${path}: corrupt Arrow IPC footer (length ${footerLength})`);
      let footer: InstanceType<typeof Footer>;
      try {
        footer = Footer.decode(this.read(this.size - 10 - footerLength, footerLength));
      } catch (err) {
        throw new InputError(`${path}: corrupt Arrow IPC footer (${(err as Error).message})`);
      }
      this.schema = footer.schema;
      this.blocks = [...footer.recordBatches()];
      for (const [i, b] of this.blocks.entries()) {
        if (b.offset + b.metaDataLength + b.bodyLength > this.size)
          throw new InputError(`${path}: truncated Arrow IPC file (record batch ${i} runs past the end)`);
      }
      this.layouts = new Array(this.blocks.length);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  get numBatches(): number {
    return this.blocks.length;
  }

  /** Reads `length` bytes at `position` into a fresh buffer (own ArrayBuffer, so views align). */
  read(position: number, length: number): Uint8Array {
    // allocUnsafeSlow: its own ArrayBuffer (typed views align) and no zero-fill (it is overwritten).
    const out = new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
    this.readInto(out, position);
    return out;
  }

  readInto(out: Uint8Array, position: number): void {
    let done = 0;
    while (done < out.byteLength) {
      const n = readSync(this.fd, out, done, out.byteLength - done, position + done);
      if (n === 0)
        throw new InputError(`${this.path}: truncated (wanted ${out.byteLength} bytes at ${position})`);
      done += n;
    }
  }

  /** The layout of batch `i`, decoded from its message header (cached: a few hundred bytes). */
  batch(i: number): BatchLayout {
    const cached = this.layouts[i];
    if (cached) return cached;
    const block = this.blocks[i];
    const meta = this.read(block.offset, block.metaDataLength);
    const view = new DataView(meta.buffer);
    // Continuation marker 0xFFFFFFFF then the flatbuffer length (legacy files omit the marker).
    const skip = view.getInt32(0, true) === -1 ? 8 : 4;
    let header: BatchHeader;
    try {
      const message = Message.decode(meta.subarray(skip));
      if (!message.isRecordBatch()) throw new Error('not a record batch message');
      header = message.header() as BatchHeader;
    } catch (err) {
      throw new InputError(`${this.path}: corrupt record batch ${i} (${(err as Error).message})`);
    }
    if (header.compression)
      throw new InputError(
        `${this.path}: record batch ${i} is compressed (LZ4/ZSTD); write it uncompressed (pyarrow: compression=None)`,
      );
    const bodyOffset = block.offset + block.metaDataLength;
    const layout: BatchLayout = {
      rows: Number(header.length),
      bodyOffset,
      bodyLength: Number(block.bodyLength),
      leaves: new Map(),
      skipped: new Map(),
    };
    let node = 0;
    let buffer = 0;
    const nodes = header.nodes;
    const buffers = header.buffers;
    const take = () => {
      const b = buffers[buffer++];
      if (!b) throw new InputError(`${this.path}: corrupt record batch ${i} (too few buffers)`);
      const offset = bodyOffset + Number(b.offset);
      const byteLength = Number(b.length);
      if (offset + byteLength > bodyOffset + layout.bodyLength)
        throw new InputError(`${this.path}: corrupt record batch ${i} (buffer past the body)`);
      return { offset, byteLength };
    };
    const visit = (field: Field, name: string, width: number) => {
      const n = nodes[node++];
      if (!n) throw new InputError(`${this.path}: corrupt record batch ${i} (too few field nodes)`);
      const type = field.type;
      if (type.typeId === Type.Null) return; // no buffers at all in V5
      take(); // validity bitmap
      const kind = leafKind(type);
      if (kind) {
        const values = take();
        layout.leaves.set(name, { name, kind, width, ...values, nullCount: Number(n.nullCount) });
      } else if (type.typeId === Type.FixedSizeList) {
        const size = (type as unknown as { listSize: number }).listSize;
        visit(type.children[0], name, width * size);
      } else if (type.typeId === Type.Struct) {
        for (const child of type.children) visit(child, `${name}.${child.name}`, width);
      } else {
        // Skip what we do not read, keeping the node/buffer walk in step.
        layout.skipped.set(name, String(type));
        const extra: Partial<Record<number, number>> = {
          [Type.Utf8]: 2,
          [Type.Binary]: 2,
          [Type.LargeUtf8]: 2,
          [Type.LargeBinary]: 2,
          [Type.FixedSizeBinary]: 1,
          [Type.Date]: 1,
          [Type.Timestamp]: 1,
          [Type.Time]: 1,
          [Type.Duration]: 1,
          [Type.Decimal]: 1,
          [Type.Float]: 1,
        };
        if (type.typeId === Type.List || type.typeId === Type.LargeList) {
          take();
          skipChildren(type.children);
        } else if (extra[type.typeId] !== undefined) {
          for (let k = 0; k < (extra[type.typeId] ?? 0); k++) take();
        } else {
          throw new InputError(`${this.path}: column ${name} has unsupported type ${String(type)}`);
        }
      }
    };
    const skipChildren = (children: Field[]) => {
      for (const c of children) visit(c, `__skip.${c.name}`, 1);
    };
    for (const field of this.schema.fields) visit(field, field.name, 1);
    for (const key of [...layout.leaves.keys()]) if (key.includes('__skip')) layout.leaves.delete(key);
    this.layouts[i] = layout;
    return layout;
  }

  /** The whole body of batch `i` (one read), for scans. */
  body(i: number): Uint8Array {
    const b = this.batch(i);
    return this.read(b.bodyOffset, b.bodyLength);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** A buffer for a read: small ones zeroed by the engine (cheap), large ones not zeroed at all. */
function fresh(bytes: number): ArrayBuffer {
  return bytes < 1 << 16 ? new ArrayBuffer(bytes) : (Buffer.allocUnsafeSlow(bytes).buffer as ArrayBuffer);
}

/**
 * A reusable read buffer: scans that hand out one batch at a time read into the same memory
 * instead of faulting in fresh pages for every batch.
 */
export class Scratch {
  private buf = new ArrayBuffer(0);
  get(bytes: number): ArrayBuffer {
    if (this.buf.byteLength < bytes) this.buf = Buffer.allocUnsafeSlow(bytes).buffer as ArrayBuffer;
    return this.buf;
  }
}

/** Bytes per value of a leaf (bool: bit-packed, see `readLeafRows`). */
export function leafBytes(kind: LeafKind): number {
  return BYTES[kind];
}

/**
 * Rows [start, start+count) of a leaf as float32 (numbers) — one positioned read of just those
 * bytes. Bools come back as 0/1.
 */
export function readLeafRowsF32(
  file: ArrowFile,
  leaf: LeafLayout,
  start: number,
  count: number,
  scratch?: Scratch,
): Float32Array {
  const n = count * leaf.width;
  if (leaf.kind === 'f32') {
    const out = new Float32Array(scratch ? scratch.get(n * 4) : fresh(n * 4), 0, n);
    file.readInto(new Uint8Array(out.buffer, 0, out.byteLength), leaf.offset + start * leaf.width * 4);
    return out;
  }
  const raw = readLeafRaw(file, leaf, start, count);
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) out[k] = Number(raw[k]);
  return out;
}

/** Rows of a leaf as float64 (rewards). */
export function readLeafRowsF64(
  file: ArrowFile,
  leaf: LeafLayout,
  start: number,
  count: number,
  scratch?: Scratch,
): Float64Array {
  const n = count * leaf.width;
  if (leaf.kind === 'f64') {
    const out = new Float64Array(scratch ? scratch.get(n * 8) : fresh(n * 8), 0, n);
    file.readInto(new Uint8Array(out.buffer, 0, out.byteLength), leaf.offset + start * leaf.width * 8);
    return out;
  }
  const raw = readLeafRaw(file, leaf, start, count);
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) out[k] = Number(raw[k]);
  return out;
}

type Raw = ArrayLike<number | bigint>;

/** Rows of a leaf in its own element type (bools unpacked to Uint8 0/1). */
export function readLeafRaw(file: ArrowFile, leaf: LeafLayout, start: number, count: number): Raw {
  const n = count * leaf.width;
  if (leaf.kind === 'bool') {
    const first = start * leaf.width;
    const byte0 = first >> 3;
    const byte1 = (first + n + 7) >> 3;
    const bits = file.read(leaf.offset + byte0, byte1 - byte0);
    return unpackBits(bits, first - byte0 * 8, n);
  }
  const bytes = BYTES[leaf.kind];
  const buf = new ArrayBuffer(n * bytes);
  file.readInto(new Uint8Array(buf), leaf.offset + start * leaf.width * bytes);
  return typedView(leaf.kind, buf, 0, n);
}

/** A typed view of `n` values of `kind` at `byteOffset` in `buf` (bools: the packed bytes). */
export function typedView(kind: LeafKind, buf: ArrayBufferLike, byteOffset: number, n: number): Raw {
  switch (kind) {
    case 'f32':
      return new Float32Array(buf, byteOffset, n);
    case 'f64':
      return new Float64Array(buf, byteOffset, n);
    case 'i8':
      return new Int8Array(buf, byteOffset, n);
    case 'i16':
      return new Int16Array(buf, byteOffset, n);
    case 'i32':
      return new Int32Array(buf, byteOffset, n);
    case 'i64':
      return new BigInt64Array(buf, byteOffset, n);
    case 'u8':
      return new Uint8Array(buf, byteOffset, n);
    case 'u16':
      return new Uint16Array(buf, byteOffset, n);
    case 'u32':
      return new Uint32Array(buf, byteOffset, n);
    case 'u64':
      return new BigUint64Array(buf, byteOffset, n);
    case 'bool':
      return new Uint8Array(buf, byteOffset, (n + 7) >> 3);
  }
}

/** LSB-first Arrow bitmap → one byte per value. */
export function unpackBits(bits: Uint8Array, bitOffset: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const b = bitOffset + k;
    out[k] = (bits[b >> 3] >> (b & 7)) & 1;
  }
  return out;
}

/** One byte per value → LSB-first Arrow bitmap. */
export function packBits(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array((values.length + 7) >> 3);
  for (let k = 0; k < values.length; k++) if (values[k]) out[k >> 3] |= 1 << (k & 7);
  return out;
}

/** An arrow-js byte sink that writes straight to a file descriptor (no buffering in memory). */
class FdSink extends AsyncByteQueue {
  constructor(private readonly fd: number) {
    super();
  }
  override write(value: ArrayBufferView): void {
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    let done = 0;
    while (done < bytes.byteLength) done += writeSync(this.fd, bytes, done, bytes.byteLength - done);
  }
}

/** Phase 1: streams record batches to a scratch file; remembers where each one landed. */
export class ArrowBodyWriter extends RecordBatchStreamWriter {
  private readonly fd: number;
  constructor(
    readonly path: string,
    schema: Schema,
  ) {
    super({ autoDestroy: false });
    this.fd = openSync(path, 'w');
    this.reset(new FdSink(this.fd), schema);
  }
  /** (offset, metadata length, body length) of each record batch written so far. */
  get batchBlocks(): FileBlock[] {
    return this._recordBatchBlocks;
  }
  /** Bytes written so far. */
  get position(): number {
    return this._position;
  }
  closeFile(): void {
    closeSync(this.fd);
  }
}

class ArrowFinalWriter extends RecordBatchFileWriter {
  constructor(fd: number, schema: Schema) {
    super({ autoDestroy: false });
    this.reset(new FdSink(fd), schema);
  }
  get position(): number {
    return this._position;
  }
  appendRaw(chunk: Uint8Array): void {
    this._write(chunk);
  }
  addBlock(block: FileBlock): void {
    this._recordBatchBlocks.push(block);
  }
  end(): void {
    // Writes the end-of-stream marker, the footer (schema + blocks) and the closing magic.
    this.reset(this._sink, null);
  }
}

/**
 * Phase 2: writes the IPC file `target` (a path the caller renames into place) with `schema`
 * (the final metadata) at the start and in the footer, and the record batches copied byte for
 * byte from the phase-1 scratch file.
 */
export function finalizeArrowFile(body: ArrowBodyWriter, schema: Schema, target: string): void {
  const blocks = body.batchBlocks;
  const fd = openSync(target, 'w');
  try {
    const writer = new ArrowFinalWriter(fd, schema);
    const headerEnd = writer.position;
    const src = openSync(body.path, 'r');
    try {
      const start = blocks.length ? blocks[0].offset : 0;
      const last = blocks[blocks.length - 1];
      const end = last ? last.offset + last.metaDataLength + Number(last.bodyLength) : 0;
      const chunk = new Uint8Array(Math.min(8 << 20, Math.max(1, end - start)));
      for (let pos = start; pos < end; pos += chunk.byteLength) {
        const n = Math.min(chunk.byteLength, end - pos);
        const view = chunk.subarray(0, n);
        let done = 0;
        while (done < n) done += readSync(src, view, done, n - done, pos + done);
        writer.appendRaw(view);
      }
      for (const b of blocks)
        writer.addBlock(new FileBlock(b.metaDataLength, b.bodyLength, b.offset - start + headerEnd));
    } finally {
      closeSync(src);
    }
    writer.end();
  } finally {
    closeSync(fd);
  }
}

export { MetadataVersion };
