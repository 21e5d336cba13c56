#!/usr/bin/python3
"""PyTorch reference for bench/attention.cpp: the same configs, timed the same way
(median; forward under no_grad, and forward + backward to q, k and v). PyTorch 1.13 has
no fused scaled_dot_product_attention, so this times the explicit math
softmax(q k^T * scale [masked_fill -inf above the diagonal when causal]) v.

    /usr/bin/python3 bench/attention_torch.py [threads]      (default: 2 threads)
"""
import math
import sys
import time

import torch

CONFIGS = [  # b, h, l, d, causal: as in bench/attention.cpp
    (16, 4, 256, 64, False),
    (16, 4, 256, 64, True),
    (4, 4, 1024, 64, True),
]


def median_seconds(f):
    start = time.perf_counter()
    f()
    first = time.perf_counter() - start
    reps = min(max(int(1.0 / max(first, 1e-6)), 5), 101)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def attention(q, k, v, causal):
    scores = q @ k.transpose(-1, -2) * (1 / math.sqrt(q.shape[-1]))
    if causal:
        l = q.shape[-2]
        scores = scores.masked_fill(torch.ones(l, l, dtype=torch.bool).triu(1), -math.inf)
    return torch.softmax(scores, -1) @ v


def run(b, h, l, d, causal):
    torch.manual_seed(0)
    q, k, v = (torch.randn(b, h, l, d, requires_grad=True) for _ in range(3))
    upstream = torch.randn(b, h, l, d)

    def forward():
        with torch.no_grad():
            attention(q, k, v, causal)

    def forward_backward():
        q.grad = k.grad = v.grad = None
        attention(q, k, v, causal).backward(upstream)

    fwd, fwd_bwd = median_seconds(forward), median_seconds(forward_backward)
    macs = 2 * b * h * l * l * d
    print(f"RESULT bench=attention_torch b={b} h={h} l={l} d={d} causal={int(causal)} fwd_ms={fwd * 1e3:.3f} "
          f"fwd_bwd_ms={fwd_bwd * 1e3:.3f} gflops_fwd={2 * macs / fwd * 1e-9:.1f} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}")


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    for cfg in CONFIGS:
        run(*cfg)
