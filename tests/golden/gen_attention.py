#!/usr/bin/python3
"""Golden values for tests/test_attention.cpp and tests/test_transformer.cpp.

PyTorch 1.13 has no F.scaled_dot_product_attention (it came in 2.0), so the reference
is the textbook formula written out, softmax(q k^T * scale + mask) v, with bool masks
(True = attend) turned into -inf, causal meaning key j <= query i, and a query row
with no visible key attending to nothing (zero output and gradients, where PyTorch
would give NaN). Inputs are built
from sin() (no RNG), in f64. For each case the script stores the output and the
gradients of sum(output * W) for a fixed weighting W (`output_weights`).

MultiHeadAttention is checked against torch.nn.MultiheadAttention itself (its
in_proj_weight rows are [q; k; v], the layout of kiln's fused "qkv" Linear), and
TransformerBlock against the pre-LN block written out below, both with weights set
from the same sin() values. Regenerate with
    /usr/bin/python3 tests/golden/gen_attention.py
"""
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def wave(*shape, freq=1.3, phase=0.4, amp=1.0):
    """Distinct values of both signs, rounded so they print exactly."""
    n = math.prod(shape)
    return torch.tensor([round(amp * math.sin(freq * k + phase), 4) for k in range(n)]).reshape(shape)


VALUES = {}


def emit(name, tensor):
    VALUES[name] = tensor.detach().double().reshape(-1).tolist()


MAX_OUTPUT = 128
emit("output_weights", wave(MAX_OUTPUT, freq=0.7, phase=1.1))


def output_weights(out):
    assert out.numel() <= MAX_OUTPUT
    return wave(out.numel(), freq=0.7, phase=1.1).reshape(out.shape)


def with_grad(name, fn, *inputs):
    """Stores fn(inputs) as `name` and the gradient of sum(fn * W) for input i as name_grad<i>
    (inputs that are not floating, like bool masks, get none)."""
    leaves = [x.clone().requires_grad_() if x.is_floating_point() else x for x in inputs]
    out = fn(*leaves)
    (out * output_weights(out)).sum().backward()
    emit(name, out)
    for i, leaf in enumerate(leaves):
        if leaf.is_floating_point():
            emit(f"{name}_grad{i}", leaf.grad)


def reference_attention(q, k, v, mask=None, causal=False, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-1, -2) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask
    if causal:
        lq, lk = scores.shape[-2:]
        scores = scores.masked_fill(~torch.ones(lq, lk, dtype=torch.bool).tril(), -math.inf)
    # kiln's convention for a row with no visible key: zero probabilities (PyTorch gives NaN).
    visible = (scores > -math.inf).any(-1, keepdim=True)
    return (torch.softmax(scores.masked_fill(~visible, 0), -1) * visible) @ v


# ---- scaled_dot_product_attention ---------------------------------------------------------
def qkv(name, q_shape, k_shape, v_shape):
    q = wave(*q_shape, freq=1.3, phase=0.4, amp=1.5)
    k = wave(*k_shape, freq=0.9, phase=0.1, amp=1.5)
    v = wave(*v_shape, freq=1.7, phase=0.8, amp=2.0)
    emit(f"{name}_q", q)
    emit(f"{name}_k", k)
    emit(f"{name}_v", v)
    return q, k, v


# 4-D, Lq != Lk, value dim != head dim.
Q, K, V = qkv("basic", (2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3))
with_grad("basic", lambda q, k, v: reference_attention(q, k, v), Q, K, V)
with_grad("basic_scale", lambda q, k, v: reference_attention(q, k, v, scale=0.3), Q, K, V)

# Causal, square and both rectangular cases (top-left aligned).
Q, K, V = qkv("causal_square", (1, 2, 4, 3), (1, 2, 4, 3), (1, 2, 4, 3))
with_grad("causal_square", lambda q, k, v: reference_attention(q, k, v, causal=True), Q, K, V)
Q, K, V = qkv("causal_wide", (1, 2, 3, 3), (1, 2, 5, 3), (1, 2, 5, 2))
with_grad("causal_wide", lambda q, k, v: reference_attention(q, k, v, causal=True), Q, K, V)
Q, K, V = qkv("causal_tall", (1, 2, 5, 3), (1, 2, 3, 3), (1, 2, 3, 2))
with_grad("causal_tall", lambda q, k, v: reference_attention(q, k, v, causal=True), Q, K, V)

