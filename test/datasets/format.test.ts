import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isInputError } from '../../common/index.js';
import {
  boxSpace,
  convertDataset,
  createWriter,
  type EpisodeInput,
  inspectDataset,
  openDataset,
  type TrajectoryDataset,
  validateDataset,
  writeEpisodes,
} from '../../datasets/index.js';
import { normalizedScore, referenceScores } from '../../rl/index.js';
import { description, freshSeed, randomEpisodes, tempDir } from './helpers.js';

function assertSame(ds: TrajectoryDataset, eps: EpisodeInput[], obsDim: number, actDim: number): void {
  assert.equal(ds.numEpisodes, eps.length);
  for (const [i, want] of eps.entries()) {
    const got = ds.episode(i);
    const T = want.rewards.length;
    assert.equal(got.length, T);
    assert.deepEqual(got.observations, Float32Array.from(want.observations));
    assert.deepEqual(got.actions, Float32Array.from(want.actions));
    assert.deepEqual(got.rewards, Float64Array.from(want.rewards));
    assert.deepEqual(
      [...got.terminations],
      Array.from(want.terminations, (x) => (x ? 1 : 0)),
    );
    assert.deepEqual(
      [...got.truncations],
      Array.from(want.truncations, (x) => (x ? 1 : 0)),
    );
    for (const [k, v] of Object.entries(want.infos ?? {}))
      assert.deepEqual(got.infos?.[k], Float32Array.from(v));
    // Random access to a few rows gives the same values as the whole episode.
    const start = Math.floor(T / 3);
    const count = Math.max(1, Math.floor(T / 2));
    const s = ds.steps(i, start, count);
    const n = Math.min(count, T - start);
    assert.deepEqual(s.observations, got.observations.subarray(start * obsDim, (start + n) * obsDim));
    assert.deepEqual(s.actions, got.actions.subarray(start * actDim, (start + n) * actDim));
    assert.deepEqual(s.rewards, got.rewards.subarray(start, start + n));
    assert.deepEqual(s.terminations, got.terminations.subarray(start, start + n));
  }
}

function expectInputError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isInputError(err), `expected an InputError; got ${String(err)}`);
    for (const p of parts)
      assert.match(
        (err as Error).message,
        typeof p === 'string' ? new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : p,
      );
    return true;
  });
}

