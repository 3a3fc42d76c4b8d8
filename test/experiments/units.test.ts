/** The pure pieces: batch splitting, flattening, checkpoints, Arrow tables, SVG plots, sweep grids. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tableFromIPC } from 'apache-arrow';
import {
  BATCH_LIMITS,
  datasetInfoFromFile,
  expandGrid,
  flattenConfig,
  linePlotSvg,
  loadCheckpoint,
  parseSeeds,
  splitBatch,
  tableToArrow,
  writeCheckpoint,
} from '../../experiments/index.js';
import { Rng } from '../../common/index.js';
import { tempDir } from './util.js';

describe('splitBatch', () => {
  const rng = new Rng(Date.now());
  test('2500 metrics, 250 params, 150 tags: every request within the limits, order kept, nothing lost', () => {
    const metrics = Array.from({ length: 2500 }, (_, i) => ({
      key: `train/m${i % 7}`,
      value: rng.normal(),
      step: i,
      timestamp: i,
    }));
    const params = Array.from({ length: 250 }, (_, i) => ({
      key: `p${i}`,
      value: 'x'.repeat(rng.int(6000)),
    }));
    const tags = Array.from({ length: 150 }, (_, i) => ({ key: `t${i}`, value: String(i) }));
    const parts = splitBatch({ metrics, params, tags });
    for (const p of parts) {
      assert.ok(p.metrics.length <= BATCH_LIMITS.metrics);
      assert.ok(p.params.length <= BATCH_LIMITS.params);
      assert.ok(p.tags.length <= BATCH_LIMITS.tags);
      assert.ok(p.metrics.length + p.params.length + p.tags.length <= BATCH_LIMITS.entities);
      assert.ok(Buffer.byteLength(JSON.stringify({ run_id: 'r'.repeat(32), ...p })) <= 1_000_000);
    }
    assert.deepEqual(
      parts.flatMap((p) => p.metrics),
      metrics,
    );
    assert.deepEqual(
      parts.flatMap((p) => p.params),
      params,
    );
    assert.deepEqual(
      parts.flatMap((p) => p.tags),
      tags,
    );
  });
  test('an empty batch is no request', () => {
    assert.deepEqual(splitBatch({ metrics: [], params: [], tags: [] }), []);
  });
});

describe('config helpers', () => {
  test('flattenConfig joins keys with dots and lists as JSON', () => {
    assert.deepEqual(flattenConfig({ a: { b: 1, c: [1, 2] }, d: 'x', e: true }), {
      'a.b': '1',
      'a.c': '[1,2]',
      d: 'x',
      e: 'true',
    });
  });
  test('sweep seeds and grids', () => {
    assert.deepEqual(parseSeeds('0,2,5-7'), [0, 2, 5, 6, 7]);
    assert.throws(() => parseSeeds('1,x'), /--seeds: expected integers/);
    assert.throws(() => parseSeeds('1,1'), /repeats a seed/);
    assert.deepEqual(expandGrid(['a=1,2', 'b=[1, 2],x']), [
      ['a=1', 'b=[1, 2]'],
      ['a=1', 'b=x'],
      ['a=2', 'b=[1, 2]'],
      ['a=2', 'b=x'],
    ]);
    assert.throws(() => expandGrid(['a']), /--grid 'a': expected key.path=v1,v2/);
  });
});

describe('checkpoints', () => {
  test('write → load round-trips step, RNG state, JSON state and tensors bit for bit', async () => {
    const rng = new Rng(123);
    const dir = join(tempDir('ckpt'), 'step-00000007');
    const w = rng.normalArray(24);
    const ids = Int32Array.from([3, -1, 7]);
    await writeCheckpoint(
      dir,
      {
        step: 7,
        state: { a: [1, 'x'], b: null },
        tensors: { w: { shape: [2, 3, 4], data: w }, ids: { shape: [3], data: ids } },
      },
      rng.getState(),
    );
    const ck = loadCheckpoint(dir);
    assert.equal(ck.step, 7);
    assert.equal(ck.rngState, rng.getState());
    assert.deepEqual(ck.state, { a: [1, 'x'], b: null });
    assert.deepEqual(ck.tensors.w.shape, [2, 3, 4]);
    assert.deepEqual(Array.from(ck.tensors.w.data), Array.from(w));
    assert.ok(ck.tensors.ids.data instanceof Int32Array);
    assert.deepEqual(Array.from(ck.tensors.ids.data), [3, -1, 7]);
  });
});

describe('tables and plots', () => {
  test('Arrow tables keep column types and nulls; the dataset helper reads their schema', async () => {
    const bytes = tableToArrow([
      { method: 'ring', devices: 4, ok: true },
      { method: 'bpt', devices: 1, ok: false, note: 'x' },
    ]);
    const t = tableFromIPC(bytes);
    assert.deepEqual(
      t.schema.fields.map((f) => `${f.name}:${f.type}`),
      ['method:Utf8', 'devices:Float64', 'ok:Bool', 'note:Utf8'],
    );
    assert.deepEqual(
      t.toArray().map((r) => r.toJSON()),
      [
        { method: 'ring', devices: 4, ok: true, note: null },
        { method: 'bpt', devices: 1, ok: false, note: 'x' },
      ],
    );
    const file = join(tempDir('table'), 't.arrow');
    writeFileSync(file, bytes);
    const info = await datasetInfoFromFile(file, 'scaling');
    assert.equal(info.name, 'scaling');
    assert.match(info.digest, /^[0-9a-f]{16}$/);
    // MLflow's schema form (mlflow.types.Schema.to_dict), issue 15
    assert.deepEqual(
      (JSON.parse(info.schema!) as { mlflow_colspec: { name: string; type: string }[] }).mlflow_colspec.map(
        (f) => `${f.name}:${f.type}`,
      ),
      ['method:string', 'devices:double', 'ok:boolean', 'note:string'],
    );
    assert.equal(JSON.parse(info.source).uri, file);
  });
  test('the SVG line plot is well-formed, with a polyline per series and log ticks', () => {
    const svg = linePlotSvg({
      title: 'max context <vs> devices',
      xLabel: 'devices',
      yLabel: 'tokens',
      logX: 2,
      logY: 2,
      series: [
        { name: 'ring', x: [1, 2, 4, 8], y: [8192, 16384, 32768, 65536] },
        { name: 'BPT', x: [1, 2, 4, 8], y: [8192, 8192, 8192, 8192] },
      ],
    });
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    assert.equal(svg.match(/<polyline /g)?.length, 2);
    assert.ok(svg.includes('max context &lt;vs&gt; devices'), 'text is escaped');
    assert.ok(svg.includes('>64K<'), 'power-of-two ticks in K');
    assert.ok(!svg.includes('NaN'));
  });
});
