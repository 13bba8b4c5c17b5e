"""The machinery every experiment shares: the verdict rule, the run context and the record.

A verdict is decided by :class:`Rule` from a 95 % interval over seeds, never by eye:

- ``above``: reproduced when the whole interval lies above the threshold, not reproduced when it
  lies wholly below, inconclusive when it contains the threshold;
- ``below``: the mirror image;
- ``within``: reproduced when the interval lies inside threshold ± tolerance, not reproduced when
  it lies wholly outside, inconclusive when it straddles an edge;
- fewer finite samples than ``min_seeds``: inconclusive.

An experiment has one or more :class:`Check` (each a measured quantity and its rule); the first is
the headline (the record's ``measured`` / ``interval``). The experiment's verdict combines them:
reproduced when every check is, not reproduced when any check is not, inconclusive otherwise.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCALES",
    "VERDICTS",
    "Rule",
    "Check",
    "Experiment",
    "Context",
    "Measurement",
    "combine",
    "interval_of",
    "select",
    "run_experiment",
]

SCALES = ("tiny", "default", "large")
VERDICTS = ("reproduced", "not reproduced", "inconclusive")
COMBINATION = "reproduced if every check is reproduced; not reproduced if any check is not; otherwise inconclusive"
RECORD_VERSION = 1


@dataclass(frozen=True)
class Rule:
    """How one measured quantity decides a verdict (see the module docstring)."""

    kind: str  # "above" | "below" | "within"
    threshold: float
    tolerance: float = 0.0
    min_seeds: int = 3

    def __post_init__(self) -> None:
        if self.kind not in ("above", "below", "within"):
            raise ValueError(f"rule kind must be 'above', 'below' or 'within', got {self.kind!r}")
        if self.kind == "within" and not self.tolerance > 0:
            raise ValueError("a 'within' rule needs a positive tolerance")

    def text(self) -> str:
        t = f"{self.threshold:g}"
        if self.kind == "above":
            core = f"reproduced if the 95% interval lies above {t}, not reproduced if below {t}"
        elif self.kind == "below":
            core = f"reproduced if the 95% interval lies below {t}, not reproduced if above {t}"
        else:
            core = (
                f"reproduced if the 95% interval lies within {t} ± {self.tolerance:g}, not reproduced if wholly outside"
            )
        if self.min_seeds <= 1:
            return f"{core}; inconclusive if it contains the boundary (deterministic: one evaluation)"
        return f"{core}; inconclusive if it contains the boundary or with fewer than {self.min_seeds} seeds"

    def decide(self, low: float, high: float, n: int) -> str:
        if n < self.min_seeds or not (math.isfinite(low) and math.isfinite(high)):
            return "inconclusive"
        if self.kind == "above":
            return (
                "reproduced" if low > self.threshold else "not reproduced" if high < self.threshold else "inconclusive"
            )
        if self.kind == "below":
            return (
                "reproduced" if high < self.threshold else "not reproduced" if low > self.threshold else "inconclusive"
            )
        lo_edge, hi_edge = self.threshold - self.tolerance, self.threshold + self.tolerance
        if lo_edge <= low and high <= hi_edge:
            return "reproduced"
        if high < lo_edge or low > hi_edge:
            return "not reproduced"
        return "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "tolerance": self.tolerance,
            "min_seeds": self.min_seeds,
        }


@dataclass(frozen=True)
class Check:
    """One measured quantity (``key`` names it in the measurement) with its published value and rule."""

    key: str
    quantity: str
    rule: Rule
    published: str


@dataclass
class Measurement:
    """What an experiment's ``measure`` returns: per-seed samples per check, and what it used."""

    samples: dict[str, list[float]]
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)  # per arm: init, lr, optimizer, ...
    details: dict[str, Any] = field(default_factory=dict)  # further numbers the figure or reader needs


@dataclass(frozen=True)
class Experiment:
    """A classic claim, how it is measured here, and the rule that judges it."""

    name: str
    claim: str
    source: str
    published: str
    checks: tuple[Check, ...]
    measure: Callable[[Context], Measurement]
    plot: Callable[[Measurement, Any], None]  # draws on a matplotlib Axes
    scales: Mapping[str, Mapping[str, Any]]  # per scale: parameters, incl. "seeds"
    notes: str = ""

    def rule_text(self) -> str:
        lines = [f"{c.key} = {c.quantity}: {c.rule.text()}" for c in self.checks]
        if len(self.checks) > 1:
            lines.append(f"verdict: {COMBINATION}")
        return "\n".join(lines)


