#!/usr/bin/env node
// `npm test`: builds (the native addon, then TypeScript), lints and checks formatting, prepares the Python interop
// environment the tests use (a venv in .venv, see scripts/python-env.sh), then runs every
// compiled test file with node's test runner.
// Flags: --no-python skips the venv (tests that need it then fail, they do not skip);
// any other argument is a substring filter on test file paths.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

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

// the native kernels (issue 7): the build never fails; checkNative() below fails the run where
// the addon should have built and loaded but did not (issue 21)
run('node', ['scripts/build-native.mjs'], 'native build');
run('npx', ['tsc', '-p', 'tsconfig.json'], 'build');
run('npx', ['biome', 'lint', '.'], 'lint');
run('npx', ['biome', 'format', '.'], 'format check (npx biome format --write <files> fixes)');
if (!skipPython) run('bash', ['scripts/python-env.sh'], 'python environment');
checkNative();

/**
 * Why this machine need not have the native addon, or undefined where it should: g++, make and
 * Node's headers are there (what scripts/build-native.mjs needs) and RING_NATIVE is not 0.
 */
function nativeNotExpected() {
  if (process.env.RING_NATIVE === '0') return 'RING_NATIVE=0';
  for (const tool of ['g++', 'make'])
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) return `no ${tool}`;
  const headers = join(dirname(dirname(process.execPath)), 'include', 'node', 'node_api.h');
  if (!existsSync(headers)) return `no Node headers (${headers})`;
  return undefined;
}

// Issue 21: the native suites skip when the addon does not load, so a CI machine where it failed
// to build or load would pass without ever running them. Where it can be built, it must load.
function checkNative() {
  const why = nativeNotExpected();
  if (why) {
    process.stderr.write(`test: native addon not required here (${why}); its suites skip\n`);
    return;
  }
  const native = pathToFileURL(join(root, 'dist', 'native', 'index.js')).href;
  const probe = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const m = await import(${JSON.stringify(native)}); const ok = m.nativeAddon() !== undefined; process.stdout.write(m.nativeStatus()); process.exit(ok ? 0 : 1);`,
    ],
    { cwd: root, encoding: 'utf8' },
  );
  if (probe.status !== 0) {
    process.stderr.write(
      `test: the native addon did not load on a machine that can build it (g++, make and Node headers found): ${probe.stdout.trim() || probe.stderr.trim()}; see native/build/build.log (node scripts/build-native.mjs --force rebuilds), or set RING_NATIVE=0 to test without it\n`,
    );
    process.exit(1);
  }
  process.stderr.write(`test: ${probe.stdout.trim()}\n`);
}

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
