"""PyTorch twin of the Agentic Transformer policy: the anchor of bench/rl-train (issue 14).

The same architecture as rl/policies/trajectory-transformer.ts with ring/transformer.ts blocks:

  tokens (B, T) of 4 modalities (return-to-go 1, state S, action A, completion 1), each embedded
  by its own Linear(width, Dm) with bias, plus a learned timestep embedding (maxTimestep, Dm),
  then LayerNorm (gain only, eps 1e-5);
  `layers` pre-LN blocks: x + Wo·SDPA(Wq h, Wk h, Wv h) causal, then x + Down·gelu_tanh(Up h),
  no biases, FFN width 4·Dm;
  LayerNorm (gain only), Linear(Dm, A) with bias, tanh.
  Loss: squared error of the actions at state tokens, summed, / (weight · A).
  AdamW (β 0.9/0.999, eps 1e-8, decoupled decay on matrices only), global-norm clip.

Reads one JSON object on stdin (obsDim, actDim, dModel, layers, heads, maxTimestep, tokens,
batch, lr, weightDecay, clip, warmup, steps, rounds, threads, expectParameters) and prints one
JSON object: parameters and, per thread count, the median step ms and tokens/s. Thread counts are
alternated round by round (each round: `steps` timed steps per count), so a shared machine's
load falls on all of them alike. Exits 2 when the parameter count differs from ours: the twin is
only a twin if it has the same parameters.
"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, dm, heads):
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(dm, eps=1e-5, bias=False)
        self.wq = nn.Linear(dm, dm, bias=False)
        self.wk = nn.Linear(dm, dm, bias=False)
        self.wv = nn.Linear(dm, dm, bias=False)
        self.wo = nn.Linear(dm, dm, bias=False)
        self.ffn_norm = nn.LayerNorm(dm, eps=1e-5, bias=False)
        self.up = nn.Linear(dm, 4 * dm, bias=False)
        self.down = nn.Linear(4 * dm, dm, bias=False)

    def forward(self, x, mask):
        B, T, D = x.shape
        h = self.attn_norm(x)
        # (B, T, Dm) → (B, H, T, Dh)
        q, k, v = (w(h).view(B, T, self.heads, D // self.heads).transpose(1, 2)
                   for w in (self.wq, self.wk, self.wv))
        if mask is None:  # every token real: causal alone is the same mask, and SDPA's fast path
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.wo(a.transpose(1, 2).reshape(B, T, D))
        return x + self.down(F.gelu(self.up(self.ffn_norm(x)), approximate="tanh"))


class Twin(nn.Module):
    def __init__(self, c):
        super().__init__()
        dm = c["dModel"]
        self.widths = [1, c["obsDim"], c["actDim"], 1]
        self.embed = nn.ModuleList(nn.Linear(w, dm) for w in self.widths)
        self.time = nn.Embedding(c["maxTimestep"], dm)
        self.in_norm = nn.LayerNorm(dm, eps=1e-5, bias=False)
        self.blocks = nn.ModuleList(Block(dm, c["heads"]) for _ in range(c["layers"]))
        self.out_norm = nn.LayerNorm(dm, eps=1e-5, bias=False)
        self.head = nn.Linear(dm, c["actDim"])

    def forward(self, feats, types, timesteps, mask):
        x = self.time(timesteps)
        for m, (w, lin) in enumerate(zip(self.widths, self.embed)):
            x = x + lin(feats[..., :w]) * (types == m).unsqueeze(-1).to(x.dtype)
        x = self.in_norm(x)
        for b in self.blocks:
            x = b(x, mask)
        return torch.tanh(self.head(self.out_norm(x)))


def batch_of(c, g):
    """Random tokens of the bench's shapes: 4 tokens a step, every token real (full chains)."""
    B, T, S, A = c["batch"], c["tokens"], c["obsDim"], c["actDim"]
    Fd = max(S, A, 1)
    types = torch.arange(T).remainder(4).expand(B, T).contiguous()
    steps = torch.randint(0, c["maxTimestep"], (B, T // 4), generator=g)
    timesteps = steps.repeat_interleave(4, dim=1)
    feats = torch.zeros(B, T, Fd)
    widths = [1, S, A, 1]
    for m, w in enumerate(widths):
        feats[:, m::4, :w] = torch.randn(B, T // 4, w, generator=g)
    weights = (types == 1).to(torch.float32).unsqueeze(-1)  # (B, T, 1): the state tokens
    targets = torch.rand(B, T, A, generator=g) * 2 - 1
    return feats, types, timesteps, targets * weights, weights


def main():
    c = json.load(sys.stdin)
    torch.manual_seed(0)
    model = Twin(c)
    parameters = sum(p.numel() for p in model.parameters())
    if c.get("expectParameters") is not None and parameters != c["expectParameters"]:
        print(f"rl_train_torch: twin has {parameters} parameters; ours {c['expectParameters']}",
              file=sys.stderr)
        sys.exit(2)
    # decoupled decay on matrices only, as train/optim.ts (rank ≥ 2: embeddings, projections, head)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": c["weightDecay"]}, {"params": rest, "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=c["lr"], betas=(0.9, 0.999), eps=1e-8, fused=True)
        impl = "fused"
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(groups, lr=c["lr"], betas=(0.9, 0.999), eps=1e-8, foreach=True)
        impl = "foreach"
    g = torch.Generator().manual_seed(0)
    feats, types, timesteps, targets, weights = batch_of(c, g)
    total = max(1.0, float(weights.sum()))

    def step():
        opt.zero_grad(set_to_none=True)
        pred = model(feats, types, timesteps, None)
        loss = ((pred - targets) ** 2 * weights).sum() / (total * c["actDim"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
        opt.step()
        return loss.item()

    threads = c.get("threads", [1, 2])
    times = {n: [] for n in threads}
    for n in threads:
        torch.set_num_threads(n)
        for _ in range(c.get("warmup", 3)):
            step()
    for _ in range(c.get("rounds", 2)):
        for n in threads:
            torch.set_num_threads(n)
            step()  # the first step after a thread-count change pays the pool's resize
            for _ in range(c["steps"]):
                t = time.perf_counter()
                step()
                times[n].append((time.perf_counter() - t) * 1000)
    tokens = c["batch"] * c["tokens"]
    rows = []
    for n in threads:
        ms = statistics.median(times[n])
        rows.append({"threads": n, "stepMs": ms, "tokensPerSec": tokens / (ms / 1000), "steps": len(times[n]),
                     "times": times[n]})
    json.dump({"torch": torch.__version__, "parameters": parameters, "adamw": impl, "rows": rows}, sys.stdout)


if __name__ == "__main__":
    main()
