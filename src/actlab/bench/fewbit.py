"""``actlab bench fewbit``: how close the few-bit backward's gradient is to the exact one.

For each smooth elementwise activation and each code width, the optimal table of
:mod:`actlab.torch.fewbit` replaces f'(x) by a piecewise-constant q(x). Two figures per cell:
the cosine similarity the fit expects, E[f' q] / sqrt(E[f'^2] E[q^2]) for x ~ N(0, 1), and the
cosine measured on seeded samples: x ~ N(0, 1) and a random cotangent g ~ N(0, 1), between the
input gradients g f'(x) and g q(x) (float64, the spec's own NumPy derivative). The code costs
bits / 8 bytes per element. Issue #12's target: cosine >= 0.99 at 3 bits for gelu, silu and mish.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from typing import Any

import numpy as np

__all__ = ["measure", "add_arguments", "run"]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b))))


def measure(
    act: Any, bits: tuple[int, ...] = (1, 2, 3, 4), *, samples: int = 1_000_000, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per bits for ``act`` (any identifier ``actlab.get`` accepts): expected and measured cosine,
    weighted MSE, bytes per element. Raises ``FewBitError`` for an activation without a table."""
    from actlab.ops import numpy_ops
    from actlab.registry import get
    from actlab.torch.fewbit import fewbit_tables

    act = get(act)
    tables = fewbit_tables(act.spec, act.params, bits)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(samples)
    g = rng.standard_normal(samples)
    exact = g * np.asarray(numpy_ops.apply_derivative(act.spec, x, act.params), dtype=np.float64)
    return [
        {
            "activation": repr(act),
            "bits": b,
            "bytes_per_element": b / 8,
            "cosine_expected": t.cosine,
            "cosine_measured": _cosine(exact, g * t(x)),
            "weighted_mse": t.weighted_mse,
        }
        for b, t in tables.items()
    ]


def _bits(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v not in (1, 2, 3, 4) for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct code widths from 1..4 separated by commas, got {text!r}")
    return tuple(sorted(values))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the benchmark's arguments; imports nothing heavy."""
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="activations (default: every smooth elementwise activation)"
    )
    parser.add_argument("--bits", type=_bits, default=(1, 2, 3, 4), help="code widths, e.g. 1,2,3,4 (the default)")
    parser.add_argument("--samples", type=int, default=1_000_000, help="N(0, 1) samples of the measured cosine")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    parser.add_argument("--format", choices=("table", "json", "md"), default="table", help="output format")


def run(args: argparse.Namespace) -> int:
    from actlab.registry import all_specs
    from actlab.render import render
    from actlab.torch.fewbit import FewBitError

    if args.samples < 2:
        raise SystemExit(f"actlab bench fewbit: --samples must be >= 2, got {args.samples}")
    named = bool(args.names)
    targets: list[Any] = list(args.names) if named else all_specs("elementwise")
    rows: list[dict[str, Any]] = []
    skipped = []
    for target in targets:
        try:
            rows += measure(target, args.bits, samples=args.samples, seed=args.seed)
        except FewBitError as err:
            if named:  # asked for by name: say why it has no table
                print(f"actlab: {err}", file=sys.stderr)
                return 2
            skipped.append(target.name)
    if args.format == "json":
        print(render(rows, list(rows[0]) if rows else [], "json"))
        return 0
    wide: dict[str, dict[str, Any]] = {}
    for r in rows:
        cell = f"{r['cosine_expected']:.5f} ({r['cosine_measured']:.5f})"
        wide.setdefault(r["activation"], {"activation": r["activation"]})[f"b{r['bits']}"] = cell
    columns = ["activation", *(f"b{b}" for b in args.bits)]
    headers = {f"b{b}": f"{b} bit{'s' if b > 1 else ''}, {b / 8:g} B/elem" for b in args.bits}
    title = f"few-bit backward, gradient cosine similarity: fit (measured, {args.samples:,} samples, seed {args.seed})"
    print(render(list(wide.values()), columns, args.format, title, headers))
    if skipped:
        note = f"piecewise-linear, exact with memory='mask' instead: {', '.join(skipped)}"
        print("\n" + (note if args.format == "md" else textwrap.fill(note, 100)))
    return 0
