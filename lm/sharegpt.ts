/**
 * The ShareGPT pipeline (paper Figure 3's finetuning data; PAPER.md §3): load ShareGPT JSON or
 * JSONL (`[{"id", "conversations": [{"from": "human"|"gpt", "value"}]}]`), clean it as FastChat
 * does, render the Vicuna v1.1 template, mask the loss to assistant tokens, split conversations
 * longer than the context at turn boundaries, pack them into sequences with segment ids (packed
 * conversations never attend to each other), and write an Arrow token dataset.
 *
 * Bad records never crash the pipeline: each is skipped and counted under a reason.
 */
import { existsSync, readFileSync } from 'node:fs';
import { InputError } from '../common/index.js';
import { TokenWriter } from '../datasets/index.js';
import type { Tokenizer } from './tokenizer.js';

/** Vicuna v1.1's system prompt (FastChat `vicuna_v1.1`). */
export const VICUNA_SYSTEM =
  "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";

export type Role = 'user' | 'assistant';

export interface Conversation {
  id: string;
  /** System prompt from a leading "system" turn, else the template's. */
  system?: string;
  /** Alternating, starting with the user, ending with the assistant. */
  turns: { role: Role; text: string }[];
}

/** Why a record (or part of one) was dropped; counted in `CleanReport.dropped`. */
export type DropReason =
  | 'invalid_json'
  | 'not_an_object'
  | 'missing_conversations'
  | 'malformed_turn'
  | 'unknown_role'
  | 'not_alternating'
  | 'no_assistant_turn';

/** Parts of kept conversations that were removed (FastChat's cleaning steps). */
export interface TrimCounts {
  first_turn_not_human: number;
  empty_turns: number;
  trailing_user_turn: number;
}

export interface CleanReport {
  records: number;
  kept: number;
  dropped: Partial<Record<DropReason, number>>;
  trimmed: TrimCounts;
}

const USER_ROLES = new Set(['human', 'user']);
const ASSISTANT_ROLES = new Set(['gpt', 'assistant', 'chatgpt', 'bing', 'bard', 'model']);

/** Reads a ShareGPT file: a JSON array, or JSON Lines (one record per line). */
export function readShareGptRecords(path: string): { records: unknown[]; invalidLines: number } {
  if (!existsSync(path)) throw new InputError(`${path}: no such ShareGPT file`);
  const text = readFileSync(path, 'utf8');
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    try {
      const parsed = JSON.parse(text) as unknown;
      if (Array.isArray(parsed)) return { records: parsed, invalidLines: 0 };
    } catch (err) {
      throw new InputError(`${path}: not valid JSON (${(err as Error).message})`);
    }
  }
  const records: unknown[] = [];
  let invalidLines = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      records.push(JSON.parse(line));
    } catch {
      invalidLines++;
    }
  }
  return { records, invalidLines };
}

/**
 * FastChat-style cleaning: drop a first turn not from the human, drop empty turns, require
 * alternation (user, assistant, user, …), drop a trailing user turn that has no answer.
 * Malformed records are counted, never thrown.
 */
