// Parity with Hugging Face transformers (issue 8): a tiny random LLaMA that we write loads in
// LlamaForCausalLM.from_pretrained with the same logits (‖Δ‖/‖ref‖ ≤ 1e-4), and one that
// transformers writes (sharded) loads in ours with the same logits; GQA, tied and untied
// embeddings, RoPE theta and linear position interpolation.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { type LlamaConfig, LlamaModel, loadLlama, saveLlama } from '../../lm/index.js';
import { initBackend } from '../../native/index.js';
import { pythonJson } from '../helpers/python.js';
import { relError } from '../helpers/reference.js';

const TOL = 1e-4;
let dir: string;

before(async () => {
  await initBackend({ backend: 'wasm' });
  dir = mkdtempSync(join(tmpdir(), 'lm-parity-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const tiny = (over: Partial<LlamaConfig>): LlamaConfig => ({
  vocabSize: 96,
  hiddenSize: 32,
  intermediateSize: 56,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  ropeScalingFactor: 1,
  tieWordEmbeddings: false,
  maxPositionEmbeddings: 256,
  bosTokenId: 1,
  eosTokenId: 2,
  ...over,
});

/** Our logits (1, T, V) for `ids`, with every attention implementation that runs on one device. */
function ourLogits(model: LlamaModel, ids: number[]): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d(ids, [1, ids.length], 'int32')).dataSync() as Float32Array);
}

const HF_LOGITS = (path: string, ids: number[]) => `
import json, torch
from transformers import LlamaForCausalLM
m = LlamaForCausalLM.from_pretrained(${JSON.stringify(path)}, dtype=torch.float32).eval()
with torch.no_grad():
    out = m(torch.tensor([${JSON.stringify(ids)}])).logits
print(json.dumps({"logits": out.flatten().tolist(), "params": m.num_parameters()}))
`;

