// bench/rl-train-profile.ts (`rl-train --profile`) on a small policy: every section of the profile
// is filled from real steps, and where the process has more than one native thread the
// 1-against-all comparison names each addon call the step made at both settings, times the
// layer's attention after every gap, and leaves the thread setting as it found it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { profileTable, profileTraining } from '../../bench/rl-train-profile.js';
import { configureNative, nativeAddon, nativeSettings, nativeThreads } from '../../native/index.js';

test('rl-train --profile: phases, kernels, addon calls and the thread comparison of a small policy', async () => {
  const preset = { name: 'medium', dModel: 32, layers: 1, heads: 2, contextSteps: 16, batch: 2 } as const;
  configureNative({ threads: 2 });
  try {
    const r = await profileTraining(preset, { steps: 2, warmup: 1, fusedOptimiser: true });
    assert.ok(r.phases.total > 0 && r.phases.forward > 0 && r.phases.backward > 0, JSON.stringify(r.phases));
    assert.ok(r.kernels.length > 0 && r.kernelCallsPerStep > 0);
    const table = profileTable(r);
    assert.match(table, /\| step \(unprofiled\) \| [0-9.]+ \| 100% \|/);
    if (!nativeAddon()) {
      assert.equal(r.threadAB, undefined, 'no addon: no thread comparison');
      return;
    }
    const t = r.threadAB;
    assert.ok(t, 'two native threads: the comparison ran');
    assert.equal(t.threads, 2);
    assert.equal(t.steps, 2);
    assert.ok(t.stepMs[0] > 0 && t.stepMs[1] > 0, `step ms ${t.stepMs}`);
    const names = t.addon.map((a) => a.name);
    for (const name of ['attnForward', 'attnBackward', 'adamw'])
      assert.ok(names.includes(name), `${name} among the timed calls: ${names}`);
    for (const a of t.addon) assert.ok(a.msPerStep[0] > 0 && a.msPerStep[1] > 0, `${a.name}: ${a.msPerStep}`);
    assert.deepEqual(
      t.attentionAfterGap.map((g) => g.gapMs),
      [0, 0.2, 0.5, 2],
    );
    for (const g of t.attentionAfterGap) assert.ok(g.micros[0] > 0 && g.micros[1] > 0, `gap ${g.gapMs}`);
    assert.match(table, /1 thread against 2, 2 steps each, alternated: step [0-9.]+ ms vs [0-9.]+ ms/);
    assert.match(table, /\| attnForward \| [0-9.]+ \| [0-9.]+ \| [0-9.]+× \|/);
    assert.match(table, /\| 2 ms \| [0-9]+ \| [0-9]+ \| [0-9.]+× \|/);
    assert.equal(nativeSettings().threads, 2, 'the thread setting restored');
    assert.equal(nativeThreads(), 2);
  } finally {
    configureNative({ threads: undefined });
  }
});
