// bench/args.ts, the bench scripts' shared command-line parser: defaults and each kind of option,
// --help, and bad input refused with exit code 2 and a message naming the flag, what was expected
// and what came. Then every bench script as a user runs it: `--help` prints its flags and exits 0
// within seconds, `--no-such-flag` exits 2 naming it, and neither touches bench/results/.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type BenchOption, benchUsage, parseBenchArgs } from '../../bench/args.js';
import { isInputError } from '../../common/index.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const benchDir = fileURLToPath(new URL('../../bench/', import.meta.url));

const SPEC = {
  script: 'demo',
  usage: ['node dist/bench/demo.js [--steps 3] [--devices 1,2]', '  [--no-torch]'],
  options: {
    steps: { kind: 'number', integer: true, min: 1, default: 3, description: 'timed steps' },
    ratio: { kind: 'number', description: 'a fraction', defaultText: 'half of --steps' },
    'budget-on': {
      kind: 'string',
      choices: ['real', 'tensors'],
      default: 'real',
      description: 'what the budget limits',
    },
    out: { kind: 'string', placeholder: 'FILE', description: 'where the JSON goes' },
    devices: {
      kind: 'list',
      of: 'number',
      integer: true,
      min: 1,
      default: [1, 2],
      description: 'ring sizes',
    },
    configs: {
      kind: 'list',
      of: 'string',
      choices: ['small', 'large'],
      default: ['small'],
      description: 'models',
    },
    impls: { kind: 'list', of: 'string', description: 'implementations' },
    'no-torch': { kind: 'boolean', description: 'skip PyTorch' },
  },
} as const satisfies { script: string; usage: readonly string[]; options: Record<string, BenchOption> };

function parse(argv: string[]) {
  const r = parseBenchArgs(SPEC, argv);
  assert.equal(r.help, false, `${argv.join(' ')}: asked for help`);
  if (r.help) throw new Error('unreachable');
  return r.values;
}