describe('HF parity', () => {
  const cases: { name: string; cfg: LlamaConfig; shard: number }[] = [
    { name: 'ours → HF: GQA 4/2, untied, theta 10000', cfg: tiny({}), shard: 0 },
    {
      name: 'ours → HF: MHA, tied, theta 500000, interpolation ×4, sharded',
      cfg: tiny({ numKvHeads: 4, tieWordEmbeddings: true, ropeTheta: 500000, ropeScalingFactor: 4 }),
      shard: 20_000,
    },
  ];
  for (const { name, cfg, shard } of cases)
    test(name, async () => {
      const rng = new Rng(Date.now() >>> 0);
      const model = LlamaModel.init(cfg, rng, {
        attention: 'vanilla',
        blockSize: 8,
        ffnChunk: 0,
        checkpointLayers: false,
      });
      // random norm gains too, so a swapped norm would show
      for (const v of [model.weights.norm, ...model.weights.layers.flatMap((l) => [l.attnNorm, l.ffnNorm])])
        v.assign(tf.tensor1d(Array.from({ length: cfg.hiddenSize }, () => 0.5 + rng.next())));
      const out = join(dir, name.replace(/\W+/g, '_'));
      saveLlama(model, out, { maxShardBytes: shard });
      if (shard) assert.ok(readdirSync(out).includes('model.safetensors.index.json'));
      const ids = Array.from({ length: 40 }, () => rng.int(cfg.vocabSize));
      const hf = await pythonJson<{ logits: number[]; params: number }>(HF_LOGITS(out, ids));
      for (const attention of ['vanilla', 'memeff', 'blockwise'] as const) {
        const ours = ourLogits(
          model.withRuntime({ attention, blockSize: 8, ffnChunk: 16, checkpointLayers: false }),
          ids,
        );
        const err = relError(ours, hf.logits);
        assert.ok(err <= TOL, `${attention}: relative error ${err} > ${TOL}`);
      }
      model.dispose();
    });

  for (const tied of [false, true])
    test(`HF → ours: sharded, GQA 4/1, ${tied ? 'tied' : 'untied'}, linear rope scaling ×2`, async () => {
      const out = join(dir, `hf-${tied}`);
      const seed = Date.now() % 100000;
      const ids = Array.from({ length: 33 }, (_, i) => (i * 37 + seed) % 96);
      const hf = await pythonJson<{ logits: number[] }>(`
import json, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(${seed})
c = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=56, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=1, rms_norm_eps=1e-5, rope_theta=20000.0,
    rope_scaling={"rope_type": "linear", "factor": 2.0}, tie_word_embeddings=${tied ? 'True' : 'False'})
m = LlamaForCausalLM(c).eval()
with torch.no_grad():
    for name, p in m.named_parameters():
        if "norm" in name: p.uniform_(0.5, 1.5)
        else: p.normal_(0, 0.1)
    m.save_pretrained(${JSON.stringify(out)}, max_shard_size="30KB")
    out = m(torch.tensor([${JSON.stringify(ids)}])).logits
print(json.dumps({"logits": out.flatten().tolist()}))
`);
      assert.ok(readdirSync(out).some((f) => f.startsWith('model-00002')));
      const model = loadLlama(out, {
        attention: 'blockwise',
        blockSize: 8,
        ffnChunk: 8,
        checkpointLayers: true,
      });
      assert.equal(model.config.numKvHeads, 1);
      assert.equal(model.config.ropeScalingFactor, 2);
      assert.equal(model.config.ropeTheta, 20000);
      assert.equal(model.config.tieWordEmbeddings, tied);
      const err = relError(ourLogits(model, ids), hf.logits);
      assert.ok(err <= TOL, `relative error ${err} > ${TOL}`);
      model.dispose();
    });

  test('a mis-shaped or missing tensor names the tensor, expected and actual shape', () => {
    const cfg = tiny({});
    const model = LlamaModel.init(cfg, new Rng(1));
    const out = join(dir, 'bad');
    saveLlama(model, out);
    model.dispose();
    const conf = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    writeFileSync(join(out, 'config.json'), JSON.stringify({ ...conf, num_key_value_heads: 4 }));
    assert.throws(
      () => loadLlama(out),
      /tensor "model\.layers\.0\.self_attn\.k_proj\.weight": expected shape \[32,32\]; got \[16,32\]/,
    );
    writeFileSync(join(out, 'config.json'), JSON.stringify({ ...conf, num_hidden_layers: 3 }));
    assert.throws(
      () => loadLlama(out),
      /tensor "model\.layers\.2\.input_layernorm\.weight" is missing \(expected shape \[32\]\)/,
    );
    writeFileSync(join(out, 'config.json'), JSON.stringify({ ...conf, hidden_act: 'gelu' }));
    assert.throws(() => loadLlama(out), /key "hidden_act": expected "silu"/);
  });

  // issue 15: transformers 5 writes `rope_parameters`; llama3/yarn/dynamic checkpoints used to
  // load with no scaling. Each case: HF builds a random model with the scaling, saves it and
  // computes logits on 40 tokens (past original_max_position_embeddings = 16, so every scaling
  // acts); ours loads it from both spellings (rope_parameters as written, and the older
  // rope_scaling + top-level rope_theta) and must match. The same weights without the scaling
  // must NOT match, so each case can fail.
  describe('RoPE scalings (HF → ours, both config spellings)', () => {
    const seed = Date.now() % 100000;
    const T = 40;
    const ids = Array.from({ length: T }, (_, i) => (i * 29 + seed) % 96);
    const half = 4; // head_dim 8 / 2
    const rnd = new Rng(seed);
    const longFactor = Array.from({ length: half }, () => 1 + 3 * rnd.next());
    const shortFactor = Array.from({ length: half }, () => 0.8 + 0.4 * rnd.next());
    const cases: { name: string; params: Record<string, unknown>; maxPos: number }[] = [
      {
        name: 'llama3 factor 8, low 1, high 4, original 16',
        params: {
          rope_type: 'llama3',
          factor: 8.0,
          low_freq_factor: 1.0,
          high_freq_factor: 4.0,
          original_max_position_embeddings: 16,
        },
        maxPos: 128,
      },
      {
        name: 'yarn factor 4, original 16, default betas and attention factor',
        params: { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 16 },
        maxPos: 64,
      },
      {
        name: 'yarn mscale 0.7 / mscale_all_dim 0.5, beta_fast 8, untruncated',
        params: {
          rope_type: 'yarn',
          factor: 3.0,
          original_max_position_embeddings: 16,
          mscale: 0.7,
          mscale_all_dim: 0.5,
          beta_fast: 8,
          beta_slow: 2,
          truncate: false,
        },
        maxPos: 48,
      },
      {
        name: 'dynamic factor 3, max_position_embeddings 16',
        params: { rope_type: 'dynamic', factor: 3.0 },
        maxPos: 16,
      },
      {
        name: 'longrope, original 16 (long factors past it)',
        params: {
          rope_type: 'longrope',
          long_factor: longFactor,
          short_factor: shortFactor,
          factor: 4.0,
          original_max_position_embeddings: 16,
        },
        maxPos: 64,
      },
    ];
    let hf: Record<string, number[]> = {};
    const dirOf = (i: number) => join(dir, `rope-${i}`);
    before(async () => {
      hf = await pythonJson<Record<string, number[]>>(`
import json, torch
from transformers import LlamaConfig, LlamaForCausalLM
cases = json.loads(${JSON.stringify(JSON.stringify(cases))})
out = {}
for i, case in enumerate(cases):
    torch.manual_seed(${seed} + i)
    params = dict(case["params"], rope_theta=10000.0)
    c = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=56, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
        max_position_embeddings=case["maxPos"], rope_parameters=params)
    m = LlamaForCausalLM(c).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name: p.uniform_(0.5, 1.5)
            else: p.normal_(0, 0.3)
        m.save_pretrained(${JSON.stringify(dir)} + f"/rope-{i}")
        out[case["name"]] = m(torch.tensor([${JSON.stringify(ids)}])).logits.flatten().tolist()
print(json.dumps(out))
`);
    });
    const runtime = { attention: 'blockwise', blockSize: 8, ffnChunk: 8, checkpointLayers: false } as const;
    for (const [i, { name, params }] of cases.entries())
      test(name, () => {
        const path = join(dirOf(i), 'config.json');
        const written = JSON.parse(readFileSync(path, 'utf8'));
        assert.equal(
          written.rope_parameters?.rope_type,
          params.rope_type,
          'transformers 5 writes rope_parameters',
        );
        const spellings: [string, Record<string, unknown>][] = [
          ['rope_parameters', written],
          [
            'rope_scaling',
            (() => {
              const { rope_parameters, ...rest } = written;
              const { rope_type, rope_theta, ...scaling } = rope_parameters;
              return { ...rest, rope_theta, rope_scaling: { type: rope_type, ...scaling } };
            })(),
          ],
        ];
        for (const [spelling, config] of spellings) {
          writeFileSync(path, JSON.stringify(config));
          const model = loadLlama(dirOf(i), runtime);
          assert.equal(model.config.ropeScaling?.type, params.rope_type, spelling);
          const err = relError(ourLogits(model, ids), hf[name]);
          assert.ok(err <= TOL, `${spelling}: relative error ${err} > ${TOL}`);
          // the same weights without the scaling are far off: the case can fail
          const plain = new LlamaModel({ ...model.config, ropeScaling: undefined }, model.weights, runtime);
          const errPlain = relError(ourLogits(plain, ids), hf[name]);
          assert.ok(
            errPlain > 100 * TOL,
            `${spelling}: unscaled RoPE is only ${errPlain} off; the case cannot fail`,
          );
          if (process.env.RING_TEST_VERBOSE)
            console.log(`${name} (${spelling}): ${err} scaled, ${errPlain} unscaled`);
          model.dispose();
        }
        writeFileSync(path, JSON.stringify(written));
      });

    test('ours → HF: a scaled model we save loads in transformers with the same logits (llama3, yarn)', async () => {
      const dirs = [0, 2].map((i) => {
        const model = loadLlama(dirOf(i), runtime);
        const out = join(dir, `rope-back-${i}`);
        saveLlama(model, out);
        model.dispose();
        return out;
      });
      const back = await pythonJson<{ logits: number[][]; types: string[] }>(`
import json, torch
from transformers import LlamaForCausalLM
ls, ts = [], []
for d in ${JSON.stringify(dirs)}:
    m = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    ts.append(m.config.rope_parameters["rope_type"])
    with torch.no_grad():
        ls.append(m(torch.tensor([${JSON.stringify(ids)}])).logits.flatten().tolist())
print(json.dumps({"logits": ls, "types": ts}))
`);
      assert.deepEqual(back.types, ['llama3', 'yarn']);
      for (const [k, i] of [0, 2].entries()) {
        const err = relError(back.logits[k], hf[cases[i].name]);
        assert.ok(err <= TOL, `${cases[i].name}: relative error ${err} > ${TOL}`);
      }
    });

    for (const spelling of ['rope_parameters', 'rope_scaling'])
      test(`a RoPE type we do not implement is refused (${spelling})`, () => {
        const path = join(dirOf(0), 'config.json');
        const written = JSON.parse(readFileSync(path, 'utf8'));
        const { rope_parameters, ...rest } = written;
        for (const kind of ['proportional', 'su', 'mrope']) {
          const scaling = { rope_type: kind, factor: 2.0 };
          writeFileSync(path, JSON.stringify({ ...rest, rope_theta: 10000, [spelling]: scaling }));
          assert.throws(
            () => loadLlama(dirOf(0)),
            new RegExp(
              `key "${spelling}\\.rope_type": expected one of default, linear, llama3, yarn, dynamic, longrope; got "${kind}"`,
            ),
          );
        }
        writeFileSync(
          path,
          JSON.stringify({
            ...rest,
            [spelling]: { ...rope_parameters, rope_type: 'llama3', low_freq_factor: undefined },
          }),
        );
        assert.throws(
          () => loadLlama(dirOf(0)),
          new RegExp(`key "${spelling}\\.low_freq_factor": expected a number`),
        );
        writeFileSync(path, JSON.stringify(written));
      });
  });
});
