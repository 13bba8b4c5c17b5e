"""Statistics of an arena run: per task and arm, mean ± 95 % CI across seeds, ranks, and a paired
test against a baseline activation with Holm's correction.

Data only (NumPy and SciPy); :mod:`actlab.arena.report` draws and writes it.

Definitions (the report repeats them in its "Method" section):

- **Task**: one ``task`` with one ``task_params``. **Arm**: one trial configuration without its
  ``seed``. An arm's label is its activation plus every other key that differs between the arms
  of its task (``"relu [init=he]"``).
- **Mean, std, 95 % CI**: over the seeds whose trial finished ``ok`` with a finite metric;
  the CI is Student's t interval ``mean ± t(0.975, n-1)·s/√n`` (none for n < 2), cut at the
  metric's range (:data:`METRIC_BOUNDS`: accuracy in [0, 1], mse in [0, ∞)). The true mean lies in
  that range, so cutting there drops only impossible values and keeps the interval's coverage;
  near a bound the interval ends at the bound instead of reaching past it (accuracy above 1).
  A metric whose range is unknown (a user's callable), or whose values leave the range, is not cut.
- **Diverged trials** (NaN/inf loss, or a non-finite final metric) have no metric: they are
  excluded from mean, CI and the paired test, counted per arm and named in the verdict, and take
  the worst rank (tied among themselves) at their seed. **Failed trials** (an error, not a
  property of the activation) are counted and otherwise left out.
- **Rank**: at each seed where at least two arms have a result, arms are ranked 1 = best (the
  task's ``higher_is_better``; ties get the average rank); an arm's mean rank averages its seeds.
- **Paired test** against the baseline arm (the arm with the baseline activation and otherwise
  the same settings), pairing trials by seed: Wilcoxon's signed-rank test when the number of
  non-zero differences n allows a two-sided p below ``alpha`` (the smallest exact p is
  2/2ⁿ: n ≥ 6 for α = 0.05), otherwise the paired t test; differences within 1e-9 (relative)
  are rounding and count as zero. Holm's step-down correction across
  the comparisons of one task (Holm 1979, Scand. J. Statist. 6:65-70).

Example::

    >>> from actlab.arena.stats import holm
    >>> [round(p, 12) for p in holm([0.01, 0.04, 0.03, 0.005])]
    [0.03, 0.06, 0.06, 0.02]
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from actlab._json import json_safe

__all__ = [
    "ArenaSummary",
    "TaskSummary",
    "ArmSummary",
    "TrialPoint",
    "PairedTest",
    "summarize",
    "mean_ci",
    "METRIC_BOUNDS",
    "paired_test",
    "holm",
    "min_wilcoxon_p",
    "record_key",
]

CONFIDENCE = 0.95
_SAME = 1e-9  # relative difference below which two metrics count as equal (floating-point rounding)
_RESULT_STATUSES = ("ok", "diverged")  # statuses with an outcome that ranks
#: The range of each built-in metric of ``actlab.arena.tasks`` (by its name in the trial result):
#: a confidence interval of a mean of such values never leaves it.
METRIC_BOUNDS: dict[str, tuple[float, float]] = {"accuracy": (0.0, 1.0), "mse": (0.0, math.inf)}


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class TrialPoint:
    """One finished trial as the statistics see it."""

    seed: Any
    status: str  # "ok" | "diverged" | "failed"
    final_metric: float | None
    best_metric: float | None = None
    epochs_run: int | None = None
    seconds_per_epoch: float | None = None
    peak_memory_bytes: int | None = None
    dead_fraction: float | None = None
    lr: float | None = None
    peak_memory_scope: str | None = None  # what peak_memory_bytes measured, as the trial said
    diverged_at_epoch: int | None = None
    error: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class PairedTest:
    """An arm against the baseline arm, trials paired by seed (difference = arm − baseline)."""

    test: str  # "wilcoxon" | "paired_t" | "none"
    n_pairs: int
    statistic: float | None
    p_value: float | None
    p_holm: float | None = None
    mean_difference: float | None = None
    note: str = ""


@dataclass(frozen=True)
class ArmSummary:
    """One arm of a task: its seeds' outcomes, their summary and its comparison with the baseline."""

    label: str
    activation: str
    config: dict[str, Any]
    trials: list[TrialPoint]
    n: int
    n_ok: int
    n_diverged: int
    n_failed: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    mean_rank: float | None
    n_ranked: int
    is_baseline: bool
    baseline_label: str | None
    vs_baseline: PairedTest | None
    significant: bool | None
    direction: str | None  # "better" | "worse" | None
    verdict: str

    @property
    def values(self) -> list[float]:
        """The finite final metrics of the ``ok`` trials, in seed order."""
        return [t.final_metric for t in self.trials if t.status == "ok" and t.final_metric is not None]


