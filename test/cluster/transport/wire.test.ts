// The ZeroMQ ring's frames (cluster/transport/wire.ts, issue 13): every message type survives
// encode → decode, and a frame that breaks the format is a MalformedFrameError naming the type and
// the field, never a default value (bad JSON used to be parsed to {}).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng } from '../../../common/index.js';
import {
  type ControlMessage,
  decodeControl,
  decodeData,
  encodeControl,
  encodeData,
  MalformedFrameError,
} from '../../../cluster/transport/wire.js';

const frames = (...parts: (string | Buffer)[]) =>
  parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p));
const wire = (m: ControlMessage) => frames(...encodeControl(m));

const JOIN: ControlMessage = {
  type: 'JOIN',
  rank: 2,
  worldSize: 3,
  protocol: 1,
  spec: { 'k/v shard shape': [1, 2, 16, 8], dtype: 'float32', causal: true, T: 48 },
  link: 'tcp://127.0.0.1:4242',
  host: 'h',
  pid: 77,
};

describe('control messages', () => {
  const every: ControlMessage[] = [
    { type: 'HELLO', nonce: 'ab' },
    { type: 'CHALLENGE', nonce: 'cd' },
    { type: 'AUTH', rank: 1, proof: 'f'.repeat(64) },
    { type: 'WELCOME', proof: '0'.repeat(64) },
    { type: 'REFUSED', reason: 'authentication failed' },
    JOIN,
    { type: 'PEERS', peers: ['tcp://a:1', 'tcp://b:2'], session: 's' },
    { type: 'ERROR', message: 'ranks disagree' },
    { type: 'PING' },
    { type: 'PONG' },
    { type: 'ABORT', reason: 'rank 1 stopped' },
    { type: 'DONE' },
    { type: 'CLOSE' },
  ];
  for (const m of every) test(`${m.type} round-trips`, () => assert.deepEqual(decodeControl(wire(m)), m));

  const bad: [string, Buffer[], RegExp][] = [
    ['bad JSON', frames('HELLO', '{"nonce":'), /malformed HELLO message: the body is not JSON/],
    [
      'a body that is not an object',
      frames('ABORT', '"x"'),
      /malformed ABORT message: the body is not an object/,
    ],
    ['a missing field', frames('AUTH', '{"proof":"ff"}'), /malformed AUTH message: 'rank' is not an integer/],
    [
      'a field of the wrong type',
      frames('REFUSED', '{"reason":3}'),
      /malformed REFUSED message: 'reason' is not a string/,
    ],
    ['peers that are not addresses', frames('PEERS', '{"session":"s","peers":[1]}'), /'peers' is not a list/],
    [
      'a spec with objects',
      frames('JOIN', JSON.stringify({ ...JOIN, type: undefined, spec: { a: {} } })),
      /'spec'/,
    ],
    ['an unknown type', frames('HELO', '{}'), /unknown message type 'HELO'/],
    ['a data frame tag', frames('D', '{}'), /unknown message type 'D'/],
    ['no body', frames('PING'), /malformed PING message: 1 frames, expected 2/],
    ['no frames at all', [], /unknown message type ''/],
  ];
  for (const [name, f, want] of bad)
    test(`${name} is refused`, () =>
      assert.throws(
        () => decodeControl(f),
        (e: Error) => e instanceof MalformedFrameError && want.test(e.message),
      ));
});

describe('data frames', () => {
  test('random parts round-trip bit for bit', () => {
    const seed = Date.now() % 100_000;
    console.log(`seed ${seed}`);
    const rng = new Rng(seed);
    const parts = Array.from({ length: 1 + rng.int(4) }, () =>
      Float32Array.from({ length: rng.int(50) }, () => rng.normal()),
    );
    const got = decodeData(encodeData(parts));
    assert.equal(got.length, parts.length);
    for (let i = 0; i < got.length; i++) assert.deepEqual(got[i], parts[i], `part ${i} (seed ${seed})`);
  });

  const header = (...ints: number[]) => Buffer.from(Int32Array.from(ints).buffer);
  const floats = (n: number) => Buffer.from(new Float32Array(n).buffer);
  const bad: [string, Buffer[], RegExp][] = [
    ['no header', frames('D'), /no int32 header/],
    ['a header of odd bytes', frames('D', Buffer.alloc(6)), /no int32 header/],
    [
      'fewer parts than announced',
      frames('D', header(2, 4, 4), floats(4)),
      /announces 2 parts \(2 lengths\), 1 came/,
    ],
    [
      'lengths missing from the header',
      frames('D', header(2, 4), floats(4), floats(4)),
      /announces 2 parts \(1 lengths\)/,
    ],
    [
      'a part of the wrong size',
      frames('D', header(1, 4), floats(3)),
      /part 0 holds 12 bytes, the header says 4 floats/,
    ],
  ];
  for (const [name, f, want] of bad)
    test(`${name} is refused`, () =>
      assert.throws(
        () => decodeData(f),
        (e: Error) => e instanceof MalformedFrameError && want.test(e.message),
      ));
});