# Masks on the basic inputs: additive (Lq, Lk) with -inf entries, additive (B, 1, Lq, Lk)
# with a gradient, bool key padding (B, 1, 1, Lk), bool full (B, H, Lq, Lk), and a bool
# mask together with causal.
Q, K, V = qkv("masked", (2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3))
ADD_2D = wave(3, 5, freq=2.1, phase=0.3, amp=1.0)
ADD_2D[0, 1] = ADD_2D[1, 4] = ADD_2D[2, 0] = -math.inf
emit("additive_2d_mask", ADD_2D)
with_grad("additive_2d", lambda q, k, v: reference_attention(q, k, v, mask=ADD_2D), Q, K, V)
ADD_4D = wave(2, 1, 3, 5, freq=0.8, phase=1.9, amp=1.2)
emit("additive_4d_mask", ADD_4D)
with_grad("additive_4d", lambda q, k, v, m: reference_attention(q, k, v, mask=m), Q, K, V, ADD_4D)
KEY_PAD = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool).reshape(2, 1, 1, 5)
emit("key_pad_mask", KEY_PAD)
with_grad("key_pad", lambda q, k, v: reference_attention(q, k, v, mask=KEY_PAD), Q, K, V)
BOOL_4D = wave(2, 2, 3, 5, freq=2.9, phase=0.5) > -0.3
BOOL_4D[..., 2] = True  # every row keeps a key
emit("bool_4d_mask", BOOL_4D)
with_grad("bool_4d", lambda q, k, v: reference_attention(q, k, v, mask=BOOL_4D), Q, K, V)
with_grad("bool_4d_causal", lambda q, k, v: reference_attention(q, k, v, mask=BOOL_4D, causal=True), Q, K, V)

# 3-D (B, L, D) inputs with a (B, Lq, Lk) additive mask and a custom scale.
Q, K, V = qkv("three_d", (2, 3, 4), (2, 5, 4), (2, 5, 2))
ADD_3D = wave(2, 3, 5, freq=1.1, phase=0.2, amp=0.8)
emit("three_d_mask", ADD_3D)
with_grad("three_d", lambda q, k, v: reference_attention(q, k, v, mask=ADD_3D, scale=0.7), Q, K, V)
with_grad("three_d_causal", lambda q, k, v: reference_attention(q, k, v, causal=True), Q, K, V)

# ---- nn::MultiHeadAttention vs torch.nn.MultiheadAttention --------------------------------
E, H, B, L = 8, 2, 2, 4
mha = torch.nn.MultiheadAttention(E, H, batch_first=True)
with torch.no_grad():
    mha.in_proj_weight.copy_(wave(3 * E, E, freq=0.37, phase=0.2, amp=0.5))
    mha.in_proj_bias.copy_(wave(3 * E, freq=1.1, phase=0.9, amp=0.2))
    mha.out_proj.weight.copy_(wave(E, E, freq=0.53, phase=1.3, amp=0.5))
    mha.out_proj.bias.copy_(wave(E, freq=0.7, phase=2.0, amp=0.2))
emit("mha_qkv_weight", mha.in_proj_weight)
emit("mha_qkv_bias", mha.in_proj_bias)
emit("mha_proj_weight", mha.out_proj.weight)
emit("mha_proj_bias", mha.out_proj.bias)
MHA_X = wave(B, L, E, freq=0.77, phase=0.6, amp=1.5)
emit("mha_x", MHA_X)
MHA_PAD = torch.tensor([[0, 0, 0, 1], [0, 0, 1, 1]], dtype=torch.bool)  # True = padding
emit("mha_key_padding_mask", MHA_PAD)


def mha_case(name, **kwargs):
    mha.zero_grad()
    x = MHA_X.clone().requires_grad_()
    y = mha(x, x, x, need_weights=False, **kwargs)[0]
    (y * output_weights(y)).sum().backward()
    emit(name, y)
    emit(f"{name}_grad_x", x.grad)
    emit(f"{name}_grad_qkv_weight", mha.in_proj_weight.grad)
    emit(f"{name}_grad_proj_weight", mha.out_proj.weight.grad)


