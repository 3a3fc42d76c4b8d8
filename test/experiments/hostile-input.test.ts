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
import * as tf from '@tensorflow/tfjs';
import { isInputError, Rng, relError } from '../../common/index.js';
import { loadConfig } from '../../experiments/index.js';
import { FileStore } from '../../experiments/tracking/index.js';
import { CheckpointReader, encodeSafetensors, SafetensorsFile } from '../../lm/index.js';
import { initBackend } from '../../native/index.js';
import { vanillaAttention } from '../../ring/index.js';
import { RingGroup } from '../../cluster/index.js';
import { runPython } from '../helpers/python.js';
import { referenceAttention } from '../helpers/reference.js';
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
  {
    name: '--set __proto__.x=1',
    args: () => toy('--set', '__proto__.polluted=1'),
    says: /key '__proto__' is not allowed/,
  },
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
  {
    name: 'toy.hidden: 1e20',
    args: () => toy('--set', 'toy.hidden=1e20'),
    says: /toy\.hidden: expected an integer/,
  },
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
    args: () => [
      'data',
      'collect',
      '--policy',
      POLICY,
      '--episodes',
      '1',
      '--num-envs',
      '1000',
      '--out',
      join(work, 'c.arrow'),
    ],
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
    says: /--seq-len 1000000000000 .*: needs at least [\d.e+]+ GiB \(q, k, v .*\); this machine has [\d.]+ GiB/,
  },
  {
    name: 'bench attention --impl ring --devices 1000',
    args: () => ['bench', 'attention', '--impl', 'ring', '--devices', '1000'],
    says: /--devices: expected at most \d+ \(one worker thread per device, ≈ 64 MB each/,
  },
  {
    name: 'bench attention --impl vanilla --seq-len 200000',
    args: () => ['bench', 'attention', '--impl', 'vanilla', '--seq-len', '200000'],
    says: /needs at least [\d.]+ GiB .*vanilla's \(B, H, T, T\) scores and softmax 2·B·H·T²·4 = 2·1·8·200000²·4 bytes = 2384\.2 GiB.*this machine has/,
  },
  {
    name: 'bench attention --impl vanilla --seq-len 16384 --backend wasm (one device heap)',
    args: () => ['bench', 'attention', '--impl', 'vanilla', '--seq-len', '16384', '--backend', 'wasm'],
    says: /one device needs at least 16\.\d GiB .*a wasm device's heap holds at most 4\.0 GiB/,
  },
  {
    name: 'bench attention --heads 1000000',
    args: () => ['bench', 'attention', '--heads', '1000000'],
    says: /--heads 1000000 .*needs at least [\d.]+ GiB/,
  },
  {
    name: 'bench attention --batch 100000 --head-dim 4096',
    args: () => ['bench', 'attention', '--batch', '100000', '--head-dim', '4096'],
    says: /--batch 100000 .*--head-dim 4096: needs at least [\d.]+ GiB/,
  },
  {
    name: 'bench env --num-envs 1000 --workers 1000',
    args: () => ['bench', 'env', 'Ant-v5', '--num-envs', '1000', '--workers', '1000'],
    says: /--workers: expected at most \d+ \(each a thread with its own MuJoCo instance/,
  },
  {
    name: 'bench env --num-envs 10000000',
    args: () => ['bench', 'env', 'Ant-v5', '--num-envs', '10000000'],
    says: /--num-envs: expected at most 1024 \(each env holds its own simulator state\); got 10000000/,
  },
  {
    name: 'launch --nproc 1000',
    args: () => ['launch', '--nproc', '1000', '--', 'exp', 'ring-worker', 'attention'],
    says: /--nproc: expected at most \d+ \(one process per local rank/,
  },
  {
    name: 'ring-worker attention --seq-len 1e12',
    args: () => ['ring-worker', 'attention', '--seq-len', '1e12'],
    env: {
      RANK: '0',
      WORLD_SIZE: '2',
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: '1',
      RING_SECRET: 'hostile-input-test-secret-0123456789',
    },
    says: /every rank draws q, k, v and dOut .* this machine has/,
  },
  {
    name: 'offline-rl.model.devices=1000',
    args: () => [
      'run',
      join(repoRoot, 'test', 'fixtures', 'offline-rl-tiny.yaml'),
      '--dry-run',
      '--set',
      'offline-rl.model.devices=1000',
    ],
    says: /offline-rl\.model\.devices: expected an integer ≥ 1 and ≤ \d+ \(one worker thread per device/,
  },
  {
    name: 'sharegpt-finetune.devices=1000',
    args: () => ['run', 'sharegpt-finetune.yaml', '--dry-run', '--set', 'sharegpt-finetune.devices=1000'],
    says: /sharegpt-finetune\.devices: expected an integer ≥ 1 and ≤ \d+ \(one worker thread/,
  },
  {
    name: 'context-scaling.devices=[1, 1000]',
    args: () => ['run', 'context-scaling.yaml', '--dry-run', '--set', 'context-scaling.devices=[1, 1000]'],
    says: /context-scaling\.devices\[1\]: expected an integer ≥ 1 and ≤ \d+ \(one worker thread/,
  },
  {
    name: '--set toy.toString=1 (an inherited name)',
    args: () => toy('--set', 'toy.toString=1'),
    says: /toy\.toString: unknown key/,
  },
  // datasets
  {
    name: 'data inspect <FIFO>',
    args: () => ['data', 'inspect', fifo('a.fifo')],
    says: /expected the Arrow dataset to be a regular file; it is a FIFO/,
  },
  { name: 'data validate <FIFO>', args: () => ['data', 'validate', fifo('b.fifo')], says: /it is a FIFO/ },
  {
    name: 'exp run <FIFO config>',
    args: () => ['run', fifo('d.fifo'), '--dry-run'],
    says: /expected the config to be a regular file; it is a FIFO/,
  },
  {
    name: 'data import d4rl <FIFO>',
    args: () => ['data', 'import', 'd4rl', fifo('e.fifo'), '--out', join(work, 'e.arrow')],
    says: /expected the HDF5 file to be a regular file; it is a FIFO/,
  },
  { name: 'data inspect /dev/zero', args: () => ['data', 'inspect', '/dev/zero'], says: /it is a device/ },
  {
    name: 'data inspect <Minari dir whose data/metadata.json is a FIFO>',
    args: () => {
      const dir = join(work, 'minari-fifo');
      mkdirSync(join(dir, 'data'), { recursive: true });
      spawnSync('mkfifo', [join(dir, 'data', 'metadata.json')]);
      return ['data', 'inspect', dir];
    },
    says: /metadata\.json: expected the Minari dataset metadata to be a regular file; it is a FIFO/,
  },
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
      ids.push(
        (await fs.createRun({ experimentId: exp, runName: name, startTime: Date.now(), tags: [] })).runId,
      );
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
        (e: unknown) =>
          isInputError(e) && /expected a \.safetensors file name inside/.test((e as Error).message),
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

describe('config mappings have no prototype (issue 16 item 12)', () => {
  test('every mapping of a loaded config is prototype-free; --set cannot reach Object.prototype', () => {
    const loaded = loadConfig('toy.yaml', { sets: ['toy.steps=3', 'toy.lr=0.5'] });
    const mappings: [string, object][] = [];
    const walk = (v: unknown, path: string) => {
      if (Array.isArray(v)) {
        for (const [i, x] of v.entries()) walk(x, `${path}[${i}]`);
      } else if (v !== null && typeof v === 'object') {
        mappings.push([path, v]);
        for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
      }
    };
    walk(loaded.config, '');
    assert.ok(mappings.length >= 4, `mappings found: ${mappings.map(([p]) => p || '(top)').join(', ')}`);
    for (const [path, m] of mappings)
      assert.equal(Object.getPrototypeOf(m), null, `${path || '(top)'} has a prototype`);
    assert.equal((loaded.config as unknown as { toy: { steps: number } }).toy.steps, 3);
    assert.throws(() => loadConfig('toy.yaml', { sets: ['__proto__.polluted=1'] }), isInputError);
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  });
});

describe('exp bench attention --check and device errors', () => {
  test('vanilla --check: maxRelErr is against the float64 reference, not against vanilla itself', async () => {
    const [B, H, T, D] = [1, 2, 64, 8];
    const seed = (Date.now() ^ process.pid) % 100_000;
    const r = await runExp(
      [
        'bench',
        'attention',
        '--impl',
        'vanilla',
        '--seq-len',
        String(T),
        '--heads',
        String(H),
        '--head-dim',
        String(D),
      ].concat(['--seed', String(seed), '--check', '--json', '--repeats', '0', '--backend', 'wasm']),
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    const got = (JSON.parse(r.stdout) as { maxRelErr: number }).maxRelErr;
    // the same inputs as the bench draws them (q, k, v in that order), vanilla in float32 here
    const rng = new Rng(seed);
    const q = rng.normalArray(B * H * T * D);
    const k = rng.normalArray(B * H * T * D);
    const v = rng.normalArray(B * H * T * D);
    await initBackend({ backend: 'wasm', notice: false });
    const out = vanillaAttention(
      tf.tensor4d(q, [B, H, T, D]),
      tf.tensor4d(k, [B, H, T, D]),
      tf.tensor4d(v, [B, H, T, D]),
    );
    const expected = relError(
      out.dataSync(),
      referenceAttention({ B, H, Hk: H, T, D, causal: false, q, k, v }).out,
    );
    out.dispose();
    // float32 against float64 is never exact; vanilla against itself was (the bug: 0)
    assert.ok(expected > 1e-9, `float32 vanilla vs float64: ${expected}`);
    assert.ok(
      Math.abs(got - expected) <= 0.25 * expected,
      `bench maxRelErr ${got}; vanilla vs float64 here ${expected}`,
    );
  });

  test('a kernel error inside a device is named (not "Cannot read properties of undefined")', async () => {
    const group = await RingGroup.create({ devices: 1, backend: 'wasm' });
    // (T, T) scores of 40000² floats: more than a wasm heap can address, so the matmul throws
    const T = 40_000;
    const x = new Float32Array(T);
    try {
      await assert.rejects(
        group.run(
          new URL('../../cluster/device/single-task.js', import.meta.url),
          'singleAttentionTask',
          [
            {
              impl: 'vanilla',
              q: x,
              k: x,
              v: x,
              B: 1,
              H: 1,
              Hk: 1,
              T,
              D: 1,
              options: {},
              measureMemory: true,
            },
          ],
          1,
        ),
        // the device names itself and the kernel's own error, whether the error ends the worker
        // (`device 0 crashed: …`) or comes back as the task's failure (`device 0: …`)
        (e: Error) =>
          /device 0( crashed)?: Invalid typed array length/.test(e.message) &&
          !/Cannot read properties/.test(e.message),
      );
    } finally {
      await group.dispose();
    }
  });
});
