/** Runs code with the native kernels off, for tests that compare them against the tfjs reference. */
import { configureNative } from '../../native/index.js';

/** `f` with the native kernels off (the tfjs engine, the reference), then back to the default. */
export function withTfjs<T>(f: () => T): T {
  configureNative({ enabled: false });
  try {
    return f();
  } finally {
    configureNative({ enabled: undefined });
  }
}