def interval_of(values: Sequence[float]) -> tuple[float, float, float, int]:
    """(mean, low, high, n) over the finite values: Student's t 95 % interval (the arena's
    ``mean_ci``); identical values give a zero-width interval; one value gives NaN bounds unless the
    quantity is deterministic (then the experiment's rule has ``min_seeds == 1``)."""
    from actlab.arena.stats import mean_ci

    x = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not x:
        return math.nan, math.nan, math.nan, 0
    if len(x) == 1:
        return x[0], x[0], x[0], 1
    mean, _, low, high = mean_ci(x)
    if not math.isfinite(low):  # zero spread
        low = high = mean
    return mean, low, high, len(x)


def paired_minus(values: Mapping[str, Sequence[float]], arm: str, reference: str) -> list[float]:
    """Per-seed differences ``arm - reference`` (seeds paired by position)."""
    return [a - r for a, r in zip(values[arm], values[reference])]


def plot_mean_curves(
    ax: Any, curves: Mapping[str, Sequence[Sequence[float]]], style: Callable[[int, str], tuple[str, str]]
) -> None:
    """Each arm's training-loss curve, the mean over seeds (cut to the shortest run), on a log scale;
    ``style(i, label)`` gives the line style and colour of the ``i``-th arm."""
    for i, (label, runs) in enumerate(curves.items()):
        n = min((len(r) for r in runs), default=0)
        if n:
            line, color = style(i, label)
            ax.plot(range(1, n + 1), np.mean([r[:n] for r in runs], axis=0), line, color=color, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.legend()


def combine(verdicts: Iterable[str]) -> str:
    verdicts = list(verdicts)
    if verdicts and all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if any(v == "not reproduced" for v in verdicts):
        return "not reproduced"
    return "inconclusive"


class Context:
    """What ``measure`` gets: the scale's parameters, the seeds, where to write, how to train."""

    def __init__(
        self,
        experiment: Experiment,
        scale: str,
        seeds: int,
        out_dir: Path,
        backend: str = "local",
        quiet: bool = False,
    ):
        self.experiment = experiment
        self.scale = scale
        self.params: dict[str, Any] = {k: v for k, v in experiment.scales[scale].items() if k != "seeds"}
        self.seeds = list(range(seeds))
        self.out_dir = out_dir
        self.backend = backend
        self.quiet = quiet

    def progress(self, total: int, description: str | None = None) -> _Bar:
        """A rich progress bar on stderr (nothing when quiet): ``with ctx.progress(n) as step: step()``."""
        return _Bar(total, description or self.experiment.name, self.quiet)

    def arena(self, suite: Mapping[str, Any], part: str = "arena") -> list[dict[str, Any]]:
        """Run an arena suite (a suite mapping, as in a suite file) through the arena's runner and store
        in ``OUT/<name>/<part>``, resuming what an earlier, interrupted run finished; returns the
        store's records of this suite's trials (config + result)."""
        from actlab.arena.config import suite_from_mapping
        from actlab.arena.runner import plan_trials, run_arena
        from actlab.arena.store import read_records

        mapping = {"name": f"reproduce-{self.experiment.name}", "seeds": list(self.seeds), **suite}
        plan = plan_trials(suite_from_mapping(mapping, source=f"actlab reproduce {self.experiment.name}"))
        run_dir = self.out_dir / part
        workers = int(self.params.get("workers", 1))
        outcome = run_arena(
            plan,
            run_dir,
            backend=self.backend,
            workers=workers if self.backend == "local" else None,
            threads=1,  # 2 cores: one torch thread per worker is the fastest here
            resume=True,
            progress="none" if self.quiet else "auto",
        )
        if outcome.remaining:
            why = "; ".join(outcome.failures[:3]) or outcome.error or "interrupted"
            raise RuntimeError(
                f"{self.experiment.name}: {outcome.remaining} trial(s) did not finish ({why}); "
                "run the same command again to resume (finished trials are kept)"
            )
        wanted = {t.key for t in plan.trials}
        return [r for r in read_records(run_dir) if r["key"] in wanted]


def select(records: Iterable[Mapping[str, Any]], **match: Any) -> dict[int, dict[str, Any]]:
    """The results of the arena records whose config has every ``match`` value (a dotted key reads
    into a nested table: ``model_params.depth``), by seed."""

    def value(config: Mapping[str, Any], dotted: str) -> Any:
        for part in dotted.split("."):
            config = config.get(part) if isinstance(config, Mapping) else None
        return config

    out = {}
    for rec in records:
        cfg = rec["config"]
        if all(value(cfg, k.replace("__", ".")) == v for k, v in match.items()):
            out[int(cfg["seed"])] = rec["result"]
    return out


class _Bar:
    def __init__(self, total: int, description: str, quiet: bool):
        self.total, self.description, self.quiet = total, description, quiet
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not self.quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=sys.stderr),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self.step

    def step(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide the results from other users
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plain(value: Any) -> Any:
    """JSON-able copy: NaN/inf become None, numpy scalars become Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _config(exp: Experiment, scale: str, seeds: int) -> dict[str, Any]:
    params = {k: v for k, v in exp.scales[scale].items() if k not in ("seeds", "workers")}
    return {"scale": scale, "seeds": list(range(seeds)), "params": params, "version": RECORD_VERSION}


def run_experiment(
    exp: Experiment,
    scale: str = "default",
    seeds: int | None = None,
    out_dir: str | os.PathLike = "reproduce-runs",
    backend: str = "local",
    quiet: bool = False,
    reuse: bool = True,
) -> dict[str, Any]:
    """Run ``exp`` (or reuse its finished record in ``OUT/<name>/record.json`` when the configuration
    is the same) and return the record; writes the record and the figure ``OUT/<name>/<name>.png``."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    n_seeds = int(seeds if seeds is not None else exp.scales[scale]["seeds"])
    if n_seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {n_seeds}")
    directory = Path(out_dir) / exp.name
    record_path = directory / "record.json"
    config = _config(exp, scale, n_seeds)
    if reuse and record_path.is_file():
        try:
            old = json.loads(record_path.read_text())
        except (OSError, ValueError):
            old = None
        same = isinstance(old, dict) and {k: old.get("config", {}).get(k) for k in config} == config
        if same and old.get("rule") == exp.rule_text() and old.get("claim") == exp.claim:
            return old  # finished before with the same configuration and rule: not run again

    started = time.perf_counter()
    ctx = Context(exp, scale, n_seeds, directory, backend=backend, quiet=quiet)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is faster than two fighting (and deterministic)
    try:
        measurement = exp.measure(ctx)
    finally:
        torch.set_num_threads(threads)
    checks = []
    for check in exp.checks:
        values = measurement.samples.get(check.key)
        if values is None:
            raise RuntimeError(f"{exp.name}: measure() returned no samples for check {check.key!r}")
        mean, low, high, n = interval_of(values)
        checks.append(
            {
                "key": check.key,
                "quantity": check.quantity,
                "rule": check.rule.text(),
                "rule_spec": check.rule.to_dict(),
                "published": check.published,
                "measured": mean,
                "interval": [low, high],
                "n": n,
                "samples": list(values),
                "verdict": check.rule.decide(low, high, n),
            }
        )
    runtime = time.perf_counter() - started
    figure = directory / f"{exp.name}.png"
    _save_figure(exp, measurement, figure)
    head = checks[0]
    record = {
        "name": exp.name,
        "claim": exp.claim,
        "source": exp.source,
        "rule": exp.rule_text(),
        "published": exp.published,
        "measured": head["measured"],
        "interval": head["interval"],
        "verdict": combine(c["verdict"] for c in checks),
        "runtime_s": runtime,
        "config": {**config, "arms": measurement.arms},
        "checks": checks,
        "details": measurement.details,
        "notes": exp.notes,
        "figure": str(figure),
    }
    record = _plain(record)
    _write_atomic(record_path, (json.dumps(record, indent=2) + "\n").encode())
    return record


def _save_figure(exp: Experiment, measurement: Measurement, path: Path) -> None:
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    exp.plot(measurement, ax)
    ax.set_title(textwrap.fill(f"{exp.name}: {exp.source}", 90), fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _write_atomic(path, buf.getvalue())
