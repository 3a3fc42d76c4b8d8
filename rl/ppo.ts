/**
 * PPO for behaviour policies (issue 6), after CleanRL's `ppo_continuous_action.py` (and `ppo.py`
 * for a discrete head): separate actor and critic MLPs (64-64 tanh, orthogonal init), a Gaussian
 * policy with a state-independent log-std, GAE, the clipped surrogate with an optional clipped
 * value loss, running observation normalisation and reward scaling (CleanRL's
 * NormalizeObservation / NormalizeReward wrappers), minibatch epochs, Adam with linear lr
 * annealing and global-norm gradient clipping. Reads top to bottom: the trainer state and its
 * clipped minibatch step · trainPpo (rollout → GAE → update epochs).
 *
 * Around it (issue 13): options and PPO_DEFAULTS in rl/ppo-options.ts; the networks, heads and
 * Adam in rl/nets/ (plain float64, hand-differentiated: exactly reproducible from the seed); the
 * rollout buffer and GAE in rl/ppo-rollout.ts; the policy file, PpoPolicy and evaluatePolicy in
 * rl/ppo-policy.ts; evaluation, early stop and checkpoints around a run in rl/ppo-run.ts. The
 * envs step on worker threads (AsyncVectorEnv) while the main thread runs the networks.
 *
 * Vector envs autoreset NEXT_STEP (Gymnasium 1.x): after sub-env i ends at step t, its step t+1
 * is a reset step (action ignored, reward 0). Such steps are stored but masked out of the loss,
 * and since the final observation arrives at the done step, a truncated episode bootstraps from
 * V(final obs) (CleanRL, on Gymnasium 0.x SAME_STEP, treats truncation as termination).
 */
import { InputError, Rng } from '../common/index.js';
import { initBackend } from '../native/index.js';
import { Box, Discrete, make, makeVec, RunningMeanStd, type VectorEnv } from './envs/index.js';
import {
  categoricalBackward,
  categoricalLogProb,
  categoricalSample,
  gaussianBackward,
  gaussianLogProb,
  gaussianSample,
  Mlp,
  MlpAdam,
  tfjsGemm,
  valueLoss,
} from './nets/index.js';
import {
  PPO_DEFAULTS,
  type PpoHyper,
  type PpoOptions,
  type PpoUpdate,
  resolvePpoOptions,
} from './ppo-options.js';
import {
  loadTrainerState,
  normalizeObs,
  OBS_NORM,
  type PolicyJSON,
  type PpoTrainerView,
  trainerPolicyJSON,
} from './ppo-policy.js';
import { type MinibatchData, normalizeAdvantages, RolloutBuffer } from './ppo-rollout.js';

export { PPO_DEFAULTS, PPO_OPTIONS, type PpoHyper, type PpoOptions, type PpoUpdate } from './ppo-options.js';
export type { MinibatchData } from './ppo-rollout.js';

/**
 * The training state; `trainPpo` drives it. Exposed so callers can snapshot a policy mid-training
 * (`policyJSON`) or evaluate it.
 */
export class PpoTrainer implements PpoTrainerView {
  readonly h: PpoHyper;
  readonly envKwargs: Record<string, unknown>;
  readonly obsDim: number;
  /** Values of each observation the networks see (the first ones). */
  readonly inDim: number;
  readonly discrete: boolean;
  /** Action values per env step: the box dim, or 1 for Discrete. */
  readonly actDim: number;
  readonly actor: Mlp; // means (Gaussian, log-std as its extra parameters) or logits
  readonly critic: Mlp;
  readonly obsStats: RunningMeanStd;
  readonly retStats = new RunningMeanStd(1); // of the discounted return, for reward scaling
  readonly rng: Rng;
  readonly actionSpace: Box | Discrete;
  envStep = 0;
  updates = 0;
  wallSec = 0;
  private readonly adam: MlpAdam;

