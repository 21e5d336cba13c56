#!/usr/bin/env python3
"""Summarise a charlm sweep (sweep.sh): a markdown table and SVG training curves.

    python3 examples/charlm/sweep_report.py build/sweep [--svg-prefix docs/sweep]

Reads OUT/<config>_seed<S>.log (charlm's output) and OUT/<config>_seed<S>/metrics.jsonl
(the Trainer's log). Prints, per configuration: seeds, layers, parameters, FLOPs per
token, final val bpc as mean +- sample std over seeds, and mean wall time. Writes two
SVG charts, val bpc against step and against training FLOPs (mean over seeds).

Python's standard library only (no matplotlib: this machine's Debian has none, and the
charts are simple enough to draw as SVG by hand).
"""
import argparse
import glob
import json
import math
import os
import re
import statistics
import sys

ORDER = ["vanilla_L", "vanilla_2L", "pool_L", "fixed_size_L", "weights_only_L", "size_only_L"]
COLORS = ["#444444", "#999999", "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def parse_number(text):
    """'22.0k' -> 22000, '5.31M' -> 5.31e6."""
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text[-1], 1)
    return float(text.rstrip("kMG")) * scale


def read_run(log_path):
    run_dir = log_path[: -len(".log")]
    text = open(log_path, encoding="utf-8", errors="replace").read()
    run = {}
    m = re.search(r"charlm: (\d+) layers?, d_model (\d+)", text)
    run["layers"] = int(m.group(1)) if m else None
    m = re.search(r"with AdamW, (\d+) parameters", text)
    run["params"] = int(m.group(1)) if m else None
    m = re.search(r"parameters, ([\d.]+[kMG]?) FLOPs/token training", text)
    run["flops_per_token"] = parse_number(m.group(1)) if m else None
    finals = re.findall(r"charlm: step (\d+), val bpc ([\d.]+)", text)
    if not finals:
        return None  # unfinished or failed
    run["val_bpc"] = float(finals[-1][1])
    m = re.search(r"^sweep: wall ([\d.]+) s", text, re.M)
    run["wall_s"] = float(m.group(1)) if m else None
    run["curve"] = []  # (step, val_bpc)
    metrics = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(metrics):
        for line in open(metrics, encoding="utf-8"):
            event = json.loads(line)
            if event.get("event") == "eval" and "val_bpc" in event:
                run["curve"].append((event["step"], event["val_bpc"]))
    return run


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def svg_chart(series, x_label, title, path):
    """series: [(name, [(x, y), ...])]; draws lines with a legend."""
    width, height, left, right, top, bottom = 720, 420, 70, 190, 40, 50
    points = [p for _, curve in series for p in curve]
    if not points:
        return
    x_min, x_max = min(p[0] for p in points), max(p[0] for p in points)
    y_min, y_max = min(p[1] for p in points), max(p[1] for p in points)
    x_max = x_max if x_max > x_min else x_min + 1
    y_pad = (y_max - y_min) * 0.05 or 0.1
    y_min, y_max = y_min - y_pad, y_max + y_pad

    def sx(x):
        return left + (x - x_min) / (x_max - x_min) * (width - left - right)

    def sy(y):
        return top + (y_max - y) / (y_max - y_min) * (height - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    for i in range(6):  # grid and tick labels
        y = y_min + (y_max - y_min) * i / 5
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
        x = x_min + (x_max - x_min) * i / 5
        label = f"{x:.3g}" if abs(x) < 1e4 else f"{x:.2e}"
        out.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 16}" text-anchor="middle">{label}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
               'fill="none" stroke="#888"/>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">{x_label}</text>')
    out.append(f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(top + height - bottom) / 2})">validation bits per character</text>')
    for i, (name, curve) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        path_d = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(curve))
        out.append(f'<path d="{path_d}" fill="none" stroke="{color}" stroke-width="2"/>')
        ly = top + 10 + 18 * i
        out.append(f'<line x1="{width - right + 12}" x2="{width - right + 36}" y1="{ly}" y2="{ly}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{width - right + 42}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the sweep's --out folder")
    parser.add_argument("--svg-prefix", default=None, help="write PREFIX_step.svg and PREFIX_flops.svg "
                        "(default: OUT/curves)")
    args = parser.parse_args()

    runs = {}
    for log in sorted(glob.glob(os.path.join(args.out, "*_seed*.log"))):
        m = re.match(r"(.+)_seed(\d+)\.log$", os.path.basename(log))
        run = read_run(log)
        if m and run:
            runs.setdefault(m.group(1), []).append(run)
    if not runs:
        sys.exit(f"sweep_report: no finished runs in {args.out}")

    configs = [c for c in ORDER if c in runs] + sorted(c for c in runs if c not in ORDER)
    print("| configuration | layers | seeds | parameters | FLOPs/token (train) | val bpc (mean ± std) | wall time (s) |")
    print("|---|---|---|---|---|---|---|")
    for config in configs:
        group = runs[config]
        bpc_mean, bpc_std = mean_std([r["val_bpc"] for r in group])
        wall_mean, _ = mean_std([r["wall_s"] for r in group])
        first = group[0]
        flops = f"{first['flops_per_token'] / 1e6:.2f}M" if first["flops_per_token"] else "?"
        wall = f"{wall_mean:.0f}" if wall_mean is not None else "?"
        print(f"| {config} | {first['layers']} | {len(group)} | {first['params']:,} | {flops} | "
              f"{bpc_mean:.3f} ± {bpc_std:.3f} | {wall} |")

    # Curves: the mean over seeds at each eval step present in every seed's log.
    by_step, by_flops = [], []
    for config in configs:
        group = runs[config]
        steps = sorted(set.intersection(*(set(s for s, _ in r["curve"]) for r in group))) if group else []
        curve = [(s, statistics.fmean(dict(r["curve"])[s] for r in group)) for s in steps]
        if not curve:
            continue
        by_step.append((config, curve))
        # Every run trains on the same tokens per step, so FLOPs/token x step is the
        # compute spent, up to that common factor (batch x seq_len).
        flops_per_token = group[0]["flops_per_token"]
        if flops_per_token:
            by_flops.append((config, [(s * flops_per_token, bpc) for s, bpc in curve]))
    prefix = args.svg_prefix or os.path.join(args.out, "curves")
    svg_chart(by_step, "optimizer step", "char-LM: validation bpc vs step (mean over seeds)", prefix + "_step.svg")
    svg_chart(by_flops, "training FLOPs per token x step (x batch x seq_len = total)",
              "char-LM: validation bpc vs compute (mean over seeds)", prefix + "_flops.svg")


if __name__ == "__main__":
    main()
