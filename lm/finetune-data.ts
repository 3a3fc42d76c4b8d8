/**
 * What a ShareGPT finetune starts from (paper §5.3 in miniature): the packed token dataset built
 * from a ShareGPT file (FastChat cleaning, Vicuna v1.1, loss on assistant tokens) and the model,
 * a Hugging Face LLaMA folder or random weights of a given shape. lm/finetune.ts trains it.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, type Rng } from '../common/index.js';
import { type LlamaConfig, LlamaModel, type LlamaRuntime } from './model.js';
import { loadLlama } from './safetensors.js';
import { type BuildReport, buildShareGptDataset } from './sharegpt.js';
import { loadTokenizer, type Tokenizer } from './tokenizer.js';

/** Shape of a randomly initialised model. */
export interface LlamaShape {
  hiddenSize: number;
  /** SwiGLU hidden size. */
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads (GQA). */
  numKvHeads: number;
  /** RoPE base. */
  ropeTheta: number;
  /** Share the embedding and the LM head. */
  tieWordEmbeddings: boolean;
}

export interface ShareGptSource {
  /** ShareGPT JSON/JSONL file (relative paths: the working folder, then the repository). */
  data: string;
  /** "llama" (bundled LLaMA-1/2 vocabulary) or a folder/file with tokenizer.json. */
  tokenizer: string;
  /** HF LLaMA checkpoint folder to finetune; empty = random init of `model`. */
  init: string;
  /** Shape of a randomly initialised model (ignored with `init`). */
  model: LlamaShape;
}

export const SHAREGPT_SOURCE_DEFAULTS: ShareGptSource = {
  data: 'lm/data/sharegpt-sample.json',
  tokenizer: 'llama',
  init: '',
  model: {
    hiddenSize: 64,
    intermediateSize: 176,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
  },
};

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** A data, tokenizer or init path: as given, else under the working folder, else the repository. */
export function resolveDataPath(p: string): string {
  if (isAbsolute(p)) return p;
  const here = resolve(p);
  return existsSync(here) ? here : join(REPO, p);
}

export interface ShareGptData {
  tokenizer: Tokenizer;
  report: BuildReport;
  /** The cleaning report as params (`data.records`, `data.kept`, …). */
  params: Record<string, number>;
  /** Drop and trim reasons with their counts, a table's rows. */
  reasons: { kind: 'dropped' | 'trimmed'; reason: string; count: number }[];
  /** One line that says what was kept. */
  summary: string;
}

/** Cleans, tokenizes and packs `source.data` into the Arrow token dataset `arrowPath` (windows of seqLen). */
export function buildShareGptData(source: ShareGptSource, seqLen: number, arrowPath: string): ShareGptData {
  const vocabulary = source.tokenizer;
  const tokenizer = loadTokenizer(vocabulary === 'llama' ? 'llama' : resolveDataPath(vocabulary));
  const report = buildShareGptDataset(resolveDataPath(source.data), arrowPath, {
    tokenizer,
    maxLen: seqLen,
    packLen: seqLen,
  });
  const { records, kept, sequences, tokens, loss_tokens, split_conversations, pairs_too_long } = report;
  const counts = { records, kept, sequences, tokens, loss_tokens, split_conversations, pairs_too_long };
  return {
    tokenizer,
    report,
    params: Object.fromEntries(Object.entries(counts).map(([k, v]) => [`data.${k}`, v])),
    reasons: [
      ...Object.entries(report.dropped).map(([reason, count]) => ({
        kind: 'dropped' as const,
        reason,
        count: count ?? 0,
      })),
      ...Object.entries(report.trimmed).map(([reason, count]) => ({
        kind: 'trimmed' as const,
        reason,
        count,
      })),
    ],
    summary: `${report.kept}/${report.records} conversations kept, dropped ${JSON.stringify(report.dropped)}, ${report.sequences} packed sequences, ${report.tokens} tokens`,
  };
}

/**
 * The model to finetune: `source.init` loaded, or random weights of `source.model` drawn from
 * `rng`, with the tokenizer's vocabulary and special tokens. Throws an InputError naming `name`
 * when the model's vocabulary is smaller than the tokenizer's.
 */
export function finetuneModel(
  source: ShareGptSource,
  tokenizer: Tokenizer,
  seqLen: number,
  rng: Rng,
  runtime: LlamaRuntime,
  name = 'finetune',
): LlamaModel {
  if (source.init) return checkedVocab(loadLlama(resolveDataPath(source.init), runtime), tokenizer, name);
  const config: LlamaConfig = {
    vocabSize: tokenizer.vocabSize,
    ...source.model,
    rmsNormEps: 1e-5,
    ropeScalingFactor: 1,
    maxPositionEmbeddings: seqLen,
    bosTokenId: tokenizer.bosId,
    eosTokenId: tokenizer.eosId,
  };
  return checkedVocab(LlamaModel.init(config, rng, runtime), tokenizer, name);
}

function checkedVocab(model: LlamaModel, tokenizer: Tokenizer, name: string): LlamaModel {
  if (model.config.vocabSize >= tokenizer.vocabSize) return model;
  model.dispose();
  throw new InputError(
    `${name}: model vocab ${model.config.vocabSize} < tokenizer vocab ${tokenizer.vocabSize}`,
  );
}
