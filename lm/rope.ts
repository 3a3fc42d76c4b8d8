/**
 * RoPE frequency scalings of Hugging Face checkpoints beyond linear position interpolation:
 * llama3 (Llama 3.1), YaRN, dynamic NTK and LongRoPE, computed as transformers 5 computes them
 * (modeling_rope_utils). A checkpoint names its scaling in `rope_parameters` (transformers ≥ 5)
 * or `rope_scaling` (older); both spellings are read, and any type not implemented here is
 * refused (issue 15: a llama3/yarn/dynamic checkpoint used to load with no scaling at all,
 * logits off by 0.1–0.45 relative).
 */
import { InputError } from '../common/index.js';
import type { RopeFrequencies } from '../ring/index.js';

/** A frequency scaling; factors already resolved from the checkpoint's defaults. */
export type RopeScaling =
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    }
  | {
      type: 'yarn';
      factor: number;
      originalMaxPositionEmbeddings: number;
      betaFast: number;
      betaSlow: number;
      /** Gain on cos and sin (from mscale/mscale_all_dim or 0.1·ln(factor) + 1 when not given). */
      attentionFactor: number;
      /** Round the correction range to whole dimensions. */
      truncate: boolean;
    }
  | {
      /** NTK-aware base scaling once the sequence outgrows max_position_embeddings. */
      type: 'dynamic';
      factor: number;
    }
  | {
      type: 'longrope';
      /** Per-frequency divisors (Dh/2 each): long beyond originalMaxPositionEmbeddings, else short. */
      longFactor: number[];
      shortFactor: number[];
      factor: number;
      originalMaxPositionEmbeddings: number;
      attentionFactor: number;
    };

export type RopeScalingType = RopeScaling['type'];

/** What a checkpoint's config says about RoPE. */
export interface HfRope {
  theta: number;
  /** Linear position interpolation factor; 1 = none. */
  linearFactor: number;
  /** A frequency scaling other than linear, if any. */
  scaling?: RopeScaling;
}

const IMPLEMENTED = ['default', 'linear', 'llama3', 'yarn', 'dynamic', 'longrope'];

/**
 * Reads RoPE from an HF config.json: `rope_scaling` (older transformers; it wins when both are
 * there, as in transformers' convert_rope_params_to_dict) or `rope_parameters` (transformers ≥ 5),
 * with rope_theta inside or at the top level. Throws InputError naming the key on a type or a
 * field it cannot honour.
 */
