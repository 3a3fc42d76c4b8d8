// Rank discovery from the launchers' environments and the shared secret (issue 9).
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseNodeList, rankFromEnvironment, secretFromEnvironment } from '../../../cluster/index.js';

describe('parseNodeList (SLURM compact syntax)', () => {
  const cases: [string, string[]][] = [
    ['node01', ['node01']],
    ['node[01-03,07]', ['node01', 'node02', 'node03', 'node07']],
    ['gpu[8-10],login1', ['gpu8', 'gpu9', 'gpu10', 'login1']],
    ['a[08-10]', ['a08', 'a09', 'a10']],
    ['rack[1-2]-n[1-2]', ['rack1-n1', 'rack1-n2', 'rack2-n1', 'rack2-n2']],
    ['x1,y[3,5],z', ['x1', 'y3', 'y5', 'z']],
  ];
  for (const [list, want] of cases) test(list, () => assert.deepEqual(parseNodeList(list), want));
  test('bad lists are refused with the list named', () => {
    assert.throws(() => parseNodeList('n[01-03'), /unbalanced '\[' in 'n\[01-03'/);
    assert.throws(() => parseNodeList('n[3-1]'), /runs backwards/);
    assert.throws(() => parseNodeList('n[a-b]'), /bad range 'a-b'/);
  });
});

describe('rankFromEnvironment', () => {
  test('torchrun-style (exp launch)', () => {
    assert.deepEqual(
      rankFromEnvironment({ RANK: '2', WORLD_SIZE: '4', MASTER_ADDR: '10.0.0.5', MASTER_PORT: '1234' }),
      {
        rank: 2,
        worldSize: 4,
        masterAddr: '10.0.0.5',
        masterPort: 1234,
        source: 'torchrun',
      },
    );
  });
  test('SLURM: rank 0 is the first node of the step', () => {
    const e = rankFromEnvironment({
      SLURM_PROCID: '3',
      SLURM_NTASKS: '8',
      SLURM_STEP_NODELIST: 'gpu[07-10]',
      SLURM_NODELIST: 'other',
    });
    assert.deepEqual(e, { rank: 3, worldSize: 8, masterAddr: 'gpu07', masterPort: 29500, source: 'slurm' });
  });
  test('Kubernetes indexed Job: headless service DNS of index 0', () => {
    const e = rankFromEnvironment({
      JOB_COMPLETION_INDEX: '1',
      WORLD_SIZE: '3',
      HOSTNAME: 'ring-train-1',
      RING_K8S_SERVICE: 'ring-svc',
    });
    assert.deepEqual(e, {
      rank: 1,
      worldSize: 3,
      masterAddr: 'ring-train-0.ring-svc',
      masterPort: 29500,
      source: 'kubernetes',
    });
  });
  test('errors name the variable', () => {
    assert.throws(() => rankFromEnvironment({}), /no rank found; set RANK and WORLD_SIZE/);
    assert.throws(
      () => rankFromEnvironment({ RANK: 'x', WORLD_SIZE: '2' }),
      /RANK must be an integer ≥ 0; got 'x'/,
    );
    assert.throws(
      () => rankFromEnvironment({ RANK: '2', WORLD_SIZE: '2' }),
      /rank 2 is out of range for world size 2/,
    );
    assert.throws(() => rankFromEnvironment({ JOB_COMPLETION_INDEX: '0' }), /must set WORLD_SIZE/);
    assert.throws(
      () => rankFromEnvironment({ RANK: '0', WORLD_SIZE: '1', MASTER_PORT: '70000' }),
      /MASTER_PORT must be ≤ 65535/,
    );
  });
});

describe('secretFromEnvironment', () => {
  test('from RING_SECRET or RING_SECRET_FILE, never too short, never echoed', () => {
    assert.equal(
      new TextDecoder().decode(secretFromEnvironment({ RING_SECRET: 'a'.repeat(20) })),
      'a'.repeat(20),
    );
    const dir = mkdtempSync(join(tmpdir(), 'ring-secret-'));
    writeFileSync(join(dir, 's'), 'file-secret-0123456789\n');
    assert.equal(
      new TextDecoder().decode(secretFromEnvironment({ RING_SECRET_FILE: join(dir, 's') })),
      'file-secret-0123456789',
    );
    assert.throws(() => secretFromEnvironment({}), /set RING_SECRET or RING_SECRET_FILE/);
    assert.throws(
      () => secretFromEnvironment({ RING_SECRET: 'short-secret' }),
      (e: Error) => /at least 16 bytes; got 12/.test(e.message) && !e.message.includes('short-secret'),
    );
  });
});
