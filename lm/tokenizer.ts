/**
 * Tokenizers: the LLaMA-1/2 SentencePiece vocabulary offline (the npm package
 * `llama-tokenizer-js`, which ships LLaMA's 32000 pieces and merges), and `tokenizer.json` from a
 * checkpoint folder (Hugging Face tokenizers, BPE models in SentencePiece style: "▁" for spaces,
 * byte fallback `<0xNN>`, special added tokens) for other models.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { LlamaTokenizer as PackageTokenizer } from 'llama-tokenizer-js';
import { InputError } from '../common/index.js';

export interface EncodeOptions {
  /** Prepend BOS (default false). */
  bos?: boolean;
  /**
   * SentencePiece's dummy prefix: a leading "▁" as if the text followed a space (default true,
   * as LLaMA's tokenizer does at the start of a text).
   */
  prefixSpace?: boolean;
}

export interface Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  encode(text: string, options?: EncodeOptions): number[];
  /** Ids → text; BOS/EOS and other special tokens are dropped, the dummy prefix space removed. */
  decode(ids: number[]): string;
  /** The piece string of one id (e.g. "▁world", "<0x0A>"). */
  piece(id: number): string;
}

let packageTokenizer: PackageTokenizer | undefined;

function loadPackageTokenizer(): PackageTokenizer {
  // require of an ES module (node ≥ 20.19): synchronous, so the constructor stays synchronous
  packageTokenizer ??= (createRequire(import.meta.url)('llama-tokenizer-js') as { default: PackageTokenizer })
    .default;
  return packageTokenizer;
}

/** LLaMA-1/2's SentencePiece tokenizer (vocab 32000, <unk>=0, <s>=1, </s>=2). */
export class LlamaSentencePiece implements Tokenizer {
  readonly name = 'llama-sentencepiece';
  readonly vocabSize: number;
  readonly bosId = 1;
  readonly eosId = 2;
  private readonly t: PackageTokenizer;

  constructor() {
    // the package's default instance has decoded its vocabulary once; share it.
    // NOTE: loaded on first use, not at import: its vocabulary is ≈ 11.5 MiB of JS heap, which
    // every ring device importing lm/ for the model alone would otherwise hold (issue 20).
    this.t = loadPackageTokenizer();
    this.vocabSize = this.t.vocabById.length;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string')
      throw new InputError(`LlamaSentencePiece.encode: expected a string; got ${typeof text}`);
    if (text === '') return options.bos ? [this.bosId] : [];
    return this.t.encode(text, options.bos ?? false, options.prefixSpace ?? true, false);
  }

  decode(ids: number[]): string {
    const body = ids.filter((i) => i > 2);
    if (!body.length) return '';
    // the package strips one leading space when told a preceding space was added
    const startsWithSpace = this.t.vocabById[body[0]]?.startsWith('▁') ?? false;
    return this.t.decode(body, false, startsWithSpace);
  }

  piece(id: number): string {
    return this.t.vocabById[id];
  }

  /** The merges in priority order, as "left right" piece pairs (to build a tokenizer.json). */
  mergesInOrder(): string[] {
    return [...this.t.merges.entries()].sort((a, b) => a[1] - b[1]).map(([k]) => k);
  }

  /** All pieces by id. */
  pieces(): string[] {
    return this.t.vocabById.slice();
  }
}

// ---- tokenizer.json (HF tokenizers) ----

interface HfAddedToken {
  [key: string]: unknown;
  id: number;
  content: string;
  special?: boolean;
}

interface HfNormalizer {
  type: string;
  normalizers?: HfNormalizer[];
  prepend?: string;
  pattern?: { String?: string; Regex?: string };
  content?: string;
}

interface HfPreTokenizer {
  type: string;
  replacement?: string;
  prepend_scheme?: 'always' | 'first' | 'never';
  add_prefix_space?: boolean;
  split?: boolean;
  pretokenizers?: HfPreTokenizer[];
}

export interface HfTokenizerJson {
  [key: string]: unknown;
  added_tokens?: HfAddedToken[];
  normalizer?: HfNormalizer | null;
  pre_tokenizer?: HfPreTokenizer | null;
  post_processor?: unknown;
  model: {
    [key: string]: unknown;
    type: string;
    vocab: Record<string, number>;
    merges: (string | [string, string])[];
    byte_fallback?: boolean;
    unk_token?: string | null;
    fuse_unk?: boolean;
  };
}

