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

/** Both kernel paths by name, to run one test body on each: the default (native where it loads) and tfjs. */
export const KERNEL_PATHS = [
  ['native', <T>(f: () => T): T => f()],
  ['tfjs', withTfjs],
] as const;
