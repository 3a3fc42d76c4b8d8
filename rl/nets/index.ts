/**
 * rl/nets/: the small hand-differentiated float64 networks PPO trains (rl/ppo.ts): a tanh MLP,
 * Gaussian and categorical action heads and the critic's loss with their gradients, and Adam
 * over a flat buffer.
 */
export { clipFlatGradNorm, FlatAdam, MlpAdam } from './adam.js';
export {
  argmax,
  categoricalBackward,
  categoricalLogProb,
  categoricalSample,
  gaussianBackward,
  gaussianLogProb,
  gaussianSample,
  type HeadLogProb,
  LOG_SQRT_2PI,
  sampleCategorical,
  softmax,
  valueLoss,
} from './heads.js';
export { type DenseLayer, type Gemm, jsGemm, Mlp, type MlpCache, tfjsGemm } from './mlp.js';
