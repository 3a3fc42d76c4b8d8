// ShareGPT pipeline on hand-made conversations: FastChat cleaning with counted drop reasons,
// Vicuna v1.1 rendering, loss mask on assistant tokens only, splitting at turn boundaries,
// packing with segment ids, the Arrow token dataset read back, and the shipped sample.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TokenDataset } from '../../datasets/index.js';
import {
  buildShareGptDataset,
  cleanShareGpt,
  LlamaSentencePiece,
  pack,
  toExamples,
  VICUNA_SYSTEM,
  windowTargets,
} from '../../lm/index.js';
import { repoRoot } from '../helpers/python.js';

const tok = new LlamaSentencePiece();
let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'lm-sharegpt-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const conv = (id: string, ...turns: [string, unknown][]) => ({
  id,
  conversations: turns.map(([from, value]) => ({ from, value })),
});

describe('ShareGPT', () => {
  test('cleaning: malformed records skipped and counted by reason, untidy ones trimmed', () => {
    const records = [
      conv('ok', ['human', 'Hi'], ['gpt', 'Hello']),
      conv('first-gpt', ['gpt', 'Welcome'], ['human', 'Hi'], ['gpt', 'Hello']),
      conv('empty', ['human', 'Hi'], ['gpt', 'Hello'], ['human', ' '], ['gpt', '']),
      conv('trailing', ['human', 'Hi'], ['gpt', 'Hello'], ['human', 'Bye?']),
      { id: 'no-conv' },
      conv('num', ['human', 3], ['gpt', 'x']),
      { id: 'turn-null', conversations: [null] },
      conv('role', ['narrator', 'x'], ['gpt', 'y']),
      conv('alt', ['human', 'a'], ['human', 'b'], ['gpt', 'c']),
      conv('only-q', ['human', 'a']),
      42,
      null,
      [1, 2],
    ];
    const { conversations, report } = cleanShareGpt(records, 2);
    assert.deepEqual(
      conversations.map((c) => c.id),
      ['ok', 'first-gpt', 'empty', 'trailing'],
    );
    for (const c of conversations)
      assert.deepEqual(
        c.turns.map((t) => t.text),
        ['Hi', 'Hello'],
      );
    assert.deepEqual(report.dropped, {
      invalid_json: 2,
      missing_conversations: 1,
      malformed_turn: 2,
      unknown_role: 1,
      not_alternating: 1,
      no_assistant_turn: 1,
      not_an_object: 3,
    });
    assert.deepEqual(report.trimmed, { first_turn_not_human: 1, empty_turns: 2, trailing_user_turn: 1 });
    assert.equal(report.records, records.length + 2);
  });

  test('Vicuna v1.1 template; loss only on assistant tokens and their EOS', () => {
    const { conversations } = cleanShareGpt([
      conv('c', ['human', 'What is 2 plus 2?'], ['gpt', '4.'], ['human', 'And 3?'], ['gpt', '5.']),
    ]);
    const { examples } = toExamples(conversations, { tokenizer: tok, maxLen: 512, packLen: 512 });
    assert.equal(examples.length, 1);
    const e = examples[0];
    assert.equal(e.tokens[0], 1);
    assert.equal(
      tok.decode(e.tokens),
      `${VICUNA_SYSTEM} USER: What is 2 plus 2? ASSISTANT: 4.USER: And 3? ASSISTANT: 5.`,
    );
    const lossText = tok.decode(e.tokens.filter((_, i) => e.lossMask[i]));
    assert.equal(lossText, '4. 5.');
    assert.equal(e.tokens.filter((t, i) => t === 2 && e.lossMask[i]).length, 2, 'both EOS are targets');
    // the prompt never is
    const promptText = tok.decode(e.tokens.filter((_, i) => !e.lossMask[i]));
    assert.ok(promptText.includes('USER: And 3? ASSISTANT:') && !promptText.includes('5.'));
  });

  test('long conversations split at turn boundaries; packing keeps segments apart', () => {
    const long = conv(
      'long',
      ...Array.from({ length: 6 }, (_, i): [string, string][] => [
        ['human', `Question number ${i}?`],
        ['gpt', `Answer number ${i}.`],
      ]).flat(),
    );
    const short = conv('short', ['human', 'Hi'], ['gpt', 'Hello']);
    const { conversations } = cleanShareGpt([long, short]);
    const opts = { tokenizer: tok, maxLen: 80, packLen: 200 };
    const { examples, split, tooLong } = toExamples(conversations, opts);
    assert.equal(split, 1);
    assert.equal(tooLong, 0);
    assert.ok(examples.length >= 3);
    for (const e of examples) {
      assert.ok(e.tokens.length <= 80);
      assert.equal(e.tokens[0], 1, 'each piece starts a conversation');
      assert.ok(tok.decode(e.tokens).startsWith(VICUNA_SYSTEM));
    }
    // every answer survives exactly once, in order
    const answers = examples.flatMap((e) => tok.decode(e.tokens).match(/Answer number \d/g) ?? []);
    assert.deepEqual(
      answers,
      Array.from({ length: 6 }, (_, i) => `Answer number ${i}`),
    );
    const packed = pack(examples, 200);
    assert.equal(
      packed.reduce((a, p) => a + p.tokens.length, 0),
      examples.reduce((a, e) => a + e.tokens.length, 0),
    );
    for (const p of packed) {
      assert.ok(p.tokens.length <= 200);
      // segment ids count examples 0, 1, 2 … within a sequence and start at each BOS
      p.tokens.forEach((t, i) => {
        if (i > 0 && p.segmentIds[i] !== p.segmentIds[i - 1]) assert.equal(t, 1);
      });
    }
    // targets never cross a segment boundary and only where the next token is a loss token
    const p = packed[0];
    const T = p.tokens.length;
    const targets = windowTargets(p.tokens, p.lossMask, p.segmentIds, new Array(T).fill(1), 1, T);
    for (let t = 0; t + 1 < T; t++) {
      const expect = p.lossMask[t + 1] && p.segmentIds[t + 1] === p.segmentIds[t] ? p.tokens[t + 1] : -100;
      assert.equal(targets[t], expect);
    }
    // a single exchange longer than maxLen is dropped and counted
    const { tooLong: n } = toExamples(
      cleanShareGpt([conv('huge', ['human', 'word '.repeat(200)], ['gpt', 'ok'])]).conversations,
      opts,
    );
    assert.equal(n, 1);
  });

  test('JSONL with bad lines → Arrow token dataset; the shipped sample builds', () => {
    const jsonl = join(dir, 'chat.jsonl');
    writeFileSync(
      jsonl,
      [
        JSON.stringify(conv('a', ['human', 'Hi'], ['gpt', 'Hello'])),
        '{broken',
        JSON.stringify(conv('b', ['human', 'Yo'], ['gpt', 'Hey'])),
      ].join('\n'),
    );
    const out = join(dir, 'chat.arrow');
    const r = buildShareGptDataset(jsonl, out, { tokenizer: tok, maxLen: 64, packLen: 128 });
    assert.equal(r.kept, 2);
    assert.deepEqual(r.dropped, { invalid_json: 1 });
    assert.equal(r.sequences, 1);
    const ds = new TokenDataset(out);
    const s = ds.sequence(0);
    assert.deepEqual([...new Set(s.segmentIds)], [0, 1]);
    assert.equal(ds.info.vocab_size, 32000);
    assert.equal(s.tokens.length, r.tokens);
    ds.close();

    const sample = buildShareGptDataset(
      join(repoRoot, 'lm/data/sharegpt-sample.json'),
      join(dir, 'sample.arrow'),
      {
        tokenizer: tok,
        maxLen: 256,
        packLen: 256,
      },
    );
    assert.ok(sample.kept >= 400, `kept ${sample.kept}`);
    assert.deepEqual(Object.keys(sample.dropped).sort(), [
      'malformed_turn',
      'missing_conversations',
      'no_assistant_turn',
      'not_alternating',
      'not_an_object',
      'unknown_role',
    ]);
    assert.ok(sample.loss_tokens > 0.1 * sample.tokens);
  });
});
