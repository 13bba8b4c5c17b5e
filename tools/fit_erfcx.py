"""Fit the polynomial of actlab's float erfc (``erfc_tail`` in src/actlab/torch/csrc/actlab_kernels.h).

erfc(t) = e^(-t^2) erfcx(t) for t >= 0, and erfcx(t) = P(s) / (t + K2) with s = (t - K) / (t + K):
the map s sends [0, inf) to [-1, 1) (the idea of Shepherd & Laframboise, "Chebyshev approximation of
(1 + 2x) exp(x^2) erfc x in 0 <= x < inf", Math. Comp. 36 (1981)), and K2 = sqrt(pi) / 2 makes
(t + K2) erfcx(t) flat at t = 0 (slope 0) and bounded (sqrt(pi)/2 .. 1/sqrt(pi)), so Horner's rule
on P loses almost nothing. Weighted least squares (Lawson's iteration towards the minimax relative
error) on Chebyshev nodes in s over t in [0, 10.1] (erfc is below float32's subnormals beyond), with
the coefficients rounded to float32 one at a time (each refit with the earlier ones fixed).
Reference: scipy.special.erfcx (double, ~1e-15 relative). Run: python tools/fit_erfcx.py
"""

import numpy as np
from scipy.special import erfcx

K, K2, DEG, T = 2.0, float(np.sqrt(np.pi) / 2), 10, 10.1


def _fit(fixed: list[float], n: int = 3000, iters: int = 40) -> np.ndarray:
    smax = (T - K) / (T + K)
    s = (smax - 1) / 2 + (smax + 1) / 2 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    t = K * (1 + s) / (1 - s)
    f = erfcx(t) * (t + K2)
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
    s = np.linspace(-1, (T - K) / (T + K), 200001)
    t = K * (1 + s) / (1 - s)
    f = erfcx(t) * (t + K2)
    print("max relative error", np.max(np.abs(np.polyval(c[::-1], s) - f) / f))
    print(", ".join(f"{v!r}" for v in (float(np.float32(x)) for x in c)))
    print(", ".join(np.format_float_scientific(np.float32(x), unique=True) + "f" for x in c))
