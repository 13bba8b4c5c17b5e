"""Fit the polynomial of actlab's float exact-GELU gate (``gelu_phi`` in src/actlab/torch/csrc/actlab_kernels.h).

Phi(-u) = e^(-u^2/2) erfcx(u / sqrt 2) / 2 for u = |x| >= 0, and erfcx(u / sqrt 2) / 2 = P(s) / (u + C2) with
s = (u - C) / (u + C): the map s sends [0, inf) to [-1, 1) (the idea of Shepherd & Laframboise, "Chebyshev
approximation of (1 + 2x) exp(x^2) erfc x in 0 <= x < inf", Math. Comp. 36 (1981)), written in u rather
than t = u / sqrt 2, so that the kernel needs neither t nor the rounding error of -x / sqrt 2.
C2 = sqrt(pi / 2) (as float32) makes (u + C2) Phi(-u) e^(u^2/2) flat at 0; C = 2.75 (about 2 sqrt 2): P(0) is
its first coefficient alone, so C is picked where that rounds to float32 well (1.9e-8 to 5.5e-8 for other C
near 2.8, 7.8e-9 here). Weighted least squares (Lawson's iteration towards the minimax relative error) on
Chebyshev nodes in s, over u in [0, 14.3] (e^(-u^2/2) is below float32's subnormals beyond), coefficients
rounded to float32 one at a time.
Reference: scipy.special.erfcx (double, ~1e-15 relative). Run: python tools/fit_gelu_phi.py
"""

import numpy as np
from scipy.special import erfcx

C = 2.75  # near 2 sqrt 2; this one rounds P's coefficients best (7.8e-9)
C2 = float(np.float32(np.sqrt(np.pi / 2)))
DEG, U = 10, 14.3


def _target(u: np.ndarray) -> np.ndarray:
    return erfcx(u / np.sqrt(2)) / 2 * (u + C2)


def _fit(fixed: list[float], n: int = 3000, iters: int = 40) -> np.ndarray:
    smax = (U - C) / (U + C)
    s = (smax - 1) / 2 + (smax + 1) / 2 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    u = C * (1 + s) / (1 - s)
    f = _target(u)
    a = np.vander(s, DEG + 1, increasing=True)
    rhs = f - a[:, : len(fixed)] @ np.array(fixed, dtype=float)
    b = a[:, len(fixed) :]
    w = np.full(n, 1.0 / n)
    for _ in range(iters):
        sw = np.sqrt(w) / f
        c = np.linalg.lstsq(b * sw[:, None], rhs * sw, rcond=None)[0]
        w = w * np.abs(b @ c - rhs) / f
        w /= w.sum()
    return c


def coefficients() -> list[float]:
    fixed: list[float] = []
    for _ in range(DEG + 1):
        fixed.append(float(np.float32(_fit(fixed)[0])))
    return fixed


if __name__ == "__main__":
    c = coefficients()
    s = np.linspace(-1, (U - C) / (U + C), 200001)
    u = C * (1 + s) / (1 - s)
    f = _target(u)
    print("C, C2", np.float32(C), np.float32(C2))
    print("max relative error", np.max(np.abs(np.polyval(c[::-1], s) - f) / f))
    print(", ".join(np.format_float_scientific(np.float32(x), unique=True) + "f" for x in c))