describe('parseBenchArgs', () => {
  test('no arguments: every default, undefined where an option has none', () => {
    assert.deepEqual(
      { ...parse([]) },
      {
        steps: 3,
        ratio: undefined,
        'budget-on': 'real',
        out: undefined,
        devices: [1, 2],
        configs: ['small'],
        impls: undefined,
        'no-torch': false,
      },
    );
  });

  test('a list default is a fresh copy each parse', () => {
    const a = parse([]);
    a.devices.push(99);
    assert.deepEqual(parse([]).devices, [1, 2]);
  });

  test('each kind: --flag value and --flag=value', () => {
    const v = parse([
      '--steps',
      '7',
      '--ratio=0.25',
      '--budget-on',
      'tensors',
      '--out',
      'x/y.json',
      '--devices=4,8',
      '--configs',
      'large,small',
      '--impls',
      'blockwise,ring:2',
      '--no-torch',
    ]);
    assert.deepEqual(
      { ...v },
      {
        steps: 7,
        ratio: 0.25,
        'budget-on': 'tensors',
        out: 'x/y.json',
        devices: [4, 8],
        configs: ['large', 'small'],
        impls: ['blockwise', 'ring:2'],
        'no-torch': true,
      },
    );
  });

  test('a number may be negative or in exponent form where no rule forbids it', () => {
    assert.equal(parse(['--ratio', '-0.5']).ratio, -0.5);
    assert.equal(parse(['--ratio', '1e-3']).ratio, 0.001);
  });

  for (const argv of [['--help'], ['-h'], ['--steps', '2', '--help'], ['--no-such-flag', '-h']])
    test(`${argv.join(' ')}: help, before any other check`, () => {
      assert.deepEqual(parseBenchArgs(SPEC, argv), { help: true });
    });

  // [argv, what the message must say]: each names the flag, what was expected and what came
  const BAD: [string[], RegExp][] = [
    [
      ['--no-such-flag'],
      /^unknown argument '--no-such-flag' \(expected one of --steps, --ratio, .*, --no-torch, --help, got '--no-such-flag'\)$/,
    ],
    [['-x'], /^unknown argument '-x' \(expected one of --steps, .*got '-x'\)$/],
    [['stray'], /^unexpected argument 'stray' \(expected only --flags, got 'stray'\)$/],
    [['--', '--help'], /^unexpected argument '--help'/],
    [['--steps'], /^--steps needs a value \(expected --steps N, got nothing\)$/],
    [['--out', '--no-torch'], /^--out needs a value \(expected --out FILE, got '--no-torch'\)$/],
    [['--steps', 'x'], /^bad value for --steps \(expected an integer ≥ 1, got 'x'\)$/],
    [['--steps', ''], /^bad value for --steps \(expected an integer ≥ 1, got ''\)$/],
    [['--steps', '1.5'], /^bad value for --steps \(expected an integer ≥ 1, got '1.5'\)$/],
    [['--steps', '0'], /^bad value for --steps \(expected an integer ≥ 1, got '0'\)$/],
    [['--ratio', 'Infinity'], /^bad value for --ratio \(expected a number, got 'Infinity'\)$/],
    [['--ratio', ' '], /^bad value for --ratio \(expected a number, got ' '\)$/],
    [['--budget-on', 'both'], /^bad value for --budget-on \(expected one of real, tensors, got 'both'\)$/],
    [
      ['--devices', '0,2'],
      /^bad value for --devices \(expected integers ≥ 1 separated by commas, got '0,2'\)$/,
    ],
    [
      ['--devices', '1,,2'],
      /^bad value for --devices \(expected integers ≥ 1 separated by commas, got '1,,2'\)$/,
    ],
    [
      ['--configs', 'small,huge'],
      /^bad value for --configs \(expected items among small, large separated by commas, got 'small,huge'\)$/,
    ],
    [
      ['--impls', 'a,'],
      /^bad value for --impls \(expected items separated by commas, none empty, got 'a,'\)$/,
    ],
    [['--no-torch=1'], /^--no-torch takes no value \(expected --no-torch, got --no-torch=1\)$/],
    [
      ['--steps', '1', '--steps', '2'],
      /^--steps is given twice \(expected each flag once, got '1' and '2'\)$/,
    ],
    [['--no-torch', '--no-torch'], /^--no-torch is given twice/],
  ];
  for (const [argv, message] of BAD)
    test(`${JSON.stringify(argv)}: an input error, exit code 2, naming the argument`, () => {
      assert.throws(
        () => parseBenchArgs(SPEC, argv),
        (err: unknown) => {
          assert.ok(isInputError(err), String(err));
          assert.equal(err.exitCode, 2);
          assert.match(err.message, message);
          return true;
        },
      );
    });
});

test('benchUsage: the usage lines, then every flag with its value, default and description', () => {
  const text = benchUsage(SPEC);
  const lines = text.split('\n');
  assert.equal(lines[0], 'bench/demo');
  assert.ok(lines.includes('  node dist/bench/demo.js [--steps 3] [--devices 1,2]'), text);
  assert.ok(lines.includes('    [--no-torch]'), text);
  const row = (flag: string) => lines.find((l) => l.trimStart().startsWith(`${flag} `)) ?? '';
  assert.match(row('--steps'), /^ {2}--steps N +timed steps \(default: 3\)$/);
  assert.match(row('--ratio'), /a fraction \(default: half of --steps\)$/);
  assert.match(row('--budget-on'), /--budget-on real\|tensors +what the budget limits \(default: real\)$/);
  assert.match(row('--out'), /--out FILE +where the JSON goes$/);
  assert.match(row('--devices'), /--devices N,N,… +ring sizes \(default: 1,2\)$/);
  assert.match(row('--configs'), /\(default: small\)$/);
  assert.match(row('--no-torch'), /--no-torch +skip PyTorch$/);
  assert.match(row('-h,'), /-h, --help +print this help and exit$/);
  // the descriptions start in one column
  const column = new Set(lines.filter((l) => l.startsWith('  -')).map((l) => l.slice(2).search(/ {2}\S/)));
  assert.equal(column.size, 1, text);
});