  constructor(readonly options: PpoOptions) {
    const h = resolvePpoOptions(options);
    this.h = h;
    this.envKwargs = options.envKwargs ?? {};
    const probe = make(h.envId, this.envKwargs) as {
      observationSpace: unknown;
      actionSpace: unknown;
      close(): void;
    };
    const [os, as] = [probe.observationSpace, probe.actionSpace];
    probe.close();
    if (!(os instanceof Box) || os.shape.length !== 1)
      throw new InputError(`trainPpo: ${h.envId}: expected a 1-D Box observation space`);
    if (!(as instanceof Box) && !(as instanceof Discrete))
      throw new InputError(`trainPpo: ${h.envId}: expected a Box or Discrete action space`);
    this.actionSpace = as;
    this.obsDim = os.size;
    this.inDim = h.inputDim || os.size;
    if (!Number.isInteger(this.inDim) || this.inDim < 1 || this.inDim > os.size)
      throw new InputError(`trainPpo: inputDim must be an integer in [0, ${os.size}]; got ${h.inputDim}`);
    this.discrete = as instanceof Discrete;
    this.actDim = as instanceof Box ? as.size : 1;
    const nOut = as instanceof Box ? as.size : as.n;
    this.rng = new Rng(h.seed);
    this.actor = new Mlp([this.inDim, ...h.hidden, nOut], this.discrete ? 0 : nOut);
    this.critic = new Mlp([this.inDim, ...h.hidden, 1]);
    this.actor.initOrthogonal(this.rng, 0.01);
    this.actor.extra.fill(h.initLogStd);
    this.critic.initOrthogonal(this.rng, 1);
    if (h.math === 'tfjs') this.actor.gemm = this.critic.gemm = tfjsGemm;
    this.obsStats = new RunningMeanStd(this.inDim);
    // NOTE: after obsStats exists: load() restores it (`exp run --resume` failed here, issue 21)
    if (options.init) this.load(options.init);
    this.adam = new MlpAdam([this.actor, this.critic]);
  }

  /** Loads weights, statistics and counters of a saved policy with critic (see PpoOptions.init). */
  load(j: PolicyJSON): void {
    loadTrainerState(this, j);
  }

  /** Network inputs (rows, inDim) from raw observations (rows, obsDim), normalised. */
  normObs(obs: ArrayLike<number>, rows: number): Float64Array {
    const [D, d] = [this.obsDim, this.inDim];
    return this.h.normObs
      ? normalizeObs(obs, rows, D, this.obsStats, OBS_NORM.eps, OBS_NORM.clip)
      : Float64Array.from({ length: rows * d }, (_, k) => obs[Math.floor(k / d) * D + (k % d)]);
  }

  /** The policy as a file (actor + obs statistics; the critic too when `withCritic`). */
  policyJSON(withCritic = false): PolicyJSON {
    return trainerPolicyJSON(this, withCritic);
  }

  /** One clipped-PPO minibatch step; returns [pgLoss, vLoss, entropy, approxKl, clipFrac]. */
  minibatch(mb: MinibatchData, lr: number): [number, number, number, number, number] {
    const { obs, actions, logp: oldLogp, adv, returns, values: oldV, size: B } = mb;
    const h = this.h;
    this.actor.grads.fill(0);
    this.critic.grads.fill(0);
    // Advantages normalised per minibatch (CleanRL).
    const a = h.normAdv && B > 1 ? normalizeAdvantages(adv) : Float64Array.from(adv);

    // Actor: new log-probabilities and entropy.
    const ac = this.actor.forward(obs, B);
    const out = ac[ac.length - 1]; // (B, A) means or (B, n) logits
    const K = this.actor.outSize;
    const cat = this.discrete ? categoricalLogProb(out, actions, B, K) : undefined;
    const { logp: newLogp, entropy } = cat ?? gaussianLogProb(out, actions, this.actor.extra, B);

    // Clipped surrogate: L = mean(max(−A·ρ, −A·clip(ρ, 1 ± ε))); dL/dlogπ = −A·ρ/B where the
    // unclipped term is the max, else 0.
    let pgLoss = 0;
    let kl = 0;
    let clipped = 0;
    const dLogp = new Float64Array(B);
    for (let r = 0; r < B; r++) {
      const logRatio = newLogp[r] - oldLogp[r];
      const ratio = Math.exp(logRatio);
      const pg1 = -a[r] * ratio;
      const pg2 = -a[r] * Math.max(1 - h.clipCoef, Math.min(1 + h.clipCoef, ratio));
      pgLoss += Math.max(pg1, pg2);
      if (pg1 >= pg2) dLogp[r] = (-a[r] * ratio) / B;
      kl += ratio - 1 - logRatio;
      if (Math.abs(ratio - 1) > h.clipCoef) clipped++;
    }
    pgLoss /= B;

    // Backprop the policy loss − entCoef·entropy into the actor output (and log-std).
    const dOut = cat
      ? categoricalBackward(cat.probs, actions, dLogp, h.entCoef, B, K)
      : gaussianBackward(out, actions, this.actor.extra, dLogp, h.entCoef, B, this.actor.gextra);
    this.actor.backward(ac, dOut, B);

    // Critic: 0.5·mean((v − R)²), clipped around the rollout's values when clipVloss.
    const cc = this.critic.forward(obs, B);
    const v = cc[cc.length - 1]; // (B, 1)
    const vl = valueLoss(v, oldV, returns, h.clipVloss ? h.clipCoef : undefined, h.vfCoef, B);
    this.critic.backward(cc, vl.dV, B);

    // Global-norm clipping over both networks, then one Adam step.
    this.adam.step(lr, h.maxGradNorm);
    return [pgLoss, vl.loss, entropy, kl / B, clipped / B];
  }
}

