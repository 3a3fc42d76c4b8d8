// The `tensorflow` backend built by `npm run add-tensorflow` (issue 7): when it is installed, the
// ring/ correctness suites run unchanged on it (their pinned wasm is overridden through
// RING_BACKEND_OVERRIDE) — forward and gradients within 1e-4 of vanilla and of the float64
// reference, ring N = 2..4 on worker-thread devices. Skipped, with the reason, where it is absent.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const require = createRequire(import.meta.url);

function tensorflowMissing(): string | undefined {
  try {
    require.resolve('@tensorflow/tfjs-node/package.json');
  } catch {
    return '@tensorflow/tfjs-node is not installed (`npm run add-tensorflow`)';
  }
  return undefined;
}

/** The suites that check numerics; memory.test.ts measures wasm-specific bytes, cli.test.ts the CLI. */
const SUITES = ['attention', 'ffn', 'ops', 'optim', 'ring', 'transformer'].map(
  (name) => `dist/test/ring/${name}.test.js`,
);

/** The environment for a child: NOTE: without NODE_TEST_CONTEXT, which this runner sets and which
 * makes a child `node --test` run nothing and exit 0. */
function childEnv(backend: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, RING_BACKEND_OVERRIDE: backend };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

function runOn(backend: string, script: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    env: childEnv(backend),
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('tensorflow backend loads and is what auto picks', { skip: tensorflowMissing() }, () => {
  const r = runOn(
    'auto',
    `import { initBackend } from './dist/native/index.js';
     const info = await initBackend({ cpuThreads: 2 });
     console.log(JSON.stringify(info));`,
  );
  assert.equal(r.status, 0, r.out);
  const info = JSON.parse(r.out.trim().split('\n').at(-1) ?? '{}') as { name?: string; reason?: string };
  assert.equal(info.name, 'tensorflow', r.out);
  assert.match(info.reason ?? '', /TensorFlow C library/);
});

test('ring/ suites pass unchanged on the tensorflow backend', {
  skip: tensorflowMissing(),
  timeout: 15 * 60_000,
}, () => {
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...SUITES], {
    cwd: root,
    encoding: 'utf8',
    env: childEnv('tensorflow'),
  });
  const summary = `${r.stdout}`.split('\n').filter((l) => /^# (tests|pass|fail)|^not ok/.test(l));
  assert.equal(r.status, 0, `${summary.join('\n')}\n${r.stdout.slice(-4000)}${r.stderr.slice(-2000)}`);
});
