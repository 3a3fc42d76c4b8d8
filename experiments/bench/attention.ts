/**
 * The attention benchmark behind `exp bench attention`: one implementation, one shape, timed on
 * ring devices (one worker for the single-device implementations, N for ring) so every
 * implementation runs on the same kind of backend instance and is measured the same way.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError, Rng, relError } from '../../common/index.js';
import { type BackendChoice, type DeviceMemory, processPeakRssBytes } from '../../native/index.js';
import { ATTENTION_IMPLS, type AttentionImpl, type RingLayout } from '../../ring/index.js';
import { RingGroup, ringAttention } from '../../cluster/index.js';
import { assertBenchFitsMachine } from './attention-fit.js';
import { referenceAttention } from './reference.js';

export interface AttentionBenchOptions {
  impl: AttentionImpl;
  seqLen: number;
  batch: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  devices: number;
  blockSize: number;
  causal: boolean;
  layout: RingLayout;
  backward: boolean;
  check: boolean;
  backend: BackendChoice;
  seed: number;
  /** Timed repetitions after one warm-up call; the fastest is reported. */
  repeats: number;
  /** Reuse a group (benchmark sweeps); created and disposed here otherwise. */
  group?: RingGroup;
}

export interface AttentionBenchResult {
  impl: AttentionImpl;
  seqLen: number;
  batch: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  devices: number;
  blockSize: number;
  causal: boolean;
  layout: RingLayout;
  backend: string;
  /** Which attention kernels the devices ran (native/addon.ts), e.g. 'native kernels avx2+fma, 2 threads'. */
  kernels?: string;
  fwdMs: number;
  bwdMs?: number;
  wallMs: number;
  /** Forward FLOPs (4·B·H·T²·D, halved when causal). */
  fwdFlops: number;
  /** GFLOP/s of what ran: forward, or forward+backward (backward = 2.5× forward FLOPs). */
  gflops: number;
  fwdGflops: number;
  fwdBwdGflops?: number;
  /**
   * What the busiest device held at its peak: wasm heap + JS + native buffers + receive buffers
   * (native/memory.ts, issue 20). Includes the runtime's fixed cost (`idleBytesPerDevice`).
   */
  peakBytesPerDevice: number;
  /** That device's peak live tfjs tensor bytes (tf.profile): the figure before issue 20. */
  peakTensorBytesPerDevice: number;
  /** Where that device's peak lives, in bytes. */
  peakMemoryPerDevice: { wasmHeapBytes: number; jsBytes: number; nativeBytes: number };
  /** What a device held before the first call (on a fresh device: the runtime's fixed cost). */
  idleBytesPerDevice: number;
  commBytesPerDevice: number;
  /** The whole process's peak resident memory so far (Linux VmHWM), main thread and devices. */
  processPeakRssBytes?: number;
  maxRelErr?: number;
}

/** FLOPs of attention's forward pass: QKᵀ and PV, 2·T²·D each per head. */
export function attentionFlops(B: number, H: number, T: number, D: number, causal: boolean): number {
  return 4 * B * H * T * T * D * (causal ? 0.5 : 1);
}

export function checkBenchOptions(o: AttentionBenchOptions): void {
  if (!(ATTENTION_IMPLS as readonly string[]).includes(o.impl))
    throw new InputError(`--impl: expected one of ${ATTENTION_IMPLS.join(', ')}; got '${o.impl}'`);
  for (const [flag, value] of [
    ['--seq-len', o.seqLen],
    ['--batch', o.batch],
    ['--heads', o.heads],
    ['--kv-heads', o.kvHeads],
    ['--head-dim', o.headDim],
    ['--devices', o.devices],
    ['--block-size', o.blockSize],
  ] as const) {
    if (!Number.isInteger(value) || value < 1)
      throw new InputError(`${flag}: expected a positive integer; got ${value}`);
  }
  if (!Number.isInteger(o.repeats) || o.repeats < 0)
    throw new InputError(`--repeats: expected a non-negative integer (0 = no warm-up); got ${o.repeats}`);
  if (o.impl !== 'ring' && o.devices !== 1)
    throw new InputError(
      `--devices: ${o.impl} runs on one device; got --devices ${o.devices} (use --impl ring)`,
    );
  if (o.layout !== 'contiguous' && o.layout !== 'striped')
    throw new InputError(`--layout: expected contiguous or striped; got '${o.layout}'`);
}

