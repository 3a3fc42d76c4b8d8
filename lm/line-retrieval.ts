/**
 * LongChat's line-retrieval test (paper Figure 3; PAPER.md §3): lines
 * `line {idx}: REGISTER_CONTENT is <{n}>` with n random in 1..50000, a header asking to memorise
 * them, and a final question for one line index; the answer is the last integer in the output.
 *
 * For the tiny models this project trains, a small word-level tokenizer (the numbers 0–99 one
 * token each, longer numbers digit by digit) keeps the vocabulary at 140 tokens; the text format
 * is LongChat's.
 */
import { InputError, type Rng } from '../common/index.js';
import { IGNORE_INDEX } from './head-loss.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';

export const LINE_HEADER =
  'Below is a record of lines I want you to remember. Each line begins with line and a line index. Memorize them carefully.';

export interface LineRetrievalCase {
  /** The prompt: header, the lines, the question (the answer follows it). */
  prompt: string;
  /** The asked line's index (1-based) and its number. */
  lineIndex: number;
  answer: number;
  numLines: number;
}

/** One test case with `numLines` lines; `maxValue` bounds the register numbers (LongChat: 50000). */
export function makeLineRetrievalCase(rng: Rng, numLines: number, maxValue = 50000): LineRetrievalCase {
  if (!Number.isInteger(numLines) || numLines < 1)
    throw new InputError(`line retrieval: numLines must be ≥ 1; got ${numLines}`);
  const values = Array.from({ length: numLines }, () => 1 + rng.int(maxValue));
  const lines = values.map((n, i) => `line ${i + 1}: REGISTER_CONTENT is <${n}>`);
  const asked = 1 + rng.int(numLines);
  const prompt = `${LINE_HEADER}\n${lines.join('\n')}\nNow the record is over. Tell me what is the <REGISTER_CONTENT> in line ${asked}? I need the number.\nThe <REGISTER_CONTENT> in line ${asked} is <`;
  return { prompt, lineIndex: asked, answer: values[asked - 1], numLines };
}

/** LongChat's scoring: the last integer in the model's output. */
export function lastInteger(output: string): number | undefined {
  const all = output.match(/\d+/g);
  return all ? Number(all[all.length - 1]) : undefined;
}

const WORDS = [
  'Below',
  'is',
  'a',
  'record',
  'of',
  'lines',
  'I',
  'want',
  'you',
  'to',
  'remember',
  'Each',
  'line',
  'begins',
  'with',
  'and',
  'index',
  'Memorize',
  'them',
  'carefully',
  'REGISTER_CONTENT',
  'Now',
  'the',
  'over',
  'Tell',
  'me',
  'what',
  'in',
  'need',
  'number',
  'The',
];
const SYMBOLS = [':', '<', '>', '.', '?', '\n'];

/** Numbers up to this are one token each (line indices, small register values). */
export const LINE_WHOLE_NUMBERS = 99;

/**
 * A word-level tokenizer for the line-retrieval task: <pad> 0, <s> 1, </s> 2, the numbers
 * 0..99 (one token each; a longer number, or one with a leading zero, is its digits), the task's
 * words and punctuation. Unknown words are an InputError.
 *
 * Why whole numbers (decision, measured in the line-retrieval recipe): with a line index as one
 * token every line `line K: REGISTER_CONTENT is <v>` is the same 9 tokens long, so the value sits
 * at a fixed offset from its index and a tiny model learns the lookup (an induction-style
 * "find line K, copy the token after <") in a few hundred steps; with digit tokens it did not
 * within the recipe's budget.
 */
export class LineTokenizer implements Tokenizer {
  readonly name = 'line-retrieval-words';
  readonly bosId = 1;
  readonly eosId = 2;
  private readonly pieces: string[];
  private readonly ids: Map<string, number>;

