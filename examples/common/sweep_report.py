#!/usr/bin/env python3
"""Summarise a sweep (examples/charlm/sweep.sh, examples/vit/sweep.sh): a markdown table and SVG curves.

    python3 examples/common/sweep_report.py charlm build/sweep [--svg-prefix docs/results_charlm]
    python3 examples/common/sweep_report.py vit build/sweep-vit [--svg-prefix docs/results_vit]

Reads OUT/<config>_seed<S>.log (the program's output, with the sweep's "sweep: wall" line
at the end) and OUT/<config>_seed<S>/metrics.jsonl (the Trainer's JSON Lines log). Prints,
per configuration: layers, seeds, parameters, FLOPs, the final metric as mean +- sample
std over seeds, mean wall time (and CPU time where the sweep recorded it); then every
seed's number, each configuration against the big baseline seed by seed, and (vit) the
accuracy per class. Writes two SVG charts, the metric against step and against training
FLOPs (mean over seeds).

The examples differ only in what their logs say and which way their metric is better;
that is the EXAMPLES table below, one Example per sweep.

Python's standard library only (no matplotlib: this machine's Debian has none, and the
charts are simple enough to draw as SVG by hand).
"""
import argparse
import dataclasses
import glob
import json
import math
import os
import re
import statistics
import sys
from typing import Callable

# Every sweep's configurations, in the order the tables list them.
ORDER = ["vanilla_L", "vanilla_2L", "pool_L", "fixed_size_L", "weights_only_L", "size_only_L", "uniform_L"]
BASELINE = "vanilla_2L"  # what "the claim" compares ContextPool L against
COLORS = ["#444444", "#999999", "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def parse_number(text):
    """'22.0k' -> 22000, '5.31M' -> 5.31e6, '74,824' -> 74824."""
    text = text.replace(",", "")
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text[-1], 1)
    return float(text.rstrip("kMG")) * scale


@dataclasses.dataclass(frozen=True)
class Example:
    """What one example's logs look like. Each *_pattern is a regex whose one group is a number
    (parts_pattern's is a list of them)."""
    title: str                 # the charts' title prefix
    size_label: str            # the table's column for depth ("layers", "blocks")
    size_pattern: str
    flops_label: str           # the table's FLOPs column
    flops_pattern: str         # the FLOPs the table shows
    flops_unit: float          # what the patterns' numbers count (1e6 for "MFLOPs")
    format_flops: Callable[[float], str]
    train_flops_pattern: str   # training FLOPs per sample: the compute axis
    flops_axis: str
    metric_label: str          # the table's, e.g. "val bpc"; it adds "(mean ± std)"
    metric_title: str          # the charts' titles
    metric_axis: str           # the charts' y axis
    metric_pattern: str        # the final value in the log; its absence means "unfinished"
    metric_key: str            # the eval events' key in metrics.jsonl
    metric_scale: float        # log value x scale = the reported value (a fraction -> %)
    metric_digits: int
    higher_is_better: bool
    parts_pattern: str = ""    # optional: a line of "name value, name value" (vit: per-class accuracy)


EXAMPLES = {
    "charlm": Example(
        title="char-LM", size_label="layers", size_pattern=r"charlm: (\d+) layers?, d_model \d+",
        flops_label="FLOPs/token (train)", flops_pattern=r"parameters, ([\d.]+[kMG]?) FLOPs/token training",
        flops_unit=1.0,
        format_flops=lambda f: f"{f / 1e6:.2f}M",
        train_flops_pattern=r"parameters, ([\d.]+[kMG]?) FLOPs/token training",
        flops_axis="training FLOPs per token x step (x batch x seq_len = total)",
        metric_label="val bpc", metric_title="validation bpc", metric_axis="validation bits per character",
        metric_pattern=r"charlm: step \d+, val bpc ([\d.]+)", metric_key="val_bpc",
        metric_scale=1.0, metric_digits=3, higher_is_better=False),
    "vit": Example(
        title="ViT", size_label="blocks", size_pattern=r"vit: image_size=\d+, .*depth=(\d+)",
        flops_label="MFLOPs/image (forward)", flops_pattern=r"([\d.]+) MFLOPs per image forward",
        flops_unit=1e6, format_flops=lambda f: f"{f / 1e6:.2f}",
        train_flops_pattern=r"training ~3x: ([\d.]+) MFLOPs",
        flops_axis="training FLOPs per image x step (x batch = total)",
        metric_label="test accuracy %", metric_title="test accuracy", metric_axis="test accuracy (%)",
        metric_pattern=r"^vit: test accuracy ([\d.]+)", metric_key="test_acc",
        metric_scale=100.0, metric_digits=1, higher_is_better=True,
        parts_pattern=r"^vit: per class: (.+)$"),
}