export function ropeFromHfConfig(
  hf: Record<string, unknown>,
  headDim: number,
  maxPositionEmbeddings: number,
  where: string,
): HfRope {
  const legacy = hf.rope_scaling;
  const key = legacy ? 'rope_scaling' : 'rope_parameters';
  const raw = legacy ?? hf.rope_parameters ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new InputError(`${where}: key "${key}": expected an object; got ${JSON.stringify(raw)}`);
  const p = raw as Record<string, unknown>;
  const num = (name: string, fallback?: number): number => {
    const v = p[name] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new InputError(
        `${where}: key "${key}.${name}": expected a number; got ${JSON.stringify(p[name])}`,
      );
    return v;
  };
  const kind = p.rope_type ?? p.type ?? 'default';
  if (typeof kind !== 'string' || !IMPLEMENTED.includes(kind)) {
    const nested = Object.values(p).some((v) => typeof v === 'object' && v !== null && !Array.isArray(v));
    throw new InputError(
      nested && p.rope_type === undefined
        ? `${where}: key "${key}": per-layer-type RoPE parameters are not supported (LLaMA has one RoPE)`
        : `${where}: key "${key}.rope_type": expected one of ${IMPLEMENTED.join(', ')}; got ${JSON.stringify(kind)} (refused rather than run without its scaling)`,
    );
  }
  const partial = p.partial_rotary_factor ?? hf.partial_rotary_factor ?? 1;
  if (partial !== 1)
    throw new InputError(
      `${where}: key "partial_rotary_factor": only 1 (RoPE on the whole head) is supported; got ${JSON.stringify(partial)}`,
    );
  const theta = num('rope_theta', typeof hf.rope_theta === 'number' ? hf.rope_theta : 10000);
  // transformers gives a top-level original_max_position_embeddings priority (Phi-3's layout)
  const original = (): number => {
    const top = hf.original_max_position_embeddings;
    const v = typeof top === 'number' ? top : num('original_max_position_embeddings', maxPositionEmbeddings);
    if (!Number.isInteger(v) || v < 1)
      throw new InputError(
        `${where}: key "${key}.original_max_position_embeddings": expected a positive integer; got ${v}`,
      );
    return v;
  };
  const atLeastOne = (name: string, v: number): number => {
    if (!(v >= 1)) throw new InputError(`${where}: key "${key}.${name}": expected a number ≥ 1; got ${v}`);
    return v;
  };
  switch (kind) {
    case 'default':
      return { theta, linearFactor: 1 };
    case 'linear':
      return { theta, linearFactor: atLeastOne('factor', num('factor')) };
    case 'dynamic':
      return {
        theta,
        linearFactor: 1,
        scaling: { type: 'dynamic', factor: atLeastOne('factor', num('factor')) },
      };
    case 'llama3': {
      const lowFreqFactor = num('low_freq_factor');
      const highFreqFactor = num('high_freq_factor');
      if (!(highFreqFactor > lowFreqFactor))
        throw new InputError(
          `${where}: key "${key}.high_freq_factor": expected more than low_freq_factor ${lowFreqFactor}; got ${highFreqFactor}`,
        );
      return {
        theta,
        linearFactor: 1,
        scaling: {
          type: 'llama3',
          factor: atLeastOne('factor', num('factor')),
          lowFreqFactor,
          highFreqFactor,
          originalMaxPositionEmbeddings: original(),
        },
      };
    }
    case 'yarn': {
      const orig = original();
      const factor =
        p.factor === undefined || p.factor === null ? maxPositionEmbeddings / orig : num('factor');
      const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      const m = p.mscale as number | undefined;
      const mAll = p.mscale_all_dim as number | undefined;
      const attentionFactor =
        p.attention_factor !== undefined && p.attention_factor !== null
          ? num('attention_factor')
          : m && mAll
            ? mscale(factor, m) / mscale(factor, mAll)
            : mscale(factor);
      // transformers reads `beta_fast or 32`: 0 and null both mean the default
      return {
        theta,
        linearFactor: 1,
        scaling: {
          type: 'yarn',
          factor,
          originalMaxPositionEmbeddings: orig,
          betaFast: (p.beta_fast as number | undefined) || 32,
          betaSlow: (p.beta_slow as number | undefined) || 1,
          attentionFactor,
          truncate: p.truncate === undefined ? true : Boolean(p.truncate),
        },
      };
    }
    default: {
      // longrope
      const orig = original();
      const factors = (name: string): number[] => {
        const v = p[name];
        if (!Array.isArray(v) || v.length !== headDim / 2 || v.some((x) => typeof x !== 'number'))
          throw new InputError(
            `${where}: key "${key}.${name}": expected ${headDim / 2} numbers (head_dim / 2); got ${JSON.stringify(v)}`,
          );
        return v as number[];
      };
      const factor =
        p.factor === undefined || p.factor === null ? maxPositionEmbeddings / orig : num('factor');
      const attentionFactor =
        p.attention_factor !== undefined && p.attention_factor !== null
          ? num('attention_factor')
          : factor <= 1
            ? 1
            : Math.sqrt(1 + Math.log(factor) / Math.log(orig));
      return {
        theta,
        linearFactor: 1,
        scaling: {
          type: 'longrope',
          longFactor: factors('long_factor'),
          shortFactor: factors('short_factor'),
          factor,
          originalMaxPositionEmbeddings: orig,
          attentionFactor,
        },
      };
    }
  }
}