/**
 * Every bench script that takes flags, with the flags it took before bench/args.ts (their names
 * must not change: READMEs and results cite them).
 */
const SCRIPTS: Record<string, string[]> = {
  'at-context': ['--budget-mib', '--budget-on', '--steps', '--max-trajectories'],
  'attention-grid': ['--only', '--repeats'],
  attention: ['--budget-mib', '--max-len', '--no-torch', '--native', '--memory', '--lengths'],
  datasets: ['--steps', '--out', '--repeats'],
  env: ['--steps', '--repeats'],
  'finetune-ring': ['--budget-mib', '--budget-on', '--devices', '--steps', '--max-per-device'],
  'lm-train': ['--configs', '--threads', '--steps', '--warmup', '--no-hf'],
  lm: ['--steps', '--lengths'],
  matmul: ['--sizes', '--repeats', '--no-torch'],
  'ring-cost': [
    '--tokens-per-device',
    '--devices',
    '--steps',
    '--cores',
    '--out',
    '--tracking-uri',
    '--experiment',
  ],
  'ring-transport': ['--repeats', '--sizes', '--shaped-mbit'],
  'rl-train': [
    '--model',
    '--profile',
    '--no-torch',
    '--steps',
    '--algo',
    '--paths',
    '--impls',
    '--optimiser',
  ],
};
/** Modules of bench/ that other scripts import: they take no command line of their own. */
const LIBRARIES = ['args', 'lm-config', 'rl-train-models', 'rl-train-profile', 'torch-sdpa'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `node dist/bench/<script>.js ...args` from the repository root, as a user runs it. */
function runScript(script: string, args: string[]): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    // NOTE: 30 s: a script that ignored its arguments would start a benchmark of minutes
    const child = spawn(process.execPath, [join(benchDir, `${script}.js`), ...args], {
      cwd: root,
      timeout: 30_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

/** bench/results/ as it is now: each file's size, mtime and contents. */
function snapshotResults(): Map<string, string> {
  const dir = join(root, 'bench', 'results');
  return new Map(
    readdirSync(dir).map((name) => {
      const p = join(dir, name);
      const s = statSync(p);
      return [name, `${s.size} ${s.mtimeMs} ${s.isFile() ? readFileSync(p, 'utf8') : ''}`];
    }),
  );
}

test('every bench script that reads a command line is in the smoke test below', () => {
  const scripts = readdirSync(benchDir)
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.slice(0, -'.js'.length))
    .filter((name) => !LIBRARIES.includes(name))
    .sort();
  assert.deepEqual(scripts, Object.keys(SCRIPTS).sort());
});

describe('bench scripts as a user runs them', () => {
  const before = snapshotResults();
  for (const [script, flags] of Object.entries(SCRIPTS)) {
    test(`node dist/bench/${script}.js --help / --no-such-flag`, async () => {
      const [help, bad] = await Promise.all([
        runScript(script, ['--help']),
        runScript(script, ['--no-such-flag']),
      ]);
      assert.equal(help.code, 0, `--help: exit ${help.code} after ${help.ms} ms\n${help.stderr}`);
      assert.ok(help.stdout.startsWith(`bench/${script}\n`), help.stdout);
      for (const flag of [...flags, '--help'])
        assert.match(help.stdout, new RegExp(`^ {2}(-h, )?${flag}\\b`, 'm'), `--help lists ${flag}`);
      assert.match(
        help.stdout,
        new RegExp(`node dist/bench/${script}\\.js`),
        '--help shows the command line',
      );
      assert.equal(bad.code, 2, `--no-such-flag: exit ${bad.code} after ${bad.ms} ms\n${bad.stderr}`);
      assert.equal(bad.stdout, '');
      assert.match(
        bad.stderr,
        new RegExp(
          `^bench/${script}: unknown argument '--no-such-flag' \\(expected one of .*, got '--no-such-flag'\\)\nrun with --help for the options\n$`,
        ),
      );
      assert.deepEqual(snapshotResults(), before, 'bench/results/ is untouched');
    });
  }
});