def search_number(pattern, text):
    """The number in the first match of pattern, or None."""
    m = re.search(pattern, text, re.M)
    return parse_number(m.group(1)) if m else None


def scaled(number, unit):
    return number * unit if number is not None else None


def read_run(example, log_path):
    """One run's numbers and eval curve; None if the run has not finished."""
    text = open(log_path, encoding="utf-8", errors="replace").read()
    finals = re.findall(example.metric_pattern, text, re.M)
    if not finals:
        return None
    size = search_number(example.size_pattern, text)
    params = search_number(r"with AdamW, (\d+) parameters", text)  # the Trainer's first line
    run = {
        "size": int(size) if size is not None else None,
        "params": int(params) if params is not None else None,
        "flops": scaled(search_number(example.flops_pattern, text), example.flops_unit),
        "train_flops": scaled(search_number(example.train_flops_pattern, text), example.flops_unit),
        "metric": float(finals[-1]) * example.metric_scale,
        "wall_s": search_number(r"^sweep: wall ([\d.]+) s", text),
        "cpu_s": None,
        "curve": [],  # (step, metric)
        "parts": {},  # name -> metric, from parts_pattern
    }
    m = re.search(example.parts_pattern, text, re.M) if example.parts_pattern else None
    if m:
        for item in m.group(1).split(","):
            name, value = item.strip().rsplit(" ", 1)
            run["parts"][name] = float(value) * example.metric_scale
    m = re.search(r"^sweep: wall [\d.]+ s, cpu ([\d.]+) s user \+ ([\d.]+) s system", text, re.M)
    if m:
        run["cpu_s"] = float(m.group(1)) + float(m.group(2))
    metrics = os.path.join(log_path[: -len(".log")], "metrics.jsonl")
    if os.path.exists(metrics):
        for line in open(metrics, encoding="utf-8"):
            event = json.loads(line)
            if event.get("event") == "eval" and example.metric_key in event:
                run["curve"].append((event["step"], event[example.metric_key] * example.metric_scale))
    return run


def read_sweep(example, out):
    """{config: {seed: run}} for the finished runs under out."""
    runs = {}
    for log in sorted(glob.glob(os.path.join(out, "*_seed*.log"))):
        m = re.match(r"(.+)_seed(\d+)\.log$", os.path.basename(log))
        run = read_run(example, log) if m else None
        if run:
            runs.setdefault(m.group(1), {})[int(m.group(2))] = run
    return runs


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def print_table(example, runs, configs):
    digits = example.metric_digits
    has_cpu = any(r["cpu_s"] is not None for seeds in runs.values() for r in seeds.values())
    header = (f"| configuration | {example.size_label} | seeds | parameters | {example.flops_label} | "
              f"{example.metric_label} (mean ± std) | wall time (s) |" + (" CPU time (s) |" if has_cpu else ""))
    print(header)
    print("|---" * header.count(" |") + "|")
    for config in configs:
        group = list(runs[config].values())
        metric_mean, metric_std = mean_std([r["metric"] for r in group])
        first = group[0]
        flops = example.format_flops(first["flops"]) if first["flops"] else "?"
        params = f"{first['params']:,}" if first["params"] is not None else "?"
        time_keys = ["wall_s", "cpu_s"] if has_cpu else ["wall_s"]
        times = [mean_std([r[key] for r in group])[0] for key in time_keys]
        time_cells = " | ".join(f"{t:.0f}" if t is not None else "?" for t in times)
        print(f"| {config} | {first['size']} | {len(group)} | {params} | {flops} | "
              f"{metric_mean:.{digits}f} ± {metric_std:.{digits}f} | {time_cells} |")


def print_per_seed(example, runs, configs):
    """Every seed's final metric, and each configuration against BASELINE on the seeds both have."""
    digits = example.metric_digits
    print()
    for config in configs:
        seeds = sorted(runs[config])
        values = ", ".join(f"{runs[config][s]['metric']:.{digits}f}" for s in seeds)
        print(f"- {config}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}: {values}")
    if BASELINE not in runs:
        return
    print()
    better = "higher" if example.higher_is_better else "lower"
    print(f"Against {BASELINE}, seed by seed ({better} {example.metric_label} is better):")
    for config in configs:
        if config == BASELINE:
            continue
        seeds = sorted(set(runs[config]) & set(runs[BASELINE]))
        diffs = [runs[config][s]["metric"] - runs[BASELINE][s]["metric"] for s in seeds]
        wins = sum(1 for d in diffs if (d > 0) == example.higher_is_better and d != 0)
        if diffs:
            print(f"- {config}: better on {wins} of {len(seeds)} seeds, "
                  f"mean difference {statistics.fmean(diffs):+.{digits}f}")


