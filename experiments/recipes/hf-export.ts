/**
 * An LM run's final model as the run's artifact hf/ (config.json + model.safetensors, what
 * transformers' LlamaForCausalLM.from_pretrained reads) and an MLflow logged model (issue 15).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type LlamaModel, saveLlama } from '../../lm/index.js';
import { logModel } from '../logged-model.js';
import type { RecipeContext } from './types.js';

export async function logHfModel<C>(ctx: RecipeContext<C>, model: LlamaModel, step: number): Promise<void> {
  const out = join(ctx.workDir, 'hf');
  saveLlama(model, out);
  const files = readdirSync(out).sort();
  for (const f of files) await ctx.tracker.file(join(out, f), `hf/${f}`);
  ctx.log(`HF checkpoint: artifact hf/ of the run (and ${out})`);
  try {
    const logged = await logModel(ctx.tracker, {
      name: 'llama',
      modelType: 'llama',
      files: files.map((f) => ({ local: join(out, f), path: f })),
      inputs: [{ name: 'input_ids', dtype: 'int64', shape: [-1, -1] }],
      outputs: [{ name: 'logits', dtype: 'float32', shape: [-1, -1, model.config.vocabSize] }],
      flavor: {
        format: 'huggingface-llama',
        loader:
          'transformers LlamaForCausalLM.from_pretrained(<this folder>), or lm/ loadLlama(<this folder>)',
      },
      params: {
        vocab_size: model.config.vocabSize,
        hidden_size: model.config.hiddenSize,
        num_hidden_layers: model.config.numLayers,
      },
      step,
    });
    ctx.log(`logged model ${logged.modelId} (models:/${logged.modelId})`);
  } catch (err) {
    ctx.log(`logged model not written: ${(err as Error).message}`);
  }
}
