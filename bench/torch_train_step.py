#!/usr/bin/python3
"""PyTorch twin of bench/train_step.cpp: the same GPT, written out layer for layer, the
same flags, the same timing, the same RESULT line.

    /usr/bin/python3 bench/torch_train_step.py [--vocab 256] [--d 256] [--layers 4] [--heads 4]
        [--seq 256] [--batch 16] [--threads 2] [--steps 10] [--warmup 3]

The model is kiln's nn::GPT: pre-LN blocks, one fused qkv Linear, explicit causal attention
softmax(q k^T / sqrt(hd), masked above the diagonal) v, a GELU-tanh MLP of width 4d, learned
positions, the head tied to the token embedding, no dropout. AdamW (lr 1e-4, weight decay
0.01, as kiln's defaults), gradients set to None between steps (as kiln does). Random
tokens. After the warm-up it times `steps` steps and prints, from their median:

    RESULT step_ms=.. tokens_per_s=.. peak_rss_mb=.. impl=torch ... base_rss_mb=..

peak_rss_mb is the process's high-water mark; base_rss_mb the RSS before the model was
built (the Python interpreter and PyTorch's libraries), so the model's own share is the
difference. Set OMP_WAIT_POLICY in the environment (bench/compare.sh does).
"""
import argparse
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """x = x + attn(ln1(x)); x = x + fc2(gelu_tanh(fc1(ln2(x)))), as nn::TransformerBlock."""

    def __init__(self, d, heads, seq):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)
        self.register_buffer("future", torch.ones(seq, seq, dtype=torch.bool).triu(1), persistent=False)

    def attention(self, x):
        B, T, C = x.shape
        hd = C // self.heads
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
        scores = scores.masked_fill(self.future[:T, :T], -math.inf)
        y = torch.softmax(scores, dim=-1) @ v  # (B, H, T, hd)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, d, layers, heads, seq):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(Block(d, heads, seq) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.init_gpt2_(layers)

    def init_gpt2_(self, layers):
        """kiln's nn/init_gpt2.h, so that the two losses can be compared too: N(0, 0.02) weights,
        0.02 / sqrt(2 layers) on the residual projections, zero biases, LayerNorms (1, 0)."""
        for name, p in self.named_parameters():
            if p.dim() < 2:  # the only 1-D weights are LayerNorm gains
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            else:
                residual = name.endswith("proj.weight") or name.endswith("fc2.weight")
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * layers) if residual else 0.02)

    def forward(self, idx):
        T = idx.shape[1]
        h = self.wte(idx) + self.wpe(torch.arange(T))
        for block in self.blocks:
            h = block(h)
        return F.linear(self.ln_f(h), self.wte.weight)  # the tied head


def rss_mb(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux reports kilobytes


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"needs a positive integer, got {text}")
    return value


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in [("vocab", 256), ("d", 256), ("layers", 4), ("heads", 4), ("seq", 256), ("batch", 16),
                          ("threads", 2), ("steps", 10), ("warmup", 3)]:
        p.add_argument(f"--{flag}", type=positive_int, default=default)
    args = p.parse_args()
    if args.d % args.heads:
        p.error("--d must be a multiple of --heads")
    return args


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base_rss = rss_mb()
    model = GPT(args.vocab, args.d, args.layers, args.heads, args.seq)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    idx = torch.randint(0, args.vocab, (args.batch, args.seq))
    targets = torch.randint(0, args.vocab, (args.batch, args.seq))
    params = sum(p.numel() for p in model.parameters())
    print(f"# torch train_step: GPT vocab={args.vocab} d={args.d} layers={args.layers} heads={args.heads} "
          f"seq={args.seq} batch={args.batch}, {params / 1e6:.2f}M params, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}", file=sys.stderr)

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = model(idx)
        loss = F.cross_entropy(logits.view(-1, args.vocab), targets.view(-1))
        loss.backward()
        optimizer.step()
        return loss.item()

    first_loss = step()
    for _ in range(args.warmup - 1):
        step()
    seconds = []
    for _ in range(args.steps):
        start = time.perf_counter()
        last_loss = step()
        seconds.append(time.perf_counter() - start)
    step_s = statistics.median(seconds)
    print(f"# loss {first_loss:.4f} (first warm-up step) -> {last_loss:.4f} (last step); "
          f"steps {min(seconds) * 1e3:.0f}..{max(seconds) * 1e3:.0f} ms", file=sys.stderr)
    print(f"RESULT step_ms={step_s * 1e3:.1f} tokens_per_s={args.batch * args.seq / step_s:.0f} "
          f"peak_rss_mb={rss_mb():.0f} impl=torch vocab={args.vocab} d={args.d} layers={args.layers} "
          f"heads={args.heads} seq={args.seq} batch={args.batch} threads={torch.get_num_threads()} "
          f"steps={args.steps} base_rss_mb={base_rss:.0f} torch={torch.__version__}")


if __name__ == "__main__":
    main()
