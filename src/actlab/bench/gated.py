"""``actlab bench gated``: a LLaMA-style MLP training step, composed vs :class:`actlab.nn.GatedMLP`.

The composed form is ``down_proj(act(gate_proj(x)) * up_proj(x))`` with three ``torch.nn.Linear``
and PyTorch's own activation (``F.silu`` for silu); the fused forms are ``GatedMLP`` with the same
weights in each ``recompute`` mode (and ``fewbit=3`` where :mod:`actlab.torch.fewbit` is installed).
One step is forward + backward of ``(y * r).sum()`` (r fixed), x requiring grad, the gradients set
to None before it (as ``zero_grad()`` does), one thread. Per form:

- saved: the bytes autograd keeps for backward (``saved_tensors_hooks``), each storage once,
  parameters not counted (they are kept anyway);
- peak: the peak of allocated minus freed bytes during the step (on CPU the running sum of
  ``torch.profiler`` memory events, as ``actlab bench activations`` measures its peak), the
  weight gradients and the input's gradient included;
- time: the median step time over repeats, the forms measured round-robin in the same run, as a
  ratio to the composed form.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["GatedCost", "measure", "add_arguments", "run"]


@dataclass(frozen=True)
class GatedCost:
    form: str
    saved_bytes: float
    peak_bytes: float
    step_ms: float


def _saved_bytes(step_forward: Any, exclude: set[int]) -> float:
    import torch

    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key not in exclude:
            seen[key] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = step_forward()
    del out
    return float(sum(seen.values()))


def measure(
    *,
    activation: str = "silu",
    d_model: int = 512,
    hidden: int = 1376,
    batch: int = 8,
    tokens: int = 128,
    dtype: str = "float32",
    repeats: int = 15,
    fewbit: int = 3,
    progress: Any = None,
) -> tuple[list[GatedCost], list[str]]:
    """The costs of one training step per form (the composed form first) and notes (forms skipped)."""
    import torch

    from actlab.bench.activations import _cpu_peak_bytes
    from actlab.nn import GatedMLP

    torch_dtype = getattr(torch, dtype)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        fused = {
            f"GatedMLP recompute={mode!r}": GatedMLP(d_model, hidden, activation=activation, recompute=mode)
            for mode in ("elementwise", "projections")
        }
        notes = []
        try:
            fused[f"GatedMLP fewbit={fewbit}"] = GatedMLP(d_model, hidden, activation=activation, fewbit=fewbit)
        except (ImportError, ValueError) as err:  # no tables installed, or none for this activation
            notes.append(f"fewbit={fewbit} skipped: {err}")
        first = next(iter(fused.values()))
        act = first.act
        native = act.spec.torch_native
        if native is None:
            raise SystemExit(f"actlab bench gated: {act.spec.name} has no PyTorch op to compose with")

        class Composed(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.gate_proj = torch.nn.Linear(d_model, hidden, bias=False)
                self.up_proj = torch.nn.Linear(d_model, hidden, bias=False)
                self.down_proj = torch.nn.Linear(hidden, d_model, bias=False)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.down_proj(native(self.gate_proj(x), torch, **act.params) * self.up_proj(x))

        composed = Composed()
        composed.load_state_dict(first.state_dict())
        forms = {f"composed down({act.spec.name}(gate(x)) * up(x))": composed}
        for m in fused.values():
            m.load_state_dict(first.state_dict())
        forms.update(fused)
        for m in forms.values():
            m.to(torch_dtype)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(batch, tokens, d_model, generator=g).to(torch_dtype).requires_grad_(True)
        r = torch.randn(batch, tokens, d_model, generator=g).to(torch_dtype)

        def step(m: torch.nn.Module) -> None:
            x.grad = None
            for p in m.parameters():
                p.grad = None
            (m(x) * r).sum().backward()

        saved, peak, times = {}, {}, {name: [] for name in forms}
        for name, m in forms.items():
            step(m)  # warm-up
            params = {p.untyped_storage().data_ptr() for p in m.parameters()}
            saved[name] = _saved_bytes(lambda m=m: m(x), params)
            x.grad = None
            for p in m.parameters():
                p.grad = None
            _, peak[name] = _cpu_peak_bytes(lambda m=m: (m(x) * r).sum().backward())
        for k in range(repeats):
            for name, m in forms.items():  # round-robin: drift in the machine's speed hits every form
                start = time.perf_counter()
                step(m)
                times[name].append(time.perf_counter() - start)
            if progress is not None:
                progress(f"{k + 1}/{repeats} rounds")
    finally:
        torch.set_num_threads(previous)
    costs = [GatedCost(n, saved[n], peak[n], 1e3 * statistics.median(times[n])) for n in forms]
    return costs, notes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the benchmark's arguments; imports nothing heavy."""
    parser.add_argument("--activation", default="silu", help="gate activation: silu (SwiGLU), gelu, relu, sigmoid, ...")
    parser.add_argument("--d-model", type=int, default=512, help="model width (default 512)")
    parser.add_argument("--hidden", type=int, default=1376, help="hidden width (default 1376)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per sequence (default 128)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="dtype")
    parser.add_argument("--fewbit", type=int, default=3, help="bits of the few-bit form (default 3)")
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per form; the median is shown")
    parser.add_argument("--format", choices=("table", "json", "md", "csv"), default="table", help="output format")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from actlab.render import render as _render

    for key in ("d_model", "hidden", "batch", "tokens", "repeats"):
        if getattr(args, key) < 1:
            raise SystemExit(f"actlab bench gated: --{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    if not 1 <= args.fewbit <= 4:
        raise SystemExit(f"actlab bench gated: --fewbit must be 1..4, got {args.fewbit}")

    def say(text: str) -> None:
        print(f"actlab bench gated: {text}", file=sys.stderr, flush=True)

    try:
        costs, notes = measure(
            activation=args.activation,
            d_model=args.d_model,
            hidden=args.hidden,
            batch=args.batch,
            tokens=args.tokens,
            dtype=args.dtype,
            repeats=args.repeats,
            fewbit=args.fewbit,
            progress=None if args.quiet else say,
        )
    except ValueError as err:
        raise SystemExit(f"actlab bench gated: {err}") from None
    base = costs[0]
    mib = 1 << 20
    json_out = args.format == "json"
    rows = [
        {
            "form": c.form,
            "saved_mib": round(c.saved_bytes / mib, 2),
            "peak_mib": round(c.peak_bytes / mib, 2),
            "peak_vs": c.peak_bytes / base.peak_bytes - 1
            if json_out
            else f"{100 * (c.peak_bytes / base.peak_bytes - 1):+.1f} %",
            "step_ms": round(c.step_ms, 2),
            "time_x": round(c.step_ms / base.step_ms, 3),
        }
        for c in costs
    ]
    headers = {
        "saved_mib": "saved, MiB",
        "peak_mib": "peak, MiB",
        "peak_vs": "peak vs composed",
        "step_ms": "step, ms",
        "time_x": "time ×composed",
    }
    title = (
        f"LLaMA-style MLP training step, {args.batch}x{args.tokens} tokens, {args.d_model} -> {args.hidden} -> "
        f"{args.d_model}, {args.activation}, {args.dtype}, 1 thread, median of {args.repeats}"
    )
    columns = ("form", "saved_mib", "peak_mib", "peak_vs", "step_ms", "time_x")
    print(_render(rows, columns, args.format, title, headers))
    for note in notes:
        print(note)
    return 0
