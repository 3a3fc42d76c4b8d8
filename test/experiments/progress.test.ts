/**
 * Progress of `exp run`: a redrawn bar with steps, rate, ETA and the latest loss on a terminal
 * (checked under `script`, which gives the command a pseudo-terminal), plain lines otherwise.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { repoRoot, runExp, tempDir, testEnv } from './util.js';

describe('progress output', () => {
  test('not a TTY: plain lines with counts, rate and loss', async () => {
    const work = tempDir('progress');
    const r = await runExp(['run', 'toy', '--set', 'toy.steps=30', '--tracking-uri', join(work, 'mlruns')], {
      env: testEnv(work),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^toy: 30\/30 [\d.]+\/s [\d.]+s loss=[\d.e-]+$/m);
    assert.ok(!r.stderr.includes('\x1b['), 'no terminal escapes in plain output');
  });

  const hasScript = spawnSync('script', ['--version']).status === 0;
  test('a terminal: a redrawn bar with steps, rate, ETA and loss', {
    skip: !hasScript && 'no `script` command',
  }, () => {
    const work = tempDir('progress-tty');
    const env = testEnv(work);
    delete env.CI; // Progress draws plain lines under CI
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(join(repoRoot, 'bin', 'exp.js'))} run toy --set toy.steps=200 --set toy.stepDelayMs=3 --tracking-uri ${JSON.stringify(join(work, 'mlruns'))}`;
    const r = spawnSync('script', ['-qc', cmd, '/dev/null'], { env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const frames = r.stdout.split('\r').filter((f) => f.startsWith('\x1b[Ktoy ['));
    assert.ok(frames.length >= 3, `the bar is redrawn (${frames.length} frames)`);
    assert.match(
      frames[1].slice(3),
      /^toy \[[#.]{24}\] \d+\/200 [\d.]+\/s [\d.]+s eta [\d.]+s loss=[\d.e-]+/,
    );
  });
});
