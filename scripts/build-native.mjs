#!/usr/bin/env node
// Builds native/ (the ring_native Node-API addon: fused attention and sgemm, issue 7 path 2) with
// npm's bundled node-gyp against the local Node headers (--nodedir: nothing is downloaded).
// Called by `npm run build`, `prepare` (so `npm ci` builds it) and scripts/test.mjs.
//
// Never fails the caller: where the addon cannot build (no g++/make, no headers, not x86_64…)
// it prints ONE line and exits 0; native/addon.ts then falls back to the tfjs kernels.
// Skips the build when native/build/Release/ring_native.node is newer than every source.
// Flags: --force rebuilds. RING_NATIVE=0 skips the build altogether.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = join(root, 'native');
const out = join(dir, 'build', 'Release', 'ring_native.node');
const log = join(dir, 'build', 'build.log');
const force = process.argv.includes('--force');

function say(msg) {
  process.stderr.write(`build-native: ${msg}\n`);
}

if (process.env.RING_NATIVE === '0') process.exit(0);

function newestSource() {
  let newest = 0;
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (name === 'build') continue;
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else newest = Math.max(newest, st.mtimeMs);
    }
  };
  walk(dir);
  return Math.max(newest, statSync(fileURLToPath(import.meta.url)).mtimeMs);
}

if (!force && existsSync(out) && statSync(out).mtimeMs >= newestSource()) process.exit(0);

// npm ships node-gyp; find it beside the npm that runs us, or beside node.
const nodeDir = dirname(dirname(process.execPath));
const candidates = [
  process.env.npm_execpath
    ? join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
    : '',
  join(nodeDir, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((p) => existsSync(p));
if (!gyp) {
  say('node-gyp (bundled with npm) not found; native kernels off, the tfjs kernels run instead');
  process.exit(0);
}
if (!existsSync(join(nodeDir, 'include', 'node', 'node_api.h'))) {
  say(`Node headers not found in ${nodeDir}/include/node; native kernels off, the tfjs kernels run instead`);
  process.exit(0);
}

const started = Date.now();
const res = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodeDir}`, '--jobs=2'], {
  cwd: dir,
  encoding: 'utf8',
  env: { ...process.env, npm_config_loglevel: 'error' },
});
mkdirSync(dirname(log), { recursive: true });
writeFileSync(log, `${res.stdout ?? ''}${res.stderr ?? ''}${res.error ? String(res.error) : ''}`);
if (res.status !== 0 || !existsSync(out)) {
  const lines = `${res.stderr ?? ''}`.split('\n').filter((l) => /error/i.test(l));
  say(
    `the addon did not build (${lines[0]?.trim() ?? res.error?.message ?? `exit ${res.status}`}; log: native/build/build.log); native kernels off, the tfjs kernels run instead`,
  );
  process.exit(0);
}
say(`built native/build/Release/ring_native.node in ${((Date.now() - started) / 1000).toFixed(1)}s`);
