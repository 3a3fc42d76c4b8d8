/**
 * What the attention benchmarks share: PyTorch's CPU scaled_dot_product_attention as their anchor
 * (bench/torch_sdpa.py), and the check that the native kernels run before a native table.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type BackendInfo, nativeStatus } from '../native/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface TorchSdpaShape {
  batch: number;
  heads: number;
  /** Grouped-query attention (SDPA's enable_gqa) where it differs from heads. */
  kvHeads?: number;
  seqLen: number;
  headDim: number;
  causal: boolean;
  /** Timed repetitions after a warm-up (default 3); the fastest is reported. */
  repeats?: number;
}

export interface TorchRow extends TorchSdpaShape {
  fwdMs: number;
  fwdBwdMs: number;
  torch: string;
  threads: number;
  /**
   * The vector ISA of ATen's CPU kernels ('AVX512', 'AVX2', …): the machine's best unless
   * ATEN_CPU_CAPABILITY lowers it (an AVX2 machine emulated on an AVX-512 one).
   */
  cpuCapability?: string;
}

/**
 * PyTorch CPU SDPA on `shapes`, all cores, in the project's venv (scripts/python-env.sh: its
 * pinned torch, the one the rl-train and lm-train benches' twins run on).
 */
export function torchSdpa(shapes: TorchSdpaShape[]): TorchRow[] {
  const setup = spawnSync('bash', ['scripts/python-env.sh'], { cwd: root, stdio: 'inherit' });
  if (setup.status !== 0) throw new Error('bench: could not set up .venv (scripts/python-env.sh)');
  const res = spawnSync(`${root}/.venv/bin/python`, [`${root}/bench/torch_sdpa.py`], {
    input: JSON.stringify(shapes),
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  if (res.status !== 0) throw new Error(`bench: torch_sdpa.py failed: ${res.stderr}`);
  return JSON.parse(res.stdout) as TorchRow[];
}

/** The kernels line of `backend` ("native kernels avx2+fma …"); throws where they do not run. */
export function nativeKernels(backend: BackendInfo, bench: string): string {
  const kernels = backend.kernels ?? nativeStatus();
  if (!kernels.startsWith('native kernels ') || kernels.includes('unavailable') || kernels.includes(' off '))
    throw new Error(`${bench}: the native kernels do not run here (${kernels})`);
  return kernels;
}