def print_parts(example, runs, configs):
    """The metric per part (class), mean over seeds: where a configuration wins or loses."""
    names = next((list(r["parts"]) for seeds in runs.values() for r in seeds.values() if r["parts"]), [])
    if not names:
        return
    print()
    print(f"| configuration | {' | '.join(names)} |")
    print("|---" * (len(names) + 1) + "|")
    for config in configs:
        group = runs[config].values()
        cells = [f"{statistics.fmean(r['parts'].get(n, float('nan')) for r in group):.{example.metric_digits}f}"
                 for n in names]
        print(f"| {config} | {' | '.join(cells)} |")


def mean_curve(group):
    """The mean over seeds at each eval step present in every seed's log."""
    steps = sorted(set.intersection(*(set(s for s, _ in r["curve"]) for r in group)))
    return [(s, statistics.fmean(dict(r["curve"])[s] for r in group)) for s in steps]


def nice_ticks(lo, hi, most=7):
    """Round tick values covering [lo, hi]: the finest step of 1, 2 or 5 x 10^k giving at most `most`."""
    power = 10 ** math.floor(math.log10((hi - lo) / most))
    for step in (m * power for m in (1, 2, 5, 10, 20)):
        first = math.ceil(lo / step - 1e-9) * step
        count = int((hi - first) / step + 1e-9) + 1
        if count <= most:
            return [first + i * step for i in range(count)], step
    raise AssertionError("unreachable: a step of 20 x 10^k gives fewer than `most` ticks")


def tick_label(value, step, largest):
    """'0.25', '800', '1.5G': as many decimals as the step needs, and an SI prefix when the
    axis reaches 10^4 (`largest` is its biggest tick, so all its labels share the prefix)."""
    if abs(value) < step / 2:
        return "0"
    scale, suffix = 1, ""
    if largest >= 1e4:
        scale, suffix = next(p for p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")) if largest >= p[0])
    decimals = max(0, -math.floor(math.log10(step / scale) + 1e-9))
    return f"{value / scale:.{decimals}f}{suffix}"


def svg_chart(series, x_label, y_label, title, path):
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
    y_ticks, y_step = nice_ticks(y_min, y_max)
    y_largest = max(map(abs, y_ticks))
    for y in y_ticks:  # grid lines and labels
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">'
                   f'{tick_label(y, y_step, y_largest)}</text>')
    x_ticks, x_step = nice_ticks(x_min, x_max)
    x_largest = max(map(abs, x_ticks))
    for x in x_ticks:  # tick marks and labels
        out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{height - bottom}" y2="{height - bottom + 4}" '
                   'stroke="#888"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                   f'{tick_label(x, x_step, x_largest)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
               'fill="none" stroke="#888"/>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">{x_label}</text>')
    out.append(f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(top + height - bottom) / 2})">{y_label}</text>')
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


def draw_curves(example, runs, configs, prefix):
    by_step, by_flops = [], []
    for config in configs:
        group = list(runs[config].values())
        curve = mean_curve(group)
        if not curve:
            continue
        by_step.append((config, curve))
        # Every run trains on the same samples per step, so training FLOPs per sample x step
        # is the compute spent, up to that common factor (the batch, times seq_len for text).
        train_flops = group[0]["train_flops"]
        if train_flops:
            by_flops.append((config, [(s * train_flops, value) for s, value in curve]))
    svg_chart(by_step, "optimizer step", example.metric_axis,
              f"{example.title}: {example.metric_title} vs step (mean over seeds)", prefix + "_step.svg")
    svg_chart(by_flops, example.flops_axis, example.metric_axis,
              f"{example.title}: {example.metric_title} vs compute (mean over seeds)", prefix + "_flops.svg")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("example", choices=sorted(EXAMPLES), help="which example's sweep")
    parser.add_argument("out", help="the sweep's --out folder")
    parser.add_argument("--svg-prefix", default=None, help="write PREFIX_step.svg and PREFIX_flops.svg "
                        "(default: OUT/curves)")
    args = parser.parse_args()

    example = EXAMPLES[args.example]
    runs = read_sweep(example, args.out)
    if not runs:
        sys.exit(f"sweep_report: no finished {args.example} runs in {args.out}")
    configs = [c for c in ORDER if c in runs] + sorted(c for c in runs if c not in ORDER)
    print_table(example, runs, configs)
    print_per_seed(example, runs, configs)
    print_parts(example, runs, configs)
    print()
    draw_curves(example, runs, configs, args.svg_prefix or os.path.join(args.out, "curves"))


if __name__ == "__main__":
    main()
