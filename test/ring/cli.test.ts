// `exp plan` and `exp bench attention` as a user calls them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { exp } from '../helpers/cli.js';

describe('exp CLI (ring)', () => {
  test('exp --help lists every command with a line each', () => {
    const r = exp(['--help']);
    assert.equal(r.code, 0);
    for (const cmd of ['bench', 'plan']) assert.match(r.stdout, new RegExp(`exp ${cmd}\\b.*\\S`));
  });

  test('exp plan --json: ring ≈ N × BPT', () => {
    const r = exp(['plan', '--model', '7b', '--devices', '8', '--memory-gb', '80', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      rows: { method: string; maxContext: number }[];
      overlap: { minBlock: number }[];
    };
    const ctx = Object.fromEntries(out.rows.map((x) => [x.method, x.maxContext]));
    assert.ok(ctx.ring / ctx.blockwise > 0.85 * 8);
    assert.equal(out.overlap.length, 3);
  });

  test('exp plan prints a table', () => {
    const r = exp(['plan', '--model', '4096,32,32']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ring\s+\d/);
    assert.match(r.stdout, /min block size/);
  });

  test('exp plan --implementation harness: the project model in MiB, vanilla and memeff not modelled', () => {
    const r = exp([
      'plan',
      '--model',
      'context-scaling',
      '--implementation',
      'harness',
      '--memory-mib',
      '96',
      '--runtime-mib',
      '40',
      '--devices',
      '8',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /0\.124M parameters, 8 devices × 96 MiB \(this project's training step/);
    assert.match(r.stdout, /vanilla\s+–\s+–/);
    const bpt = /BPT\s+([\d.]+)K\s+([\d.]+)/.exec(r.stdout);
    assert.ok(bpt && Number(bpt[2]) <= 96, r.stdout);
    const bad = exp(['plan', '--implementation', 'harness', '--runtime-mib', '-1']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--runtime-mib: expected a number ≥ 0; got -1/);
  });

  // every single-device implementation with and without the causal mask (issue 21: they ran only
  // without it, so a mask bug in memeff or blockwise passed); ring is causal and striped
  const benchCases = [
    ...['vanilla', 'memeff', 'blockwise'].flatMap((impl) => [
      { impl, causal: false },
      { impl, causal: true },
    ]),
    { impl: 'ring', causal: true },
  ];
  for (const { impl, causal } of benchCases) {
    const flags = [
      ...(causal ? ['--causal'] : []),
      ...(impl === 'ring' ? ['--devices', '2', '--layout', 'striped'] : []),
    ];
    test(`exp bench attention --impl ${impl}${causal ? ' --causal' : ''} --backward --check --json`, () => {
      const r = exp([
        'bench',
        'attention',
        '--impl',
        impl,
        '--seq-len',
        '96',
        '--heads',
        '4',
        '--kv-heads',
        '2',
        '--head-dim',
        '8',
        '--block-size',
        '16',
        '--backward',
        '--check',
        '--json',
        '--repeats',
        '0',
        ...flags,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout) as Record<string, unknown>;
      for (const key of [
        'impl',
        'seqLen',
        'devices',
        'backend',
        'fwdMs',
        'bwdMs',
        'gflops',
        'peakBytesPerDevice',
        'maxRelErr',
      ])
        assert.ok(key in j, `missing ${key}`);
      assert.equal(j.impl, impl);
      assert.equal(j.causal, causal);
      assert.equal(j.devices, impl === 'ring' ? 2 : 1);
      assert.ok((j.maxRelErr as number) < 1e-4);
      assert.ok((j.peakBytesPerDevice as number) > 0);
    });
  }

  const bad: [string[], RegExp][] = [
    [
      ['bench', 'attention', '--impl', 'flash'],
      /--impl: expected one of vanilla, memeff, blockwise, ring; got 'flash'/,
    ],
    [['bench', 'attention', '--seq-len', '0'], /--seq-len: expected a positive integer; got 0/],
    [
      ['bench', 'attention', '--impl', 'blockwise', '--devices', '2'],
      /--devices: blockwise runs on one device/,
    ],
    [['bench', 'attention', '--backend', 'tpu'], /--backend: unknown backend 'tpu'/],
    [
      ['bench', 'attention', '--impl', 'ring', '--devices', '4', '--seq-len', '2'],
      /4 devices need at least 4 tokens/,
    ],
    [['plan', '--devices', '-1'], /--devices: expected a positive number; got -1/],
    [['plan', '--nope'], /Unknown argument: nope/],
    [['nope'], /Unknown argument: nope/],
  ];
  for (const [args, re] of bad) {
    test(`exit 2: exp ${args.join(' ')}`, () => {
      const r = exp(args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
    });
  }

  test('RING_BACKEND=cpu is honoured', () => {
    const r = exp(
      [
        'bench',
        'attention',
        '--impl',
        'blockwise',
        '--seq-len',
        '32',
        '--heads',
        '2',
        '--head-dim',
        '4',
        '--block-size',
        '8',
        '--json',
        '--repeats',
        '0',
      ],
      {
        env: { RING_BACKEND: 'cpu' },
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { backend: string }).backend, 'cpu');
  });
});