describe('trajectory format round trip', () => {
  for (const layout of ['file', 'minari'] as const) {
    for (const batchRows of [7, 65536]) {
      const seed = freshSeed();
      test(`layout=${layout} batchRows=${batchRows} seed=${seed}`, () => {
        const dir = tempDir();
        const { episodes, obsDim, actDim } = randomEpisodes(seed, 2 + (seed % 9), { infos: seed % 2 === 0 });
        const out = join(dir, layout === 'file' ? 'd.arrow' : 'test/random-v0');
        const res = writeEpisodes(out, description(obsDim, actDim), episodes, { layout, batchRows });
        const steps = episodes.reduce((s, e) => s + e.rewards.length, 0);
        assert.equal(res.totalSteps, steps);
        assert.match(res.digest, /^[0-9a-f]{8}$/);
        const ds = openDataset(out);
        try {
          assert.equal(ds.totalSteps, steps);
          assert.equal(ds.obsDim, obsDim);
          assertSame(ds, episodes, obsDim, actDim);
          // Returns (stored or computed) against a plain sum; scan covers every row once.
          const returns = ds.returns();
          for (const [i, e] of episodes.entries())
            assert.ok(Math.abs(returns[i] - e.rewards.reduce((a, b) => a + b, 0)) < 1e-9);
          let rows = 0;
          let rewardSum = 0;
          for (const b of ds.scan()) {
            rows += b.rows;
            for (const r of b.rewards) rewardSum += r;
          }
          assert.equal(rows, steps + episodes.length);
          assert.ok(Math.abs(rewardSum - returns.reduce((a, b) => a + b, 0)) < 1e-6);
          // Stored state mean/std against numpy-style population moments over the T step rows.
          const mean = new Float64Array(obsDim);
          let n = 0;
          for (const e of episodes) {
            for (let t = 0; t < e.rewards.length; t++)
              for (let j = 0; j < obsDim; j++) mean[j] += e.observations[t * obsDim + j];
            n += e.rewards.length;
          }
          for (const [j, m] of (ds.info.obsMean ?? []).entries()) assert.ok(Math.abs(m - mean[j] / n) < 1e-5);
        } finally {
          ds.close();
        }
        assert.equal(validateDataset(out).contentSha256, res.contentSha256);
        rmSync(dir, { recursive: true, force: true });
      });
    }
  }

  test('the digest is the same in both layouts and survives convert both ways', () => {
    const dir = tempDir();
    const { episodes, obsDim, actDim } = randomEpisodes(freshSeed(), 5);
    const a = writeEpisodes(join(dir, 'a.arrow'), description(obsDim, actDim), episodes);
    const b = writeEpisodes(join(dir, 'b'), description(obsDim, actDim), episodes, { layout: 'minari' });
    assert.equal(a.contentSha256, b.contentSha256);
    const c = convertDataset(join(dir, 'b'), join(dir, 'c.arrow'), 'file');
    const d = convertDataset(join(dir, 'a.arrow'), join(dir, 'd'), 'minari');
    assert.equal(c.contentSha256, a.contentSha256);
    assert.equal(d.contentSha256, a.contentSha256);
    const ds = openDataset(join(dir, 'c.arrow'));
    assertSame(ds, episodes, obsDim, actDim);
    assert.equal(ds.info.envId, 'Test-v0');
    assert.equal(ds.info.refMaxScore, 10);
    ds.close();
    const s = inspectDataset(join(dir, 'd'));
    assert.equal(s.episodes, 5);
    const rets = episodes.map((e) => e.rewards.reduce((x, y) => x + y, 0));
    assert.ok(Math.abs(s.return.max - Math.max(...rets)) < 1e-9);
    // the refs the writer recorded survive the conversion and score the returns (rl/score.ts)
    assert.equal(s.refMinScore, -10);
    assert.equal(s.refMaxScore, 10);
    const refs = referenceScores({ info: s });
    assert.equal(refs?.source, 'dataset');
    assert.ok(
      Math.abs(
        normalizedScore(s.return.max, refs ?? { min: Number.NaN, max: Number.NaN }) -
          (100 * (Math.max(...rets) + 10)) / 20,
      ) < 1e-9,
    );
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('writer atomicity', () => {
  for (const layout of ['file', 'minari'] as const) {
    test(`layout=${layout}: an aborted write leaves the previous dataset, a failed first write leaves nothing`, () => {
      const dir = tempDir();
      const out = join(dir, layout === 'file' ? 'd.arrow' : 'd');
      const first = randomEpisodes(freshSeed(), 3, { obsDim: 4, actDim: 2 });
      const before = writeEpisodes(out, description(4, 2), first.episodes, { layout });
      const w = createWriter(out, description(4, 2), { layout, batchRows: 5 });
      for (const e of randomEpisodes(freshSeed(), 4, { obsDim: 4, actDim: 2 }).episodes) w.addEpisode(e);
      w.abort();
      assert.equal(validateDataset(out).contentSha256, before.contentSha256);
      assert.deepEqual(readdirSync(dir), [layout === 'file' ? 'd.arrow' : 'd']);
      // A bad episode mid-write aborts: the target stays as it was, no temporaries remain.
      const bad = {
        ...first.episodes[0],
        rewards: Float64Array.of(...first.episodes[0].rewards.slice(0, -1), Number.NaN),
      };
      expectInputError(
        () => writeEpisodes(join(dir, 'new'), description(4, 2), [first.episodes[1], bad], { layout }),
        'rewards',
        'finite',
        'NaN',
      );
      assert.deepEqual(readdirSync(dir), [layout === 'file' ? 'd.arrow' : 'd']);
      rmSync(dir, { recursive: true, force: true });
    });
  }

  test('an interrupted writer process leaves no file at the target', async () => {
    const dir = tempDir();
    const out = join(dir, 'big.arrow');
    const { spawn } = await import('node:child_process');
    const script = `
      import { createWriter, boxSpace } from ${JSON.stringify(new URL('../../datasets/index.js', import.meta.url).href)};
      const w = createWriter(${JSON.stringify(out)}, { datasetId: 'test/kill-v0', observationSpace: boxSpace(8), actionSpace: boxSpace(2) }, { batchRows: 1000 });
      const T = 1000;
      const ep = { observations: new Float32Array((T + 1) * 8), actions: new Float32Array(T * 2), rewards: new Float64Array(T), terminations: new Uint8Array(T), truncations: new Uint8Array(T) };
      let n = 0;
      setInterval(() => { for (let i = 0; i < 20; i++) w.addEpisode(ep); if (++n === 3) process.stdout.write('writing\\n'); }, 1);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.equal(existsSync(out), false);
    // Only hidden temporaries may remain; nothing named like the target.
    for (const name of readdirSync(dir)) assert.ok(name.startsWith('.'), name);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('bad input', () => {
  const eps = () => randomEpisodes(freshSeed(), 3, { obsDim: 3, actDim: 2 }).episodes;
  const cases: [string, (e: EpisodeInput[]) => EpisodeInput[], string[]][] = [
    [
      'NaN reward',
      (e) => [{ ...e[0], rewards: Float64Array.of(Number.NaN, ...Array.from(e[0].rewards).slice(1)) }],
      ['"rewards"', 'finite', 'NaN'],
    ],
    [
      'infinite reward',
      (e) => [
        { ...e[0], rewards: Float64Array.of(Number.POSITIVE_INFINITY, ...Array.from(e[0].rewards).slice(1)) },
      ],
      ['"rewards"', 'Infinity'],
    ],
    [
      'mismatched lengths',
      (e) => [{ ...e[0], actions: Float32Array.from(e[0].actions).subarray(2) }],
      ['"actions"', 'mismatched lengths'],
    ],
    [
      'wrong observation dims',
      (e) => [{ ...e[0], observations: new Float32Array((e[0].rewards.length + 1) * 4) }],
      ['"observations"', 'expected'],
    ],
    [
      'empty episode',
      () => [
        { observations: new Float32Array(3), actions: [], rewards: [], terminations: [], truncations: [] },
      ],
      ['"rewards"', 'at least 1 step'],
    ],
    ['empty dataset', () => [], ['empty dataset']],
  ];
  for (const [name, mutate, parts] of cases) {
    test(`${name} → InputError naming file and key, nothing written`, () => {
      const dir = tempDir();
      const out = join(dir, 'x.arrow');
      expectInputError(() => writeEpisodes(out, description(3, 2), mutate(eps())), out, ...parts);
      assert.deepEqual(readdirSync(dir), []);
      rmSync(dir, { recursive: true, force: true });
    });
  }

  test('truncated, corrupt and foreign files are rejected on open', () => {
    const dir = tempDir();
    const out = join(dir, 'd.arrow');
    writeEpisodes(out, description(3, 2), eps());
    const bytes = readFileSync(out);
    writeFileSync(join(dir, 'trunc.arrow'), bytes.subarray(0, Math.floor(bytes.length * 0.7)));
    expectInputError(() => openDataset(join(dir, 'trunc.arrow')), 'trunc.arrow', 'truncated');
    const corrupt = Buffer.from(bytes);
    corrupt.fill(0xab, corrupt.length - 200, corrupt.length - 10);
    writeFileSync(join(dir, 'corrupt.arrow'), corrupt);
    expectInputError(() => openDataset(join(dir, 'corrupt.arrow')), 'corrupt.arrow');
    writeFileSync(join(dir, 'text.arrow'), 'hello, not arrow at all');
    expectInputError(() => openDataset(join(dir, 'text.arrow')), 'text.arrow', 'not an Arrow IPC file');
    expectInputError(() => openDataset(join(dir, 'missing.arrow')), 'missing.arrow', 'no such file');
    rmSync(dir, { recursive: true, force: true });
  });

  test('Minari directory: missing metadata key, missing episode, wrong dims', () => {
    const dir = tempDir();
    const out = join(dir, 'm');
    writeEpisodes(out, description(3, 2), eps(), { layout: 'minari' });
    const md = join(out, 'data', 'metadata.json');
    const meta = JSON.parse(readFileSync(md, 'utf8'));
    writeFileSync(md, JSON.stringify({ ...meta, observation_space: undefined }));
    expectInputError(() => openDataset(out), 'metadata.json', 'missing key "observation_space"');
    writeFileSync(
      md,
      JSON.stringify({
        ...meta,
        observation_space: JSON.stringify({ type: 'Box', dtype: 'float32', shape: [5], low: [], high: [] }),
      }),
    );
    expectInputError(
      () => openDataset(out),
      'part-0.arrow',
      'column "observations"',
      'fixed_size_list<float32>[5]',
      'got fixed_size_list<float32>[3]',
    );
    writeFileSync(md, JSON.stringify(meta));
    rmSync(join(out, 'data', '2'), { recursive: true });
    expectInputError(() => openDataset(out), 'missing episode directory "2"');
    rmSync(dir, { recursive: true, force: true });
  });

  test('dataset ids must be Minari ids', () => {
    expectInputError(
      () => createWriter('/tmp/never.arrow', { ...description(1, 1), datasetId: 'no version' }),
      'dataset id',
    );
    assert.equal(existsSync('/tmp/never.arrow'), false);
    assert.equal(boxSpace(2).type, 'Box');
  });
});
