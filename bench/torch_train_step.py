#!/usr/bin/python3
"""PyTorch twin of bench/train_step.cpp: the same GPT, written out layer for layer, the
same flags, the same timing, the same RESULT line.

    /usr/bin/python3 bench/torch_train_step.py [--vocab 256] [--d 256] [--layers 4] [--heads 4]
        [--seq 256] [--batch 16] [--threads 2] [--steps 10] [--warmup 3] [--device cpu|cuda] [--bf16]

The model is kiln's nn::GPT: pre-LN blocks, one fused qkv Linear, explicit causal attention
softmax(q k^T / sqrt(hd), masked above the diagonal) v, a GELU-tanh MLP of width 4d, learned
positions, the head tied to the token embedding, no dropout. AdamW (lr 1e-4, weight decay
0.01, as kiln's defaults), gradients set to None between steps (as kiln does). Random
tokens. After the warm-up it times `steps` steps and prints, from their median:

    RESULT step_ms=.. tokens_per_s=.. peak_rss_mb=.. impl=torch ... base_rss_mb=..

peak_rss_mb is the process's high-water mark; base_rss_mb the RSS before the model was
built (the Python interpreter and PyTorch's libraries), so the model's own share is the
difference. Set OMP_WAIT_POLICY in the environment (bench/compare.sh does).

With --device cuda everything lives on the first GPU: each timed step runs from a
synchronised device to a synchronised device (torch.cuda.synchronize), and the line adds
the GPU's name and the peak GPU memory of the whole run, warm-up included
(torch.cuda.max_memory_allocated / max_memory_reserved: peak_alloc_mb / peak_reserved_mb,
as bench_train_step reports kiln's). TF32 stays off, PyTorch's default for matmuls and
kiln's. --bf16 runs the forward and the loss under torch.autocast(bfloat16); the weights,
gradients and AdamW stay f32. bench/gpu_compare.sh runs both programs on a GPU.
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
        h = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
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
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward and the loss")
    args = p.parse_args()
    if args.d % args.heads:
        p.error("--d must be a multiple of --heads")
    return args


def gpu_fields(device):
    """The GPU's name and the run's peak GPU memory as RESULT fields ("" on the CPU)."""
    if device.type != "cuda":
        return ""
    name = torch.cuda.get_device_name(device).replace(" ", "_")
    return (f" gpu={name} peak_alloc_mb={torch.cuda.max_memory_allocated(device) // 2**20}"
            f" peak_reserved_mb={torch.cuda.max_memory_reserved(device) // 2**20}")


def main():
    args = parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("torch_train_step.py: skipped: --device cuda: torch.cuda.is_available() is False")
        return
    device = torch.device(args.device, 0) if args.device == "cuda" else torch.device("cpu")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base_rss = rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = GPT(args.vocab, args.d, args.layers, args.heads, args.seq).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    idx = torch.randint(0, args.vocab, (args.batch, args.seq)).to(device)
    targets = torch.randint(0, args.vocab, (args.batch, args.seq)).to(device)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16)
    params = sum(p.numel() for p in model.parameters())
    print(f"# torch train_step: GPT vocab={args.vocab} d={args.d} layers={args.layers} heads={args.heads} "
          f"seq={args.seq} batch={args.batch}, {params / 1e6:.2f}M params, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {device}{' bf16 autocast' if args.bf16 else ''}", file=sys.stderr)

    def wait():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step():
        """One step; returns the loss tensor, detached, without waiting for a GPU."""
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = model(idx)
            loss = F.cross_entropy(logits.view(-1, args.vocab), targets.view(-1))
        loss.backward()
        optimizer.step()
        return loss.detach()

    first_loss = step().item()
    for _ in range(args.warmup - 1):
        step()
    seconds = []
    for _ in range(args.steps):
        wait()
        start = time.perf_counter()
        last = step()
        wait()
        seconds.append(time.perf_counter() - start)
    last_loss = last.item()
    step_s = statistics.median(seconds)
    print(f"# loss {first_loss:.4f} (first warm-up step) -> {last_loss:.4f} (last step); "
          f"steps {min(seconds) * 1e3:.0f}..{max(seconds) * 1e3:.0f} ms", file=sys.stderr)
    print(f"RESULT step_ms={step_s * 1e3:.1f} tokens_per_s={args.batch * args.seq / step_s:.0f} "
          f"peak_rss_mb={rss_mb():.0f} impl=torch vocab={args.vocab} d={args.d} layers={args.layers} "
          f"heads={args.heads} seq={args.seq} batch={args.batch} threads={torch.get_num_threads()} "
          f"steps={args.steps} base_rss_mb={base_rss:.0f} torch={torch.__version__} device={args.device} "
          f"dtype={'bf16' if args.bf16 else 'fp32'}{gpu_fields(device)}")


if __name__ == "__main__":
    main()
