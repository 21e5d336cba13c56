#!/usr/bin/python3
"""Golden values for tests/test_optim.cpp.

One fixed least-squares problem, loss = sum((X @ W^T + b - Y)^2), with W (3, 4) and
b (3,) as the parameters. Each optimizer configuration takes 5 steps in PyTorch (f64);
the parameters after every step are written, flattened as [W, b] per step, to
optim_golden.h next to this script together with W0, b0, X and Y, so kiln starts from
identical values and sees identical gradients. The script also records clip_grad_norm_
on the problem's first gradients. Regenerate with
    /usr/bin/python3 tests/golden/gen_optim.py
"""
import math
import os

import torch

torch.set_default_dtype(torch.float64)

STEPS = 5


def values(n, a, b, scale):
    return [round(scale * math.sin(a * k + b), 4) for k in range(n)]


W0 = torch.tensor(values(12, 0.7, 0.3, 0.5)).reshape(3, 4)
B0 = torch.tensor(values(3, 1.9, 0.2, 0.3))
X = torch.tensor(values(20, 1.3, 0.4, 1.0)).reshape(5, 4)
Y = torch.tensor(values(15, 0.9, 1.1, 1.0)).reshape(5, 3)


def loss_of(w, b):
    return ((X @ w.t() + b - Y) ** 2).sum()


def fresh_params():
    return W0.clone().requires_grad_(), B0.clone().requires_grad_()


def trajectory(make_optimizer):
    """Parameters after each of STEPS steps, as one flat list [W, b, W, b, ...]."""
    w, b = fresh_params()
    opt = make_optimizer(w, b)
    out = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss_of(w, b).backward()
        opt.step()
        out += w.detach().flatten().tolist() + b.detach().tolist()
    return out


SGD, Adam, AdamW = torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW
CASES = {
    "sgd_plain": lambda w, b: SGD([w, b], lr=0.01),
    "sgd_momentum": lambda w, b: SGD([w, b], lr=0.01, momentum=0.9),
    "sgd_nesterov": lambda w, b: SGD([w, b], lr=0.01, momentum=0.9, nesterov=True),
    "sgd_weight_decay": lambda w, b: SGD([w, b], lr=0.01, momentum=0.9, weight_decay=0.1),
    "sgd_dampening": lambda w, b: SGD([w, b], lr=0.01, momentum=0.9, dampening=0.5),
    "adam": lambda w, b: Adam([w, b], lr=0.01),
    "adam_weight_decay": lambda w, b: Adam([w, b], lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    "adamw": lambda w, b: AdamW([w, b], lr=0.01, weight_decay=0.1),
    # Two groups: W keeps the defaults, b has its own lr.
    "sgd_groups": lambda w, b: SGD([{"params": [w]}, {"params": [b], "lr": 0.05}], lr=0.01, momentum=0.9),
    # The GPT-2 grouping: matrices decay, the bias does not.
    "adamw_no_decay_groups": lambda w, b: AdamW(
        [{"params": [w]}, {"params": [b], "weight_decay": 0.0}], lr=0.01, weight_decay=0.5),
}


def step_lr_values():
    """StepLR(step_size=3, gamma=0.5) on a base lr of 0.1, for steps 0..9."""
    opt = SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    out = []
    for _ in range(10):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def trained_losses():
    """The loss at steps 0, 50, 100 and 199 of a run with AdamW, warmup + cosine decay and
    clip_grad_norm_ together (test "the DESIGN example"). X is nearly rank 3, so the loss
    plateaus near 7.27 rather than 0."""
    w, b = fresh_params()
    opt = AdamW([w, b], lr=0.05, weight_decay=0.01)
    warmup, total, min_ratio = 10, 200, 0.1  # min_lr = 0.005

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        if step > total:
            return min_ratio
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    out = []
    for step in range(200):
        opt.zero_grad()
        loss = loss_of(w, b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([w, b], 5.0)
        opt.step()
        sched.step()
        if step in (0, 50, 100, 199):
            out.append(loss.item())
    return out


def clip_cases():
    """clip_grad_norm_ on the first gradients of the problem, for several norms."""
    out = {}
    for tag, max_norm, norm_type in [("l2", 1.0, 2.0), ("l1", 2.0, 1.0), ("linf", 0.5, math.inf),
                                     ("l3", 1.5, 3.0), ("l2_no_clip", 1e3, 2.0)]:
        w, b = fresh_params()
        loss_of(w, b).backward()
        total = torch.nn.utils.clip_grad_norm_([w, b], max_norm, norm_type)
        out["clip_" + tag + "_total"] = [total.item()]
        out["clip_" + tag + "_grads"] = w.grad.flatten().tolist() + b.grad.tolist()
    return out


def main():
    data = {"w0": W0.flatten().tolist(), "b0": B0.tolist(), "x": X.flatten().tolist(), "y": Y.flatten().tolist()}
    for name, make in CASES.items():
        data[name] = trajectory(make)
    data["step_lr"] = step_lr_values()
    data["trained_losses"] = trained_losses()
    data.update(clip_cases())

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_golden.h")
    with open(path, "w") as f:
        f.write(f"// Generated by tests/golden/gen_optim.py with PyTorch {torch.__version__} (f64). "
                "Do not edit; rerun the script.\n")
        f.write("// Trajectories hold the parameters after each step, flattened as [W (3x4), b (3)] per step.\n")
        f.write("#pragma once\n\n#include <vector>\n\nnamespace golden::optim {\n\n")
        for name, vals in data.items():
            f.write(f"inline const std::vector<double> {name} = {{{', '.join(repr(float(v)) for v in vals)}}};\n")
        f.write("\n}  // namespace golden::optim\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
