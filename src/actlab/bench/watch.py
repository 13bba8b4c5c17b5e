"""``actlab bench watch``: what :func:`actlab.watch` costs on a training step.

A training step (zero_grad, forward, cross-entropy, backward, SGD step) of an MLP and of a small
CNN, timed with and without ``watch`` in the same run, one thread, alternating the two so that
drift in the machine's speed hits both; the figure is the median over repeats and the overhead
is watched / plain - 1 (target: at most 30 %). Steady state: the first forward pass under a new
watch, which also looks for functional activation calls (``F.relu``), is not timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["WatchCost", "measure", "add_arguments", "run"]


@dataclass(frozen=True)
class WatchCost:
    model: str
    description: str
    sites: int
    plain_ms: float  # median time of one training step without watch
    watched_ms: float  # ... inside `with actlab.watch(model)`

    @property
    def overhead(self) -> float:
        """watched / plain - 1 (0.2 = 20 % slower)."""
        return self.watched_ms / self.plain_ms - 1.0


def _models() -> dict[str, tuple[str, Any, Any]]:
    """name -> (description, model factory, batch factory)."""
    import torch
    from torch import nn

    def mlp() -> nn.Module:
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Linear(784 if i == 0 else 256, 256), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(256, 10))

    def cnn() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 8 * 8, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def batch(shape: tuple[int, ...]) -> Any:
        g = torch.Generator().manual_seed(0)
        return lambda: (torch.randn(*shape, generator=g), torch.randint(0, 10, (shape[0],), generator=g))

    return {
        "mlp": ("MLP 784-256x4-10, ReLU, batch 128", mlp, batch((128, 784))),
        "cnn": ("CNN conv16-conv32-fc64, ReLU, 3x32x32, batch 64", cnn, batch((64, 3, 32, 32))),
    }


def measure(
    names: tuple[str, ...] = ("mlp", "cnn"), *, steps: int = 20, repeats: int = 7, progress: Any = None
) -> list[WatchCost]:
    """Median step time with and without ``watch`` for each model (sets one torch thread);
    ``progress(text)`` is called after each timed pair of blocks."""
    import torch
    import torch.nn.functional as F

    from actlab.diagnose import watch

    torch.set_num_threads(1)
    models = _models()
    out = []
    for name in names:
        description, make, batch = models[name]
        torch.manual_seed(0)
        model = make()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        data = [batch() for _ in range(steps)]

        def step(x: Any, y: Any) -> None:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

        def block() -> float:
            step(*data[0])  # untimed: under a new watch the first forward also looks for F.relu calls
            start = time.perf_counter()
            for x, y in data:
                step(x, y)
            return (time.perf_counter() - start) / steps

        block()  # warm-up: allocator, first-call paths
        with watch(model):
            block()
        plain, watched = [], []
        sites = 0
        for _ in range(repeats):
            plain.append(block())
            with watch(model) as w:
                watched.append(block())
            sites = len(w.report().sites)
            if progress is not None:
                progress(f"{name}: {len(plain)}/{repeats} timed pairs")
        out.append(
            WatchCost(name, description, sites, 1e3 * statistics.median(plain), 1e3 * statistics.median(watched))
        )
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the benchmark's arguments; imports nothing heavy."""
    parser.add_argument("--models", nargs="+", choices=("mlp", "cnn"), default=["mlp", "cnn"], help="models to time")
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed block (default 20)")
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks per variant; the median is shown")
    parser.add_argument("--format", choices=("table", "json", "md", "csv"), default="table", help="output format")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from actlab.render import render as _render

    if args.steps < 1 or args.repeats < 1:
        raise SystemExit(f"actlab bench watch: --steps and --repeats must be >= 1, got {args.steps}, {args.repeats}")

    def say(text: str) -> None:  # progress on stderr, whatever the format: stdout holds only the result
        print(f"actlab bench watch: {text}", file=sys.stderr, flush=True)

    costs = measure(tuple(args.models), steps=args.steps, repeats=args.repeats, progress=None if args.quiet else say)
    rows = [
        {
            "model": c.description,
            "sites": c.sites,
            "plain_ms": round(c.plain_ms, 3),
            "watched_ms": round(c.watched_ms, 3),
            "overhead": f"{100 * c.overhead:+.1f} %" if args.format != "json" else c.overhead,
        }
        for c in costs
    ]
    headers = {"plain_ms": "step, ms", "watched_ms": "step with watch, ms", "overhead": "overhead"}
    title = f"actlab.watch overhead on a training step (1 thread, median of {args.repeats} x {args.steps} steps)"
    print(_render(rows, ("model", "sites", "plain_ms", "watched_ms", "overhead"), args.format, title, headers))
    return 0