const SPACE = '▁';

/**
 * A BPE tokenizer loaded from tokenizer.json, SentencePiece style (LLaMA, Mistral and their
 * finetunes): spaces become "▁" (by a Replace normalizer or a Metaspace pre-tokenizer), a dummy
 * prefix "▁" is prepended, BPE merges by rank, characters outside the vocabulary fall back to
 * their UTF-8 bytes `<0xNN>`. Special added tokens in the text are matched literally.
 * Byte-level BPE (GPT-2 style) is not supported and is refused with an InputError.
 */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  private readonly vocab: Map<string, number>;
  private readonly byId: string[];
  private readonly ranks = new Map<string, number>();
  private readonly special: HfAddedToken[];
  private readonly specialIds: Set<number>;
  private readonly byteFallback: boolean;
  private readonly unkId: number | undefined;
  /** Metaspace split: each space-separated word is tokenized on its own. */
  private readonly splitWords: boolean;
  /**
   * Where the dummy "▁" goes: HF normalizes each piece of text between special tokens on its
   * own, so a Prepend normalizer or Metaspace 'always' prefixes every piece; 'first' only the first.
   */
  private readonly prefixMode: 'every' | 'first' | 'never';

  constructor(
    json: HfTokenizerJson,
    readonly name = 'tokenizer.json',
  ) {
    const where = name;
    if (!json || typeof json !== 'object' || !json.model)
      throw new InputError(`${where}: key "model" is missing`);
    if (json.model.type !== 'BPE')
      throw new InputError(
        `${where}: key "model.type": only "BPE" is supported; got ${JSON.stringify(json.model.type)}`,
      );
    const pre = json.pre_tokenizer;
    const preList = pre ? (pre.type === 'Sequence' ? (pre.pretokenizers ?? []) : [pre]) : [];
    const meta = preList.find((p) => p.type === 'Metaspace');
    const other = preList.find((p) => p.type !== 'Metaspace');
    if (other)
      throw new InputError(
        `${where}: key "pre_tokenizer.type": ${JSON.stringify(other.type)} is not supported (SentencePiece-style BPE only: Metaspace or none)`,
      );
    const norms = json.normalizer
      ? json.normalizer.type === 'Sequence'
        ? (json.normalizer.normalizers ?? [])
        : [json.normalizer]
      : [];
    const prepends = norms.some((n) => n.type === 'Prepend' && n.prepend === SPACE);
    const replaces = norms.some(
      (n) => n.type === 'Replace' && n.pattern?.String === ' ' && n.content === SPACE,
    );
    if (!meta && !replaces)
      throw new InputError(
        `${where}: no Metaspace pre-tokenizer or " " → "▁" normalizer: not a SentencePiece-style BPE`,
      );
    this.splitWords = meta?.split ?? false;
    const scheme = meta
      ? (meta.prepend_scheme ?? (meta.add_prefix_space === false ? 'never' : 'always'))
      : undefined;
    this.prefixMode = meta
      ? scheme === 'always'
        ? 'every'
        : scheme === 'first'
          ? 'first'
          : 'never'
      : prepends
        ? 'every'
        : 'never';
    this.vocab = new Map(Object.entries(json.model.vocab));
    this.special = (json.added_tokens ?? []).filter((t) => t.special !== false);
    for (const t of json.added_tokens ?? []) this.vocab.set(t.content, t.id);
    this.byId = [];
    for (const [s, id] of this.vocab) this.byId[id] = s;
    this.vocabSize = this.byId.length;
    json.model.merges.forEach((m, i) => {
      const key = Array.isArray(m) ? `${m[0]} ${m[1]}` : m;
      if (!this.ranks.has(key)) this.ranks.set(key, i);
    });
    this.byteFallback = json.model.byte_fallback ?? false;
    this.unkId = json.model.unk_token ? this.vocab.get(json.model.unk_token) : undefined;
    this.specialIds = new Set(this.special.map((t) => t.id));
    this.bosId = this.vocab.get('<s>') ?? this.vocab.get('<|begin_of_text|>') ?? -1;
    this.eosId = this.vocab.get('</s>') ?? this.vocab.get('<|end_of_text|>') ?? -1;
  }

  /** Loads `tokenizer.json` from a checkpoint folder (or the file itself). */
  static fromFile(path: string): HfTokenizer {
    const file = path.endsWith('.json') ? path : join(path, 'tokenizer.json');
    if (!existsSync(file)) throw new InputError(`${file}: no such tokenizer file`);
    let json: HfTokenizerJson;
    try {
      json = JSON.parse(readFileSync(file, 'utf8')) as HfTokenizerJson;
    } catch (err) {
      throw new InputError(`${file}: not valid JSON (${(err as Error).message})`);
    }
    return new HfTokenizer(json, file);
  }

  piece(id: number): string {
    return this.byId[id];
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string')
      throw new InputError(`${this.name}: encode expects a string; got ${typeof text}`);
    const out: number[] = options.bos && this.bosId >= 0 ? [this.bosId] : [];
    // split out special tokens written literally in the text
    let rest = text;
    let first = true;
    while (rest.length) {
      let at = -1;
      let tok: HfAddedToken | undefined;
      for (const s of this.special) {
        const i = rest.indexOf(s.content);
        if (i >= 0 && (at < 0 || i < at)) {
          at = i;
          tok = s;
        }
      }
      const chunk = at < 0 ? rest : rest.slice(0, at);
      const prefix = first
        ? (options.prefixSpace ?? this.prefixMode !== 'never')
        : this.prefixMode === 'every';
      if (chunk) out.push(...this.encodeChunk(chunk, prefix));
      first = false;
      if (at < 0 || !tok) break;
      out.push(tok.id);
      rest = rest.slice(at + tok.content.length);
    }
    return out;
  }

  private encodeChunk(text: string, prefix: boolean): number[] {
    const s = (prefix ? SPACE : '') + text.replaceAll(' ', SPACE);
    if (!this.splitWords) return this.bpe(s);
    // Metaspace split: words start at each "▁"
    const words = s.split(/(?=▁)/u).filter((w) => w.length);
    return words.flatMap((w) => this.bpe(w));
  }

  /** BPE over one string's characters: merge the lowest-ranked adjacent pair until none is left. */
  private bpe(s: string): number[] {
    const sym = Array.from(s);
    for (;;) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = this.ranks.get(`${sym[i]} ${sym[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      sym.splice(best, 2, sym[best] + sym[best + 1]);
    }
    const ids: number[] = [];
    for (const p of sym) {
      const id = this.vocab.get(p);
      if (id !== undefined) ids.push(id);
      else if (this.byteFallback)
        for (const b of new TextEncoder().encode(p)) {
          const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
          ids.push(this.vocab.get(hex) ?? this.unkId ?? 0);
        }
      else if (this.unkId !== undefined) ids.push(this.unkId);
      else throw new InputError(`${this.name}: "${p}" is not in the vocabulary and there is no unk token`);
    }
    return ids;
  }

  decode(ids: number[]): string {
    const bytes: number[] = [];
    const parts: string[] = [];
    const flush = () => {
      if (bytes.length) parts.push(new TextDecoder().decode(Uint8Array.from(bytes)));
      bytes.length = 0;
    };
    for (const id of ids) {
      if (this.specialIds.has(id)) continue;
      const p = this.byId[id];
      if (p === undefined) continue;
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(p);
      if (m) bytes.push(Number.parseInt(m[1], 16));
      else {
        flush();
        parts.push(p);
      }
    }
    flush();
    const text = parts.join('').replaceAll(SPACE, ' ');
    return this.prefixMode !== 'never' && text.startsWith(' ') ? text.slice(1) : text;
  }
}

/** Loads `tokenizer.json` from a checkpoint folder, or the bundled LLaMA vocabulary for 'llama'. */
export function loadTokenizer(source: 'llama' | string): Tokenizer {
  return source === 'llama' ? new LlamaSentencePiece() : HfTokenizer.fromFile(source);
}

/**
 * A tokenizer.json (LLaMA-2 style: Prepend + Replace normalizer, byte fallback) holding the
 * bundled LLaMA vocabulary and merges, for writing next to a checkpoint we save.
 */
export function llamaTokenizerJson(t: LlamaSentencePiece = new LlamaSentencePiece()): HfTokenizerJson {
  const pieces = t.pieces();
  const vocab: Record<string, number> = {};
  pieces.forEach((p, i) => {
    vocab[p] = i;
  });
  const added = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      ignore_merges: false,
      vocab,
      merges: t.mergesInOrder(),
      byte_fallback: true,
      unk_token: '<unk>',
      fuse_unk: true,
    },
  };
}
