/**
 * Runs started at once into a fresh file store (exp sweep --parallel) must share one experiment
 * per name: two folders with the same name are refused by MLflow (migrate-filestore fails on a
 * UNIQUE constraint). Several stores on one folder race through ensureExperiment here, and
 * separate processes race in filestore.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { experimentLockDir, FileStore } from '../../experiments/tracking/index.js';
import { tempDir } from './util.js';

test('concurrent ensureExperiment on one fresh store creates the experiment once', async () => {
  const root = join(tempDir('filestore-race'), 'mlruns');
  const stores = Array.from({ length: 6 }, () => new FileStore(root));
  const ids = await Promise.all(stores.map((s, i) => s.ensureExperiment(i % 2 ? 'alpha' : 'beta')));
  const alpha = new Set(ids.filter((_, i) => i % 2));
  const beta = new Set(ids.filter((_, i) => !(i % 2)));
  assert.equal(alpha.size, 1, `alpha ids ${[...alpha]}`);
  assert.equal(beta.size, 1, `beta ids ${[...beta]}`);
  const names = (await new FileStore(root).searchExperiments()).map((e) => e.name).sort();
  assert.deepEqual(
    names.filter((n) => n !== 'Default'),
    ['alpha', 'beta'],
  );
  assert.ok(!readdirSync(root).some((n) => n.startsWith('.lock-')), 'no lock folder is left behind');
});

test('a stale lock folder left by a crashed run is taken over', async () => {
  const root = join(tempDir('filestore-stale'), 'mlruns');
  const store = new FileStore(root);
  await store.ensureExperiment('first'); // creates the store's folders
  const entries = readdirSync(root);
  await store.ensureExperiment('second');
  const created = readdirSync(root).filter((n) => !entries.includes(n));
  assert.equal(created.length, 1);
  // a lock for 'third', as a run that crashed while holding it would leave it
  const lock = experimentLockDir(root, 'third');
  mkdirSync(lock);
  const old = new Date(Date.now() - 60_000);
  utimesSync(lock, old, old);
  const id = await store.ensureExperiment('third');
  assert.ok(existsSync(join(root, id, 'meta.yaml')));
  assert.ok(!existsSync(lock));
});
