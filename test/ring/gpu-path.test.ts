// The GPU path stays on the GPU (issue 23): one rule decides where the native kernels may run
// (native/addon.ts `nativeRefusedOn`), the package choice follows CUDA's visibility, and on a
// backend that reports a GPU device no native call happens — checked here without a GPU, on a
// `tensorflow` backend simulated by tfjs's cpu backend carrying tfjs-node's two placement flags.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  cudaVisible,
  currentPlacement,
  initBackend,
  nativeAddon,
  nativeForCurrentBackend,
  nativeMatmulCount,
  nativeRefusedOn,
  nativeStatus,
  tensorflowPackages,
} from '../../native/index.js';
import { blockwiseAttention, matmul, nativeAttentionCount, vanillaAttention } from '../../ring/index.js';
import { caseName, makeProblem, reference, tensors } from '../helpers/attention.js';
import { relError } from '../helpers/reference.js';

const TOL = 1e-4;

describe('where native kernels may run', () => {
  const cases: [string, Parameters<typeof nativeRefusedOn>[0], boolean][] = [
    ['wasm', { name: 'wasm' }, true],
    ['cpu', { name: 'cpu' }, true],
    ['tfjs-node (CPU)', { name: 'tensorflow', isGPUPackage: false, isUsingGpuDevice: false }, true],
    [
      'tfjs-node-gpu with no GPU in use',
      { name: 'tensorflow', isGPUPackage: true, isUsingGpuDevice: false },
      true,
    ],
    ['tfjs-node-gpu on a GPU', { name: 'tensorflow', isGPUPackage: true, isUsingGpuDevice: true }, false],
    ['tfjs-node-gpu, device unknown', { name: 'tensorflow', isGPUPackage: true }, false],
    ['webgl', { name: 'webgl' }, false],
    ['webgpu', { name: 'webgpu' }, false],
  ];
  for (const [name, placement, allowed] of cases)
    test(`${name}: native ${allowed ? 'runs' : 'refused'}`, () => {
      const why = nativeRefusedOn(placement);
      assert.equal(why === undefined, allowed, `nativeRefusedOn(${JSON.stringify(placement)}) = ${why}`);
      if (!allowed && process.env.RING_NATIVE !== '0')
        assert.match(nativeStatus(placement), /^native kernels off on this backend \(/);
    });
});

describe('tfjs-node package choice', () => {
  const devices = (path: string) => path === '/dev/nvidia0' || path === '/dev/nvidiactl';
  const none = () => false;
  test('a CUDA device visible: tfjs-node-gpu first, tfjs-node as the fallback', () => {
    assert.equal(cudaVisible({}, devices), true);
    assert.deepEqual(tensorflowPackages(cudaVisible({}, devices)), [
      '@tensorflow/tfjs-node-gpu',
      '@tensorflow/tfjs-node',
    ]);
    assert.equal(cudaVisible({ CUDA_VISIBLE_DEVICES: '0,1' }, devices), true);
  });
  test('no device node, or CUDA_VISIBLE_DEVICES hides them all: tfjs-node only', () => {
    assert.deepEqual(tensorflowPackages(cudaVisible({}, none)), ['@tensorflow/tfjs-node']);
    for (const mask of ['', '-1', ' -1 '])
      assert.equal(
        cudaVisible({ CUDA_VISIBLE_DEVICES: mask }, devices),
        false,
        `CUDA_VISIBLE_DEVICES='${mask}'`,
      );
  });
});

/**
 * A `tensorflow` backend without TensorFlow: tfjs's cpu backend registered under that name with
 * every cpu kernel, and the flags tfjs-node's backend object carries.
 */
function registerSimulatedTensorflow(): void {
  const cpu = tf.findBackend('cpu');
  assert.ok(cpu, 'the cpu backend is registered by @tensorflow/tfjs');
  const Backend = cpu.constructor as new () => tf.KernelBackend;
  tf.registerBackend('tensorflow', () => {
    const backend = new Backend() as tf.KernelBackend & { isGPUPackage: boolean; isUsingGpuDevice: boolean };
    backend.isGPUPackage = true;
    backend.isUsingGpuDevice = true;
    return backend;
  });
  for (const kernel of tf.getKernelsForBackend('cpu'))
    tf.registerKernel({ ...kernel, backendName: 'tensorflow' });
}

function setGpuInUse(onGpu: boolean): void {
  (tf.backend() as unknown as { isUsingGpuDevice: boolean }).isUsingGpuDevice = onGpu;
}

describe('simulated tfjs-node-gpu backend', {
  skip: tf.findBackend('tensorflow') ? 'a real tensorflow backend is registered' : false,
}, () => {
  before(async () => {
    await initBackend({ backend: 'wasm' }); // registers the wasm backend and the native kernels
    registerSimulatedTensorflow();
    await tf.setBackend('tensorflow');
    await tf.ready();
  });
  after(async () => {
    await tf.setBackend('wasm');
  });

  /** Blockwise forward and gradients against the float64 reference; counts native calls. */
  function attentionRun(onGpu: boolean): { attention: number; matmul: number } {
    setGpuInUse(onGpu);
    const p = makeProblem({ B: 1, H: 4, Hk: 2, T: 96, D: 32, causal: true });
    const ref = reference(p);
    const attentionBefore = nativeAttentionCount();
    const matmulBefore = nativeMatmulCount();
    const t = tensors(p);
    const f = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
      blockwiseAttention(q, k, v, { causal: true, blockSize: 32 });
    const out = f(t.q, t.k, t.v);
    const [dq, dk, dv] = tf.grads(f)([t.q, t.k, t.v], t.dOut);
    const errors = {
      out: relError(out.dataSync(), ref.out),
      dq: relError(dq.dataSync(), ref.dq),
      dk: relError(dk.dataSync(), ref.dk),
      dv: relError(dv.dataSync(), ref.dv),
    };
    for (const [name, e] of Object.entries(errors))
      assert.ok(e < TOL, `${caseName(p)} seed=${p.seed} ${name} rel. error ${e} ≥ ${TOL}`);
    // a product big enough for the native sgemm on wasm/cpu
    const a = tf.randomNormal([192, 192]);
    const prod = matmul(a as tf.Tensor2D, a as tf.Tensor2D);
    const reference64 = vanillaAttention(t.q, t.k, t.v, { causal: true });
    assert.ok(relError(out.dataSync(), reference64.dataSync()) < TOL);
    tf.dispose([out, dq, dk, dv, a, prod, reference64, t.q, t.k, t.v, t.dOut]);
    return {
      attention: nativeAttentionCount() - attentionBefore,
      matmul: nativeMatmulCount() - matmulBefore,
    };
  }

  test('on a GPU device: the placement says so, the status line says native is off, no native call runs', () => {
    setGpuInUse(true);
    assert.deepEqual(currentPlacement(), { name: 'tensorflow', isGPUPackage: true, isUsingGpuDevice: true });
    assert.equal(nativeForCurrentBackend(), undefined);
    if (process.env.RING_NATIVE !== '0')
      assert.match(nativeStatus(currentPlacement()), /native kernels off on this backend \(.*GPU device/);
    const calls = attentionRun(true);
    assert.deepEqual(calls, { attention: 0, matmul: 0 });
  });

  test('the same backend on the CPU (tfjs-node-gpu, no GPU in use): native attention runs', {
    skip: nativeAddon() ? false : `native addon unavailable: ${nativeStatus()}`,
  }, () => {
    const calls = attentionRun(false);
    assert.ok(calls.attention > 0, 'the control: native attention ran where tensors are in CPU memory');
    // tensorflow's own BLAS serves its products on the CPU too
    assert.equal(calls.matmul, 0);
  });
});
