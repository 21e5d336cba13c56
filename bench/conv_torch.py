#!/usr/bin/python3
"""PyTorch reference for bench/conv.cpp: the same conv2d configs, timed the same way
(median and minimum; forward under no_grad, and forward + backward to input, weight
and bias).

    /usr/bin/python3 bench/conv_torch.py [threads]      (default: 2 threads)
"""
import sys
import time

import torch
import torch.nn.functional as F

CONFIGS = [  # n, c, hw, o, k, stride, pad: as in bench/conv.cpp
    (8, 64, 32, 64, 3, 1, 1),
    (8, 64, 32, 128, 3, 2, 1),
    (8, 64, 32, 256, 1, 1, 0),
    (8, 3, 32, 192, 4, 4, 0),
]


def time_of(f):
    """(median, min) seconds over ~2 s of repetitions (at least 11) after a warm-up call."""
    start = time.perf_counter()
    f()
    first = time.perf_counter() - start
    reps = min(max(int(2.0 / max(first, 1e-6)), 11), 201)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2], times[0]


def run(n, c, hw, o, k, stride, pad):
    torch.manual_seed(0)
    x = torch.randn(n, c, hw, hw, requires_grad=True)
    w = (torch.randn(o, c, k, k) * 0.05).requires_grad_()
    b = torch.zeros(o, requires_grad=True)
    with torch.no_grad():
        upstream = torch.randn_like(F.conv2d(x, w, b, stride, pad))

    def forward():
        with torch.no_grad():
            F.conv2d(x, w, b, stride, pad)

    def forward_backward():
        x.grad = w.grad = b.grad = None
        F.conv2d(x, w, b, stride, pad).backward(upstream)

    (fwd, fwd_min), (fwd_bwd, fwd_bwd_min) = time_of(forward), time_of(forward_backward)
    macs = upstream.numel() * c * k * k
    print(f"RESULT bench=conv2d_torch n={n} c={c} hw={hw} o={o} k={k} stride={stride} pad={pad} "
          f"fwd_ms={fwd * 1e3:.3f} fwd_bwd_ms={fwd_bwd * 1e3:.3f} fwd_min_ms={fwd_min * 1e3:.3f} "
          f"fwd_bwd_min_ms={fwd_bwd_min * 1e3:.3f} gflops_fwd={2 * macs / fwd_min * 1e-9:.1f} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}")


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    for cfg in CONFIGS:
        run(*cfg)
