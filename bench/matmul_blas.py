"""BLAS anchors for bench/matmul.ts: numpy's sgemm (its bundled OpenBLAS) and torch.mm, float32.

Reads a JSON list of sizes on stdin, prints a JSON list of {"lib", "n", "ms", "gflops"}, the
fastest of `repeats` products after a warm-up, with all CPU threads (each library's default).
"""
import json
import sys
import time

import numpy as np
import torch


def best_ms(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t) * 1000)
    return best


def main():
    req = json.load(sys.stdin)
    out = []
    for n in req["sizes"]:
        a, b = (np.random.randn(n, n).astype(np.float32) for _ in range(2))
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        for lib, fn in (("numpy", lambda: a @ b), ("torch", lambda: torch.mm(ta, tb))):
            # the same number of samples per size as the tfjs rows (repeats_by_size)
            ms = best_ms(fn, req.get("repeats_by_size", {}).get(str(n), req["repeats"]))
            out.append({"lib": f"{lib} {np.__version__ if lib == 'numpy' else torch.__version__}",
                        "n": n, "ms": ms, "gflops": 2 * n**3 / ms / 1e6})
    json.dump(out, sys.stdout)


main()
