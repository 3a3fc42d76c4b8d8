// The training kit (train/): gradients summed over micro-batches and a real ring of devices
// against a plain sum; one optimizer step against a float64 AdamW with clipping; the checkpoint
// codec's round trip, its legacy names and its refusals; the metric vocabulary against the README
// and against every metric key the recipes and trainers write.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { initBackend } from '../../native/index.js';
import { RingGroup } from '../../cluster/index.js';
import {
  decodeTrainingState,
  encodeTrainingState,
  GradientSum,
  isKnownMetric,
  METRICS,
  ringTask,
  shardColumns,
} from '../../train/index.js';
import { repoRoot } from '../helpers/cli.js';
import { relError } from '../helpers/reference.js';
import type { GradientTaskArgs, GradientTaskResult } from './fixtures/gradient-task.js';

const task = new URL('./fixtures/gradient-task.js', import.meta.url).href;

describe('GradientSum and stepOptimizer over a ring', () => {
  let group: RingGroup;
  before(async () => {
    await initBackend({ backend: 'wasm' });
    group = await RingGroup.create({ devices: 2, backend: 'wasm' });
  });
  after(async () => {
    await group.dispose();
  });

  for (const clipNorm of [0, 0.5]) {
    test(`2 devices × 3 micro-batches: sum, loss, norm and the AdamW step match a float64 reference (clip ${clipNorm})`, async () => {
      const rng = new Rng((Math.random() * 2 ** 31) | 0);
      const shapes = [[3, 4], [5]];
      const sizes = shapes.map((s) => s.reduce((x, y) => x * y, 1));
      const micro = 3;
      const args: GradientTaskArgs[] = [0, 1].map(() => ({
        grads: Array.from({ length: micro }, () => sizes.map((n) => Float32Array.from(rng.normalArray(n)))),
        losses: Array.from({ length: micro }, () => rng.normal()),
        shapes,
        seed: 7,
        lr: 0.01,
        clipNorm,
      }));
      const total = sizes.reduce((x, y) => x + y, 0);
      // a typed task that sizes its own messages: the all-reduce's largest share
      const sumAndStep = ringTask<GradientTaskArgs, GradientTaskResult>(task, 'sumAndStep', () =>
        GradientSum.messageFloats(total, 1, 2),
      );
      const results = await sumAndStep.run(group, args);
      // the plain reference: every gradient of every device and micro-batch added in float64
      const ref = new Float64Array(total);
      let loss = 0;
      for (const a of args)
        a.grads.forEach((mb, k) => {
          let off = 0;
          for (const g of mb) {
            g.forEach((x, j) => {
              ref[off + j] += x;
            });
            off += g.length;
          }
          loss += a.losses[k];
        });
      for (const r of results) {
        assert.ok(relError(r.summed, ref) < 1e-6, `summed gradients: rel error ${relError(r.summed, ref)}`);
        assert.ok(Math.abs(r.extras[0] - loss) < 1e-5, `summed loss ${r.extras[0]} vs ${loss}`);
      }
      const mean = Array.from(ref, (x) => x / micro);
      const norm = Math.sqrt(mean.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(results[0].gradNorm - norm) < 1e-5 * norm, `norm ${results[0].gradNorm} vs ${norm}`);
      // one AdamW step from the same weights: m = (1-b1) g, v = (1-b2) g², bias-corrected → lr·g/(|g|+eps)
      const scale = clipNorm > 0 && norm > clipNorm ? clipNorm / norm : 1;
      const init = new Rng(7);
      let off = 0;
      shapes.forEach((s, i) => {
        const w0 = init.normalArray(sizes[i]);
        const want = w0.map((w, j) => {
          const g = mean[off + j] * scale;
          return w - (0.01 * g) / (Math.abs(g) + 1e-8);
        });
        for (const r of results)
          assert.ok(
            relError(r.weights[i], want) < 1e-5,
            `weights ${i} (${s}): rel error ${relError(r.weights[i], want)}`,
          );
        off += sizes[i];
      });
      assert.deepEqual(results[0].weights, results[1].weights, 'every replica ends with the same weights');
    });
  }
});

