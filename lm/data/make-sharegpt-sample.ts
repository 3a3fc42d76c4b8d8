/**
 * Writes lm/data/sharegpt-sample.json: a small ShareGPT-format sample we generate ourselves (no
 * download), for the embedded `sharegpt-finetune` default and the tests. Short conversations from
 * varied templates (arithmetic, capitals, spelling, counting, colours, greetings, follow-ups), 1–3
 * exchanges each, plus a few deliberately malformed records so the cleaning report shows each
 * drop reason. Deterministic: `node dist/lm/data/make-sharegpt-sample.js`.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../common/index.js';

const CAPITALS: [string, string][] = [
  ['France', 'Paris'],
  ['Japan', 'Tokyo'],
  ['Italy', 'Rome'],
  ['Spain', 'Madrid'],
  ['Egypt', 'Cairo'],
  ['Canada', 'Ottawa'],
  ['Kenya', 'Nairobi'],
  ['Peru', 'Lima'],
  ['Norway', 'Oslo'],
  ['Chile', 'Santiago'],
  ['Germany', 'Berlin'],
  ['Greece', 'Athens'],
  ['India', 'New Delhi'],
  ['Brazil', 'Brasilia'],
  ['Poland', 'Warsaw'],
];
const COLOURS: [string, string][] = [
  ['the sky on a clear day', 'blue'],
  ['fresh grass', 'green'],
  ['a ripe banana', 'yellow'],
  ['snow', 'white'],
  ['coal', 'black'],
  ['a ripe tomato', 'red'],
  ['an orange', 'orange'],
  ['a lavender flower', 'purple'],
];
const WORDS = [
  'ring',
  'token',
  'model',
  'paper',
  'block',
  'device',
  'river',
  'garden',
  'window',
  'planet',
  'music',
  'circle',
];
const GREETINGS = ['Hi!', 'Hello there.', 'Good morning!', 'Hey, how are you?'];
const REPLIES = [
  'Hello! How can I help you today?',
  'Hi! What would you like to talk about?',
  'Good to see you. How can I help?',
];

type Turn = { from: string; value: unknown };

function exchange(rng: Rng): [string, string, (r: Rng) => [string, string] | undefined] {
  const kind = rng.int(6);
  if (kind === 0) {
    const a = 1 + rng.int(50);
    const b = 1 + rng.int(50);
    return [
      `What is ${a} plus ${b}?`,
      `${a} plus ${b} is ${a + b}.`,
      () => [`And what is that times 2?`, `${a + b} times 2 is ${2 * (a + b)}.`],
    ];
  }
  if (kind === 1) {
    const [c, cap] = CAPITALS[rng.int(CAPITALS.length)];
    return [
      `What is the capital of ${c}?`,
      `The capital of ${c} is ${cap}.`,
      () => [`Spell it for me.`, `${cap} is spelled ${cap.toUpperCase().split('').join('-')}.`],
    ];
  }
  if (kind === 2) {
    const w = WORDS[rng.int(WORDS.length)];
    return [
      `Spell the word ${w}.`,
      `${w} is spelled ${w.split('').join('-')}.`,
      () => [`How many letters is that?`, `The word ${w} has ${w.length} letters.`],
    ];
  }
  if (kind === 3) {
    const a = 1 + rng.int(20);
    const b = a + 2 + rng.int(5);
    const seq = Array.from({ length: b - a + 1 }, (_, i) => a + i);
    return [
      `Count from ${a} to ${b}.`,
      `${seq.join(', ')}.`,
      () => [`Now count backwards.`, `${seq.reverse().join(', ')}.`],
    ];
  }
  if (kind === 4) {
    const [thing, col] = COLOURS[rng.int(COLOURS.length)];
    return [
      `What colour is ${thing}?`,
      `${thing[0].toUpperCase()}${thing.slice(1)} is ${col}.`,
      () => undefined,
    ];
  }
  return [GREETINGS[rng.int(GREETINGS.length)], REPLIES[rng.int(REPLIES.length)], () => undefined];
}

export function makeSample(n: number, seed = 8): unknown[] {
  const rng = new Rng(seed);
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const turns: Turn[] = [];
    const pairs = 1 + rng.int(3);
    for (let p = 0; p < pairs; p++) {
      const [q, a, follow] = exchange(rng);
      turns.push({ from: 'human', value: q }, { from: 'gpt', value: a });
      const f = rng.next() < 0.5 ? follow(rng) : undefined;
      if (f) turns.push({ from: 'human', value: f[0] }, { from: 'gpt', value: f[1] });
    }
    out.push({ id: `sample-${i}`, conversations: turns });
  }
  // malformed or untidy records, as real ShareGPT dumps have (each is counted, never a crash)
  const ok = (id: string) => ({
    id,
    conversations: [
      { from: 'human', value: 'Hi!' },
      { from: 'gpt', value: 'Hello!' },
    ],
  });
  out.push({ id: 'bad-missing-conversations' });
  out.push({
    id: 'bad-value-not-string',
    conversations: [
      { from: 'human', value: 42 },
      { from: 'gpt', value: 'x' },
    ],
  });
  out.push({
    id: 'bad-role',
    conversations: [
      { from: 'narrator', value: 'Once upon a time' },
      { from: 'gpt', value: 'x' },
    ],
  });
  out.push({
    id: 'bad-not-alternating',
    conversations: [
      { from: 'human', value: 'a' },
      { from: 'human', value: 'b' },
      { from: 'gpt', value: 'c' },
    ],
  });
  out.push({
    id: 'untidy-first-turn-gpt',
    conversations: [{ from: 'gpt', value: 'Welcome!' }, ...ok('x').conversations],
  });
  out.push({
    id: 'untidy-empty-turns',
    conversations: [...ok('x').conversations, { from: 'human', value: '  ' }, { from: 'gpt', value: '' }],
  });
  out.push({ id: 'bad-only-question', conversations: [{ from: 'human', value: 'Anyone there?' }] });
  out.push('not an object');
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const target = fileURLToPath(new URL('../../../lm/data/sharegpt-sample.json', import.meta.url));
  writeFileSync(target, `${JSON.stringify(makeSample(400), null, 1)}\n`);
  console.log(`wrote ${target}`);
}
