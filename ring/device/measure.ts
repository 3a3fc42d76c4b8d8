import * as tf from '@tensorflow/tfjs';

/**
 * Runs `compute` and returns its result with the peak tensor bytes it added (tf.profile: the
 * largest engine byte count after any kernel, minus what was resident before).
 */
export async function withPeakBytes<R>(
  compute: () => R,
  measure: boolean,
): Promise<{ result: R; peakBytes: number }> {
  if (!measure) return { result: compute(), peakBytes: 0 };
  const before = tf.memory().numBytes;
  let result: R | undefined;
  const info = await tf.profile(() => {
    result = compute();
    return [];
  });
  return { result: result as R, peakBytes: Math.max(0, info.peakBytes - before) };
}