/** The scaling as HF's `rope_parameters` entries (with rope_theta added by the caller). */
export function ropeScalingToHf(s: RopeScaling): Record<string, unknown> {
  switch (s.type) {
    case 'llama3':
      return {
        rope_type: 'llama3',
        factor: s.factor,
        low_freq_factor: s.lowFreqFactor,
        high_freq_factor: s.highFreqFactor,
        original_max_position_embeddings: s.originalMaxPositionEmbeddings,
      };
    case 'yarn':
      return {
        rope_type: 'yarn',
        factor: s.factor,
        original_max_position_embeddings: s.originalMaxPositionEmbeddings,
        beta_fast: s.betaFast,
        beta_slow: s.betaSlow,
        attention_factor: s.attentionFactor,
        truncate: s.truncate,
      };
    case 'dynamic':
      return { rope_type: 'dynamic', factor: s.factor };
    case 'longrope':
      return {
        rope_type: 'longrope',
        long_factor: s.longFactor,
        short_factor: s.shortFactor,
        factor: s.factor,
        original_max_position_embeddings: s.originalMaxPositionEmbeddings,
        attention_factor: s.attentionFactor,
      };
  }
}

/** Checks a scaling built by hand (not read from a checkpoint). */
export function checkRopeScaling(s: RopeScaling, headDim: number, where: string): void {
  if (!(s.factor >= 1)) throw new InputError(`${where}: ropeScaling.factor must be ≥ 1; got ${s.factor}`);
  if (s.type === 'longrope')
    for (const k of ['longFactor', 'shortFactor'] as const)
      if (s[k].length !== headDim / 2)
        throw new InputError(
          `${where}: ropeScaling.${k} must have ${headDim / 2} entries; got ${s[k].length}`,
        );
}

/**
 * The inverse frequencies (Dh/2) and cos/sin gain of `s` for a sequence of `seqLen` tokens.
 * Only dynamic and LongRoPE depend on seqLen. transformers keeps dynamic's frequencies of the
 * longest sequence seen since the last short one (a cache in the module); here each call uses
 * its own length, which is what a fresh transformers model computes.
 */
export function ropeFrequencies(
  s: RopeScaling,
  theta: number,
  headDim: number,
  maxPositionEmbeddings: number,
  seqLen: number,
): RopeFrequencies {
  const dim = headDim;
  const half = dim / 2;
  // float32, as transformers computes its frequencies
  const base = (b: number) =>
    Float64Array.from({ length: half }, (_, i) => Math.fround(1 / Math.fround(b ** ((2 * i) / dim))));
  switch (s.type) {
    case 'dynamic': {
      const L = Math.max(seqLen, maxPositionEmbeddings);
      const b = theta * ((s.factor * L) / maxPositionEmbeddings - (s.factor - 1)) ** (dim / (dim - 2));
      return { inverse: base(b), scale: 1 };
    }
    case 'llama3': {
      const inv = base(theta);
      const old = s.originalMaxPositionEmbeddings;
      const lowWavelen = old / s.lowFreqFactor;
      const highWavelen = old / s.highFreqFactor;
      const out = inv.map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highWavelen) return f; // high frequency: kept
        if (wavelen > lowWavelen) return f / s.factor; // low frequency: interpolated
        const smooth = (old / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        return ((1 - smooth) * f) / s.factor + smooth * f;
      });
      return { inverse: out, scale: 1 };
    }
    case 'yarn': {
      const correctionDim = (rotations: number) =>
        (dim * Math.log(s.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
      let low = correctionDim(s.betaFast);
      let high = correctionDim(s.betaSlow);
      if (s.truncate) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001; // as transformers: no division by zero
      const inv = base(theta);
      const out = inv.map((f, i) => {
        // extrapolation weight: 1 at high frequencies (kept), 0 at low ones (interpolated by factor)
        const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
        const extrapolation = 1 - ramp;
        return (f / s.factor) * (1 - extrapolation) + f * extrapolation;
      });
      return { inverse: out, scale: s.attentionFactor };
    }
    case 'longrope': {
      const ext = seqLen > s.originalMaxPositionEmbeddings ? s.longFactor : s.shortFactor;
      const out = Float64Array.from(
        { length: half },
        (_, i) => 1 / (ext[i] * Math.fround(theta ** ((2 * i) / dim))),
      );
      return { inverse: out, scale: s.attentionFactor };
    }
  }
}