export interface PpoResult {
  trainer: PpoTrainer;
  policy: PolicyJSON;
  /** Every training episode: [env step at its end, return, length]. */
  episodes: [number, number, number][];
  stopped: 'done' | 'early' | 'aborted';
}

// ------------------------------------------------------------------------ training loop

/**
 * Trains a PPO policy. Deterministic given `seed` (network init, action noise and minibatch order
 * come from one seeded Rng; envs are seeded seed, seed+1, …).
 */
export async function trainPpo(options: PpoOptions): Promise<PpoResult> {
  if ((options.math ?? PPO_DEFAULTS.math) === 'tfjs') await initBackend({ notice: false });
  const tr = new PpoTrainer(options);
  const h = tr.h;
  const [E, T, D, A, K] = [h.numEnvs, h.numSteps, tr.inDim, tr.actDim, tr.actor.outSize]; // D: net inputs, K: outputs
  const N = E * T;
  const envs: VectorEnv = makeVec(h.envId, E, {
    vectorizationMode: h.vectorization,
    kwargs: tr.envKwargs,
    numWorkers: options.numWorkers,
  });
  const episodes: [number, number, number][] = [];
  let stopped: PpoResult['stopped'] = 'done';
  try {
    // The rollout, row t·E + i for step t of env i: what GAE reads, and the batch minibatches are
    // drawn from.
    const buf = new RolloutBuffer(E, T, D, A, h.gamma, h.gaeLambda);
    const { rewards: bRew, values: bVal, terminated: bTerm, done: bDone, valid: bValid } = buf.gae;
    const { obs: bObs, actions: bAct, logp: bLogp } = buf.batch;

    let [rawObs] = envs.reset({ seed: h.seed + tr.updates });
    const pendingReset = new Uint8Array(E);
    const epRet = new Float64Array(E);
    const epLen = new Int32Array(E);
    const discRet = new Float64Array(E); // discounted return, for reward scaling
    const numUpdates = Math.ceil(h.totalSteps / N);
    const wall0 = tr.wallSec;
    const t0 = Date.now();
    const sd = new Float64Array(K); // exp(log-std), per update

    for (let update = tr.updates + 1; update <= numUpdates; update++) {
      if (options.signal?.aborted) {
        stopped = 'aborted';
        break;
      }
      const tu = Date.now();
      const lr = h.annealLr ? (1 - (update - 1) / numUpdates) * h.lr : h.lr;
      const rolloutReturns: number[] = [];
      for (let i = 0; i < K && !tr.discrete; i++) sd[i] = Math.exp(tr.actor.extra[i]);

      // ---- rollout: T steps of E envs
      for (let t = 0; t < T; t++) {
        if (h.normObs) tr.obsStats.updateBatch(rawObs, E, tr.obsDim);
        const x = tr.normObs(rawObs, E); // (E, D)
        bObs.set(x, t * E * D);
        const ac = tr.actor.forward(x, E);
        const out = ac[ac.length - 1];
        const cv = tr.critic.forward(x, E);
        const v = cv[cv.length - 1];
        const envAct = tr.discrete ? new Int32Array(E) : new Float32Array(E * A);
        for (let i = 0; i < E; i++) {
          const row = t * E + i;
          bVal[row] = v[i];
          if (tr.discrete) {
            [bAct[row], bLogp[row]] = categoricalSample(out.subarray(i * K, (i + 1) * K), tr.rng);
            envAct[i] = bAct[row];
          } else {
            const act = bAct.subarray(row * A, (row + 1) * A); // unclipped sample
            bLogp[row] = gaussianSample(out.subarray(i * A, (i + 1) * A), tr.actor.extra, sd, tr.rng, act);
            const box = tr.actionSpace as Box;
            for (let j = 0; j < A; j++)
              envAct[i * A + j] = Math.max(box.low[j], Math.min(box.high[j], act[j])); // ClipAction
          }
        }
        const [nextObs, rewards, terms, truncs] = envs.step(envAct);
        tr.envStep += E;
        for (let i = 0; i < E; i++) {
          const row = t * E + i;
          const valid = pendingReset[i] === 0;
          bValid[row] = valid ? 1 : 0;
          const done = terms[i] || truncs[i];
          bTerm[row] = terms[i] ? 1 : 0;
          bDone[row] = done ? 1 : 0;
          let r = rewards[i];
          if (valid) {
            epRet[i] += r;
            epLen[i]++;
            if (h.normReward) {
              discRet[i] = discRet[i] * h.gamma + r;
              tr.retStats.updateBatch([discRet[i]], 1);
              r = Math.max(-10, Math.min(10, r / Math.sqrt(tr.retStats.var[0] + OBS_NORM.eps)));
            }
          }
          bRew[row] = valid ? r : 0;
          if (valid && done) {
            episodes.push([tr.envStep, epRet[i], epLen[i]]);
            rolloutReturns.push(epRet[i]);
            options.onEpisode?.(epRet[i], epLen[i], tr.envStep);
            epRet[i] = 0;
            epLen[i] = 0;
            discRet[i] = 0;
          }
          pendingReset[i] = valid && done ? 1 : 0;
        }
        rawObs = nextObs;
      }

      // ---- GAE (Schulman et al. 2016), masked at NEXT_STEP reset steps
      if (h.normObs) tr.obsStats.updateBatch(rawObs, E, tr.obsDim);
      const cLast = tr.critic.forward(tr.normObs(rawObs, E), E);
      const validRows = buf.advantages(cLast[cLast.length - 1]);

      // ---- update: epochs over shuffled minibatches of the valid rows
      const M = validRows.length;
      const mbSize = Math.max(1, Math.floor(M / h.numMinibatches));
      const idx = Int32Array.from(validRows);
      const sums = [0, 0, 0, 0, 0];
      let count = 0;
      for (let epoch = 0; epoch < h.updateEpochs; epoch++) {
        for (let k = M - 1; k > 0; k--) {
          const j = tr.rng.int(k + 1);
          [idx[k], idx[j]] = [idx[j], idx[k]];
        }
        for (let start = 0; start + mbSize <= M; start += mbSize) {
          const s = tr.minibatch(buf.minibatch(idx.subarray(start, start + mbSize)), lr);
          for (let q = 0; q < 5; q++) sums[q] += s[q];
          count++;
        }
      }
      tr.updates = update;
      tr.wallSec = wall0 + (Date.now() - t0) / 1000;
      const stats: PpoUpdate = {
        update,
        envStep: tr.envStep,
        lr,
        policyLoss: sums[0] / count,
        valueLoss: sums[1] / count,
        entropy: sums[2] / count,
        approxKl: sums[3] / count,
        clipFrac: sums[4] / count,
        explainedVariance: buf.explainedVariance(validRows),
        episodeReturn: rolloutReturns.length
          ? rolloutReturns.reduce((x, y) => x + y, 0) / rolloutReturns.length
          : Number.NaN,
        stepsPerSec: N / ((Date.now() - tu) / 1000),
      };
      if ((await options.onUpdate?.(stats, tr)) === 'stop') {
        stopped = 'early';
        break;
      }
    }
  } finally {
    envs.close();
  }
  return { trainer: tr, policy: tr.policyJSON(), episodes, stopped };
}
