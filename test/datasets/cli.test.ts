/** `exp data ...` in a subprocess, as a user runs it: exit codes, output, nothing left on failure. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { writeEpisodes } from '../../datasets/index.js';
import { METADATA_KEY } from '../../datasets/writer.js';
import { exp } from '../helpers/cli.js';
import {
  description,
  freshSeed,
  randomEpisodes,
  runPyScript,
  tempDir,
  withSchemaMetadata,
} from './helpers.js';

describe('exp data', () => {
  test('import d4rl → inspect → validate → convert → inspect', () => {
    const dir = tempDir();
    const h5 = join(dir, 'walker-test-v2.hdf5');
    const want = JSON.parse(runPyScript('make_d4rl.py', [h5, String(freshSeed() % 1000), '1', '40']));
    const out = join(dir, 'w.arrow');
    const imp = exp([
      'data',
      'import',
      'd4rl',
      h5,
      '--out',
      out,
      '--ref-min-score',
      '-5',
      '--ref-max-score',
      '5',
      '--json',
      '--quiet',
    ]);
    assert.equal(imp.code, 0, imp.stderr);
    assert.equal(JSON.parse(imp.stdout).totalEpisodes, want.episodes.length);
    const ins = exp(['data', 'inspect', out, '--json']);
    assert.equal(ins.code, 0, ins.stderr);
    const s = JSON.parse(ins.stdout);
    const rets = want.episodes.map((e: { return: number }) => e.return);
    assert.equal(s.steps, want.N);
    assert.ok(Math.abs(s.return.max - Math.max(...rets)) < 1e-6);
    assert.ok(Math.abs(s.normalizedScore.max - (100 * (Math.max(...rets) + 5)) / 10) < 1e-4);
    assert.match(exp(['data', 'inspect', out]).stdout, /normalised score/);
    const val = exp(['data', 'validate', out]);
    assert.equal(val.code, 0, val.stderr);
    assert.match(val.stdout, /matches metadata/);
    const conv = exp([
      'data',
      'convert',
      out,
      '--layout',
      'minari',
      '--out',
      join(dir, 'mn'),
      '--quiet',
      '--json',
    ]);
    assert.equal(conv.code, 0, conv.stderr);
    assert.equal(JSON.parse(conv.stdout).digest, JSON.parse(imp.stdout).digest);
    assert.equal(
      JSON.parse(exp(['data', 'inspect', join(dir, 'mn'), '--json']).stdout).episodes,
      want.episodes.length,
    );
    rmSync(dir, { recursive: true, force: true });
  });

  test('bad input exits 2 with a message naming file and key, and leaves no output', () => {
    const dir = tempDir();
    const good = join(dir, 'good.arrow');
    const { episodes, obsDim, actDim } = randomEpisodes(freshSeed(), 3);
    writeEpisodes(good, description(obsDim, actDim), episodes);
    const bytes = readFileSync(good);
    writeFileSync(join(dir, 'trunc.arrow'), bytes.subarray(0, bytes.length >> 1));
    writeFileSync(join(dir, 'junk.hdf5'), 'not hdf5');
    const h5 = join(dir, 'nokey.hdf5');
    runPyScript('make_d4rl.py', [h5, '1', '1', '40']);
    // Remove a key with h5py itself, then ask for the import.
    const rm = (key: string, file: string) => runPyScript('edit_h5.py', [file, key]);
    rm('terminals', h5);
    const mism = join(dir, 'mism.hdf5');
    runPyScript('make_d4rl.py', [mism, '2', '1', '40']);
    runPyScript('edit_h5.py', [mism, 'actions', 'shorten']);
    const nan = join(dir, 'nan.hdf5');
    runPyScript('make_d4rl.py', [nan, '3', '1', '40']);
    runPyScript('edit_h5.py', [nan, 'rewards', 'nan']);
    const cases: [string[], RegExp[]][] = [
      [
        ['data', 'inspect', join(dir, 'trunc.arrow')],
        [/trunc\.arrow/, /truncated/],
      ],
      [
        ['data', 'validate', join(dir, 'missing.arrow')],
        [/missing\.arrow/, /no such file/],
      ],
      [
        ['data', 'import', 'd4rl', join(dir, 'junk.hdf5'), '--out', join(dir, 'o1.arrow')],
        [/junk\.hdf5/, /not an HDF5 file/],
      ],
      [
        ['data', 'import', 'd4rl', h5, '--out', join(dir, 'o2.arrow')],
        [/nokey\.hdf5/, /missing key "terminals"/],
      ],
      [
        ['data', 'import', 'd4rl', mism, '--out', join(dir, 'o3.arrow')],
        [/mism\.hdf5/, /"actions"/, /mismatched lengths/],
      ],
      [
        ['data', 'import', 'd4rl', nan, '--out', join(dir, 'o4.arrow')],
        [/nan\.hdf5/, /"rewards"/, /finite/],
      ],
      [
        ['data', 'import', 'minari', 'nope/none-v0', '--out', join(dir, 'o5.arrow')],
        [/nope\/none-v0/, /no Minari dataset/],
      ],
      [['data', 'convert', good, '--layout', 'parquet', '--out', join(dir, 'o6')], [/--layout/]],
    ];
    const before = readdirSync(dir).sort();
    for (const [args, patterns] of cases) {
      const r = exp(args, { env: { MINARI_DATASETS_PATH: dir } });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      for (const p of patterns) assert.match(r.stderr, p, args.join(' '));
    }
    assert.deepEqual(readdirSync(dir).sort(), before, 'no output or temporaries left behind');
    rmSync(dir, { recursive: true, force: true });
  });

  test('malformed metadata JSON in either layout: `exp data inspect` exits 2 naming the file', () => {
    const dir = tempDir();
    const { episodes, obsDim, actDim } = randomEpisodes(freshSeed(), 3);
    const file = join(dir, 'bad.arrow');
    writeEpisodes(file, description(obsDim, actDim), episodes);
    withSchemaMetadata(file, METADATA_KEY, '{"total_episodes": 3,');
    const minari = join(dir, 'bad-minari');
    writeEpisodes(minari, description(obsDim, actDim), episodes, { layout: 'minari' });
    const md = join(minari, 'data', 'metadata.json');
    writeFileSync(md, readFileSync(md, 'utf8').slice(0, 20));
    for (const [path, named] of [
      [file, [/bad\.arrow/, /"metadata\.json"/, /invalid JSON/]],
      [minari, [/bad-minari\/data\/metadata\.json/, /invalid JSON/]],
    ] as [string, RegExp[]][]) {
      const r = exp(['data', 'inspect', path]);
      assert.equal(r.code, 2, `${path}: ${r.stderr}`);
      for (const p of named) assert.match(r.stderr, p, path);
      assert.equal(r.stdout, '');
    }
    rmSync(dir, { recursive: true, force: true });
  });
});
