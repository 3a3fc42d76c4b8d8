// Tokenizers: LLaMA's SentencePiece vocabulary (llama-tokenizer-js) with known ids, round trips;
// tokenizer.json loading checked against the package and against HF `tokenizers` in Python.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HfTokenizer, LlamaSentencePiece, llamaTokenizerJson, loadTokenizer } from '../../lm/index.js';
import { pythonJson } from '../helpers/python.js';

const TEXTS = [
  'Hello world!',
  ' leading  two spaces\nand a newline\n\n',
  'Ünïcødé 日本語 🦙 emoji',
  'line 12: REGISTER_CONTENT is <34521>',
  'A chat between a curious user and an artificial intelligence assistant.',
  'def f(x):\n    return x ** 2  # tabs\tand    runs',
];

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'lm-tok-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('LLaMA SentencePiece (llama-tokenizer-js)', () => {
  const t = new LlamaSentencePiece();
  test('known ids: the package README example, BOS=1, EOS=2, 32000 pieces', () => {
    assert.deepEqual(t.encode('Hello world!', { bos: true }), [1, 15043, 3186, 29991]);
    assert.equal(t.decode([1, 15043, 3186, 29991]), 'Hello world!');
    assert.equal(t.vocabSize, 32000);
    assert.equal(t.bosId, 1);
    assert.equal(t.eosId, 2);
    assert.equal(t.piece(3186), '▁world');
    assert.equal(t.piece(13), '<0x0A>');
    assert.deepEqual(t.encode('\n', { prefixSpace: false }), [13]);
  });
  test('round trip encode → decode', () => {
    for (const s of TEXTS) assert.equal(t.decode(t.encode(s)), s, JSON.stringify(s));
    assert.deepEqual(t.encode(''), []);
  });
});

describe('tokenizer.json', () => {
  const llama = new LlamaSentencePiece();
  const json = llamaTokenizerJson(llama);
  const hf = new HfTokenizer(json);
  test('LLaMA vocabulary as tokenizer.json encodes as the package does', () => {
    assert.equal(hf.vocabSize, 32000);
    assert.equal(hf.bosId, 1);
    assert.equal(hf.eosId, 2);
    for (const s of TEXTS) {
      assert.deepEqual(hf.encode(s, { bos: true }), llama.encode(s, { bos: true }), JSON.stringify(s));
      assert.equal(hf.decode(hf.encode(s)), s);
    }
  });
  test('loads from a checkpoint folder; HF tokenizers in Python gives the same ids', async () => {
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    const fromDir = loadTokenizer(dir);
    const texts = [...TEXTS, 'USER: hi ASSISTANT: ok</s>USER: next'];
    const py = await pythonJson<{ ids: number[][]; text: string[] }>(`
import json
from tokenizers import Tokenizer
t = Tokenizer.from_file(${JSON.stringify(join(dir, 'tokenizer.json'))})
texts = ${JSON.stringify(texts)}
enc = [t.encode(s).ids for s in texts]
print(json.dumps({"ids": enc, "text": [t.decode(e) for e in enc]}))
`);
    texts.forEach((s, i) => {
      assert.deepEqual(fromDir.encode(s), py.ids[i], JSON.stringify(s));
      assert.equal(fromDir.decode(py.ids[i]), py.text[i]);
    });
  });
  test('unsupported tokenizer.json is an InputError naming the key', () => {
    const byteLevel = { ...json, pre_tokenizer: { type: 'ByteLevel' } };
    assert.throws(() => new HfTokenizer(byteLevel), /key "pre_tokenizer.type": "ByteLevel" is not supported/);
    assert.throws(
      () => new HfTokenizer({ ...json, model: { ...json.model, type: 'WordPiece' } }),
      /key "model.type"/,
    );
    assert.throws(() => loadTokenizer(join(dir, 'nope')), /no such tokenizer file/);
  });
});
