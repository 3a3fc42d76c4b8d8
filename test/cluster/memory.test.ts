// Peak tensor bytes per device (tf.profile; peakTensorBytesPerDevice) grow as O(s²) for vanilla, O(s) for blockwise and
// O(s/N) for ring (issue 2), measured forward+backward on device workers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { initBackend } from '../../native/index.js';
import { RingGroup } from '../../cluster/index.js';
import { benchAttention } from '../../experiments/bench/attention.js';

const base = {
  batch: 1,
  heads: 2,
  kvHeads: 2,
  headDim: 8,
  blockSize: 32,
  causal: true,
  layout: 'contiguous' as const,
  backward: true,
  check: false,
  backend: 'wasm' as const,
  seed: 1,
  repeats: 0,
};

describe('peak memory growth', () => {
  let one: RingGroup;
  let four: RingGroup;
  before(async () => {
    await initBackend({ backend: 'wasm' });
    one = await RingGroup.create({ devices: 1, backend: 'wasm' });
    four = await RingGroup.create({ devices: 4, backend: 'wasm' });
  });
  after(async () => {
    await one.dispose();
    await four.dispose();
  });
  const peak = async (impl: 'vanilla' | 'blockwise' | 'ring', seqLen: number) =>
    (
      await benchAttention({
        ...base,
        impl,
        seqLen,
        devices: impl === 'ring' ? 4 : 1,
        group: impl === 'ring' ? four : one,
      })
    ).peakTensorBytesPerDevice;

  test('vanilla grows quadratically (×2 length → ≥ ×3 bytes)', async () => {
    const ratio = (await peak('vanilla', 1024)) / (await peak('vanilla', 512));
    assert.ok(ratio >= 3, `ratio ${ratio.toFixed(2)}`);
  });

  test('blockwise grows linearly (×2 length → ×1.6–2.4 bytes)', async () => {
    const ratio = (await peak('blockwise', 1024)) / (await peak('blockwise', 512));
    assert.ok(ratio >= 1.6 && ratio <= 2.4, `ratio ${ratio.toFixed(2)}`);
  });

  test('ring grows linearly in s and shrinks as 1/N', async () => {
    const ring512 = await peak('ring', 512);
    const ring1024 = await peak('ring', 1024);
    const blockwise1024 = await peak('blockwise', 1024);
    const growth = ring1024 / ring512;
    assert.ok(growth >= 1.6 && growth <= 2.4, `growth ${growth.toFixed(2)}`);
    const perDevice = blockwise1024 / ring1024;
    assert.ok(perDevice >= 3, `blockwise/ring(N=4) per-device bytes ${perDevice.toFixed(2)}, expected ≈ 4`);
  });
});
