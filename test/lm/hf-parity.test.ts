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
import { initBackend } from '../../ring/index.js';
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
});