/**
 * Progress of a long --check on stderr (every 5 s; silent for checks under ~1e10 multiply-adds):
 * the float64 reference is plain loops, O(B·H·T²·D).
 */
function checkProgress(multiplyAdds: number): ((done: number, total: number) => void) | undefined {
  if (multiplyAdds < 1e10) return undefined;
  let last = performance.now();
  return (done, total) => {
    if (performance.now() - last < 5000 && done < total) return;
    last = performance.now();
    process.stderr.write(`--check: float64 reference, head ${done}/${total}\n`);
  };
}

export async function benchAttention(o: AttentionBenchOptions): Promise<AttentionBenchResult> {
  checkBenchOptions(o);
  assertBenchFitsMachine(o); // before any input is drawn or device started (issue 16)
  const { batch: B, heads: H, kvHeads: Hk, seqLen: T, headDim: D } = o;
  if (H % Hk !== 0) throw new InputError(`--heads ${H} must be a multiple of --kv-heads ${Hk}`);
  const rng = new Rng(o.seed);
  const qData = rng.normalArray(B * H * T * D);
  const kData = rng.normalArray(B * Hk * T * D);
  const vData = rng.normalArray(B * Hk * T * D);
  const dData = o.backward ? rng.normalArray(B * H * T * D) : undefined;
  const group =
    o.group ?? (await RingGroup.create({ devices: o.impl === 'ring' ? o.devices : 1, backend: o.backend }));
  try {
    const idle = await group.run<null, DeviceMemory>(
      new URL('../../native/memory.js', import.meta.url),
      'deviceMemoryNow',
      Array.from({ length: group.devices }, () => null),
      1,
    );
    const options = { causal: o.causal, blockSize: o.blockSize };
    // out, dq, dk, dv as the implementation returns them: tensors from the ring, arrays otherwise
    type Outputs = (tf.Tensor4D | Float32Array | undefined)[];
    const runOnce = async () => {
      const started = performance.now();
      if (o.impl === 'ring') {
        const q = tf.tensor4d(qData, [B, H, T, D]);
        const k = tf.tensor4d(kData, [B, Hk, T, D]);
        const v = tf.tensor4d(vData, [B, Hk, T, D]);
        const dOut = dData ? tf.tensor4d(dData, [B, H, T, D]) : undefined;
        try {
          const r = await ringAttention(group, q, k, v, {
            ...options,
            layout: o.layout,
            dOut,
            measureMemory: true,
          });
          return { ...r, outputs: [r.out, r.dq, r.dk, r.dv] as Outputs, wallMs: performance.now() - started };
        } finally {
          tf.dispose([q, k, v, ...(dOut ? [dOut] : [])]);
        }
      }
      // NOTE: the device gets the arrays; main-thread tensors of the inputs and of the results
      // would be copies the process holds beside the device's (issue 20: 256 MiB at L=16K)
      {
        const [r] = await group.run<
          unknown,
          {
            out: Float32Array;
            dq?: Float32Array;
            dk?: Float32Array;
            dv?: Float32Array;
            fwdMs: number;
            bwdMs: number;
            peakBytes: number;
            memory?: DeviceMemory;
          }
        >(
          new URL('../../cluster/device/single-task.js', import.meta.url),
          'singleAttentionTask',
          [
            {
              impl: o.impl,
              q: qData,
              k: kData,
              v: vData,
              dOut: dData,
              B,
              H,
              Hk,
              T,
              D,
              options,
              measureMemory: true,
            },
          ],
          1,
        );
        return {
          outputs: [r.out, r.dq, r.dk, r.dv] as Outputs,
          fwdMs: r.fwdMs,
          bwdMs: r.bwdMs,
          peakBytesPerDevice: [r.memory?.totalBytes ?? 0],
          peakTensorBytesPerDevice: [r.peakBytes],
          memoryPerDevice: r.memory ? [r.memory] : undefined,
          commBytesPerDevice: 0,
          wallMs: performance.now() - started,
        };
      }
    };
    type Run = Awaited<ReturnType<typeof runOnce>>;
    const dispose = (r: Run) => tf.dispose(r.outputs.filter((t): t is tf.Tensor4D => t instanceof tf.Tensor));
    const read = (x: tf.Tensor4D | Float32Array | undefined) =>
      x instanceof tf.Tensor ? (x.dataSync() as Float32Array) : x!;
    let best: Run | undefined;
    for (let i = 0; i < o.repeats + 1; i++) {
      const r = await runOnce();
      if (i === 0 && o.repeats > 0) {
        dispose(r); // warm-up: wasm compiles its kernels on first use
        continue;
      }
      if (!best || r.fwdMs + r.bwdMs < best.fwdMs + best.bwdMs) {
        if (best) dispose(best);
        best = r;
      } else dispose(r);
    }
    const r = best!;
    let maxRelErr: number | undefined;
    if (o.check) {
      // NOTE: against the float64 reference, not vanilla: vanilla was checked against itself
      // (issue 16), and a float32 reference hides errors of its own size
      const ref = referenceAttention(
        { B, H, Hk, T, D, causal: o.causal, q: qData, k: kData, v: vData, dOut: dData },
        checkProgress(B * H * T * T * D * (dData ? 5 : 2)),
      );
      const errs = [relError(read(r.outputs[0]), ref.out)];
      if (dData)
        [ref.dq, ref.dk, ref.dv].forEach((g, i) => {
          errs.push(relError(read(r.outputs[i + 1]), g));
        });
      maxRelErr = Math.max(...errs);
    }
    dispose(r);
    const busiest = r.peakBytesPerDevice.indexOf(Math.max(...r.peakBytesPerDevice));
    const fwdFlops = attentionFlops(B, H, T, D, o.causal);
    const fwdGflops = fwdFlops / (r.fwdMs * 1e6);
    const fwdBwdGflops = o.backward ? (3.5 * fwdFlops) / ((r.fwdMs + r.bwdMs) * 1e6) : undefined;
    return {
      impl: o.impl,
      seqLen: T,
      batch: B,
      heads: H,
      kvHeads: Hk,
      headDim: D,
      devices: group.devices,
      blockSize: o.blockSize,
      causal: o.causal,
      layout: o.layout,
      backend: group.backend.name,
      kernels: group.backend.kernels,
      fwdMs: r.fwdMs,
      bwdMs: o.backward ? r.bwdMs : undefined,
      wallMs: r.wallMs,
      fwdFlops,
      gflops: fwdBwdGflops ?? fwdGflops,
      fwdGflops,
      fwdBwdGflops,
      peakBytesPerDevice: r.peakBytesPerDevice[busiest],
      peakTensorBytesPerDevice: r.peakTensorBytesPerDevice[busiest],
      peakMemoryPerDevice: {
        wasmHeapBytes: r.memoryPerDevice?.[busiest].wasmHeapBytes ?? 0,
        jsBytes: r.memoryPerDevice?.[busiest].jsBytes ?? 0,
        nativeBytes: r.memoryPerDevice?.[busiest].nativeBytes ?? 0,
      },
      idleBytesPerDevice: Math.max(...idle.map((m) => m.totalBytes)),
      commBytesPerDevice: r.commBytesPerDevice,
      processPeakRssBytes: processPeakRssBytes(),
      maxRelErr,
    };
  } finally {
    if (!o.group) await group.dispose();
  }
}
