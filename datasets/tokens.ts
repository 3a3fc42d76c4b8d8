/**
 * A generic token-sequence dataset for the LM side: one Arrow IPC file, one row per token
 * (`sequence_id`, `token`, `loss_mask`, `segment_id`), sequences contiguous, record batches of
 * whole sequences, an index in the schema metadata (`tokens.json`). Same writer machinery
 * (streaming, atomic, content digest) and positioned-read reader as the trajectory file.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Bool, Field, Int32, makeData, RecordBatch, Schema, Struct } from 'apache-arrow';
import { InputError, Rng, temporarySibling } from '../common/index.js';
import { ArrowBodyWriter, ArrowFile, finalizeArrowFile, packBits, readLeafRaw } from './ipc.js';

export const TOKENS_KEY = 'tokens.json';

/** Metadata of a token dataset (`tokens.json` in the schema metadata). */
export interface TokenDatasetInfo {
  format: 'ring-tokens';
  version: 1;
  vocab_size: number;
  /** Free-form: tokenizer name, source corpus, chat template. */
  description?: Record<string, unknown>;
  total_sequences: number;
  total_tokens: number;
  lengths: number[];
  batch_first_sequence: number[];
  digest: string;
  content_sha256: string;
}

export interface TokenSequence {
  /** (T) */
  tokens: Int32Array;
  /** (T) 1 where the loss counts (assistant tokens) */
  lossMask: Uint8Array;
  /** (T) segment id (e.g. conversation turn, or packed document) */
  segmentIds: Int32Array;
}

function schemaOf(meta?: Map<string, string>): Schema {
  return new Schema(
    [
      new Field('sequence_id', new Int32(), false),
      new Field('token', new Int32(), false),
      new Field('loss_mask', new Bool(), false),
      new Field('segment_id', new Int32(), false),
    ],
    meta,
  );
}

/** Streaming, atomic writer of token sequences. */
export class TokenWriter {
  private readonly tmp: string;
  private readonly body: ArrowBodyWriter;
  private readonly schema = schemaOf();
  private readonly hash = createHash('sha256');
  private pending: TokenSequence[] = [];
  private pendingRows = 0;
  private readonly lengths: number[] = [];
  private readonly batchFirst: number[] = [];
  private done = false;

  constructor(
    readonly target: string,
    private readonly options: {
      vocabSize: number;
      description?: Record<string, unknown>;
      batchRows?: number;
    },
  ) {
    mkdirSync(dirname(target), { recursive: true });
    this.tmp = temporarySibling(target);
    this.body = new ArrowBodyWriter(`${this.tmp}.body`, this.schema);
  }

