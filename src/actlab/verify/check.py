"""``python -m actlab.verify.check NAME...``: a spec author's quick accuracy look.

Prints actlab (torch autograd and NumPy) and PyTorch-native errors in ulps, float32 and
float64, and the values at the special inputs (±0, ±inf, NaN, ±1e4, subnormals).
"""

from __future__ import annotations

import sys

import numpy as np


def main(argv: list[str]) -> int:
    import torch

    from actlab.registry import get_spec
    from actlab.torch.functional import apply
    from actlab.verify.accuracy import measure

    size = 20000
    for name in argv:
        spec = get_spec(name)
        params = spec.defaults
        for dtype in ("float32", "float64"):
            for backend in ("torch", "numpy"):
                row = measure(spec, dtype, size=size, backend=backend, with_torch=backend == "torch")
                print(
                    f"{name:>16} {dtype} {backend:>5}: fwd {row.forward_ulps:8.2f} ulp (x={row.worst_forward_x!r}) "
                    f"der {row.derivative_ulps:8.2f} (x={row.worst_derivative_x!r}) nonfinite={row.nonfinite} "
                    f"cond={row.conditioned} {'PASS' if row.passed else 'FAIL'}"
                    + (
                        f" | torch fwd {row.torch_forward_ulps:.3g} der {row.torch_derivative_ulps:.3g} "
                        f"nonfinite={row.torch_nonfinite}"
                        if row.torch_name
                        else ""
                    )
                )
        if spec.kind == "elementwise":
            special = torch.tensor(
                [0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1e4, -1e4, 1e-310, -1e-310],
                dtype=torch.float64,
                requires_grad=True,
            )
            y = apply(spec, special, params)
            (g,) = torch.autograd.grad(y.sum(), special)
            print(f"{'':>16} special x: {special.detach().numpy()}")
            print(f"{'':>16}        f: {y.detach().numpy()}")
            print(f"{'':>16}       f': {g.numpy()}")
            print(f"{'':>16} numpy  f: {spec(special.detach().numpy())}")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=6, linewidth=200)
    raise SystemExit(main(sys.argv[1:]))
