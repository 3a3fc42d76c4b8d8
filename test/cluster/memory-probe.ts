/**
 * Child process of memory-real.test.ts: runs one attention call (forward + backward) on a fresh
 * group of ring devices and prints, as one JSON line, what the devices reported against what the
 * process's resident memory did. The main thread allocates nothing during the call: inputs are
 * made before and moved (transferred) to the devices, results are moved back, so the growth of
 * the process's peak RSS over the call is the devices' own.
 *
 * argv[2]: JSON { devices, seqLen, heads, headDim, seed }.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Rng } from '../../common/index.js';
import { type DeviceMemory, initBackend } from '../../native/index.js';
import { tokenIndices } from '../../ring/index.js';
import { RingGroup } from '../../cluster/index.js';
import type { AttentionTaskArgs, AttentionTaskResult } from '../../cluster/device/attention-task.js';
import { gatherTokens } from '../../cluster/device/ring-attention.js';
import type { SingleTaskArgs } from '../../cluster/device/single-task.js';

interface ProbeArgs {
  devices: number;
  seqLen: number;
  heads: number;
  headDim: number;
  seed: number;
}

/** Resident and peak resident bytes of this process (Linux). */
function rss(): { now: number; peak: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kB = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { now: kB('VmRSS'), peak: kB('VmHWM') };
}

const a = JSON.parse(process.argv[2]) as ProbeArgs;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
await initBackend({ backend: 'wasm', notice: false });
const N = a.devices;
const [B, H, T, D] = [1, a.heads, a.seqLen, a.headDim];
const c = T / N;
const rng = new Rng(a.seed);
const whole = Array.from({ length: 4 }, () => rng.normalArray(B * H * T * D)); // q, k, v, dOut
const group = await RingGroup.create({ devices: N, backend: 'wasm' });
const measureModule = new URL('../../native/memory.js', import.meta.url);
// a small call first: wasm compiles its hot kernels (TurboFan tier-up) on first use, the
// runtime's one-time cost, so the call measured below holds what attention holds
{
  const w = 256;
  const small = Array.from({ length: 4 }, () => rng.normalArray(B * H * w * D));
  await group.run<SingleTaskArgs, AttentionTaskResult>(
    new URL('../../cluster/device/single-task.js', import.meta.url),
    'singleAttentionTask',
    Array.from({ length: N }, () => ({
      impl: 'blockwise' as const,
      ...{ q: small[0], k: small[1], v: small[2], dOut: small[3], B, H, Hk: H, T: w, D },
      options: { causal: true, blockSize: 64 },
      measureMemory: true,
    })),
    1,
  );
}
const idle = await group.run<null, DeviceMemory>(measureModule, 'deviceMemoryNow', Array(N).fill(null), 1);
let results: AttentionTaskResult[];
let before: number;
if (N === 1) {
  const [q, k, v, dOut] = whole;
  const args: SingleTaskArgs = {
    impl: 'blockwise',
    ...{ q, k, v, dOut, B, H, Hk: H, T, D },
    options: { causal: true, blockSize: 256 },
    measureMemory: true,
  };
  gc(); // the main thread's garbage is not collected during the call
  before = rss().now;
  writeFileSync('/proc/self/clear_refs', '5'); // VmHWM := VmRSS (Linux ≥ 4.0)
  results = await group.run<SingleTaskArgs, AttentionTaskResult>(
    new URL('../../cluster/device/single-task.js', import.meta.url),
    'singleAttentionTask',
    [args],
    1,
    [whole.map((x) => x.buffer as ArrayBuffer)],
  );
} else {
  const args: AttentionTaskArgs[] = Array.from({ length: N }, (_, r) => {
    const idx = tokenIndices(r, N, T, 'striped');
    const [q, k, v, dOut] = whole.map((x) => gatherTokens(x, B * H, T, D, idx));
    return {
      ...{ q, k, v, dOut, B, H, Hk: H, c, D },
      ...{ seqLen: T, layout: 'striped' as const, causal: true, blockSize: 256 },
      measureMemory: true,
    };
  });
  gc(); // the main thread's garbage is not collected during the call
  before = rss().now;
  writeFileSync('/proc/self/clear_refs', '5');
  results = await group.run<AttentionTaskArgs, AttentionTaskResult>(
    new URL('../../cluster/device/attention-task.js', import.meta.url),
    'attentionTask',
    args,
    2 * B * H * c * D,
    args.map((x) => [x.q, x.k, x.v, x.dOut!].map((y) => y.buffer as ArrayBuffer)),
  );
}
const after = rss();
const memory = results.map((r) => r.memory!);
const comm = N > 1 ? group.commBytesPerDevice : 0;
console.log(
  JSON.stringify({
    // what the devices say they added over their idle figure (receive buffers included)
    reportedGrowth: memory.reduce((s, m, r) => s + m.totalBytes - idle[r].totalBytes + comm, 0),
    rssGrowth: after.peak - before,
    // the inputs were resident before the call: the devices now hold them
    movedIn: 4 * B * H * T * D * 4,
    tensorBytes: results.reduce((s, r) => s + r.peakBytes, 0),
    idle: idle.map((m) => m.totalBytes),
    memory,
  }),
);
await group.dispose();