export function cleanShareGpt(
  records: unknown[],
  invalidLines = 0,
): { conversations: Conversation[]; report: CleanReport } {
  const dropped: Partial<Record<DropReason, number>> = {};
  const drop = (r: DropReason) => {
    dropped[r] = (dropped[r] ?? 0) + 1;
  };
  for (let i = 0; i < invalidLines; i++) drop('invalid_json');
  const trimmed: TrimCounts = { first_turn_not_human: 0, empty_turns: 0, trailing_user_turn: 0 };
  const conversations: Conversation[] = [];
  const one = (rec: unknown, index: number): Conversation | DropReason => {
    if (!rec || typeof rec !== 'object' || Array.isArray(rec)) return 'not_an_object';
    const r = rec as Record<string, unknown>;
    const raw = r.conversations ?? r.conversation;
    if (!Array.isArray(raw)) return 'missing_conversations';
    const turns: { role: string; text: string }[] = [];
    for (const t of raw) {
      if (!t || typeof t !== 'object') return 'malformed_turn';
      const { from, value } = t as Record<string, unknown>;
      if (typeof from !== 'string' || typeof value !== 'string') return 'malformed_turn';
      turns.push({ role: from.toLowerCase(), text: value });
    }
    let system: string | undefined;
    if (turns[0]?.role === 'system') system = turns.shift()?.text;
    const mapped: { role: Role; text: string }[] = [];
    for (const t of turns) {
      if (USER_ROLES.has(t.role)) mapped.push({ role: 'user', text: t.text });
      else if (ASSISTANT_ROLES.has(t.role)) mapped.push({ role: 'assistant', text: t.text });
      else return 'unknown_role';
    }
    // FastChat: "if roles[source[0]['from']] != conv.roles[0]: source = source[1:]"
    if (mapped.length && mapped[0].role !== 'user') {
      mapped.shift();
      trimmed.first_turn_not_human++;
    }
    const nonEmpty = mapped.filter((t) => t.text.trim().length > 0);
    trimmed.empty_turns += mapped.length - nonEmpty.length;
    for (let j = 0; j < nonEmpty.length; j++)
      if (nonEmpty[j].role !== (j % 2 === 0 ? 'user' : 'assistant')) return 'not_alternating';
    if (nonEmpty.length % 2 === 1) {
      nonEmpty.pop();
      if (nonEmpty.length) trimmed.trailing_user_turn++;
    }
    if (nonEmpty.length === 0) return 'no_assistant_turn';
    const id = typeof r.id === 'string' || typeof r.id === 'number' ? String(r.id) : `#${index}`;
    return { id, system: typeof system === 'string' && system.trim() ? system : undefined, turns: nonEmpty };
  };
  records.forEach((rec, index) => {
    const r = one(rec, index);
    if (typeof r === 'string') drop(r);
    else conversations.push(r);
  });
  return {
    conversations,
    report: { records: records.length + invalidLines, kept: conversations.length, dropped, trimmed },
  };
}

/** One tokenized training example: tokens and a 0/1 mask of the tokens the loss is on. */
export interface Example {
  tokens: number[];
  lossMask: number[];
}

/**
 * Vicuna v1.1 rendered per piece so that the mask is exact:
 *   BOS {system} USER: {q} ASSISTANT: {a}</s>USER: {q2} ASSISTANT: {a2}</s>
 * Loss on the answer tokens and their EOS (the model learns to stop); not on the prompt.
 * Returns the pieces per (user, assistant) pair so long conversations can split between pairs.
 */
export function renderVicunaPairs(c: Conversation, tok: Tokenizer): { header: Example; pairs: Example[] } {
  const system = c.system ?? VICUNA_SYSTEM;
  const header: Example = { tokens: [tok.bosId], lossMask: [0] };
  const pairs: Example[] = [];
  for (let j = 0; j < c.turns.length; j += 2) {
    const q = c.turns[j].text;
    const a = c.turns[j + 1].text;
    // the first pair follows the system prompt (with a space); later ones follow </s> directly
    const prompt =
      j === 0
        ? tok.encode(`${system} USER: ${q} ASSISTANT:`, { prefixSpace: true })
        : tok.encode(`USER: ${q} ASSISTANT:`, { prefixSpace: false });
    const answer = [...tok.encode(` ${a.trim()}`, { prefixSpace: false }), tok.eosId];
    pairs.push({
      tokens: [...prompt, ...answer],
      lossMask: [...prompt.map(() => 0), ...answer.map(() => 1)],
    });
  }
  return { header, pairs };
}

export interface BuildOptions {
  tokenizer: Tokenizer;
  /** Longest example, tokens; longer conversations are split at turn boundaries. */
  maxLen: number;
  /** Pack examples into sequences of at most this many tokens (≥ maxLen). */
  packLen: number;
}

export interface BuildReport extends CleanReport {
  examples: number;
  /** Conversations that were split into several examples. */
  split_conversations: number;
  /** (user, assistant) pairs longer than maxLen on their own: dropped. */
  pairs_too_long: number;
  sequences: number;
  tokens: number;
  loss_tokens: number;
}

/**
 * Tokenizes cleaned conversations into examples of at most `maxLen` tokens: pairs are added while
 * they fit; a conversation that does not fit continues in a new example that starts again with
 * BOS and the system prompt (so every example reads as a conversation).
 */
