/**
 * datasets/reader.ts (issue 13): `scan`'s `columns`/`reuse` in both layouts against a full read,
 * and every JSON the reader reads guarded (malformed → an InputError naming the file and key).
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isInputError, Rng } from '../../common/index.js';
import { type Layout, openDataset, type StepBatch, writeEpisodes } from '../../datasets/index.js';
import { INDEX_KEY, METADATA_KEY } from '../../datasets/writer.js';
import { description, freshSeed, randomEpisodes, tempDir, withSchemaMetadata } from './helpers.js';

const COLUMNS = [
  'episodeIds',
  'steps',
  'observations',
  'actions',
  'rewards',
  'terminations',
  'truncations',
] as const;
type Column = (typeof COLUMNS)[number];

/** A batch's columns copied out (a reused scan overwrites its buffers on the next batch). */
function copyOf(b: StepBatch): StepBatch {
  return {
    rows: b.rows,
    episodeIds: b.episodeIds.slice(),
    steps: b.steps.slice(),
    observations: b.observations.slice(),
    actions: b.actions.slice(),
    rewards: b.rewards.slice(),
    terminations: b.terminations.slice(),
    truncations: b.truncations.slice(),
  };
}

function expectInputError(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isInputError(err), `expected an InputError; got ${String(err)}`);
    for (const p of parts)
      assert.ok((err as Error).message.includes(p), `"${(err as Error).message}" lacks "${p}"`);
    return true;
  });
}

describe('scan columns and reuse', () => {
  for (const layout of ['file', 'minari'] as Layout[])
    for (const reuse of [false, true])
      test(`layout=${layout} reuse=${reuse}: the requested columns, equal to a full read; the rest empty`, () => {
        const seed = freshSeed();
        const rng = new Rng(seed);
        const dir = tempDir();
        const { episodes, obsDim, actDim } = randomEpisodes(seed, 6, { maxLen: 30 });
        const out = join(dir, layout === 'file' ? 'd.arrow' : 'd');
        // small batches so the file layout has several (whole episodes each)
        writeEpisodes(out, description(obsDim, actDim), episodes, { layout, batchRows: 40 });
        const ds = openDataset(out);
        try {
          const full = Array.from(ds.scan(), copyOf);
          // the full read itself against what was written, episode by episode (T+1 rows each)
          const rowsPerEpisode = episodes.map((e) => e.rewards.length + 1);
          assert.equal(
            full.reduce((n, b) => n + b.rows, 0),
            rowsPerEpisode.reduce((a, b) => a + b, 0),
          );
          const obs = new Float32Array(full.reduce((n, b) => n + b.observations.length, 0));
          let o = 0;
          for (const b of full) {
            obs.set(b.observations, o);
            o += b.observations.length;
          }
          assert.deepEqual(obs, new Float32Array(episodes.flatMap((e) => [...e.observations])));
          for (let trial = 0; trial < 4; trial++) {
            const wanted = COLUMNS.filter(() => rng.next() < 0.5);
            if (wanted.length === 0) wanted.push(COLUMNS[rng.int(COLUMNS.length)]);
            // copied as each batch comes: a reused scan overwrites its buffers on the next one
            const got = Array.from(ds.scan(wanted, { reuse }), copyOf);
            const name = `seed ${seed} columns ${wanted.join(',')}`;
            assert.equal(got.length, full.length, name);
            for (let k = 0; k < got.length; k++) {
              assert.equal(got[k].rows, full[k].rows, name);
              for (const c of COLUMNS as readonly Column[]) {
                if (wanted.includes(c)) assert.deepEqual(got[k][c], full[k][c], `${name}: batch ${k} ${c}`);
                else assert.equal(got[k][c].length, 0, `${name}: batch ${k} ${c} should be empty`);
              }
            }
          }
        } finally {
          ds.close();
        }
        rmSync(dir, { recursive: true, force: true });
      });
});

describe('malformed JSON is an error naming the file and key', () => {
  const eps = () => randomEpisodes(freshSeed(), 3, { obsDim: 3, actDim: 2 }).episodes;

  test('file layout: schema metadata and episode index', () => {
    const dir = tempDir();
    const out = join(dir, 'd.arrow');
    writeEpisodes(out, description(3, 2), eps());
    const good = readFileSync(out);
    const cases: [string, string, string[]][] = [
      [METADATA_KEY, '{"total_episodes": 3,', [out, `"${METADATA_KEY}"`, 'invalid JSON']],
      [METADATA_KEY, '[1, 2]', [out, `"${METADATA_KEY}"`, 'expected a JSON object']],
      [INDEX_KEY, 'not json', [out, `"${INDEX_KEY}"`, 'invalid JSON']],
      [INDEX_KEY, 'null', [out, `"${INDEX_KEY}"`, 'expected a JSON object']],
      [INDEX_KEY, '{"lengths": [1, 2, "x"], "batch_first_episode": [0]}', [out, `"${INDEX_KEY}".lengths`]],
      [
        INDEX_KEY,
        '{"lengths": [1, 1, 1], "returns": [0, null, 1], "batch_first_episode": [0]}',
        [out, `"${INDEX_KEY}".returns[1]`, 'finite number'],
      ],
      [
        INDEX_KEY,
        '{"lengths": [1, 1, 1], "batch_first_episode": [2]}',
        [out, 'batch_first_episode', 'start at 0'],
      ],
    ];
    for (const [key, value, parts] of cases) {
      writeFileSync(out, good);
      withSchemaMetadata(out, key, value);
      expectInputError(() => openDataset(out), ...parts);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('Minari layout: dataset and episode metadata.json', () => {
    const dir = tempDir();
    const out = join(dir, 'm');
    writeEpisodes(out, description(3, 2), eps(), { layout: 'minari' });
    const md = join(out, 'data', 'metadata.json');
    const epMd = join(out, 'data', '1', 'metadata.json');
    const good = readFileSync(md, 'utf8');
    const goodEp = readFileSync(epMd, 'utf8');
    writeFileSync(md, good.slice(0, good.length - 3));
    expectInputError(() => openDataset(out), md, 'invalid JSON');
    writeFileSync(md, good);
    for (const [text, parts] of [
      ['{"id": 1, "total_steps": ', [epMd, 'invalid JSON']],
      ['"a string"', [epMd, 'expected a JSON object']],
      ['{"id": 1, "total_steps": -4}', [epMd, '"total_steps"', 'non-negative integer']],
      ['{"id": 1, "total_steps": 2, "seed": "7"}', [epMd, '"seed"', 'non-negative integer']],
    ] as [string, string[]][]) {
      writeFileSync(epMd, text);
      expectInputError(() => openDataset(out), ...parts);
    }
    writeFileSync(epMd, goodEp);
    const ds = openDataset(out);
    assert.equal(ds.episode(1).seed, JSON.parse(goodEp).seed);
    ds.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