mha_case("mha_plain")
mha_case("mha_causal", attn_mask=torch.ones(L, L, dtype=torch.bool).triu(1))  # True = not allowed
mha_case("mha_key_padding", key_padding_mask=MHA_PAD)

# ---- nn::TransformerBlock (pre-LN, gelu_tanh, causal) ------------------------------------------
D_MODEL, HEADS, HIDDEN = 8, 2, 16
BLOCK_PARAMS = {  # kiln's parameter names, in registration order
    "ln1.weight": 1 + wave(D_MODEL, freq=0.9, phase=0.1, amp=0.2),
    "ln1.bias": wave(D_MODEL, freq=1.4, phase=0.3, amp=0.1),
    "attn.qkv.weight": wave(3 * D_MODEL, D_MODEL, freq=0.41, phase=0.7, amp=0.5),
    "attn.qkv.bias": wave(3 * D_MODEL, freq=0.9, phase=1.7, amp=0.1),
    "attn.proj.weight": wave(D_MODEL, D_MODEL, freq=0.61, phase=0.2, amp=0.4),
    "attn.proj.bias": wave(D_MODEL, freq=1.9, phase=0.5, amp=0.1),
    "ln2.weight": 1 + wave(D_MODEL, freq=1.2, phase=0.9, amp=0.2),
    "ln2.bias": wave(D_MODEL, freq=0.6, phase=1.3, amp=0.1),
    "fc1.weight": wave(HIDDEN, D_MODEL, freq=0.29, phase=1.1, amp=0.5),
    "fc1.bias": wave(HIDDEN, freq=1.3, phase=0.4, amp=0.1),
    "fc2.weight": wave(D_MODEL, HIDDEN, freq=0.47, phase=2.2, amp=0.3),
    "fc2.bias": wave(D_MODEL, freq=0.8, phase=0.6, amp=0.1),
}
for pname, value in BLOCK_PARAMS.items():
    emit("block_" + pname.replace(".", "_"), value)
BLOCK_X = wave(B, L, D_MODEL, freq=0.83, phase=0.3, amp=1.2)
emit("block_x", BLOCK_X)


def reference_block(x, p):
    def heads(t):  # (B, L, D) -> (B, H, L, D / H)
        return t.view(B, L, HEADS, D_MODEL // HEADS).transpose(1, 2)

    h = F.layer_norm(x, (D_MODEL,), p["ln1.weight"], p["ln1.bias"], 1e-5)
    q, k, v = F.linear(h, p["attn.qkv.weight"], p["attn.qkv.bias"]).split(D_MODEL, dim=-1)
    a = reference_attention(heads(q), heads(k), heads(v), causal=True).transpose(1, 2).reshape(B, L, D_MODEL)
    x = x + F.linear(a, p["attn.proj.weight"], p["attn.proj.bias"])
    h = F.layer_norm(x, (D_MODEL,), p["ln2.weight"], p["ln2.bias"], 1e-5)
    h = F.gelu(F.linear(h, p["fc1.weight"], p["fc1.bias"]), approximate="tanh")
    return x + F.linear(h, p["fc2.weight"], p["fc2.bias"])


params = {n: t.clone().requires_grad_() for n, t in BLOCK_PARAMS.items()}
x = BLOCK_X.clone().requires_grad_()
y = reference_block(x, params)
(y * output_weights(y)).sum().backward()
emit("block_y", y)
emit("block_grad_x", x.grad)
for pname, t in params.items():
    emit("block_grad_" + pname.replace(".", "_"), t.grad)


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "attention_golden.h")
    lines = [
        f"// Generated by tests/golden/gen_attention.py with PyTorch {torch.__version__} (f64). "
        "Do not edit; rerun the script.",
        "// Tensors are flattened in row-major order; bool masks are stored as 0/1.",
        "#pragma once",
        "",
        "#include <limits>",
        "#include <vector>",
        "",
        "namespace golden::attention {",
        "",
        "inline constexpr double inf = std::numeric_limits<double>::infinity();",
        "",
    ]
    for name, values in VALUES.items():
        text = ", ".join("-inf" if v == -math.inf else repr(float(v)) for v in values)
        lines.append(f"inline const std::vector<double> {name} = {{{text}}};")
    lines += ["", "}  // namespace golden::attention", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {len(VALUES)} arrays to {path}")


if __name__ == "__main__":
    main()