  addSequence(
    tokens: ArrayLike<number>,
    lossMask?: ArrayLike<number | boolean>,
    segmentIds?: ArrayLike<number>,
  ): void {
    const T = tokens.length;
    const at = `${this.target}: sequence ${this.lengths.length}`;
    try {
      if (T === 0) throw new InputError(`${at}: key "tokens": expected at least 1 token; got 0`);
      if (lossMask && lossMask.length !== T)
        throw new InputError(`${at}: key "loss_mask": expected ${T} values; got ${lossMask.length}`);
      if (segmentIds && segmentIds.length !== T)
        throw new InputError(`${at}: key "segment_ids": expected ${T} values; got ${segmentIds.length}`);
      const tok = Int32Array.from(tokens);
      for (let t = 0; t < T; t++)
        if (!(tok[t] >= 0 && tok[t] < this.options.vocabSize) || tok[t] !== tokens[t])
          throw new InputError(
            `${at}: key "tokens": expected integers in [0, ${this.options.vocabSize}); got ${tokens[t]} at ${t}`,
          );
      const seq: TokenSequence = {
        tokens: tok,
        lossMask: Uint8Array.from(lossMask ?? new Array(T).fill(1), (x) => (x ? 1 : 0)),
        segmentIds: Int32Array.from(segmentIds ?? new Array(T).fill(0)),
      };
      this.hash.update(`seq ${this.lengths.length} T=${T}\n`);
      for (const a of [seq.tokens, seq.lossMask, seq.segmentIds]) this.hash.update(new Uint8Array(a.buffer));
      if (this.pending.length === 0) this.batchFirst.push(this.lengths.length);
      this.lengths.push(T);
      this.pending.push(seq);
      this.pendingRows += T;
      if (this.pendingRows >= (this.options.batchRows ?? 1 << 20)) this.flush();
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  private flush(): void {
    if (!this.pending.length) return;
    const rows = this.pendingRows;
    const ids = new Int32Array(rows);
    const tok = new Int32Array(rows);
    const mask = new Uint8Array(rows);
    const seg = new Int32Array(rows);
    let r = 0;
    let id = this.batchFirst[this.batchFirst.length - 1];
    for (const s of this.pending) {
      ids.fill(id++, r, r + s.tokens.length);
      tok.set(s.tokens, r);
      mask.set(s.lossMask, r);
      seg.set(s.segmentIds, r);
      r += s.tokens.length;
    }
    const i32 = (data: Int32Array) => makeData({ type: new Int32(), length: rows, nullCount: 0, data });
    const cols = [
      i32(ids),
      i32(tok),
      makeData({ type: new Bool(), length: rows, nullCount: 0, data: packBits(mask) }),
      i32(seg),
    ];
    this.body.write(
      new RecordBatch(
        this.schema,
        makeData({ type: new Struct(this.schema.fields), length: rows, nullCount: 0, children: cols }),
      ),
    );
    this.pending = [];
    this.pendingRows = 0;
  }

  close(): { path: string; digest: string; totalSequences: number; totalTokens: number } {
    if (this.done) throw new Error(`${this.target}: writer already closed`);
    if (this.lengths.length === 0) {
      this.abort();
      throw new InputError(`${this.target}: empty dataset: expected at least one sequence; got 0`);
    }
    this.flush();
    this.body.closeFile();
    const sha = this.hash.digest('hex');
    const totalTokens = this.lengths.reduce((a, b) => a + b, 0);
    const info: TokenDatasetInfo = {
      format: 'ring-tokens',
      version: 1,
      vocab_size: this.options.vocabSize,
      description: this.options.description,
      total_sequences: this.lengths.length,
      total_tokens: totalTokens,
      lengths: this.lengths,
      batch_first_sequence: this.batchFirst,
      digest: sha.slice(0, 8),
      content_sha256: sha,
    };
    try {
      finalizeArrowFile(this.body, schemaOf(new Map([[TOKENS_KEY, JSON.stringify(info)]])), this.tmp);
      rmSync(this.body.path, { force: true });
      renameSync(this.tmp, this.target);
    } catch (err) {
      this.abort();
      throw err;
    }
    this.done = true;
    return { path: this.target, digest: info.digest, totalSequences: this.lengths.length, totalTokens };
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    try {
      this.body.closeFile();
    } catch {
      // already closed
    }
    rmSync(this.body.path, { force: true });
    rmSync(this.tmp, { force: true });
  }
}

/** A token dataset opened for positioned reads. */
export class TokenDataset {
  readonly info: TokenDatasetInfo;
  readonly lengths: Int32Array;
  private readonly file: ArrowFile;
  private readonly batchOf: Int32Array;
  private readonly rowInBatch: Int32Array;

  constructor(readonly path: string) {
    this.file = new ArrowFile(path);
    try {
      const text = this.file.schema.metadata.get(TOKENS_KEY);
      if (!text)
        throw new InputError(`${path}: schema metadata has no "${TOKENS_KEY}" key (not a token dataset?)`);
      this.info = JSON.parse(text) as TokenDatasetInfo;
      for (const name of ['sequence_id', 'token', 'loss_mask', 'segment_id'])
        if (!this.file.schema.fields.some((f) => f.name === name))
          throw new InputError(`${path}: missing column "${name}"`);
      this.lengths = Int32Array.from(this.info.lengths);
      const S = this.lengths.length;
      this.batchOf = new Int32Array(S);
      this.rowInBatch = new Int32Array(S);
      const first = [...this.info.batch_first_sequence, S];
      for (let b = 0; b < this.file.numBatches; b++) {
        let row = 0;
        for (let s = first[b]; s < first[b + 1]; s++) {
          this.batchOf[s] = b;
          this.rowInBatch[s] = row;
          row += this.lengths[s];
        }
        if (this.file.batch(b).rows !== row)
          throw new InputError(
            `${path}: record batch ${b} has ${this.file.batch(b).rows} rows; the index implies ${row}`,
          );
      }
    } catch (err) {
      this.file.close();
      throw err;
    }
  }

  get numSequences(): number {
    return this.lengths.length;
  }

  /** Tokens [start, start+count) of sequence i. */
  slice(i: number, start: number, count: number): TokenSequence {
    if (!(i >= 0 && i < this.numSequences)) throw new InputError(`${this.path}: sequence ${i} out of range`);
    const b = this.file.batch(this.batchOf[i]);
    const r = this.rowInBatch[i] + start;
    const n = Math.max(0, Math.min(count, this.lengths[i] - start));
    const leaf = (name: string) => b.leaves.get(name) as NonNullable<ReturnType<typeof b.leaves.get>>;
    return {
      tokens: Int32Array.from(readLeafRaw(this.file, leaf('token'), r, n) as Int32Array),
      lossMask: readLeafRaw(this.file, leaf('loss_mask'), r, n) as Uint8Array,
      segmentIds: Int32Array.from(readLeafRaw(this.file, leaf('segment_id'), r, n) as Int32Array),
    };
  }

  sequence(i: number): TokenSequence {
    return this.slice(i, 0, this.lengths[i]);
  }

  close(): void {
    this.file.close();
  }
}

/** A batch of token windows: (B, L) each; `mask` 0 on right padding. */
export interface TokenBatch {
  batchSize: number;
  seqLen: number;
  tokens: Int32Array;
  lossMask: Uint8Array;
  segmentIds: Int32Array;
  mask: Uint8Array;
}

/**
 * Random windows of L tokens: a sequence picked ∝ its length, a uniform start among the windows
 * it holds; shorter sequences are right-padded (mask 0). Deterministic given the seed.
 */
export class TokenWindowSampler {
  private readonly rng: Rng;
  private readonly cum: Float64Array;

  constructor(
    private readonly ds: TokenDataset,
    private readonly options: { batchSize: number; seqLen: number; seed: number },
  ) {
    this.rng = new Rng(options.seed);
    this.cum = new Float64Array(ds.numSequences);
    let c = 0;
    for (let i = 0; i < ds.numSequences; i++) this.cum[i] = c += ds.lengths[i];
  }

  sample(): TokenBatch {
    const { batchSize: B, seqLen: L } = this.options;
    const out: TokenBatch = {
      batchSize: B,
      seqLen: L,
      tokens: new Int32Array(B * L),
      lossMask: new Uint8Array(B * L),
      segmentIds: new Int32Array(B * L),
      mask: new Uint8Array(B * L),
    };
    const total = this.cum[this.cum.length - 1];
    for (let b = 0; b < B; b++) {
      const u = this.rng.next() * total;
      let lo = 0;
      let hi = this.cum.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.cum[mid] > u) hi = mid;
        else lo = mid + 1;
      }
      const T = this.ds.lengths[lo];
      const start = T > L ? this.rng.int(T - L + 1) : 0;
      const s = this.ds.slice(lo, start, L);
      const n = s.tokens.length;
      out.tokens.set(s.tokens, b * L);
      out.lossMask.set(s.lossMask, b * L);
      out.segmentIds.set(s.segmentIds, b * L);
      out.mask.fill(1, b * L, b * L + n);
    }
    return out;
  }
}