@dataclass(frozen=True)
class TaskSummary:
    """All arms of one task, best mean rank first, and a one-line answer."""

    task: str
    task_name: str
    task_params: dict[str, Any]
    metric: str | None
    higher_is_better: bool
    varying: list[str]
    arms: list[ArmSummary]
    seeds: list[Any]
    headline: str
    notes: list[str] = field(default_factory=list)

    def arm(self, label: str) -> ArmSummary:
        for a in self.arms:
            if a.label == label:
                return a
        raise KeyError(f"no arm {label!r} in task {self.task!r}; arms: {', '.join(a.label for a in self.arms)}")


@dataclass(frozen=True)
class ArenaSummary:
    """Every task of a run. ``to_dict()`` is JSON-serialisable (non-finite numbers become None)."""

    tasks: list[TaskSummary]
    baseline: str | None
    alpha: float
    n_records: int

    def task(self, name: str) -> TaskSummary:
        for t in self.tasks:
            if t.task == name:
                return t
        raise KeyError(f"no task {name!r}; tasks: {', '.join(t.task for t in self.tasks)}")

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


# ----------------------------------------------------------------------------- building blocks
def mean_ci(
    values: Sequence[float], confidence: float = CONFIDENCE, bounds: tuple[float, float] | None = None
) -> tuple[float, float, float, float]:
    """(mean, sample std, CI low, CI high) with Student's t interval; std and CI are NaN for n < 2.

    ``bounds`` (low, high) is the range the metric cannot leave (accuracy: (0, 1)): the interval
    is cut there. The mean lies in that range, so only impossible values go and the coverage stays.

    >>> [round(v, 4) for v in mean_ci([1.0, 2.0, 3.0])]
    [2.0, 1.0, -0.4841, 4.4841]
    >>> [round(v, 4) for v in mean_ci([1.0, 1.0, 0.94], bounds=(0.0, 1.0))]
    [0.98, 0.0346, 0.8939, 1.0]
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {x.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if bounds is not None and not (len(bounds) == 2 and float(bounds[0]) < float(bounds[1])):
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * std / math.sqrt(x.size)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, float(bounds[0])), min(high, float(bounds[1]))
    return mean, std, low, high


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided exact p of Wilcoxon's signed-rank test with n non-zero differences
    (all of one sign): 2 · 2⁻ⁿ. Below 0.05 only from n = 6."""
    return min(1.0, 2.0 * 0.5**n)