describe('the checkpoint codec', () => {
  const rng = new Rng((Math.random() * 2 ** 31) | 0);
  const state = {
    weights: [Float32Array.from(rng.normalArray(6)), Float32Array.from(rng.normalArray(11))],
    optimizer: {
      step: 17,
      m: [Float32Array.from(rng.normalArray(6)), Float32Array.from(rng.normalArray(11))],
      v: [Float32Array.from(rng.normalArray(6)), Float32Array.from(rng.normalArray(11))],
    },
  };

  test('named tensors round-trip (weights.<i>, optimizer.m.<i>, optimizer.v.<i>)', () => {
    const tensors = encodeTrainingState(state);
    assert.deepEqual(Object.keys(tensors).sort(), [
      'optimizer.m.0',
      'optimizer.m.1',
      'optimizer.v.0',
      'optimizer.v.1',
      'weights.0',
      'weights.1',
    ]);
    assert.deepEqual(decodeTrainingState(tensors, 17), state);
  });

  test('checkpoints written with the old names (w<i>, m<i>, v<i>) still load, index order kept past 9', () => {
    const many = Array.from({ length: 12 }, (_, i) => Float32Array.of(i));
    const legacy: Record<string, { data: Float32Array }> = {};
    many.forEach((d, i) => {
      legacy[`w${i}`] = { data: d };
      legacy[`m${i}`] = { data: d };
      legacy[`v${i}`] = { data: d };
    });
    const back = decodeTrainingState(legacy, 3);
    assert.deepEqual(back.weights, many);
    assert.equal(back.optimizer.step, 3);
  });

  test('a missing or mis-sized tensor is refused by name', () => {
    const tensors = encodeTrainingState(state);
    const { 'optimizer.v.1': _dropped, ...missing } = tensors;
    assert.throws(() => decodeTrainingState(missing, 1), /2 weights but 2 first and 1 second moments/);
    const gap = { ...tensors };
    delete gap['weights.0'];
    assert.throws(() => decodeTrainingState(gap, 1), /'weights\.0' is missing/);
    const short = { ...tensors, 'optimizer.m.0': { shape: [2], data: new Float32Array(2) } };
    assert.throws(() => decodeTrainingState(short, 1), /moments of weight 0 have 2\/6 values, weight 6/);
  });
});

describe('the metric vocabulary', () => {
  test("the README's metric table lists exactly METRICS", () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const section = readme.split('### Metric vocabulary')[1]?.split('\n## ')[0]?.split('\n### ')[0];
    assert.ok(section, "README has a '### Metric vocabulary' section");
    const listed = [...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]);
    assert.deepEqual(
      listed,
      METRICS.map((m) => m.name),
    );
  });

  test('every metric key written in rl/, lm/, experiments/ and train/ is in the vocabulary', () => {
    const unknown: string[] = [];
    const walk = (dir: string): string[] =>
      readdirSync(dir).flatMap((f) => {
        const p = join(dir, f);
        return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
      });
    for (const room of ['rl', 'lm', 'experiments', 'train'])
      for (const file of walk(join(repoRoot, room))) {
        const text = readFileSync(file, 'utf8');
        // metric keys as string literals: 'train/loss', "eval/return_mean" (templates are patterns)
        for (const m of text.matchAll(/['"]((?:train|eval|perf)\/[a-z0-9_]+)['"]/g))
          if (!isKnownMetric(m[1])) unknown.push(`${relative(repoRoot, file)}: ${m[1]}`);
      }
    assert.deepEqual(unknown, [], 'metric keys outside the vocabulary (train/metrics.ts)');
  });

  test('patterns: <n> matches numbers only, <name> any path', () => {
    assert.ok(isKnownMetric('eval/accuracy_128lines'));
    assert.ok(!isKnownMetric('eval/accuracy_xlines'));
    assert.ok(isKnownMetric('summary/eval/return_mean/mean'));
    assert.ok(!isKnownMetric('train/learning_rate'));
    assert.ok(!isKnownMetric('eval/return'));
  });
});

describe('shardColumns', () => {
  for (const layout of ['contiguous', 'striped'] as const)
    test(`${layout}: the devices' columns partition each row; device r holds the layout's tokens`, () => {
      const rng = new Rng((Math.random() * 2 ** 31) | 0);
      const B = 3;
      const T = 12;
      const N = 4;
      const a = Float32Array.from(rng.normalArray(B * T));
      const seen = new Float32Array(B * T).fill(Number.NaN);
      for (let r = 0; r < N; r++) {
        const part = shardColumns(a, B, T, r, N, layout);
        assert.equal(part.length, (B * T) / N);
        for (let b = 0; b < B; b++)
          for (let t = 0; t < T / N; t++) {
            // plain definition: contiguous blocks of T/N, or every N-th token from r
            const col = layout === 'striped' ? t * N + r : r * (T / N) + t;
            assert.equal(part[b * (T / N) + t], a[b * T + col]);
            seen[b * T + col] = part[b * (T / N) + t];
          }
      }
      assert.deepEqual(seen, a, 'every token on exactly one device');
      assert.throws(() => shardColumns(a, B, T + 1, 0, N, layout), /expected 3 × 13 values, got 36/);
    });
});
