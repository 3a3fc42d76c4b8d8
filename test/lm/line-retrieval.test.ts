// LongChat line retrieval: the case format, last-integer scoring, and the word tokenizer's round
// trip (whole numbers up to 99); the training curriculum; a tiny model generates an answer to a case through the KV cache; `exp run
// line-retrieval.yaml` as a user runs it, shortened.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { FileStore } from '../../experiments/tracking/index.js';
import {
  answerPositions,
  curriculumCap,
  encodeLineCase,
  LINE_HEADER,
  LineTokenizer,
  LlamaModel,
  lastInteger,
  lineAnswerCorrect,
  makeLineRetrievalCase,
} from '../../lm/index.js';
import { initBackend } from '../../native/index.js';
import { outcome, runExp, tempDir, testEnv } from '../experiments/util.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

test('case format: LongChat lines, header, question; answer = the asked line', () => {
  const c = makeLineRetrievalCase(new Rng(1), 5);
  const lines = c.prompt.split('\n');
  assert.equal(lines[0], LINE_HEADER);
  for (let i = 1; i <= 5; i++)
    assert.match(lines[i], new RegExp(`^line ${i}: REGISTER_CONTENT is <(\\d+)>$`));
  const asked = lines[c.lineIndex].match(/<(\d+)>/);
  assert.equal(Number(asked?.[1]), c.answer);
  assert.ok(c.answer >= 1 && c.answer <= 50000);
  assert.match(c.prompt, new RegExp(`in line ${c.lineIndex}\\? I need the number\\.`));
});

test('scoring takes the last integer of the output', () => {
  assert.equal(lastInteger('The <REGISTER_CONTENT> in line 3 is <4021>.'), 4021);
  assert.equal(lastInteger('no digits'), undefined);
  assert.equal(lastInteger('12>'), 12);
});

test('word tokenizer round-trips a case; a tiny model answers through the KV cache', () => {
  const tok = new LineTokenizer();
  const c = makeLineRetrievalCase(new Rng(2), 3);
  const ids = tok.encode(c.prompt, { bos: true });
  assert.equal(ids[0], 1);
  assert.equal(tok.decode(ids), c.prompt);
  assert.throws(() => tok.encode('hello'), /"hello" is not in the vocabulary/);
  // numbers up to 99 are one token (every line is 9 tokens), longer ones and leading zeros digits
  assert.equal(tok.vocabSize, 140);
  assert.equal(tok.encode('line 12: REGISTER_CONTENT is <7>\n').length, 9);
  assert.deepEqual(
    tok.encode('4021 05').map((id) => tok.piece(id)),
    ['4', '0', '2', '1', '0', '5'],
  );
  assert.equal(tok.decode(tok.encode('<4021> 99')), '<4021> 99');
  const model = LlamaModel.init(
    {
      vocabSize: tok.vocabSize,
      hiddenSize: 16,
      intermediateSize: 32,
      numLayers: 1,
      numHeads: 2,
      numKvHeads: 1,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScalingFactor: 1,
      tieWordEmbeddings: true,
      maxPositionEmbeddings: 512,
      bosTokenId: 1,
      eosTokenId: 2,
    },
    new Rng(3),
    { attention: 'vanilla', blockSize: 16, ffnChunk: 0, checkpointLayers: false },
  );
  const [out] = model.generate([ids], { maxNewTokens: 6 });
  assert.ok(out.length >= 1 && out.length <= 6);
  model.dispose();
});

test('curriculum: at most startLines for holdSteps, then growing to all of trainLines at fullSteps', () => {
  const c = {
    trainLines: [1, 2, 3, 4, 5, 6, 7, 8],
    curriculum: { startLines: 4, holdSteps: 100, fullSteps: 200 },
  };
  assert.equal(curriculumCap(1, c), 4);
  assert.equal(curriculumCap(100, c), 4);
  assert.equal(curriculumCap(150, c), 6);
  assert.equal(curriculumCap(200, c), 8);
  assert.equal(curriculumCap(5000, c), 8);
  assert.equal(curriculumCap(1, { ...c, curriculum: { ...c.curriculum, fullSteps: 0 } }), 8);
});

const BUDGET_MIB = 128;

test('exp run line-retrieval.yaml (smoke, 2 steps): one device within the real-memory budget, the ring also at 2× 128 tokens', async () => {
  const work = tempDir('line-retrieval');
  try {
    const store = join(work, 'mlruns');
    const set = (kv: string) => ['--set', `line-retrieval.${kv}`];
    const r = await runExp(
      [
        'run',
        'line-retrieval.yaml',
        '--tracking-uri',
        store,
        '--json',
        ...set('steps=2'),
        ...set('evalEvery=0'),
        ...set('evalLines=[2]'),
        ...set('evalCases=2'),
        ...set('evalBatch=2'),
        // real memory: 2 cases × 128 tokens need ≈ 46 MiB (RING_NATIVE=0: 56), and with
        // --enable-source-maps (runExp) ≈ 18 MiB more JS per device
        ...set(`deviceMemoryMB=${BUDGET_MIB}`),
      ],
      { env: testEnv(work) },
    );
    assert.equal(r.code, 0, r.stderr);
    const { run_id: id, status } = outcome(r);
    assert.equal(status, 'FINISHED');
    const fs = new FileStore(store);
    const metric = async (key: string) => (await fs.getMetricHistory(id, key)).map((m) => [m.step, m.value]);
    const [one] = await metric('eval/max_context_one_device');
    const [ring] = await metric('eval/max_context_ring');
    assert.ok(one[1] >= 128, `one device: ${one[1]} tokens`);
    // the ring runs the 2-line cases and the longest line count within 2 × 128 tokens
    const acc = await metric('eval/ring_accuracy');
    assert.deepEqual(
      acc.map(([step]) => step),
      [128, 256],
    );
    // each context's real peak decides against the budget; the tensor bytes are logged beside it
    const real = await metric('eval/peak_mb_one_device');
    const tensors = await metric('eval/tensor_mb_one_device');
    const ringReal = await metric('eval/peak_mb_ring');
    const ringTensors = await metric('eval/tensor_mb_ring');
    assert.equal(one[1], Math.max(...real.filter(([, mb]) => mb <= BUDGET_MIB).map(([step]) => step)));
    assert.equal(
      ring[1],
      Math.max(0, ...ringReal.filter(([, mb]) => mb <= BUDGET_MIB).map(([step]) => step)),
    );
    for (const [mine, theirs] of [
      [real, tensors],
      [ringReal, ringTensors],
    ])
      mine.forEach(([step, mb], i) => {
        assert.equal(theirs[i][0], step);
        assert.ok(mb > theirs[i][1], `${step} tokens: real ${mb} MiB, tensors ${theirs[i][1]} MiB`);
      });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('teacher-forced scoring: right only when every argmax over the answer span is the true token', () => {
  const e = encodeLineCase(new Rng(5), 3, 9);
  const span = e.ids.slice(e.answerAt); // the answer number and '>'
  assert.equal(span.length, answerPositions(e).length);
  assert.ok(lineAnswerCorrect(e, span));
  // an echo of the inputs at the answer positions holds the answer digit as its last integer:
  // the last-integer rule on these tokens would call it right, greedy decoding would not
  const echo = answerPositions(e).map((p) => e.ids[p]);
  assert.equal(lastInteger(new LineTokenizer().decode(echo)), e.answer);
  assert.equal(lineAnswerCorrect(e, echo), false);
  assert.equal(lineAnswerCorrect(e, [span[0]]), false);
  assert.equal(lineAnswerCorrect(e, [span[0], span[0]]), false);
});
