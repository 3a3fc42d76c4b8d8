/**
 * Content digests and values checked on open (issue 16 item 6, issue 21). A dataset whose body
 * bytes were changed after writing (a reward, an observation, a NaN in place of a value) must not
 * open under the default verification: it fails naming the file, the episode and the key, and
 * `exp data inspect` exits 2 instead of reporting the stored return. Where 'auto' skips the full
 * read (large files), `verification` says so and the rewards are still checked against the stored
 * returns; 'always' forces the full read.
 *
 * Checked to fail on: the digest comparison removed from the reader (a changed reward opens and
 * reports the stored return), and the finite-value check removed (a NaN reward whose digest
 * matches opens); each introduced by hand in datasets/reader.ts and reverted.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { openDataset, writeEpisodes } from '../../datasets/index.js';
import { exp } from '../helpers/cli.js';
import { description, freshSeed, randomEpisodes, tempDir } from './helpers.js';

const dir = tempDir('ring-ds-verify-');
after(() => rmSync(dir, { recursive: true, force: true }));

// Values no random draw produces, so their bytes occur once in the file.
const REWARD_MARKER = 1225.0078125;
const OBS_MARKER = Math.fround(77.125);

/** A fresh random dataset with one reward and one observation set to the markers. */
function writeMarked(path: string, layout: 'file' | 'minari') {
  const seed = freshSeed();
  const { episodes, obsDim, actDim } = randomEpisodes(seed, 5, { maxLen: 20, obsDim: 3, actDim: 2 });
  episodes[2].rewards[0] = REWARD_MARKER;
  episodes[3].observations[1] = OBS_MARKER;
  writeEpisodes(path, description(obsDim, actDim), episodes, { layout });
  return { seed, returns: episodes.map((e) => e.rewards.reduce((a, b) => a + b, 0)) };
}

/** Replaces the one occurrence of `from`'s bytes in `file` with `to`'s. */
function patchBytes(file: string, from: Uint8Array, to: Uint8Array): void {
  const buf = readFileSync(file);
  const at = buf.indexOf(from);
  assert.ok(at >= 0, `${file}: marker bytes not found`);
  assert.equal(buf.indexOf(from, at + 1), -1, `${file}: marker bytes occur twice`);
  buf.set(to, at);
  writeFileSync(file, buf);
}
const f64 = (x: number) => new Uint8Array(Float64Array.of(x).buffer);
const f32 = (x: number) => new Uint8Array(Float32Array.of(x).buffer);

describe('verification on open', () => {
  test('an intact file opens verified; its verification names the digest', () => {
    const path = join(dir, 'ok.arrow');
    const { returns } = writeMarked(path, 'file');
    const ds = openDataset(path);
    try {
      assert.equal(ds.verification.status, 'verified');
      assert.match(ds.verification.note, new RegExp(`content digest ${ds.info.digest} verified`));
      assert.equal(ds.verification.contentSha256, ds.info.contentSha256);
      assert.ok(Math.abs(ds.returns()[2] - returns[2]) < 1e-9);
    } finally {
      ds.close();
    }
  });

  test('a changed reward byte: open fails (digest mismatch), exp data inspect exits 2; verify: never opens with the stale return', () => {
    const path = join(dir, 'reward.arrow');
    const { returns } = writeMarked(path, 'file');
    patchBytes(path, f64(REWARD_MARKER), f64(REWARD_MARKER + 1));
    assert.throws(
      () => openDataset(path),
      /reward\.arrow: content digest mismatch: metadata says [0-9a-f]{8}, the data hashes to [0-9a-f]{8} \(modified or corrupt\)/,
    );
    const r = exp(['data', 'inspect', path], { cwd: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /content digest mismatch/);
    // What the reader did before: the stored return, which the rewards no longer sum to.
    const ds = openDataset(path, { verify: 'never' });
    try {
      assert.equal(ds.verification.status, 'not-checked');
      assert.ok(Math.abs(ds.returns()[2] - returns[2]) < 1e-9);
    } finally {
      ds.close();
    }
    // The rewards-only check (large files under 'auto') catches it against the stored returns.
    assert.throws(
      () => openDataset(path, { autoLimitBytes: 0 }),
      /episode 2: rewards sum to [-\d.e]+; the stored return is [-\d.e]+ \(modified or corrupt\)/,
    );
  });

  test('a NaN reward or observation fails on open naming episode, key and step', () => {
    const rew = join(dir, 'nan-reward.arrow');
    writeMarked(rew, 'file');
    patchBytes(rew, f64(REWARD_MARKER), f64(Number.NaN));
    assert.throws(
      () => openDataset(rew),
      /nan-reward\.arrow: episode 2: key "rewards": expected finite values; got NaN at step 0/,
    );
    assert.throws(
      () => openDataset(rew, { autoLimitBytes: 0 }),
      /episode 2: key "rewards": expected finite values; got NaN at step 0/,
    );
    const obs = join(dir, 'nan-obs.arrow');
    writeMarked(obs, 'file');
    patchBytes(obs, f32(OBS_MARKER), f32(Number.POSITIVE_INFINITY));
    assert.throws(
      () => openDataset(obs),
      /nan-obs\.arrow: episode 3: key "observations": expected finite values; got Infinity at row 0/,
    );
  });

  test("'auto' above its limit reads the rewards only and says the digest was not verified; 'always' forces the full read", () => {
    const path = join(dir, 'obs.arrow');
    writeMarked(path, 'file');
    patchBytes(path, f32(OBS_MARKER), f32(OBS_MARKER + 1));
    const ds = openDataset(path, { autoLimitBytes: 0 });
    try {
      assert.equal(ds.verification.status, 'rewards-only');
      assert.match(
        ds.verification.note,
        /content digest NOT verified \(\d+ MiB of step data; verify: always reads it all\)/,
      );
    } finally {
      ds.close();
    }
    assert.throws(
      () => openDataset(path, { autoLimitBytes: 0, verify: 'always' }),
      /content digest mismatch/,
    );
    assert.throws(
      () => openDataset(path, { verify: 'sometimes' as 'auto' }),
      /verify must be 'auto', 'always' or 'never'; got "sometimes"/,
    );
  });

  test('Minari layout: a changed reward in an episode file fails on open', () => {
    const out = join(dir, 'minari-ds');
    writeMarked(out, 'minari');
    const data = join(out, 'data');
    let patched = false;
    for (const ep of readdirSync(data)) {
      if (ep === 'metadata.json') continue;
      for (const f of readdirSync(join(data, ep))) {
        const p = join(data, ep, f);
        if (f === 'metadata.json' || !readFileSync(p).includes(Buffer.from(f64(REWARD_MARKER)))) continue;
        patchBytes(p, f64(REWARD_MARKER), f64(REWARD_MARKER / 2));
        patched = true;
      }
    }
    assert.ok(patched, 'reward marker not found in any episode file');
    assert.throws(() => openDataset(out), /content digest mismatch/);
  });
});
