"""PyTorch CPU scaled_dot_product_attention: the anchor of the attention benchmarks.

Reads a JSON list of shapes on stdin ({"batch", "heads", "seqLen", "headDim", "causal"}, and
"kvHeads" for grouped-query attention: SDPA's enable_gqa) and
prints one JSON list of timings: forward ms and forward+backward ms (fastest of `repeats`),
with all CPU threads, as PyTorch runs by default.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F


def best_ms(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t) * 1000)
    return best


def main():
    shapes = json.load(sys.stdin)
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    out = []
    for s in shapes:
        B, H, L, D, causal = s["batch"], s["heads"], s["seqLen"], s["headDim"], s["causal"]
        Hk = s.get("kvHeads", H)
        q = torch.randn(B, H, L, D, requires_grad=True)
        k, v = (torch.randn(B, Hk, L, D, requires_grad=True) for _ in range(2))
        gqa = {"enable_gqa": True} if Hk != H else {}
        g = torch.randn(B, H, L, D)
        repeats = s.get("repeats", 3)

        def fwd():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, is_causal=causal, **gqa)

        def fwd_bwd():
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal, **gqa)
            o.backward(g)
            q.grad = k.grad = v.grad = None

        out.append({**s, "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpuCapability": torch.backends.cpu.get_cpu_capability(),
                    "fwdMs": best_ms(fwd, repeats), "fwdBwdMs": best_ms(fwd_bwd, repeats)})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