  constructor() {
    const numbers = Array.from({ length: LINE_WHOLE_NUMBERS + 1 }, (_, n) => String(n));
    this.pieces = ['<pad>', '<s>', '</s>', ...numbers, ...WORDS, ...SYMBOLS];
    this.ids = new Map(this.pieces.map((p, i) => [p, i]));
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out = options.bos ? [this.bosId] : [];
    for (const m of text.matchAll(/\d+|[A-Za-z_]+|\n|[^\sA-Za-z_\d]/g)) {
      const w = m[0];
      const id = this.ids.get(w);
      if (id !== undefined) out.push(id);
      else if (/^\d/.test(w)) for (const digit of w) out.push(this.ids.get(digit) as number);
      else throw new InputError(`${this.name}: "${w}" is not in the vocabulary`);
    }
    return out;
  }

  decode(ids: number[]): string {
    let s = '';
    let prev = '';
    for (const id of ids) {
      if (id < 3) continue;
      const p = this.pieces[id];
      const glue = /^\d/.test(p) && /^\d/.test(prev);
      const noSpace =
        s === '' || prev === '\n' || p === '\n' || glue || [':', '.', '?', '>'].includes(p) || prev === '<';
      s += (noSpace ? '' : ' ') + p;
      prev = p;
    }
    return s;
  }

  piece(id: number): string {
    return this.pieces[id];
  }
}

/** One tokenized case (LineTokenizer): prompt + answer + `>`. */
export interface EncodedLineCase {
  ids: number[];
  /** Index of the first answer token (the prompt's length). */
  answerAt: number;
  answer: number;
  lines: number;
}

const lineTokenizer = new LineTokenizer();

/** A fresh case of `lines` lines, tokenized with the LineTokenizer (BOS first). */
export function encodeLineCase(rng: Rng, lines: number, maxValue: number): EncodedLineCase {
  const c = makeLineRetrievalCase(rng, lines, maxValue);
  const prompt = lineTokenizer.encode(c.prompt, { bos: true });
  return {
    ids: [...prompt, ...lineTokenizer.encode(`${c.answer}>`)],
    answerAt: prompt.length,
    answer: c.answer,
    lines,
  };
}

/** The positions whose next token is an answer token: the prompt's last one and the digits. */
export function answerPositions(e: EncodedLineCase): number[] {
  return Array.from({ length: e.ids.length - e.answerAt }, (_, i) => e.answerAt - 1 + i);
}

/**
 * Rows right-padded with <pad> (0) to `T`: ids (B·T); next-token targets (B·T, −100 on padding)
 * and whether each target is an answer token (B·T). Causal attention: padding on the right
 * never reaches earlier positions.
 */
export function lineBatch(
  cases: EncodedLineCase[],
  T: number,
): { ids: Int32Array; targets: Int32Array; isAnswer: Uint8Array } {
  const ids = new Int32Array(cases.length * T);
  const targets = new Int32Array(cases.length * T).fill(IGNORE_INDEX);
  const isAnswer = new Uint8Array(cases.length * T);
  cases.forEach((e, b) => {
    ids.set(e.ids, b * T);
    for (let p = 0; p + 1 < e.ids.length; p++) targets[b * T + p] = e.ids[p + 1];
    for (const p of answerPositions(e)) isAnswer[b * T + p] = 1;
  });
  return { ids, targets, isAnswer };
}

/**
 * Scoring of teacher-forced predictions over the answer span (`predicted[i]` = the argmax at
 * `answerPositions(e)[i]`): right iff every one is the true next token, i.e. greedy decoding emits
 * exactly the reference answer (its last integer then is the answer, LongChat's rule). The
 * last-integer rule must not be applied to the teacher-forced tokens themselves: the prediction at
 * the answer digit's own position sees that digit as its input, so a model that echoes its input
 * would "answer" every case (an untrained model scored 0.94 at 2 lines that way; fixed 2026-12-05).
 */
export function lineAnswerCorrect(e: EncodedLineCase, predicted: number[]): boolean {
  const span = e.ids.slice(e.answerAt);
  return predicted.length === span.length && span.every((t, i) => predicted[i] === t);
}
