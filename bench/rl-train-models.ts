/**
 * The policies bench/rl-train measures (issue 14), shared by the throughput bench, the PyTorch
 * twin's input and the step profile, so all three see the same shapes.
 */
import { InputError } from '../common/index.js';

export interface PolicyPreset {
  name: 'medium' | 'large';
  dModel: number;
  layers: number;
  heads: number;
  /** Chain steps of context; 4 tokens a step (return-to-go, state, action, completion). */
  contextSteps: number;
  batch: number;
}

export const PRESETS: Readonly<Record<PolicyPreset['name'], PolicyPreset>> = {
  // experiments/configs/ant-medium.yaml as it ships: 256 tokens a sequence
  medium: { name: 'medium', dModel: 64, layers: 2, heads: 2, contextSteps: 64, batch: 8 },
  // issue 14's larger policy: 1,024 tokens a sequence
  large: { name: 'large', dModel: 256, layers: 4, heads: 8, contextSteps: 256, batch: 4 },
};

/** Ant-v5's spaces (rl/envs/ant.ts): the twin must be built with the dataset's widths. */
export const ANT = { obsDim: 105, actDim: 8, maxTimestep: 1001 } as const;

/** The training hyper-parameters of ant-medium.yaml that shape a step's work. */
export const ANT_TRAIN = {
  lr: 3e-4,
  weightDecay: 1e-4,
  clip: 0.25,
  blockSize: 128,
  keepAttention: true,
  keepFfn: false,
} as const;

export function presetOf(name: string): PolicyPreset {
  if (name === 'medium' || name === 'large') return PRESETS[name];
  throw new InputError(`rl-train: --model expects medium or large; got ${JSON.stringify(name)}`);
}

/** `exp run --set` overrides that turn ant-medium.yaml into this preset. */
export function presetSets(p: PolicyPreset): string[] {
  return [
    `offline-rl.model.dModel=${p.dModel}`,
    `offline-rl.model.layers=${p.layers}`,
    `offline-rl.model.heads=${p.heads}`,
    `offline-rl.at.contextSteps=${p.contextSteps}`,
    `offline-rl.train.batchSize=${p.batch}`,
  ];
}

/**
 * The Agentic Transformer's parameter count (rl/policies/trajectory-transformer.ts): modality
 * embeddings (widths 1, S, A, 1) with biases, timestep table, input norm, blocks (two norms,
 * Wq Wk Wv Wo, up and down at 4·Dm), output norm, head with bias.
 */
export function presetParameters(p: PolicyPreset): number {
  const { obsDim: S, actDim: A, maxTimestep } = ANT;
  const D = p.dModel;
  const embed = (2 + S + A) * D + 4 * D;
  const block = 2 * D + 4 * D * D + 8 * D * D;
  return embed + maxTimestep * D + D + p.layers * block + D + D * A + A;
}