def paired_test(values: Sequence[float], baseline: Sequence[float], alpha: float = 0.05) -> PairedTest:
    """Compare paired samples (same seed at the same index): Wilcoxon's signed-rank test when the
    number of non-zero differences can reach p < ``alpha``, else the paired t test.

    >>> r = paired_test([0.91, 0.93, 0.92], [0.90, 0.90, 0.91])
    >>> r.test, round(r.p_value, 4)
    ('paired_t', 0.1296)
    """
    from scipy import stats

    a = np.asarray(values, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"values and baseline must be 1-D of the same length, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("values and baseline must be finite (leave diverged trials out before pairing)")
    n = int(a.size)
    if n < 2:
        return PairedTest("none", n, None, None, note=f"{n} paired seed{'s' if n != 1 else ''}: no test")
    # differences within rounding (1e-9 relative) are zero: n seeds of 1e-15 in one direction are not evidence
    d = np.where(np.isclose(a, b, rtol=_SAME, atol=0.0), 0.0, a - b)
    mean_d = float(d.mean())
    nonzero = int(np.count_nonzero(d))
    if nonzero == 0:
        return PairedTest("none", n, None, 1.0, mean_difference=0.0, note="identical results at every seed")
    constant = bool(np.all(d == d[0]))
    if min_wilcoxon_p(nonzero) < alpha or constant:
        # A constant difference has zero variance: t would be infinite and p = 0, a certainty the
        # data do not carry. Wilcoxon's exact p (2/2ⁿ at best) says what n seeds can show.
        res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        note = "constant difference: t undefined" if constant and min_wilcoxon_p(nonzero) >= alpha else ""
        return PairedTest("wilcoxon", n, float(res.statistic), float(res.pvalue), mean_difference=mean_d, note=note)
    res = stats.ttest_1samp(d, 0.0)  # = ttest_rel(a, b) on the rounded differences
    return PairedTest("paired_t", n, float(res.statistic), float(res.pvalue), mean_difference=mean_d)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order; None/NaN stay None.

    Sorted ascending, p₍ᵢ₎ becomes max over j ≤ i of min(1, (m − j + 1)·p₍ⱼ₎), m = number of p-values.
    Rejecting where the adjusted p < α is Holm's procedure at family-wise error rate α.

    >>> [round(p, 12) for p in holm([0.01, 0.04, 0.03, 0.005])]
    [0.03, 0.06, 0.06, 0.02]
    """
    idx = [i for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    for i in idx:
        if not 0.0 <= p_values[i] <= 1.0:
            raise ValueError(f"p_values[{i}] must be in [0, 1], got {p_values[i]!r}")
    out: list[float | None] = [None] * len(p_values)
    m = len(idx)
    running = 0.0
    for j, i in enumerate(sorted(idx, key=lambda k: p_values[k])):
        running = max(running, min(1.0, (m - j) * float(p_values[i])))
        out[i] = running
    return out


# ----------------------------------------------------------------------------- summarize
def summarize(
    records: Iterable[Mapping[str, Any]], *, baseline: str | None = "relu", alpha: float = 0.05
) -> ArenaSummary:
    """Summarise arena records (``actlab.arena.store.read_records``) per task and arm.

    ``baseline`` is the activation each arm is tested against (None: no tests); ``alpha`` the
    family-wise error rate of Holm's correction within a task.

    >>> from actlab.arena.store import read_records  # doctest: +SKIP
    >>> s = summarize(read_records("runs/arena"), baseline="relu")  # doctest: +SKIP
    >>> s.tasks[0].headline  # doctest: +SKIP
    'No activation differs significantly from relu (Holm-corrected, α = 0.05).'
    """
    if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    if baseline is not None and (not isinstance(baseline, str) or not baseline.strip()):
        raise ValueError(f"baseline must be an activation identifier (a non-empty string) or None, got {baseline!r}")
    records = list(records)
    for i, rec in enumerate(records):
        _check_record(i, rec)
    base = _canonical(baseline) if baseline is not None else None

    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for rec in _dedupe(records):
        cfg = rec["config"]
        groups[_freeze([cfg.get("task"), cfg.get("task_params") or {}])].append(rec)
    names = Counter(json.loads(k)[0] for k in groups)
    tasks = []
    for gkey, recs in groups.items():
        task_name, task_params = json.loads(gkey)
        label = str(task_name) if names[task_name] == 1 else f"{task_name} {_params_label(task_params)}"
        tasks.append(_summarize_task(label, str(task_name), task_params, recs, base, baseline, float(alpha)))
    tasks.sort(key=lambda t: t.task)
    return ArenaSummary(tasks=tasks, baseline=baseline, alpha=float(alpha), n_records=len(records))


def _check_record(i: int, rec: Any) -> None:
    if not isinstance(rec, Mapping):
        raise ValueError(f"records[{i}] must be a mapping with 'config' and 'result', got {type(rec).__name__}")
    for k in ("config", "result"):
        if not isinstance(rec.get(k), Mapping):
            raise ValueError(f"records[{i}][{k!r}] must be a mapping, got {type(rec.get(k)).__name__}")
    for k in ("task", "activation", "seed"):
        if k not in rec["config"]:
            raise ValueError(f"records[{i}]['config'] has no {k!r} (keys: {', '.join(map(str, rec['config']))})")
    if "status" not in rec["result"]:
        raise ValueError(f"records[{i}]['result'] has no 'status'")


def _dedupe(records: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One record per configuration (the store's key); a later record replaces an earlier one."""
    by: dict[str, Mapping[str, Any]] = {}
    for rec in records:
        by[record_key(rec)] = rec
    return list(by.values())


def _freeze(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def _canonical(identifier: str) -> str:
    """The registry's call string (what the trial config holds); unknown names compare as written."""
    try:
        from actlab.registry import get

        return repr(get(identifier))
    except Exception:  # a trainable or user identifier the catalog does not know
        return identifier.strip()


def _short(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _params_label(params: Mapping[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={_short(v)}" for k, v in sorted(params.items())) + ")"


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def record_key(rec: Mapping[str, Any]) -> str:
    """The store's key of a record (the canonical JSON of its config where it has none)."""
    return str(rec.get("key") or _freeze(rec["config"]))


def _point(rec: Mapping[str, Any]) -> TrialPoint:
    cfg, res = rec["config"], rec["result"]
    status = str(res.get("status"))
    metric = _number(res.get("final_metric"))
    if status == "ok" and metric is None:
        status = "diverged"  # a finished trial whose metric is NaN/inf learned nothing usable
    elif status not in ("ok", "diverged"):
        status = "failed"
    mem = res.get("peak_memory_bytes")
    return TrialPoint(
        seed=cfg.get("seed"),
        status=status,
        final_metric=metric if status == "ok" else None,
        best_metric=_number(res.get("best_metric")),
        epochs_run=res.get("epochs_run"),
        seconds_per_epoch=_number(res.get("seconds_per_epoch")),
        peak_memory_bytes=int(mem) if isinstance(mem, (int, float)) and math.isfinite(mem) else None,
        dead_fraction=_number(res.get("dead_fraction")),
        lr=_number(res.get("lr")),
        peak_memory_scope=scope if isinstance(scope := res.get("peak_memory_scope"), str) else None,
        diverged_at_epoch=res.get("diverged_at_epoch"),
        error=res.get("error"),
        key=record_key(rec),
    )


def _seed_order(seed: Any) -> tuple:
    return (0, seed, "") if isinstance(seed, (int, float)) and not isinstance(seed, bool) else (1, 0, str(seed))


def _summarize_task(
    label: str,
    task_name: str,
    task_params: dict[str, Any],
    recs: list[Mapping[str, Any]],
    base: str | None,
    baseline: str | None,
    alpha: float,
) -> TaskSummary:
    notes: list[str] = []
    metrics = Counter(
        (str(r["result"].get("metric")), bool(r["result"].get("higher_is_better", True)))
        for r in recs
        if r["result"].get("metric") is not None
    )
    if metrics:
        (metric, higher), _ = metrics.most_common(1)[0]
        if len(metrics) > 1:
            notes.append(f"trials report different metrics ({', '.join(m for m, _ in metrics)}); using {metric}")
    else:
        metric, higher = None, True

    # arms: configuration without the seed
    arms: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in recs:
        arms[_freeze({k: v for k, v in r["config"].items() if k != "seed"})].append(r)
    configs = {k: dict(json.loads(k)) for k in arms}
    keys = sorted({k for c in configs.values() for k in c} - {"activation", "task", "task_params"})
    varying = [k for k in keys if len({_freeze(c.get(k)) for c in configs.values()}) > 1]

    def arm_label(cfg: Mapping[str, Any]) -> str:
        extra = ", ".join(f"{k}={_short(cfg.get(k))}" for k in varying)
        return f"{cfg['activation']} [{extra}]" if extra else str(cfg["activation"])

    points = {k: sorted((_point(r) for r in rs), key=lambda p: _seed_order(p.seed)) for k, rs in arms.items()}
    labels = {k: arm_label(configs[k]) for k in arms}
    seeds = sorted({p.seed for ps in points.values() for p in ps}, key=_seed_order)

    # ranks per seed (1 = best; diverged = worst, tied)
    ranks: dict[str, list[float]] = defaultdict(list)
    for seed in seeds:
        score: dict[str, float] = {}
        for k, ps in points.items():
            for p in ps:
                if p.seed == seed and p.status in _RESULT_STATUSES:
                    value = p.final_metric if p.status == "ok" else None
                    score[k] = -math.inf if value is None else (value if higher else -value)
        if len(score) < 2:
            continue
        from scipy.stats import rankdata

        order = list(score)
        for k, r in zip(order, rankdata([-score[k] for k in order], method="average")):
            ranks[k].append(float(r))

    # baseline arm of each arm: baseline activation, all other settings equal
    def settings(k: str) -> str:
        return _freeze({kk: vv for kk, vv in configs[k].items() if kk != "activation"})

    is_base = {k: base is not None and _canonical(str(configs[k]["activation"])) == base for k in arms}
    base_of: dict[str, str | None] = {}
    for k in arms:
        match = [b for b in arms if is_base[b] and settings(b) == settings(k)]
        base_of[k] = match[0] if match else None

    tests: dict[str, PairedTest] = {}
    for k in arms:
        b = base_of[k]
        if b is None or b == k:
            continue
        mine = {p.seed: p.final_metric for p in points[k] if p.status == "ok"}
        theirs = {p.seed: p.final_metric for p in points[b] if p.status == "ok"}
        common = sorted(set(mine) & set(theirs), key=_seed_order)
        tests[k] = paired_test([mine[s] for s in common], [theirs[s] for s in common], alpha)
    order = list(tests)  # the family: every comparison with a p-value (identical results: p = 1)
    for k, p in zip(order, holm([tests[k].p_value for k in order])):
        tests[k] = replace(tests[k], p_holm=p)

    bounds = METRIC_BOUNDS.get(metric) if metric is not None else None
    if bounds is not None:
        outside = [
            p.final_metric
            for ps in points.values()
            for p in ps
            if p.status == "ok" and not bounds[0] <= p.final_metric <= bounds[1]
        ]
        if outside:  # a user's metric that shares a built-in's name: its range is not the built-in's
            notes.append(
                f"{metric} values outside [{bounds[0]:g}, {bounds[1]:g}] (e.g. {outside[0]:g}): "
                "confidence intervals not cut at that range"
            )
            bounds = None

    summaries = []
    for k in arms:
        ps = points[k]
        ok = [p.final_metric for p in ps if p.status == "ok"]
        if ok:
            mean, std, lo, hi = mean_ci(ok, bounds=bounds)
        else:
            mean = std = lo = hi = math.nan
        n_div = sum(p.status == "diverged" for p in ps)
        test = tests.get(k)
        significant = direction = None
        if test is not None and test.p_holm is not None:
            significant = test.p_holm < alpha
            if significant and test.mean_difference:
                direction = "better" if (test.mean_difference > 0) == higher else "worse"
        b = base_of[k]
        summaries.append(
            ArmSummary(
                label=labels[k],
                activation=str(configs[k]["activation"]),
                config=configs[k],
                trials=ps,
                n=len(ps),
                n_ok=len(ok),
                n_diverged=n_div,
                n_failed=sum(p.status == "failed" for p in ps),
                mean=_nan_none(mean),
                std=_nan_none(std),
                ci_low=_nan_none(lo),
                ci_high=_nan_none(hi),
                mean_rank=float(np.mean(ranks[k])) if ranks.get(k) else None,
                n_ranked=len(ranks.get(k, [])),
                is_baseline=is_base[k],
                baseline_label=labels[b] if b is not None else None,
                vs_baseline=test,
                significant=significant,
                direction=direction,
                verdict=_verdict(
                    is_base[k], labels[b] if b else None, baseline, test, direction, alpha, n_div, len(ps)
                ),
            )
        )
    worst = math.inf
    summaries.sort(
        key=lambda a: (
            a.mean_rank if a.mean_rank is not None else worst,
            -(a.mean if higher else -a.mean) if a.mean is not None else worst,
            a.label,
        )
    )
    headline = _headline(summaries, baseline, alpha)
    return TaskSummary(
        task=label,
        task_name=task_name,
        task_params=task_params,
        metric=metric,
        higher_is_better=higher,
        varying=varying,
        arms=summaries,
        seeds=seeds,
        headline=headline,
        notes=notes,
    )


def _nan_none(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}".rstrip("0").rstrip(".") if p < 1 else "1"


def _verdict(
    is_base: bool,
    base_label: str | None,
    baseline: str | None,
    test: PairedTest | None,
    direction: str | None,
    alpha: float,
    n_div: int,
    n: int,
) -> str:
    if is_base:
        text = "baseline"
    elif baseline is None:
        text = "no baseline chosen"
    elif base_label is None:
        text = f"no {baseline} arm with the same settings: not tested"
    elif test is None or test.test == "none" and test.p_value is None:
        text = f"not tested: {test.note if test else 'no paired seeds'} with {base_label}"
    elif test.test == "none":
        text = f"no significant difference from {base_label} ({test.note})"
    else:
        how = "Wilcoxon" if test.test == "wilcoxon" else "paired t"
        stat = f"p = {_fmt_p(test.p_holm)} Holm, {how}, {test.n_pairs} seeds"
        if direction is None:
            text = f"no significant difference from {base_label} ({stat})"
        else:
            text = f"{direction} than {base_label} ({stat})"
    if n_div:
        text += f"; diverged in {n_div} of {n} seeds"
    return text


def _headline(arms: list[ArmSummary], baseline: str | None, alpha: float) -> str:
    if baseline is None:
        return "No baseline chosen: ranks and confidence intervals only."
    tested = [a for a in arms if a.vs_baseline is not None and a.vs_baseline.p_value is not None]
    if not any(a.is_baseline for a in arms):
        return f"No {baseline} arm in this task: no significance tests (choose another baseline)."
    if not tested:
        return f"No test against {baseline} was possible (a paired test needs at least 2 seeds where both finished)."
    better = [a.label for a in arms if a.direction == "better"]
    worse = [a.label for a in arms if a.direction == "worse"]
    rule = f"Holm-corrected, α = {alpha:g}"
    if not better and not worse:
        return f"No activation differs significantly from {baseline} ({rule})."
    parts = []
    if better:
        parts.append(f"significantly better than {baseline}: {', '.join(better)}")
    if worse:
        parts.append(f"significantly worse than {baseline}: {', '.join(worse)}")
    rest = len(tested) - len(better) - len(worse)
    if rest:
        parts.append(f"no significant difference for the other {'one' if rest == 1 else rest}")
    text = "; ".join(parts)
    return f"{text[0].upper()}{text[1:]} ({rule})."
