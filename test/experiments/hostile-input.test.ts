/**
 * Hostile and clumsy input (issue 16), as a table: each case runs `exp` the way a user would
 * (a subprocess, from a fresh folder) and must exit 2 with a message naming what was expected
 * and what came, print no stack trace, hang on nothing, and create nothing (no ./mlruns). The
 * safetensors cases go through the reader the LM recipes use. The README's "Reliability" table
 * counts these classes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isInputError, Rng } from '../../common/index.js';
import { FileStore } from '../../experiments/tracking/index.js';
import { CheckpointReader, encodeSafetensors, SafetensorsFile } from '../../lm/index.js';
import { runPython } from '../helpers/python.js';
import { repoRoot, runExp, tempDir, testEnv } from './util.js';

const work = tempDir('hostile');
const env = testEnv(work);

function fifo(name: string): string {
  const p = join(work, name);
  const r = spawnSync('mkfifo', [p]);
  assert.equal(r.status, 0, 'mkfifo');
  return p;
}

/** A YAML "billion laughs": 9 levels of 9 aliases each (9^9 strings once expanded). */
function billionLaughs(): string {
  let text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  let prev = 'a';
  for (const n of 'bcdefghi') {
    text += `${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]\n`;
    prev = n;
  }
  return `${text}recipe: toy\n`;
}

interface CliCase {
  name: string;
  args: () => string[];
  env?: NodeJS.ProcessEnv;
  /** What stderr must say. */
  says: RegExp;
}

const toy = (...more: string[]) => ['run', 'toy.yaml', '--dry-run', ...more];
const POLICY = join(repoRoot, 'rl', 'behavior', 'ant-medium.json');

