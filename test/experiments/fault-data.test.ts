/**
 * Fault injection on dataset writes (issue 16): SIGTERM and SIGKILL in the middle of
 * `exp data import`, a disk that fills up (a 2 MB tmpfs), and an output that is the input (the
 * same path, a symbolic link, a hard link). After each: exit code as promised, no input changed,
 * no temporary file left (a SIGKILLed writer's is removed by the next write into the folder),
 * a previous target left as it was.
 *
 * Seeded: FAULT_SEED=<n> makes the same HDF5 files.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { runPython } from '../helpers/python.js';
import { finished, runExp, spawnExp, tempDir, testEnv } from './util.js';

const SEED = Number(process.env.FAULT_SEED ?? (Date.now() ^ (process.pid << 8)) >>> 0);
const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
const hidden = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('.'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes D4RL-style HDF5 files with h5py (the format's own writer), seeded. */
function makeHdf5(dir: string, name: string, rows: number, obsDim: number, rewardsAs = 'float32'): string {
  const file = join(dir, name);
  const r = runPython(`
import h5py, numpy as np
rng = np.random.default_rng(${SEED % 2 ** 31})
n, d = ${rows}, ${obsDim}
with h5py.File(${JSON.stringify(file)}, "w") as f:
    f["observations"] = rng.standard_normal((n, d)).astype("float32")
    f["actions"] = rng.uniform(-1, 1, (n, 3)).astype("float32")
    rew = rng.standard_normal(n).astype("float32")
    f["rewards"] = rew.astype("S8") if ${JSON.stringify(rewardsAs)} == "string" else rew
    f["terminals"] = np.zeros(n, dtype=bool)
    t = np.zeros(n, dtype=bool); t[999::1000] = True
    f["timeouts"] = t
`);
  assert.equal(r.code, 0, r.stderr);
  return file;
}