export function toExamples(
  conversations: Conversation[],
  o: BuildOptions,
): { examples: Example[]; split: number; tooLong: number } {
  const examples: Example[] = [];
  let split = 0;
  let tooLong = 0;
  for (const c of conversations) {
    const { header, pairs } = renderVicunaPairs(c, o.tokenizer);
    let cur: Example | undefined;
    let parts = 0;
    for (let j = 0; j < pairs.length; j++) {
      let p = pairs[j];
      if (cur && cur.tokens.length + p.tokens.length > o.maxLen) {
        examples.push(cur);
        parts++;
        cur = undefined;
      }
      if (!cur) {
        // a continuation restarts the template (the first pair's rendering carries the system)
        if (j > 0)
          p = renderVicunaPairs({ ...c, turns: c.turns.slice(2 * j, 2 * j + 2) }, o.tokenizer).pairs[0];
        if (header.tokens.length + p.tokens.length > o.maxLen) {
          tooLong++;
          continue;
        }
        cur = { tokens: [...header.tokens], lossMask: [...header.lossMask] };
      }
      cur.tokens.push(...p.tokens);
      cur.lossMask.push(...p.lossMask);
    }
    if (cur) {
      examples.push(cur);
      parts++;
    }
    if (parts > 1) split++;
  }
  return { examples, split, tooLong };
}

/** A packed sequence: examples back to back, segment id 0, 1, 2, … per example. */
export interface PackedSequence {
  tokens: number[];
  lossMask: number[];
  segmentIds: number[];
}

/** Greedy packing in order: an example goes into the current sequence while it fits. */
export function pack(examples: Example[], packLen: number): PackedSequence[] {
  const out: PackedSequence[] = [];
  let cur: PackedSequence | undefined;
  let seg = 0;
  for (const e of examples) {
    if (e.tokens.length > packLen)
      throw new InputError(`pack: example of ${e.tokens.length} tokens exceeds packLen ${packLen}`);
    if (!cur || cur.tokens.length + e.tokens.length > packLen) {
      cur = { tokens: [], lossMask: [], segmentIds: [] };
      out.push(cur);
      seg = 0;
    }
    cur.tokens.push(...e.tokens);
    cur.lossMask.push(...e.lossMask);
    for (let i = 0; i < e.tokens.length; i++) cur.segmentIds.push(seg);
    seg++;
  }
  return out;
}

/**
 * Next-token targets of a window: target[t] = token[t+1] where token t+1 is a loss token of the
 * same segment (and not right padding), else −100.
 */
export function windowTargets(
  tokens: ArrayLike<number>,
  lossMask: ArrayLike<number>,
  segmentIds: ArrayLike<number>,
  valid: ArrayLike<number>,
  B: number,
  T: number,
): Int32Array {
  const out = new Int32Array(B * T).fill(-100);
  for (let b = 0; b < B; b++)
    for (let t = 0; t + 1 < T; t++) {
      const i = b * T + t;
      if (valid[i + 1] && lossMask[i + 1] && segmentIds[i + 1] === segmentIds[i]) out[i] = tokens[i + 1];
    }
  return out;
}

/**
 * ShareGPT file → Arrow token dataset (datasets/ TokenWriter): clean, render, split, pack, write.
 * Returns the report of what was kept and what was dropped and why.
 */
export function buildShareGptDataset(input: string, output: string, o: BuildOptions): BuildReport {
  if (!(o.packLen >= o.maxLen))
    throw new InputError(`buildShareGptDataset: packLen ${o.packLen} must be ≥ maxLen ${o.maxLen}`);
  const { records, invalidLines } = readShareGptRecords(input);
  const { conversations, report } = cleanShareGpt(records, invalidLines);
  const { examples, split, tooLong } = toExamples(conversations, o);
  if (!examples.length)
    throw new InputError(`${input}: no usable conversation (dropped: ${JSON.stringify(report.dropped)})`);
  const packed = pack(examples, o.packLen);
  const writer = new TokenWriter(output, {
    vocabSize: o.tokenizer.vocabSize,
    description: { tokenizer: o.tokenizer.name, template: 'vicuna_v1.1', source: input, packLen: o.packLen },
  });
  let tokens = 0;
  let lossTokens = 0;
  for (const s of packed) {
    writer.addSequence(s.tokens, s.lossMask, s.segmentIds);
    tokens += s.tokens.length;
    for (const m of s.lossMask) lossTokens += m;
  }
  writer.close();
  return {
    ...report,
    examples: examples.length,
    split_conversations: split,
    pairs_too_long: tooLong,
    sequences: packed.length,
    tokens,
    loss_tokens: lossTokens,
  };
}
