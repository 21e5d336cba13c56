#!/usr/bin/python3
"""The model-level check of tests/test_gpt.cpp (llm.c's test_gpt2 idea): a tiny GPT built
here in PyTorch, module by module, exactly as kiln's nn::GPT (nn/gpt.h), and a dump of
what kiln must reproduce.

    /usr/bin/python3 tests/golden/gen_tiny_gpt.py

writes tiny_gpt.safetensors.bin next to this script: a safetensors file (the .bin suffix
only keeps it out of the .gitignore's *.safetensors) holding

    model.<name>            f32   the weights, <name> being kiln's state_dict key
    data.tokens             i64   (B, T) inputs
    data.targets            i64   (B, T) the next tokens
    expected.logits         f64   (B, T, vocab)
    expected.loss           f64   0-d, mean cross-entropy
    expected.grad.<name>    f64   d loss / d parameter
    expected.adamw_losses   f64   (STEPS + 1): the loss before the first AdamW step and
                                  after each of the STEPS steps

and the configuration in its metadata. The reference runs in f64 on the f32 weights (an
exact upcast), so the expected values are the model's true values, not PyTorch's f32
rounding: kiln in f64 must match them to ~1e-12, kiln in f32 to its own rounding.

Layout notes (what makes the names line up with kiln without any mapping):
  - attn.qkv is one Linear(d, 3d) whose output splits as [q | k | v], each d wide and
    head-major inside (head 0's head_dim values, then head 1's, ...): kiln's
    MultiHeadAttention views qkv's output as (B, T, 3, H, head_dim), as PyTorch's
    in_proj_weight and nanoGPT's c_attn;
  - the output head has no weight: logits = ln_f(h) @ wte.weight^T;
  - AdamW decays matrices (dim >= 2) and not biases or norm gains, as
    kiln::nn::optim::weight_decay_groups splits them.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from gen_safetensors import read_safetensors, write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tiny_gpt.safetensors.bin")

VOCAB, BLOCK_SIZE, N_LAYER, N_HEAD, D_MODEL = 64, 16, 2, 4, 32
BATCH, T = 4, 16
STEPS, LR, BETAS, WEIGHT_DECAY, EPS = 10, 1e-3, (0.9, 0.95), 0.1, 1e-8
SEED = 1234


# ---- the model, written out -----------------------------------------------------------------


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class CausalSelfAttention(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        B, T, d = x.shape
        hd = d // self.n_head
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (t.view(B, T, self.n_head, hd).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        scores = q @ k.transpose(-2, -1) / math.sqrt(hd)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        probs = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        y = (probs @ v).transpose(1, 2).reshape(B, T, d)  # heads side by side again
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, n_head)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(gelu_tanh(self.fc1(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, D_MODEL)
        self.wpe = nn.Embedding(BLOCK_SIZE, D_MODEL)
        self.blocks = nn.Sequential(*[Block(D_MODEL, N_HEAD) for _ in range(N_LAYER)])
        self.ln_f = nn.LayerNorm(D_MODEL)

    def forward(self, idx):
        positions = torch.arange(idx.shape[1])
        h = self.blocks(self.wte(idx) + self.wpe(positions))
        return self.ln_f(h) @ self.wte.weight.t()


def loss_of(model, tokens, targets):
    logits = model(tokens)
    return logits, F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


# ---- weights and data ---------------------------------------------------------------------


def init_weights(model, g):
    """Larger than GPT-2's N(0, 0.02), so that every non-linearity works away from its
    linear regime and the softmaxes are far from uniform: a stronger test. Norm gains
    and biases are random too, so a swapped or ignored one shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("wte", "wpe")):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif name.split(".")[-2].startswith("ln"):
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("weight"):  # Linear: unit-variance outputs
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def adamw_losses(model, tokens, targets):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR, betas=BETAS, eps=EPS, foreach=False)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        _, loss = loss_of(model, tokens, targets)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(loss_of(model, tokens, targets)[1].item())
    return torch.tensor(losses, dtype=torch.float64)


def reference_model(weights):
    """A fresh f64 model holding exactly the f32 `weights`."""
    model = GPT().double()
    model.load_state_dict({name: w.double() for name, w in weights.items()})
    return model


def generate():
    g = torch.Generator().manual_seed(SEED)
    model = GPT()
    init_weights(model, g)
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}  # f32
    sequences = torch.randint(0, VOCAB, (BATCH, T + 1), generator=g)
    tokens, targets = sequences[:, :-1].contiguous(), sequences[:, 1:].contiguous()

    model = reference_model(weights)
    logits, loss = loss_of(model, tokens, targets)
    loss.backward()

    tensors = {f"model.{name}": w for name, w in weights.items()}
    tensors["data.tokens"] = tokens
    tensors["data.targets"] = targets
    tensors["expected.logits"] = logits.detach()
    tensors["expected.loss"] = loss.detach()
    for name, p in model.named_parameters():
        tensors[f"expected.grad.{name}"] = p.grad
    tensors["expected.adamw_losses"] = adamw_losses(reference_model(weights), tokens, targets)

    metadata = {
        "producer": "tests/golden/gen_tiny_gpt.py",
        "torch": torch.__version__,
        "vocab_size": str(VOCAB), "block_size": str(BLOCK_SIZE), "n_layer": str(N_LAYER),
        "n_head": str(N_HEAD), "d_model": str(D_MODEL),
        "lr": repr(LR), "beta1": repr(BETAS[0]), "beta2": repr(BETAS[1]), "eps": repr(EPS),
        "weight_decay": repr(WEIGHT_DECAY),
    }
    blob = write_safetensors(tensors, metadata)
    back, _ = read_safetensors(blob)
    assert all(torch.equal(back[n], t.contiguous()) for n, t in tensors.items())
    with open(OUT, "wb") as f:
        f.write(blob)
    print(f"wrote {OUT} ({len(blob)} bytes); loss {loss.item():.6f}, "
          f"after {STEPS} AdamW steps {tensors['expected.adamw_losses'][-1].item():.6f}")


if __name__ == "__main__":
    if len(sys.argv) != 1:
        sys.exit(__doc__)
    generate()