describe(`fault injection on dataset writes (FAULT_SEED=${SEED})`, () => {
  const work = tempDir('fault-data');
  const env = testEnv(work);
  let big: string;
  let small: string;
  before(() => {
    big = makeHdf5(work, 'big.hdf5', 400_000, 32);
    small = makeHdf5(work, 'small.hdf5', 3000, 4);
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const)
    test(`${signal} mid-import: previous target unchanged; no temporary left (${signal === 'SIGTERM' ? 'removed at once, exit 143' : 'removed by the next write'})`, async (t) => {
      t.diagnostic(`FAULT_SEED=${SEED}`);
      const outDir = join(work, `out-${signal}`);
      mkdirSync(outDir);
      const target = join(outDir, 'ds.arrow');
      const first = await runExp(['data', 'import', 'd4rl', small, '--out', target, '--quiet'], { env });
      assert.equal(first.code, 0, first.stderr);
      const before = sha(target);
      const child = spawnExp(['data', 'import', 'd4rl', big, '--out', target, '--quiet'], { env });
      const done = finished(child);
      // Kill once the hidden temporary body exists (an event, not a time window).
      const until = Date.now() + 120_000;
      while (
        !hidden(outDir).some((n) => n.endsWith('.tmp.body')) &&
        child.exitCode === null &&
        Date.now() < until
      )
        await sleep(2);
      assert.equal(child.exitCode, null, 'the import was still running when the temporary appeared');
      child.kill(signal);
      const r = await done;
      assert.equal(sha(target), before, 'the previous target is unchanged');
      if (signal === 'SIGTERM') {
        assert.equal(r.code, 143, `SIGTERM exits 143; stderr:\n${r.stderr}`);
        assert.deepEqual(hidden(outDir), [], 'SIGTERM removed the temporary files');
      } else {
        assert.ok(hidden(outDir).length > 0, 'SIGKILL cannot clean up: a temporary is left');
        const next = await runExp(
          ['data', 'import', 'd4rl', small, '--out', join(outDir, 'other.arrow'), '--quiet'],
          {
            env,
          },
        );
        assert.equal(next.code, 0, next.stderr);
        assert.match(next.stderr, /removed .*\.tmp.* left by an interrupted writer/);
        assert.deepEqual(
          hidden(outDir),
          [],
          "the next write into the folder swept the dead writer's temporaries",
        );
      }
    });

  test('disk full (2 MB tmpfs): exit 2 naming the target and ENOSPC; previous target unchanged; no temporary left', async (t) => {
    const mnt = join(work, 'tmpfs');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) {
      t.skip(
        `mount -t tmpfs is not permitted here (${(m.stderr || m.error?.message || '').trim()}); needs root`,
      );
      return;
    }
    try {
      const target = join(mnt, 'ds.arrow');
      const first = await runExp(['data', 'import', 'd4rl', small, '--out', target, '--quiet'], { env });
      assert.equal(first.code, 0, first.stderr);
      const before = sha(target);
      const r = await runExp(['data', 'import', 'd4rl', big, '--out', target, '--quiet'], { env });
      assert.equal(r.code, 2, `ENOSPC exits 2; stderr:\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${target}: cannot write the dataset \\(ENOSPC`));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(sha(target), before, 'the previous target is unchanged');
      assert.deepEqual(hidden(mnt), [], 'no temporary left on the full disk');
    } finally {
      spawnSync('umount', [mnt]);
    }
  });

  // issue 16 item 14: EROFS. Node 20's recursive mkdir says ENOENT on a read-only file system, so
  // a store or output folder there died with a stack trace and exit 1.
  test('read-only file system (tmpfs remounted ro): import, a new output folder, a store and a work folder each exit 2 naming the path', async (t) => {
    const mnt = join(work, 'ro');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) {
      t.skip(
        `mount -t tmpfs is not permitted here (${(m.stderr || m.error?.message || '').trim()}); needs root`,
      );
      return;
    }
    try {
      const target = join(mnt, 'ds.arrow');
      const first = await runExp(['data', 'import', 'd4rl', small, '--out', target, '--quiet'], { env });
      assert.equal(first.code, 0, first.stderr);
      const before = sha(target);
      const ro = spawnSync('mount', ['-o', 'remount,ro', mnt], { encoding: 'utf8' });
      assert.equal(ro.status, 0, ro.stderr);
      const cases: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
        [
          'import onto an existing target',
          ['data', 'import', 'd4rl', small, '--out', target, '--quiet'],
          env,
          new RegExp(`${target}: cannot write the dataset \\(EROFS`),
        ],
        [
          'import into a new folder',
          ['data', 'import', 'd4rl', small, '--out', join(mnt, 'sub', 'ds.arrow'), '--quiet'],
          env,
          new RegExp(`${join(mnt, 'sub')}: cannot create the folder: the file system is read-only \\(EROFS`),
        ],
        [
          'a new file store',
          ['run', 'toy.yaml', '--tracking-uri', join(mnt, 'mlruns'), '--set', 'toy.steps=2'],
          env,
          new RegExp(
            `${join(mnt, 'mlruns')}: cannot create the folder: the file system is read-only \\(EROFS`,
          ),
        ],
        [
          'the work folder',
          ['run', 'toy.yaml', '--tracking-uri', join(work, 'ro-runs'), '--set', 'toy.steps=2'],
          testEnv(work, { EXP_WORK_DIR: join(mnt, 'exp') }),
          new RegExp(
            `${join(mnt, 'exp')}.*: cannot create the folder: the file system is read-only \\(EROFS`,
          ),
        ],
      ];
      for (const [what, args, caseEnv, says] of cases) {
        const r = await runExp(args, { env: caseEnv });
        assert.equal(r.code, 2, `${what}: exit 2; stderr:\n${r.stderr}`);
        assert.match(r.stderr, says, what);
        assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
      }
      assert.equal(sha(target), before, 'the previous target is unchanged');
      assert.deepEqual(readdirSync(mnt), ['ds.arrow'], 'nothing else on the read-only disk');
      // the run whose work folder could not be made ended FAILED, not RUNNING
      const py = runPython(
        `
import mlflow
c = mlflow.MlflowClient(tracking_uri=${JSON.stringify(`file://${join(work, 'ro-runs')}`)})
print(",".join(r.info.status for e in c.search_experiments() for r in c.search_runs([e.experiment_id])))
`,
        { env: { MLFLOW_ALLOW_FILE_STORE: 'true' } },
      );
      assert.equal(py.code, 0, py.stderr);
      assert.equal(py.stdout.trim().split('\n').pop(), 'FAILED');
    } finally {
      spawnSync('umount', [mnt]);
    }
  });

  test('--out is the input (same path, symbolic link, hard link, folder around it): exit 2, input unchanged', async () => {
    const dir = join(work, 'same');
    mkdirSync(dir);
    const input = join(dir, 'x.hdf5');
    writeFileSync(input, readFileSync(small));
    symlinkSync(input, join(dir, 'link.arrow'));
    linkSync(input, join(dir, 'hard.arrow'));
    const before = sha(input);
    for (const out of [input, join(dir, 'link.arrow'), join(dir, 'hard.arrow')]) {
      const r = await runExp(['data', 'import', 'd4rl', input, '--out', out, '--quiet'], { env });
      assert.equal(r.code, 2, `--out ${out}: exit 2; stderr:\n${r.stderr}`);
      assert.match(r.stderr, /is the input .* expected a new path, so the input is not overwritten/);
      assert.equal(sha(input), before, `--out ${out}: the input is unchanged`);
    }
    const arrow = join(dir, 'x.arrow');
    assert.equal(
      (await runExp(['data', 'import', 'd4rl', input, '--out', arrow, '--quiet'], { env })).code,
      0,
    );
    const arrowSha = sha(arrow);
    const conv = await runExp(['data', 'convert', arrow, '--out', arrow], { env });
    assert.equal(conv.code, 2, conv.stderr);
    assert.equal(sha(arrow), arrowSha, 'convert onto itself: the input is unchanged');
    const into = await runExp(
      ['data', 'convert', arrow, '--out', join(arrow, 'inside'), '--layout', 'minari'],
      { env },
    );
    assert.equal(into.code, 2, into.stderr);
    assert.equal(existsSync(join(arrow, 'inside')), false);
  });
});
