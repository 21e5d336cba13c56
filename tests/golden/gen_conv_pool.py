#!/usr/bin/python3
"""Golden values for tests/test_conv.cpp and tests/test_pool.cpp.

Runs F.conv1d / F.conv2d over stride, padding, dilation and groups, and the max, average
and adaptive average pools (1-D and 2-D, ceil_mode, count_include_pad, non-divisible
adaptive sizes), each forward and backward: with loss = sum(out * upstream) for a random
`upstream`, the gradients of every input. Writes conv_pool_golden.h next to this script
as plain C++ vectors (row-major). Inputs are drawn in f32 and exported with 9 digits,
which round-trips f32 exactly, so the C++ tests can run them in f32 and f64; outputs
are computed in f64 and exported with 9 digits (compare f64 results to ~1e-7).
Regenerate with
    /usr/bin/python3 tests/golden/gen_conv_pool.py
"""
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20240612)

# name: (x shape, weight shape, bias?, dict of stride/padding/dilation/groups)
CONV2D_CASES = {
    "plain_3x3": ((2, 3, 5, 6), (4, 3, 3, 3), True, {}),
    "stride_and_padding": ((2, 3, 7, 6), (4, 3, 3, 2), True, dict(stride=(2, 1), padding=(1, 0))),
    "dilation": ((1, 2, 8, 7), (3, 2, 3, 2), False, dict(padding=(2, 1), dilation=(2, 3))),
    "groups": ((2, 4, 5, 5), (6, 2, 3, 3), True, dict(stride=2, padding=1, groups=2)),
    "depthwise": ((1, 3, 6, 6), (3, 1, 3, 3), False, dict(padding=1, groups=3)),
    "pointwise": ((2, 4, 3, 3), (5, 4, 1, 1), True, {}),
    "pointwise_groups": ((1, 4, 3, 3), (4, 2, 1, 1), False, dict(groups=2)),
    "patches": ((1, 2, 9, 9), (2, 2, 3, 3), True, dict(stride=3)),
    "stride_past_kernel": ((1, 2, 9, 8), (2, 2, 2, 2), False, dict(stride=3, padding=1)),
    "everything": ((2, 4, 9, 8), (6, 2, 3, 3), True, dict(stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=2)),
}

CONV1D_CASES = {
    "plain": ((2, 3, 10), (4, 3, 3), True, {}),
    "everything": ((2, 4, 11), (6, 2, 3), True, dict(stride=2, padding=2, dilation=2, groups=2)),
    "pointwise": ((2, 3, 5), (2, 3, 1), False, {}),
}

