// The memory plan reproduces the shape of the paper's Table 3 and the overlap condition's
// block sizes (PAPER.md §1).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  deviceBytes,
  HARDWARE_PRESETS,
  MODEL_PRESETS,
  maxContext,
  parseModel,
  minBlockSize,
  parameterCount,
  planTable,
} from '../../ring/index.js';

describe('plan', () => {
  test('LLaMA presets have the published parameter counts', () => {
    const billions = (k: string) => parameterCount(MODEL_PRESETS[k]) / 1e9;
    assert.ok(Math.abs(billions('7b') - 6.74) < 0.05, `7b: ${billions('7b')}`);
    assert.ok(Math.abs(billions('13b') - 13.0) < 0.1, `13b: ${billions('13b')}`);
    assert.ok(Math.abs(billions('30b') - 32.5) < 0.3, `30b: ${billions('30b')}`);
    assert.ok(Math.abs(billions('3b') - 3.43) < 0.05, `3b: ${billions('3b')}`);
  });

  for (const [model, devices] of [
    ['3b', 8],
    ['7b', 8],
    ['7b', 32],
    ['13b', 16],
  ] as const) {
    test(`Table 3 shape: ${model} on ${devices}×80GB`, () => {
      const rows = Object.fromEntries(
        planTable({ model: MODEL_PRESETS[model], devices, memoryBytes: 80e9 }).map((r) => [
          r.method,
          r.maxContext,
        ]),
      );
      assert.ok(
        rows.vanilla > 0 && rows.vanilla * 4 < rows.memeff,
        `vanilla ${rows.vanilla} ≪ memeff ${rows.memeff}`,
      );
      assert.ok(rows.memeff < rows.blockwise, `memeff ${rows.memeff} < BPT ${rows.blockwise}`);
      const ratio = rows.ring / rows.blockwise;
      assert.ok(
        ratio >= 0.85 * devices && ratio <= devices * 1.01,
        `ring/BPT = ${ratio.toFixed(2)} for N=${devices}`,
      );
    });
  }

  test('one device: ring equals BPT up to its receive buffers', () => {
    const o = { model: MODEL_PRESETS['7b'], devices: 1, memoryBytes: 200e9 }; // 16 B/param × 6.7B needs > 80 GB alone
    const ring = maxContext('ring', o);
    const bpt = maxContext('blockwise', o);
    assert.ok(ring <= bpt && ring > 0.85 * bpt);
  });

  test('harness model: fp32 layer inputs + one layer backward, replicated weights; ring N× BPT', () => {
    // a random small GQA model, counted by hand: L·h + 4h + 4·h_kv floats a token, 16 B a parameter
    const heads = [2, 4, 8][Math.floor(Math.random() * 3)];
    const kvHeads = heads / 2;
    const hidden = heads * 16;
    const layers = 1 + Math.floor(Math.random() * 4);
    const model = parseModel(`${hidden},${layers},${heads},${3 * hidden},256,${kvHeads}`);
    assert.equal(model.kvHeads, kvHeads);
    const P =
      layers * (2 * hidden * hidden + hidden * hidden + 3 * hidden * 3 * hidden + 2 * hidden) +
      2 * 256 * hidden +
      hidden;
    assert.equal(parameterCount(model), P);
    const o = { model, devices: 4, memoryBytes: 64 * 2 ** 20, implementation: 'harness' as const };
    const s = 4096;
    const perToken = 4 * (layers * hidden + 4 * hidden + 4 * (hidden / 2));
    // BPT: the largest of the last forward, the final norm's backward and the chunked backward
    // (q, dq, dO per 1,024 rows: ≈ 6·h a row with the chunk's slices of x and dy)
    const L = layers;
    const peak = Math.max(
      L * hidden + 2 * hidden + hidden,
      (L + 3) * hidden,
      L * hidden + hidden + 2 * hidden,
    );
    const chunked = 4 * (s * peak + 1024 * 6 * hidden);
    assert.equal(deviceBytes('blockwise', s, o), chunked + 16 * P);
    assert.equal(deviceBytes('blockwise', 1024, o), 1024 * perToken + 16 * P);
    assert.equal(deviceBytes('ring', s, o), (s / 4) * perToken + 16 * P);
    assert.equal(deviceBytes('ring', s, { ...o, runtimeBytes: 1000 }), (s / 4) * perToken + 16 * P + 1000);
    // not modelled: tfjs autodiff keeps every intermediate of vanilla and memeff
    assert.ok(Number.isNaN(maxContext('vanilla', o)) && Number.isNaN(maxContext('memeff', o)));
    const ring = maxContext('ring', o);
    const bpt = maxContext('blockwise', o);
    // BPT's chunked backward holds (L+3)·h floats a token, a ring device (L+6)·h for each of its
    // s/N tokens (GQA with h_kv = h/2): ring ≈ N·(L+3)/(L+6) × BPT, 2.29× at L = 1 to 2.8× at L = 4
    const expected = (4 * (L + 3)) / (L + 6);
    assert.ok(
      Math.abs(ring / bpt / expected - 1) < 0.1,
      `ring ${ring} vs BPT ${bpt}: expected ≈ ${expected.toFixed(2)}×`,
    );
    for (const [method, max] of [
      ['blockwise', bpt],
      ['ring', ring],
    ] as const)
      assert.ok(
        deviceBytes(method, max, o) <= o.memoryBytes && deviceBytes(method, max + 256, o) > o.memoryBytes,
        `${method}: ${max} is the largest multiple of 256 that fits`,
      );
    assert.throws(
      () => parseModel('64,2,4,172,256,3'),
      /multiple of heads \(4\), and heads of kvHeads \(3\)/,
    );
  });

  test("overlap condition gives the paper's minimal block sizes", () => {
    const k = (h: string) => minBlockSize(HARDWARE_PRESETS[h].flops, HARDWARE_PRESETS[h].bandwidth) / 1000;
    assert.ok(Math.abs(k('a100-nvlink') - 1.0) < 0.1, `A100 NVLink ${k('a100-nvlink')}K`);
    assert.ok(Math.abs(k('a100-infiniband') - 24.5) < 1, `A100 IB ${k('a100-infiniband')}K`);
    assert.ok(Math.abs(k('tpuv4') - 1.0) < 0.1, `TPUv4 ${k('tpuv4')}K`);
    assert.throws(() => minBlockSize(0, 1), /FLOP\/s and bandwidth must be positive/);
  });
});
