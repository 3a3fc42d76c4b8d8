#!/usr/bin/env node
// `npm test`: builds (the native addon, then TypeScript), lints, prepares the Python interop
// environment the tests use (a venv in .venv, see scripts/python-env.sh), then runs every
// compiled test file with node's test runner.
// Flags: --no-python skips the venv (tests that need it then fail, they do not skip);
// any other argument is a substring filter on test file paths.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const skipPython = args.includes('--no-python');
const filters = args.filter((a) => !a.startsWith('--'));

function run(cmd, cmdArgs, what) {
  const started = Date.now();
  const res = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit' });
  if (res.status !== 0) {
    process.stderr.write(`test: ${what} failed (exit ${res.status ?? res.signal})\n`);
    process.exit(res.status || 1);
  }
  process.stderr.write(`test: ${what} done in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
}

// the native kernels (issue 7): never fails; without them the tfjs kernels run (one notice line)
run('node', ['scripts/build-native.mjs'], 'native build');
run('npx', ['tsc', '-p', 'tsconfig.json'], 'build');
run('npx', ['biome', 'lint', '.'], 'lint');
if (!skipPython) run('bash', ['scripts/python-env.sh'], 'python environment');

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const files = findTests(join(root, 'dist', 'test'))
  .map((p) => relative(root, p))
  .filter((p) => filters.length === 0 || filters.some((f) => p.includes(f)))
  .sort();
if (files.length === 0) {
  process.stderr.write(`test: no test files match ${filters.join(' ')}\n`);
  process.exit(1);
}
const res = spawnSync(
  process.execPath,
  ['--enable-source-maps', '--test', '--test-concurrency=2', '--test-reporter=spec', ...files],
  { cwd: root, stdio: 'inherit', env: { ...process.env, RING_TEST: '1' } },
);
process.exit(res.status ?? 1);