# name: (x shape, kernel, dict of options)
MAX_POOL2D_CASES = {
    "k2": ((1, 3, 6, 7), 2, {}),
    "k3_s2_p1": ((2, 2, 7, 6), 3, dict(stride=2, padding=1)),
    "rect_dilated": ((1, 2, 9, 7), (3, 2), dict(stride=(2, 1), padding=(1, 1), dilation=(2, 1))),
    "ceil_k2": ((1, 2, 7, 7), 2, dict(ceil_mode=True)),
    "ceil_k3_s2_p1": ((1, 2, 6, 8), 3, dict(stride=2, padding=1, ceil_mode=True)),
}
MAX_POOL1D_CASES = {
    "k3_s2_p1": ((2, 3, 9), 3, dict(stride=2, padding=1)),
    "dilated": ((1, 2, 10), 2, dict(stride=1, dilation=3)),
    "ceil": ((1, 2, 8), 3, dict(stride=2, ceil_mode=True)),
}
AVG_POOL2D_CASES = {
    "k2": ((1, 3, 6, 7), 2, {}),
    "k3_s2_p1_with_pad": ((2, 2, 7, 6), 3, dict(stride=2, padding=1)),
    "k3_s2_p1_without_pad": ((2, 2, 7, 6), 3, dict(stride=2, padding=1, count_include_pad=False)),
    "rect": ((1, 2, 7, 9), (2, 3), dict(stride=(1, 2), padding=(1, 1))),
    "ceil_with_pad": ((1, 2, 6, 8), 3, dict(stride=2, padding=1, ceil_mode=True)),
    "ceil_without_pad": ((1, 2, 6, 8), 3, dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
}
AVG_POOL1D_CASES = {
    "k3_s2_p1_with_pad": ((2, 3, 9), 3, dict(stride=2, padding=1)),
    "k3_s2_p1_without_pad": ((2, 3, 9), 3, dict(stride=2, padding=1, count_include_pad=False)),
    "ceil": ((1, 2, 8), 3, dict(stride=2, ceil_mode=True)),
}
# name: (x shape, output size)
ADAPTIVE2D_CASES = {
    "non_divisible": ((2, 3, 7, 5), (3, 2)),
    "identity": ((1, 2, 5, 5), (5, 5)),
    "global": ((1, 2, 4, 6), (1, 1)),
    "larger_than_input": ((1, 2, 3, 4), (5, 7)),
    "divisible": ((1, 2, 8, 8), (4, 2)),
}
ADAPTIVE1D_CASES = {
    "non_divisible": ((2, 3, 10), 4),
    "larger_than_input": ((1, 2, 3), 5),
}


def rand(shape):
    return torch.randn(shape, dtype=torch.float32).double()


def cpp_vector(values):
    # 9 significant digits: exact for the f32 inputs, ~1e-9 relative for the f64 outputs.
    return "{" + ", ".join(f"{float(v):.9g}" for v in torch.as_tensor(values).flatten()) + "}"


def cpp_ints(values):
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def pair(value, dims):
    """An int or tuple option as a list of `dims` ints."""
    return list(value) if isinstance(value, tuple) else [value] * dims


def run_backward(fn, inputs):
    """out = fn(*inputs); the gradients of sum(out * upstream) for a random upstream."""
    leaves = [t.clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    upstream = rand(out.shape)
    (out * upstream).sum().backward()
    return out.detach(), upstream, [t.grad for t in leaves]


def conv_case(name, conv, dims, x_shape, w_shape, with_bias, opts):
    x, w = rand(x_shape), rand(w_shape)
    b = rand((w_shape[0],)) if with_bias else None
    inputs = [x, w] + ([b] if with_bias else [])
    out, upstream, grads = run_backward(lambda *t: conv(t[0], t[1], t[2] if with_bias else None, **opts), inputs)
    db = grads[2] if with_bias else []
    return (f'    {{"{name}", {cpp_ints(x_shape)}, {cpp_ints(w_shape)}, {str(with_bias).lower()},\n'
            f'     {cpp_ints(pair(opts.get("stride", 1), dims))}, {cpp_ints(pair(opts.get("padding", 0), dims))}, '
            f'{cpp_ints(pair(opts.get("dilation", 1), dims))}, {opts.get("groups", 1)}, {cpp_ints(out.shape)},\n'
            f'     {cpp_vector(x)},\n     {cpp_vector(w)},\n     {cpp_vector(b if with_bias else [])},\n'
            f'     {cpp_vector(out)},\n     {cpp_vector(upstream)},\n'
            f'     {cpp_vector(grads[0])},\n     {cpp_vector(grads[1])},\n     {cpp_vector(db)}}},')


def pool_case(name, pool, dims, x_shape, kernel, opts):
    x = rand(x_shape)
    out, upstream, grads = run_backward(lambda t: pool(t, kernel, **opts), [x])
    stride = opts.get("stride", 0)  # 0: the kernel size, kiln's spelling of PyTorch's default
    return (f'    {{"{name}", {cpp_ints(x_shape)}, {cpp_ints(pair(kernel, dims))}, {cpp_ints(pair(stride, dims))}, '
            f'{cpp_ints(pair(opts.get("padding", 0), dims))}, {cpp_ints(pair(opts.get("dilation", 1), dims))}, '
            f'{str(opts.get("ceil_mode", False)).lower()}, {str(opts.get("count_include_pad", True)).lower()}, '
            f'{cpp_ints(out.shape)},\n'
            f'     {cpp_vector(x)},\n     {cpp_vector(out)},\n     {cpp_vector(upstream)},\n     {cpp_vector(grads[0])}}},')


def adaptive_case(name, pool, dims, x_shape, output_size):
    x = rand(x_shape)
    out, upstream, grads = run_backward(lambda t: pool(t, output_size), [x])
    return (f'    {{"{name}", {cpp_ints(x_shape)}, {cpp_ints(pair(output_size, dims))}, {{}}, {{}}, {{}}, false, false, '
            f'{cpp_ints(out.shape)},\n'
            f'     {cpp_vector(x)},\n     {cpp_vector(out)},\n     {cpp_vector(upstream)},\n     {cpp_vector(grads[0])}}},')


def table(f, comment, ctype, name, rows):
    f.write(f"// {comment}\ninline const std::vector<{ctype}> {name} = {{\n")
    f.write("\n".join(rows))
    f.write("\n};\n\n")


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv_pool_golden.h")
    with open(path, "w") as f:
        f.write(f"// Generated by tests/golden/gen_conv_pool.py with PyTorch {torch.__version__} (f64 outputs of f32 inputs, "
                "9 digits). Do not edit; rerun the script.\n")
        f.write("// Tensors are flattened in row-major order. `upstream` is the gradient of the output: the\n"
                "// gradients are those of sum(out * upstream). Spatial options have one entry per spatial dim.\n")
        f.write("#pragma once\n\n#include <cstdint>\n#include <vector>\n\nnamespace golden::conv_pool {\n\n")
        f.write("struct ConvCase {\n  const char* name;\n  std::vector<int64_t> x_shape, w_shape;\n  bool has_bias;\n"
                "  std::vector<int64_t> stride, padding, dilation;\n  int64_t groups;\n"
                "  std::vector<int64_t> out_shape;\n  std::vector<double> x, w, b, out, upstream, dx, dw, db;\n};\n\n")
        f.write("// For adaptive pools `kernel` holds the output size and the other options are unused.\n"
                "struct PoolCase {\n  const char* name;\n  std::vector<int64_t> x_shape, kernel, stride, padding, "
                "dilation;\n  bool ceil_mode, count_include_pad;\n  std::vector<int64_t> out_shape;\n"
                "  std::vector<double> x, out, upstream, dx;\n};\n\n")
        table(f, "F.conv2d(x, w, b, stride, padding, dilation, groups)", "ConvCase", "conv2d_cases",
              [conv_case(n, F.conv2d, 2, *c) for n, c in CONV2D_CASES.items()])
        table(f, "F.conv1d(x, w, b, stride, padding, dilation, groups)", "ConvCase", "conv1d_cases",
              [conv_case(n, F.conv1d, 1, *c) for n, c in CONV1D_CASES.items()])
        table(f, "F.max_pool2d", "PoolCase", "max_pool2d_cases",
              [pool_case(n, F.max_pool2d, 2, *c) for n, c in MAX_POOL2D_CASES.items()])
        table(f, "F.max_pool1d", "PoolCase", "max_pool1d_cases",
              [pool_case(n, F.max_pool1d, 1, *c) for n, c in MAX_POOL1D_CASES.items()])
        table(f, "F.avg_pool2d", "PoolCase", "avg_pool2d_cases",
              [pool_case(n, F.avg_pool2d, 2, *c) for n, c in AVG_POOL2D_CASES.items()])
        table(f, "F.avg_pool1d", "PoolCase", "avg_pool1d_cases",
              [pool_case(n, F.avg_pool1d, 1, *c) for n, c in AVG_POOL1D_CASES.items()])
        table(f, "F.adaptive_avg_pool2d(x, output_size = kernel)", "PoolCase", "adaptive_avg_pool2d_cases",
              [adaptive_case(n, F.adaptive_avg_pool2d, 2, *c) for n, c in ADAPTIVE2D_CASES.items()])
        table(f, "F.adaptive_avg_pool1d(x, output_size = kernel)", "PoolCase", "adaptive_avg_pool1d_cases",
              [adaptive_case(n, F.adaptive_avg_pool1d, 1, *c) for n, c in ADAPTIVE1D_CASES.items()])
        f.write("}  // namespace golden::conv_pool\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
