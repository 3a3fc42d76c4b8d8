"""Hugging Face twin of our LM training step: the anchor of bench/lm-train (issue 14).

`transformers.LlamaForCausalLM` built from the same LLaMA shape as lm/model.ts `LlamaModel`
(RMSNorm, RoPE, SwiGLU, GQA, no biases, optionally tied head), float32, SDPA attention, trained
on random token ids (batch, T) with labels = ids (the model shifts them itself: the loss on the
B·(T−1) next tokens, as our `shiftLabels`). One step: forward, backward, global-norm clip,
AdamW (β 0.9/0.999, eps 1e-8, decoupled decay on matrices only, as lm/finetune-device.ts).

  .venv/bin/python bench/lm_train_hf.py --config '{"vocab_size": 32000, ...}' --batch 2
      --seq-len 256 [--threads 1,2] [--warmup 2] [--steps 5] [--rounds 1]
      [--expect-parameters N] [--lr 1e-4] [--weight-decay 0.01] [--clip 1]

--config holds LlamaConfig's fields: vocab_size, hidden_size, intermediate_size,
num_hidden_layers, num_attention_heads, num_key_value_heads, rms_norm_eps, rope_theta,
tie_word_embeddings, max_position_embeddings. Prints one JSON object: parameters, versions and,
per thread count, the median step ms and tokens/s. Thread counts are alternated round by round
(each round: `steps` timed steps per count), so a shared machine's load falls on all of them
alike; OpenMP's wait policy is the caller's (OMP_WAIT_POLICY, read when torch loads). Exits 2
when the parameter count differs from ours: the twin is only a twin with the same parameters.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--config", required=True, help="LlamaConfig fields as a JSON object")
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seq-len", type=int, required=True)
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--expect-parameters", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0)
    return p.parse_args()


def build(c):
    config = LlamaConfig(
        vocab_size=c["vocab_size"],
        hidden_size=c["hidden_size"],
        intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"],
        num_key_value_heads=c["num_key_value_heads"],
        rms_norm_eps=c["rms_norm_eps"],
        # transformers ≥ 5 keeps RoPE's settings in rope_parameters (rope_theta alone is folded in)
        rope_parameters={"rope_type": "default", "rope_theta": float(c["rope_theta"])},
        tie_word_embeddings=c["tie_word_embeddings"],
        max_position_embeddings=c["max_position_embeddings"],
        use_cache=False,  # training: no KV cache to build each forward
        attn_implementation="sdpa",
        dtype=torch.float32,
    )
    return LlamaForCausalLM(config).to(torch.float32)


def main():
    a = parse_args()
    c = json.loads(a.config)
    torch.manual_seed(0)
    model = build(c)
    model.train()
    # model.parameters() yields a tied weight once: the count is the real number of weights
    parameters = sum(p.numel() for p in model.parameters())
    if a.expect_parameters is not None and parameters != a.expect_parameters:
        print(f"lm_train_hf: twin has {parameters} parameters; ours {a.expect_parameters}", file=sys.stderr)
        sys.exit(2)
    # decoupled decay on matrices only, as lm/finetune-device.ts (rank 2: embeddings, projections)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": a.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
        impl = "fused"
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, foreach=True)
        impl = "foreach"
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, c["vocab_size"], (a.batch, a.seq_len), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        return loss.item()

    threads = [int(n) for n in a.threads.split(",")]
    times = {n: [] for n in threads}
    for n in threads:
        torch.set_num_threads(n)
        for _ in range(a.warmup):
            step()
    for _ in range(a.rounds):
        for n in threads:
            torch.set_num_threads(n)
            step()  # the first step after a thread-count change pays the pool's resize
            for _ in range(a.steps):
                t = time.perf_counter()
                step()
                times[n].append((time.perf_counter() - t) * 1000)
    tokens = a.batch * a.seq_len
    rows = []
    for n in threads:
        ms = statistics.median(times[n])
        rows.append({"threads": n, "stepMs": ms, "tokensPerSec": tokens / (ms / 1000), "steps": len(times[n]),
                     "times": times[n]})
    json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "parameters": parameters,
               "attention": model.config._attn_implementation, "adamw": impl, "rows": rows}, sys.stdout)


if __name__ == "__main__":
    main()
