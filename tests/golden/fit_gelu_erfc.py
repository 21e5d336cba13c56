#!/usr/bin/python3
"""The polynomial behind the f32 exact-GELU kernel (ops/cpu/activation.cpp).

The kernel needs Phi(-|x|) = erfc(|x| / sqrt 2) / 2, the normal distribution's lower
tail, with full relative precision (GELU's negative side is x times it). It writes

    erfc(|x| / sqrt 2) = e^(-x^2 / 2) * t * Q(t),   t = 1 / (1 + |x| / 2),

where e^(-x^2/2) is the Gaussian the backward needs anyway and Q is a polynomial. The
substitution maps |x| in [0, XMAX] to t in [1/(1 + XMAX/2), 1], on which the scaled
erfc is smooth and slowly varying, so a degree-10 polynomial fits it to ~2e-8 relative
(below f32's half ulp, 6e-8). XMAX is where the kernel saturates: beyond it e^(-x^2/2)
underflows in f32 and the tail is 0.

The fit is least squares weighted by 1/|Q| (relative error), with weights pushed
towards the worst points for a few rounds (iteratively reweighted, near minimax). It
needs only numpy and mpmath (the reference values, with 40 digits). Prints the C++
array to paste into activation.cpp:
    /usr/bin/python3 tests/golden/fit_gelu_erfc.py
"""
import mpmath as mp
import numpy as np

mp.mp.dps = 40
XMAX = 14.0  # the kernel's saturation bound for f32 (kSaturation<float>)
SCALE = 0.5  # t = 1 / (1 + SCALE |x|): a power of two, so SCALE |x| is exact in f32
DEGREE = 10
NODES = 3000
ROUNDS = 40


def scaled_erfc_over_t(t):
    x = (1 / mp.mpf(t) - 1) / SCALE
    return mp.erfc(x / mp.sqrt(2)) * mp.exp(x * x / 2) / mp.mpf(t)


def fit():
    t_min = 1 / (1 + SCALE * XMAX)
    k = np.arange(NODES)
    t = (t_min + 1) / 2 + (1 - t_min) / 2 * np.cos(np.pi * (k + 0.5) / NODES)  # Chebyshev nodes
    q = np.array([float(scaled_erfc_over_t(v)) for v in t])
    basis = np.vander(t, DEGREE + 1, increasing=True)
    weight = 1 / np.abs(q)
    for round_ in range(ROUNDS):
        coef, *_ = np.linalg.lstsq(basis * weight[:, None], q * weight, rcond=None)
        rel = np.abs(basis @ coef - q) / np.abs(q)
        if round_ + 1 < ROUNDS:
            weight *= (rel / rel.max()) ** 0.3
    return coef, rel.max()


def main():
    coef, max_rel = fit()
    print(f"// Q(t), lowest power first; max relative error of the fit {max_rel:.1e} on |x| <= {XMAX:g}")
    print(f"constexpr float kErfcPoly[{DEGREE + 1}] = {{")
    print("    " + ", ".join(f"{c:.9e}f" for c in coef) + "};")


if __name__ == "__main__":
    main()
