"""``actlab bench lstm``: actlab's LSTM/GRU variants against torch.nn.LSTM/GRU, forward + backward.

Every model runs the same input (time-major, float32, CPU) in interleaved rounds, so slow drift of a
shared machine affects all of them alike; a round times one forward pass and one backward pass of
``output.sum()``. Figures are medians over rounds, with the thread count fixed (one by default).
torch's modules are the references measured in the same run: LSTM variants are compared with
torch.nn.LSTM, GRU variants with torch.nn.GRU, and every variant also with actlab's vanilla model
of its kind.

Example::

    actlab bench lstm                      # seq 100, batch 32, input 128, hidden 128, one thread
    actlab bench lstm --repeats 31 --format md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

FORMATS = ("table", "json", "csv", "md")

# name -> (family, actlab keyword arguments or None for the torch reference)
VARIANTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "torch.nn.LSTM": ("lstm", None),
    "LSTM": ("lstm", {}),
    "LSTM peepholes": ("lstm", {"peepholes": True}),
    "LSTM cifg": ("lstm", {"cifg": True}),
    "LSTM cifg+peepholes": ("lstm", {"cifg": True, "peepholes": True}),
    "torch.nn.GRU": ("gru", None),
    "GRU": ("gru", {}),
    "GRU reset_after=False": ("gru", {"reset_after": False}),
}


@dataclass(frozen=True)
class BenchRow:
    """One model's medians in milliseconds, and its ratios to the references."""

    model: str
    forward_ms: float
    total_ms: float  # forward + backward
    vs_torch: float  # total_ms / the torch module of its family
    vs_vanilla: float  # total_ms / actlab's vanilla model of its family


@dataclass(frozen=True)
class RecurrentBench:
    """The measured rows and the setting they were measured in."""

    rows: list[BenchRow]
    setting: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"setting": dict(self.setting), "rows": [asdict(r) for r in self.rows]}


def measure(
    *,
    seq: int = 100,
    batch: int = 32,
    input_size: int = 128,
    hidden: int = 128,
    repeats: int = 15,
    warmup: int = 2,
    threads: int = 1,
    seed: int = 0,
    variants: list[str] | None = None,
    progress: Any = None,
) -> RecurrentBench:
    """Time every variant (forward, and forward + backward) and return medians and ratios.

    The torch reference of each family is always measured (ratios need it). ``progress(text)`` is
    called after each round.
    """
    import torch

    import actlab.nn as anl

    for name, value in (("seq", seq), ("batch", batch), ("input_size", input_size), ("hidden", hidden)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if repeats < 1 or warmup < 0 or threads < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, threads >= 1; got {repeats}, {warmup}, {threads}")
    chosen = list(VARIANTS) if variants is None else list(variants)
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    families = {VARIANTS[v][0] for v in chosen}
    references = {"lstm": ("torch.nn.LSTM", "LSTM"), "gru": ("torch.nn.GRU", "GRU")}
    for family in families:
        for ref in references[family]:
            if ref not in chosen:
                chosen.insert(0, ref)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(seq, batch, input_size, generator=gen, requires_grad=True)
        torch.manual_seed(seed)
        models = {}
        for name in chosen:
            family, kwargs = VARIANTS[name]
            if kwargs is None:
                models[name] = (torch.nn.LSTM if family == "lstm" else torch.nn.GRU)(input_size, hidden)
            else:
                models[name] = (anl.LSTM if family == "lstm" else anl.GRU)(input_size, hidden, **kwargs)
        fwd: dict[str, list[float]] = {n: [] for n in chosen}
        tot: dict[str, list[float]] = {n: [] for n in chosen}
        for round_ in range(warmup + repeats):
            for name, model in models.items():
                t0 = time.perf_counter()
                out = model(x)[0].sum()
                t1 = time.perf_counter()
                out.backward()
                t2 = time.perf_counter()
                model.zero_grad(set_to_none=True)
                x.grad = None
                if round_ >= warmup:
                    fwd[name].append(t1 - t0)
                    tot[name].append(t2 - t0)
            if progress is not None:
                kind = "warm-up" if round_ < warmup else "timed"
                progress(f"round {round_ + 1}/{warmup + repeats} ({kind}) of {len(models)} models")
    finally:
        torch.set_num_threads(previous_threads)

    med_f = {n: statistics.median(v) * 1e3 for n, v in fwd.items()}
    med_t = {n: statistics.median(v) * 1e3 for n, v in tot.items()}
    rows = []
    for name in chosen:
        ref, vanilla = references[VARIANTS[name][0]]
        rows.append(
            BenchRow(
                model=name,
                forward_ms=round(med_f[name], 3),
                total_ms=round(med_t[name], 3),
                vs_torch=round(med_t[name] / med_t[ref], 3),
                vs_vanilla=round(med_t[name] / med_t[vanilla], 3),
            )
        )
    setting = {
        "seq": seq,
        "batch": batch,
        "input_size": input_size,
        "hidden": hidden,
        "repeats": repeats,
        "threads": threads,
        "dtype": "float32",
        "device": "cpu",
        "torch": torch.__version__,
    }
    return RecurrentBench(rows=rows, setting=setting)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the benchmark's arguments; imports nothing heavy."""
    parser.add_argument("--seq", type=int, default=100, help="sequence length (default 100)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--input-size", type=int, default=128, help="input features (default 128)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size (default 128)")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds; medians are reported (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variant",
        action="append",
        choices=list(VARIANTS),
        metavar="NAME",
        help=f"measure only these (repeatable; the references are always measured); one of {list(VARIANTS)}",
    )
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


_HEADERS = {
    "model": "model",
    "forward_ms": "forward ms",
    "total_ms": "fwd+bwd ms",
    "vs_torch": "× torch",
    "vs_vanilla": "× actlab vanilla",
}


def _say(text: str) -> None:  # progress on stderr, whatever the format: stdout holds only the result
    print(f"actlab bench lstm: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from actlab.render import render as _render

    result = measure(
        seq=args.seq,
        batch=args.batch,
        input_size=args.input_size,
        hidden=args.hidden,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        seed=args.seed,
        variants=args.variant,
        progress=None if args.quiet else _say,
    )
    if args.format == "json":
        import json

        print(json.dumps(result.to_dict(), indent=2))
        return 0
    s = result.setting
    title = (
        f"recurrent fwd+bwd, seq {s['seq']}, batch {s['batch']}, input {s['input_size']}, hidden {s['hidden']}, "
        f"{s['threads']} thread(s), median of {s['repeats']}, torch {s['torch']}"
    )
    rows = [asdict(r) for r in result.rows]
    print(_render(rows, list(_HEADERS), args.format, title=title, headers=_HEADERS))
    return 0
