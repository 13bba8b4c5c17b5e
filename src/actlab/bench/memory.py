"""``actlab bench memory``: what each memory mode (:mod:`actlab.torch.memory`) keeps and costs.

Per activation and mode (``exact``; ``mask`` where the function is piecewise-linear; ``fewbit`` with
``--bits`` elsewhere, where :mod:`actlab.torch.fewbit` provides the table): the bytes autograd saves
for backward per input element (every saved tensor, counted by ``saved_tensors_hooks``), the peak
memory the forward allocates (its output and what it saves) per element, and the forward+backward
time as a multiple of ``x.clone()`` measured in the same run (one thread, medians). Then a
Linear(d, 4d) -> act -> Linear(4d, d) block: the bytes it saves for backward per mode.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["MemoryRow", "measure", "add_arguments", "run"]

DEFAULT_NAMES = ("relu", "relu6", "leaky_relu", "hard_tanh", "gelu", "silu", "mish")


@dataclass(frozen=True)
class MemoryRow:
    activation: str
    mode: str
    saved_per_element: float  # bytes autograd keeps for backward, per input element
    peak_per_element: float  # peak bytes the forward allocates, per input element
    time_x_clone: float  # forward + backward time / clone time
    block_saved_mib: float  # Linear -> act -> Linear: bytes saved for backward, MiB


def _modes(spec: Any, bits: int) -> list[tuple[str, dict[str, Any]]]:
    from actlab.torch import memory

    modes = [("exact", {})]
    if memory.mask_eligible(spec):
        modes.append(("mask", {"memory": "mask"}))
    elif spec.kind == "elementwise" and spec.train_forward is None:
        try:
            memory.resolve(spec, spec.resolve_params(), "fewbit", bits)
            modes.append((f"fewbit({bits})", {"memory": "fewbit", "bits": bits}))
        except (ImportError, ValueError):  # no few-bit table here (actlab.torch.fewbit missing)
            pass
    return modes


def _median_time(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(
    names: tuple[str, ...] = DEFAULT_NAMES,
    *,
    size: int = 1 << 20,
    bits: int = 3,
    width: int = 256,
    tokens: int = 512,
    repeats: int = 7,
    progress: Any = None,
) -> list[MemoryRow]:
    """One row per activation and mode (sets one torch thread)."""
    import torch

    from actlab.bench.activations import _cpu_peak_bytes, saved_bytes_per_element
    from actlab.nn import Activation
    from actlab.registry import get_spec

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(size, generator=gen)
    g = torch.randn(size, generator=gen)
    clone = _median_time(lambda: x.clone(), repeats)
    block_in = torch.randn(tokens, width, generator=gen)
    out = []
    for name in names:
        spec = get_spec(name)
        for mode, kw in _modes(spec, bits):
            act = Activation(name, **kw)
            saved = saved_bytes_per_element(act, x)
            xr = x.detach().clone().requires_grad_()
            _, peak = _cpu_peak_bytes(lambda: act(xr))

            def step() -> None:
                xr.grad = None
                act(xr).backward(g)

            t = _median_time(step, repeats)
            torch.manual_seed(0)
            block = torch.nn.Sequential(torch.nn.Linear(width, 4 * width), act, torch.nn.Linear(4 * width, width))
            block_saved = saved_bytes_per_element(block, block_in) * block_in.numel() / 2**20
            out.append(MemoryRow(name, mode, saved, peak / size, t / clone, block_saved))
            if progress is not None:
                progress(f"{name} {mode}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the benchmark's arguments; imports nothing heavy."""
    parser.add_argument("names", nargs="*", help=f"activations (default: {' '.join(DEFAULT_NAMES)})")
    parser.add_argument("--size", type=float, default=float(1 << 20), help="float32 elements per tensor (default 2^20)")
    parser.add_argument("--bits", type=int, default=3, help="code width of memory='fewbit' (1..4, default 3)")
    parser.add_argument("--width", type=int, default=256, help="block: Linear(d, 4d) -> act -> Linear(4d, d), d")
    parser.add_argument("--tokens", type=int, default=512, help="block: rows of the block's input (default 512)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement; the median is shown")
    parser.add_argument("--format", choices=("table", "json", "md", "csv"), default="table", help="output format")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def run(args: argparse.Namespace) -> int:
    from actlab.registry import get_spec
    from actlab.render import render as _render

    size = int(args.size)
    if size < 8 or args.repeats < 1 or args.width < 1 or args.tokens < 1:
        raise SystemExit("actlab bench memory: --size must be >= 8, --repeats, --width and --tokens >= 1")
    if args.bits not in (1, 2, 3, 4):
        raise SystemExit(f"actlab bench memory: --bits must be 1, 2, 3 or 4; got {args.bits}")
    names = tuple(args.names) or DEFAULT_NAMES
    for name in names:
        try:
            get_spec(name)
        except KeyError as err:
            raise SystemExit(f"actlab bench memory: {err.args[0] if err.args else err}") from None

    def say(text: str) -> None:
        print(f"actlab bench memory: {text}", file=sys.stderr, flush=True)

    rows = measure(
        names,
        size=size,
        bits=args.bits,
        width=args.width,
        tokens=args.tokens,
        repeats=args.repeats,
        progress=None if args.quiet else say,
    )
    js = args.format == "json"
    table = [
        {
            "activation": r.activation,
            "mode": r.mode,
            "saved": r.saved_per_element if js else f"{r.saved_per_element:.3g}",
            "peak": r.peak_per_element if js else _number(r.peak_per_element),
            "time": r.time_x_clone if js else f"{r.time_x_clone:.2f}",
            "block": r.block_saved_mib if js else f"{r.block_saved_mib:.2f}",
        }
        for r in rows
    ]
    headers = {
        "saved": "saved B/elem",
        "peak": "fwd peak B/elem",
        "time": "fwd+bwd ×clone",
        "block": "block saved MiB",
    }
    title = (
        f"Memory modes: float32, {size} elements, 1 thread, median of {args.repeats}; block "
        f"Linear({args.width},{4 * args.width})→act→Linear, {args.tokens} rows"
    )
    print(_render(table, ("activation", "mode", "saved", "peak", "time", "block"), args.format, title, headers))
    return 0