const CASES: CliCase[] = [
  // configs and flags
  { name: '--set __proto__.x=1', args: () => toy('--set', '__proto__.polluted=1'), says: /key '__proto__' is not allowed/ },
  {
    name: '--set toy.constructor.prototype.x=1',
    args: () => toy('--set', 'toy.constructor.prototype.x=1'),
    says: /key 'constructor' is not allowed/,
  },
  {
    name: "--set 'toy={__proto__: {steps: 5}}' (in the value)",
    args: () => toy('--set', 'toy={__proto__: {steps: 5}}'),
    says: /key '__proto__' is not allowed/,
  },
  {
    name: 'YAML __proto__: key',
    args: () => {
      writeFileSync(join(work, 'proto.yaml'), 'recipe: toy\ntoy:\n  __proto__:\n    steps: 3\n');
      return ['run', join(work, 'proto.yaml'), '--dry-run'];
    },
    says: /proto\.yaml:3:3: key '__proto__' is not allowed/,
  },
  {
    name: 'YAML billion laughs',
    args: () => {
      writeFileSync(join(work, 'laughs.yaml'), billionLaughs());
      return ['run', join(work, 'laughs.yaml'), '--dry-run'];
    },
    says: /laughs\.yaml: YAML aliases expand too far/,
  },
  { name: 'toy.hidden: 1e20', args: () => toy('--set', 'toy.hidden=1e20'), says: /toy\.hidden: expected an integer/ },
  { name: '--seed 1e300', args: () => toy('--seed', '1e300'), says: /seed: expected an integer/ },
  {
    name: '--tracking-uri /etc/passwd',
    args: () => toy('--tracking-uri', '/etc/passwd'),
    says: /tracking URI \/etc\/passwd: expected an MLflow file-store folder .* it is an existing file/,
  },
  {
    name: '--tracking-uri sqlite:///x.db',
    args: () => toy('--tracking-uri', 'sqlite:///x.db'),
    says: /expected http\(s\):\/\/host:port/,
  },
  {
    name: 'RING_BACKEND=nonsense',
    args: () => ['run', 'toy.yaml', '--dry-run'],
    env: { RING_BACKEND: 'nonsense' },
    says: /RING_BACKEND: unknown backend 'nonsense'/,
  },
  // sizes against the machine
  {
    name: 'data collect --num-envs 1000',
    args: () => ['data', 'collect', '--policy', POLICY, '--episodes', '1', '--num-envs', '1000', '--out', join(work, 'c.arrow')],
    says: /--num-envs: expected at most \d+ \(one worker thread per env/,
  },
  {
    name: 'data collect --steps 1e300',
    args: () => ['data', 'collect', '--policy', POLICY, '--steps', '1e300', '--out', join(work, 'c.arrow')],
    says: /--steps: expected a positive integer; got 1e\+300/,
  },
  {
    name: 'bench attention --seq-len 1e12',
    args: () => ['bench', 'attention', '--seq-len', '1e12'],
    says: /need more memory than this machine can allocate \(Invalid typed array length/,
  },
  // datasets
  { name: 'data inspect <FIFO>', args: () => ['data', 'inspect', fifo('a.fifo')], says: /expected the Arrow dataset to be a regular file; it is a FIFO/ },
  { name: 'data validate <FIFO>', args: () => ['data', 'validate', fifo('b.fifo')], says: /it is a FIFO/ },
  { name: 'exp run <FIFO config>', args: () => ['run', fifo('d.fifo'), '--dry-run'], says: /expected the config to be a regular file; it is a FIFO/ },
  {
    name: 'data import d4rl <FIFO>',
    args: () => ['data', 'import', 'd4rl', fifo('e.fifo'), '--out', join(work, 'e.arrow')],
    says: /expected the HDF5 file to be a regular file; it is a FIFO/,
  },
  { name: 'data inspect /dev/zero', args: () => ['data', 'inspect', '/dev/zero'], says: /it is a device/ },
  {
    name: 'exp run offline-rl on a FIFO dataset',
    args: () => [
      'run',
      join(repoRoot, 'test', 'fixtures', 'offline-rl-tiny.yaml'),
      '--tracking-uri',
      join(work, 'fifo-runs'),
      '--set',
      `offline-rl.dataset=${fifo('c.fifo')}`,
    ],
    says: /it is a FIFO/,
  },
  {
    name: 'data import d4rl, rewards stored as strings',
    args: () => ['data', 'import', 'd4rl', hdf5('strings.hdf5', true), '--out', join(work, 's.arrow')],
    says: /key "rewards": expected numbers; got HDF5 type class 3 \(string\)/,
  },
  {
    name: 'data import --out an existing directory',
    args: () => {
      mkdirSync(join(work, 'a-dir'), { recursive: true });
      return ['data', 'import', 'd4rl', hdf5('ok.hdf5', false), '--out', join(work, 'a-dir')];
    },
    says: /it is an existing directory/,
  },
  {
    name: 'data collect --out <the policy file>',
    args: () => {
      const copy = join(work, 'policy-copy.json');
      writeFileSync(copy, readFileSync(POLICY));
      return ['data', 'collect', '--policy', copy, '--episodes', '1', '--out', copy];
    },
    says: /is the input .*policy-copy\.json/,
  },
];

/** A tiny D4RL-style file (h5py), rewards as numbers or as strings. */
function hdf5(name: string, stringRewards: boolean): string {
  const file = join(work, name);
  if (existsSync(file)) return file;
  const r = runPython(`
import h5py, numpy as np
with h5py.File(${JSON.stringify(file)}, "w") as f:
    f["observations"] = np.zeros((20, 3), "float32"); f["actions"] = np.zeros((20, 2), "float32")
    f["rewards"] = np.array([b"1.5"] * 20) if ${stringRewards ? 'True' : 'False'} else np.ones(20, "float32")
    f["terminals"] = np.zeros(20, bool); f["timeouts"] = np.zeros(20, bool)
`);
  assert.equal(r.code, 0, r.stderr);
  return file;
}

describe('hostile input: exit 2, a precise message, no stack trace, nothing created', () => {
  for (const c of CASES)
    test(c.name, async () => {
      const cwd = join(work, `cwd-${c.name.replace(/\W+/g, '_')}`);
      mkdirSync(cwd, { recursive: true });
      const r = await runExp(c.args(), { cwd, env: { ...env, ...c.env } });
      assert.equal(r.code, 2, `${c.name}: exit 2; stderr:\n${r.stderr}`);
      assert.match(r.stderr, c.says, c.name);
      assert.doesNotMatch(r.stderr, /\n\s+at |RangeError|TypeError|SyntaxError/, `${c.name}: no stack trace`);
      assert.deepEqual(readdirSync(cwd), [], `${c.name}: nothing created in the working folder`);
    });
});

describe('stores: read-only commands create nothing; one corrupt run does not hide the rest', () => {
  test('exp runs list and exp run --dry-run leave no ./mlruns', async () => {
    const cwd = join(work, 'nothing');
    mkdirSync(cwd);
    const list = await runExp(['runs', 'list'], { cwd, env });
    assert.equal(list.code, 0, list.stderr);
    const dry = await runExp(['run', 'toy.yaml', '--dry-run'], { cwd, env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(readdirSync(cwd), [], 'no mlruns/0/meta.yaml');
  });

  test('a corrupt run meta.yaml is skipped with a warning naming it; the other runs are listed', async () => {
    const store = join(work, 'corrupt-store');
    const fs = new FileStore(store);
    const exp = await fs.ensureExperiment('e');
    const ids: string[] = [];
    for (const name of ['good-1', 'bad', 'good-2'])
      ids.push((await fs.createRun({ experimentId: exp, runName: name, startTime: Date.now(), tags: [] })).runId);
    const badMeta = join(store, exp, ids[1], 'meta.yaml');
    writeFileSync(badMeta, 'run_id: [unclosed\n  status: {');
    const r = await runExp(['runs', 'list', '--tracking-uri', store, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { run_name: string }[];
    assert.deepEqual(rows.map((x) => x.run_name).sort(), ['good-1', 'good-2']);
    assert.match(r.stderr, new RegExp(`skipping run ${join(store, exp, ids[1])}: unreadable`));
  });
});

describe('safetensors: offsets outside the data section and shard paths outside the folder are refused', () => {
  const rng = new Rng((Date.now() ^ process.pid) >>> 0);
  const tensor = () => ({ shape: [2, 3], data: rng.normalArray(6) });

  /** A safetensors file whose header entry for `w` is replaced by `entry`. */
  function forged(name: string, entry: unknown): string {
    const good = Buffer.from(encodeSafetensors({ w: tensor() }));
    const n = Number(good.readBigUInt64LE(0));
    const header = JSON.parse(good.subarray(8, 8 + n).toString('utf8'));
    header.w = entry;
    const hb = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    const file = join(work, name);
    writeFileSync(file, Buffer.concat([len, hb, good.subarray(8 + n)]));
    return file;
  }

  const offsetCases: [string, unknown][] = [
    ['negative start', { dtype: 'F32', shape: [2, 3], data_offsets: [-24, 0] }],
    ['fractional offsets', { dtype: 'F32', shape: [2, 3], data_offsets: [0.5, 24.5] }],
    ['past the end', { dtype: 'F32', shape: [2, 3], data_offsets: [0, 2 ** 40] }],
    ['negative shape', { dtype: 'F32', shape: [-2, -3], data_offsets: [0, 24] }],
  ];
  for (const [name, entry] of offsetCases)
    test(`data_offsets: ${name}`, () => {
      const file = forged(`${name.replace(/\W/g, '_')}.safetensors`, entry);
      assert.throws(
        () => new SafetensorsFile(file).read('w'),
        (e: unknown) => isInputError(e) && /tensor "w": malformed header entry/.test((e as Error).message),
      );
    });

  for (const shard of ['../../../etc/passwd', '/etc/passwd', 'sub/../../x.safetensors', 'model.bin'])
    test(`weight_map names ${shard}`, () => {
      const dir = join(work, `ckpt-${shard.replace(/\W/g, '_')}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { w: shard } }));
      assert.throws(
        () => new CheckpointReader(dir),
        (e: unknown) => isInputError(e) && /expected a \.safetensors file name inside/.test((e as Error).message),
      );
    });

  test('a FIFO as model.safetensors', () => {
    const dir = join(work, 'ckpt-fifo');
    mkdirSync(dir);
    spawnSync('mkfifo', [join(dir, 'model.safetensors')]);
    assert.throws(
      () => new CheckpointReader(dir),
      (e: unknown) => isInputError(e) && /it is a FIFO/.test((e as Error).message),
    );
  });
});
