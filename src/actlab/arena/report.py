"""The arena report: a self-contained HTML page, Markdown, JSON and CSV, built from the store only.

``write_report(run_dir)`` reads the finished trials (``actlab.arena.store.read_records``),
summarises them (:func:`actlab.arena.stats.summarize`) and writes, atomically, into
``RUN_DIR/report/``:

- ``report.html``: one file, no network (inline CSS, figures as base64 PNG): per task the answer
  in one line, the ranking table with CIs and p-values, final-metric strip plots, learning curves
  with seed bands, and the health of the runs (dead units, divergences, seconds per epoch, memory);
- ``report.md`` (+ ``figures/*.png`` beside it), ``report.json`` (the summary and every trial
  with its curve) and ``trials.csv`` (one row per trial).

Example::

    >>> from actlab.arena.report import write_report
    >>> paths = write_report("runs/arena")  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['csv', 'html', 'json', 'md']
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actlab._json import json_safe
from actlab.arena.stats import ArenaSummary, ArmSummary, _fmt_p, record_key, summarize

__all__ = [
    "FORMATS",
    "RANKING_COLUMNS",
    "RANKING_HEADERS",
    "ranking_rows",
    "learning_curves",
    "trial_rows",
    "render_markdown",
    "render_html",
    "write_report",
    "run_title",
    "stored_suite",
]

FORMATS = ("html", "md", "json", "csv")
FILENAMES = {"html": "report.html", "md": "report.md", "json": "report.json", "csv": "trials.csv"}

#: The columns a ranking table shows (``actlab.render.render(rows, RANKING_COLUMNS, fmt, headers=RANKING_HEADERS)``);
#: every row also has the numeric ``mean``, ``ci_low``, ``ci_high``, ``std``, ``p``, ``n_ok``, ``failed``, ...
RANKING_COLUMNS = ("task", "rank", "activation", "n", "mean_ci", "mean_rank", "diverged", "test", "p_holm", "verdict")
# The terminal table leaves out the test's name (paired t or Wilcoxon: in the report and the other
# formats) so that a ranking fits 100 columns without wrapping its intervals.
TERMINAL_RANKING_COLUMNS = tuple(c for c in RANKING_COLUMNS if c != "test")
RANKING_HEADERS = {
    "rank": "#",
    "n": "seeds",
    "mean_ci": "mean [95 % CI]",
    "mean_rank": "mean rank",
    "p_holm": "p (Holm)",
}


# ----------------------------------------------------------------------------- data
def _num(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}g}"


def _mean_ci_text(a: ArmSummary) -> str:
    if a.mean is None:
        return "–"
    if a.ci_low is None:
        return f"{_num(a.mean)} (n = 1)"
    return f"{_num(a.mean)} [{_num(a.ci_low)}, {_num(a.ci_high)}]"


def _test_name(a: ArmSummary) -> str:
    t = a.vs_baseline
    if t is None or t.test == "none":
        return "identical" if t is not None and t.p_value == 1.0 else ""
    return "Wilcoxon" if t.test == "wilcoxon" else "paired t"


def _mean_of(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _short_verdict(a: ArmSummary) -> str:
    """The table's verdict: the full sentence (``a.verdict``) without what other columns show."""
    t = a.vs_baseline
    if a.is_baseline:
        text = "baseline"
    elif a.direction is not None:
        text = f"{a.direction} than {a.baseline_label}"
    elif t is not None and t.p_value is not None:
        text = "not significant"
    else:
        text = "not tested"
    if a.n_diverged:
        text += f"; diverged {a.n_diverged}/{a.n}"
    return text


def ranking_rows(summary: ArenaSummary) -> list[dict[str, Any]]:
    """One row per task and arm, best mean rank first: display columns (:data:`RANKING_COLUMNS`)
    plus the numbers behind them.

    >>> rows = ranking_rows(summarize(records))  # doctest: +SKIP
    >>> from actlab.render import render as _render  # doctest: +SKIP
    >>> print(_render(rows, RANKING_COLUMNS, "table", headers=RANKING_HEADERS))  # doctest: +SKIP
    """
    rows = []
    for task in summary.tasks:
        for i, a in enumerate(task.arms, 1):
            t = a.vs_baseline
            rows.append(
                {
                    "task": task.task,
                    "rank": i,
                    "activation": a.label,
                    "n": f"{a.n_ok}/{a.n}",
                    "mean_ci": _mean_ci_text(a),
                    "mean_rank": a.mean_rank,
                    "diverged": a.n_diverged,
                    "test": _test_name(a),
                    "p_holm": t.p_holm if t is not None else None,
                    "verdict": _short_verdict(a),
                    "verdict_text": a.verdict,
                    "metric": task.metric,
                    "higher_is_better": task.higher_is_better,
                    "n_ok": a.n_ok,
                    "n_trials": a.n,
                    "mean": a.mean,
                    "std": a.std,
                    "ci_low": a.ci_low,
                    "ci_high": a.ci_high,
                    "failed": a.n_failed,
                    "p": t.p_value if t is not None else None,
                    "statistic": t.statistic if t is not None else None,
                    "mean_difference": t.mean_difference if t is not None else None,
                    "n_pairs": t.n_pairs if t is not None else None,
                    "significant": a.significant,
                    "direction": a.direction,
                    "is_baseline": a.is_baseline,
                    "seconds_per_epoch": _mean_of(x.seconds_per_epoch for x in a.trials),
                    "dead_fraction": _mean_of(x.dead_fraction for x in a.trials),
                    "peak_memory_bytes": _mean_of(x.peak_memory_bytes for x in a.trials),
                }
            )
    return rows


def _arm_of(summary: ArenaSummary) -> dict[str, tuple[str, str]]:
    return {t.key: (task.task, a.label) for task in summary.tasks for a in task.arms for t in a.trials}


def learning_curves(records: Sequence[Mapping[str, Any]], summary: ArenaSummary) -> dict[str, list[Any]]:
    """Per task label, one :class:`~actlab.arena._report_figures.ArmCurves` per arm (in ranking
    order): validation metric and training loss per epoch, mean and min–max across seeds."""
    from actlab.arena._report_figures import ArmCurves

    where = _arm_of(summary)
    per: dict[tuple[str, str], list[dict[int, tuple[float, float]]]] = {}
    for rec in records:
        k = record_key(rec)
        if k not in where:
            continue
        points = {}
        for row in rec["result"].get("curve") or []:
            if isinstance(row, Mapping) and isinstance(row.get("epoch"), (int, float)):
                points[int(row["epoch"])] = (
                    _finite_or_nan(row.get("val_metric")),
                    _finite_or_nan(row.get("train_loss")),
                )
        per.setdefault(where[k], []).append(points)
    out: dict[str, list[Any]] = {}
    for task in summary.tasks:
        arms = []
        for a in task.arms:
            seeds = per.get((task.task, a.label), [])
            epochs = np.asarray(sorted({e for s in seeds for e in s}), dtype=float)
            n = np.zeros(epochs.size, dtype=int)
            stats = {}
            for j, what in enumerate(("metric", "loss")):
                table = np.full((max(1, len(seeds)), epochs.size), np.nan)
                for i, s in enumerate(seeds):
                    for c, e in enumerate(epochs):
                        if int(e) in s:
                            table[i, c] = s[int(e)][j]
                have = np.isfinite(table)
                if what == "metric":
                    n = have.sum(axis=0)
                mean = np.full(epochs.size, np.nan)
                lo, hi = mean.copy(), mean.copy()
                cols = have.any(axis=0)
                if cols.any():
                    sub = np.where(have[:, cols], table[:, cols], np.nan)
                    mean[cols] = np.nanmean(sub, axis=0)
                    lo[cols], hi[cols] = np.nanmin(sub, axis=0), np.nanmax(sub, axis=0)
                stats[what] = (mean, lo, hi)
            arms.append(
                ArmCurves(a.label, epochs, n, *stats["metric"], *stats["loss"]),
            )
        out[task.task] = arms
    return out


def _finite_or_nan(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


_TRIAL_RESULT_FIELDS = (
    "status",
    "metric",
    "higher_is_better",
    "final_metric",
    "best_metric",
    "best_epoch",
    "epochs_to_target",
    "epochs_run",
    "diverged_at_epoch",
    "seconds_per_epoch",
    "peak_memory_bytes",
    "dead_fraction",
    "lr",
    "n_parameters",
    "error",
)


def trial_rows(records: Sequence[Mapping[str, Any]], summary: ArenaSummary) -> list[dict[str, Any]]:
    """One flat row per trial (the CSV): task and arm labels, seed, result numbers, then the config
    (``config.<key>``; mappings and lists as JSON)."""
    where = _arm_of(summary)
    config_keys = sorted({k for r in records for k in r["config"]})
    rows = []
    for rec in records:
        k = record_key(rec)
        task, arm = where.get(k, (str(rec["config"].get("task")), str(rec["config"].get("activation"))))
        res = rec["result"]
        row: dict[str, Any] = {"key": rec.get("key", ""), "task": task, "arm": arm, "seed": rec["config"].get("seed")}
        for f in _TRIAL_RESULT_FIELDS:
            row[f] = res.get(f)
        row["finished_at"] = rec.get("finished_at", "")
        row["worker"] = rec.get("worker", "")
        for c in config_keys:
            v = rec["config"].get(c)
            row[f"config.{c}"] = json.dumps(v, sort_keys=True) if isinstance(v, (Mapping, list, tuple)) else v
        rows.append(row)
    rows.sort(key=lambda r: (r["task"], r["arm"], str(r["seed"])))
    return rows


# ----------------------------------------------------------------------------- title
def stored_suite(run_dir: str | os.PathLike) -> Mapping[str, Any] | None:
    """The suite (a plain mapping, as stored) of the plan a run directory was started with; None where
    the directory has no store or the store no plan. Read as data only: nothing in it is imported."""
    from actlab.arena.store import ArenaStore, StoreError, store_path

    if not store_path(run_dir).is_file():
        return None
    try:
        with ArenaStore(run_dir, create=False, readonly=True) as store:
            plan = store.get_meta("plan")
    except (StoreError, OSError, ValueError):  # read_records says what is wrong with the store
        return None
    suite = plan.get("suite") if isinstance(plan, Mapping) else None
    return suite if isinstance(suite, Mapping) else None


_SAME_RUN_KEYS = ("activations", "seeds", "tasks", "budget", "baseline", "params", "grid", "task")


def _names(values: Any, noun: str, most: int) -> str:
    items = [str(v) for v in values] if isinstance(values, (list, tuple)) else []
    if not items:
        return f"no {noun}s"
    return ", ".join(items) if len(items) <= most else f"{len(items)} {noun}s"


def run_title(suite: Mapping[str, Any] | None, fallback: str = "arena") -> str:
    """What a run ran, from its plan's suite: the suite's name where it ran an embedded suite as shipped
    ("default"); otherwise the name and what was run ("custom run (relu, tanh on spirals; 2 seeds)",
    "my_suite (relu, gelu on spirals, digits; 5 seeds)"). ``fallback`` where there is no plan."""
    if not isinstance(suite, Mapping):
        return fallback
    name = str(suite.get("name") or fallback)
    name = name if len(name) <= 80 else name[:79] + "…"  # a stored plan is data: any length
    seeds = suite.get("seeds")
    n_seeds = len(seeds) if isinstance(seeds, (list, tuple)) else 0
    what = (
        f"{_names(suite.get('activations'), 'activation', 4)} on {_names(suite.get('tasks'), 'task', 3)}; "
        f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    )
    grid = suite.get("grid")
    if isinstance(grid, Mapping) and grid:
        what += "; " + "; ".join(f"{k} {_names(v, 'value', 4)}" for k, v in grid.items())
    shipped = _embedded_suite(name)
    if shipped is None:
        return f"{name} ({what})"
    same = all(_freeze_json(shipped.get(k)) == _freeze_json(suite.get(k)) for k in _SAME_RUN_KEYS)
    return name if same else f"custom run ({what}; from the {name} suite)"


def _freeze_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _embedded_suite(name: str) -> dict[str, Any] | None:
    """The shipped suite of that name as a mapping (a TOML file of actlab's, no code), or None."""
    from actlab.arena.config import SuiteError, load_suite, suite_names

    if name not in suite_names():
        return None
    try:
        return load_suite(name).to_dict()
    except SuiteError:
        return None


# ----------------------------------------------------------------------------- figures
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "task"


_TITLES = {"final": "Final metric per seed", "curves": "Learning curves", "health": "Health of the runs"}
_CAPTIONS = {
    "final": "Final metric: a dot per seed, black bar = mean and 95 % CI, × = a diverged seed, dashed line = the "
    "baseline's mean. Green labels: significantly better than the baseline; red: worse.",
    "curves": "Learning curves: mean across seeds per epoch, band from the lowest to the highest seed.",
    "health": "Health of the runs: dead-unit fraction at the end of training, diverged seeds, seconds per epoch "
    "and the peak memory each trial recorded, a dot per seed.",
}


def _caption(kind: str, task: Any) -> str:
    """The figure's caption; the health figure's says what its memory numbers measured, in the trials' words."""
    if kind != "health":
        return _CAPTIONS[kind]
    scopes = sorted({t.peak_memory_scope or "" for a in task.arms for t in a.trials if t.peak_memory_bytes is not None})
    if not scopes:
        what = "no trial recorded its peak memory"
    elif scopes == [""]:
        what = "its peak_memory_bytes, a high-water mark whose scope the trials did not record"
    else:
        what = "; ".join(s or "not recorded" for s in scopes)
    return f"{_CAPTIONS[kind]} Memory (MiB): {what}."


def _figures(records: Sequence[Mapping[str, Any]], summary: ArenaSummary) -> dict[str, list[tuple[str, str, bytes]]]:
    """Per task: [(figure id, kind, PNG bytes)] for the strip ("final"), the learning curves and the health."""
    from actlab.arena._report_figures import arm_colors, figure_png, plot_health, plot_learning_curves, plot_strip

    labels: list[str] = []
    for task in summary.tasks:
        labels += [a.label for a in task.arms if a.label not in labels]
    colors = arm_colors(labels)
    curves = learning_curves(records, summary)
    out: dict[str, list[tuple[str, str, bytes]]] = {}
    slugs: set[str] = set()
    for task in summary.tasks:
        slug = _slug(task.task)
        while slug in slugs:
            slug += "-x"
        slugs.add(slug)
        out[task.task] = [
            (f"{slug}-final", "final", figure_png(plot_strip(task, colors))),
            (f"{slug}-curves", "curves", figure_png(plot_learning_curves(curves[task.task], colors, task))),
            (f"{slug}-health", "health", figure_png(plot_health(task, colors))),
        ]
    return out


# ----------------------------------------------------------------------------- text
def _method_lines(summary: ArenaSummary) -> list[str]:
    a = summary.alpha
    return [
        "Each arm is one configuration without its seed; seeds pair trials across arms (same data split).",
        "Mean, standard deviation and the 95 % confidence interval (Student's t) use the seeds whose trial "
        "finished with a finite metric.",
        "Diverged trials (NaN/inf loss) have no metric: they are left out of mean, CI and test, counted, "
        "named in the verdict, and take the worst rank at their seed. Failed trials (errors) are counted only.",
        _bounds_line(summary),
        "Mean rank: arms ranked at every seed (1 = best, ties averaged), then averaged over seeds.",
        f"Paired test against {summary.baseline or 'the baseline'} (same other settings), pairing by seed: "
        f"Wilcoxon signed-rank when the number of non-zero differences n can give p < {a:g} "
        f"(its smallest two-sided p is 2/2ⁿ, so n ≥ {_min_n(a)}), otherwise the paired t test.",
        f"p-values are Holm-corrected across the comparisons of each task; significant means p (Holm) < {a:g}.",
    ]


def _bounds_line(summary: ArenaSummary) -> str:
    """How intervals keep within the metric's range (stats.METRIC_BOUNDS), for the metrics of this run."""
    from actlab.arena.stats import METRIC_BOUNDS

    def span(low: float, high: float) -> str:
        return f"[{low:g}, ∞)" if math.isinf(high) else f"[{low:g}, {high:g}]"

    metrics = sorted({t.metric for t in summary.tasks if t.metric is not None}) or sorted(METRIC_BOUNDS)
    known = [f"{m} {span(*METRIC_BOUNDS[m])}" for m in metrics if m in METRIC_BOUNDS]
    unknown = [m for m in metrics if m not in METRIC_BOUNDS]
    text = (
        "A metric cannot leave its range, and neither does its interval: the t interval is cut at the range "
        f"({', '.join(known) or 'none here'}). The true mean lies in the range, so the cut drops only impossible "
        "values and keeps the 95 % coverage; near a bound the interval ends at the bound (e.g. [0.91, 1])."
    )
    if unknown:
        text += f" The range of {', '.join(unknown)} is unknown: its interval is not cut."
    return text


def _min_n(alpha: float) -> int:
    from actlab.arena.stats import min_wilcoxon_p

    n = 1
    while min_wilcoxon_p(n) >= alpha:
        n += 1
    return n


def _overview(summary: ArenaSummary, records: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    statuses: dict[str, int] = {}
    for r in records:
        s = str(r["result"].get("status"))
        statuses[s] = statuses.get(s, 0) + 1
    seeds = sorted({str(s) for t in summary.tasks for s in t.seeds})
    return [
        ("trials", f"{len(records)} ({', '.join(f'{v} {k}' for k, v in sorted(statuses.items()))})"),
        ("tasks", ", ".join(t.task for t in summary.tasks)),
        ("seeds", ", ".join(seeds)),
        ("baseline", summary.baseline or "none"),
        ("significance level", f"α = {summary.alpha:g}, Holm-corrected per task"),
    ]


# HTML's special characters become entities (no tag, comment or entity survives from a store); Markdown's
# inline markup characters get a backslash (no link, image, emphasis, code span, heading end or table cell).
# An underscore between two letters or digits cannot open or close emphasis (CommonMark's flanking rules),
# so "leaky_relu" stays as it is.
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MD_MARKUP = re.compile(r"([\\`*\[\]|#~$!])")
_MD_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")


def _md(text: Any) -> str:
    """``text`` as literal Markdown text on one line: whatever a store holds renders as the characters it is."""
    out = _MD_UNDERSCORE.sub(r"\\_", _MD_MARKUP.sub(r"\\\1", str(text)))
    out = "".join(_MD_ENTITIES.get(c, c) for c in out)
    return re.sub(r"[\r\n\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+", " ", out)


def render_markdown(
    summary: ArenaSummary,
    records: Sequence[Mapping[str, Any]],
    figure_paths: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    *,
    title: str = "Arena report",
    subtitle: str = "",
) -> str:
    """The report as Markdown; ``figure_paths`` maps a task to [(kind, relative path)], kind one of
    "final", "curves", "health". Every text from the store, the title and the subtitle is escaped (:func:`_md`)."""
    lines = [f"# {_md(title)}", ""] + ([f"_{_md(subtitle)}_", ""] if subtitle else [])
    lines += [f"- **{_md(k)}**: {_md(v)}" for k, v in _overview(summary, records)]
    rows = ranking_rows(summary)
    cols = ("rank", "activation", "n", "mean_ci", "std", "mean_rank", "diverged", "failed", "test", "p", "p_holm")
    heads = ("#", "activation", "seeds ok", "mean [95 % CI]", "std", "mean rank", "diverged", "failed", "test", "p")
    heads += ("p (Holm)",)
    for task in summary.tasks:
        lines += ["", f"## {_md(task.task)}", "", f"**{_md(task.headline)}**", ""]
        direction = "higher" if task.higher_is_better else "lower"
        lines.append(f"Metric: {_md(task.metric or 'n/a')} ({direction} is better).")
        lines += [f"Note: {_md(n)}" for n in task.notes]
        lines += ["", "| " + " | ".join(map(_md, heads)) + " | verdict |", "|" + "---|" * (len(heads) + 1)]
        for r in (r for r in rows if r["task"] == task.task):
            cells = [_md(_fmt_cell(c, r[c])) for c in cols] + [_md(r["verdict"])]
            lines.append("| " + " | ".join(cells) + " |")
        for kind, path in (figure_paths or {}).get(task.task, []):
            # the path is ours: figures/<slug>.png, the slug only [a-z0-9-]
            lines += ["", f"![{_md(_TITLES[kind])}: {_md(task.task)}]({path})", "", f"_{_md(_caption(kind, task))}_"]
    lines += ["", "## Method", ""] + [f"- {_md(m)}" for m in _method_lines(summary)]
    return "\n".join(lines) + "\n"


def _fmt_cell(column: str, value: Any) -> str:
    if value is None:
        return "–"
    if column in ("p", "p_holm"):
        return _fmt_p(float(value))
    if column == "mean_rank":
        return f"{value:.2f}"
    if isinstance(value, float):
        return _num(value)
    return str(value)


def render_html(
    summary: ArenaSummary,
    records: Sequence[Mapping[str, Any]],
    figures: Mapping[str, Sequence[tuple[str, str, bytes]]],
    *,
    title: str = "Arena report",
    subtitle: str = "",
) -> str:
    """The self-contained page: inline CSS, figures (per task: [(id, kind, PNG bytes)]) as base64 PNG,
    and a few lines of script that only record the page's state (figures decoded, script errors) in
    ``<pre id="state">`` for tests."""
    from actlab.arena._report_html import CSS, STATE_JS

    e = html.escape
    rows = ranking_rows(summary)
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{e(title)}</h1>",
    ]
    if subtitle:
        out.append(f'<p class="sub">{e(subtitle)}</p>')
    out.append('<dl class="overview">')
    for k, v in _overview(summary, records):
        out.append(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>")
    out.append("</dl>")
    if len(summary.tasks) > 1:
        out.append("<nav><span>Tasks:</span> ")
        out.append(" · ".join(f'<a href="#task-{_slug(t.task)}">{e(t.task)}</a>' for t in summary.tasks))
        out.append("</nav>")
    for task in summary.tasks:
        cls = "none" if not any(a.direction for a in task.arms) else "some"
        out.append(f'<section id="task-{_slug(task.task)}"><h2>{e(task.task)}</h2>')
        out.append(f'<p class="headline {cls}">{e(task.headline)}</p>')
        direction = "higher" if task.higher_is_better else "lower"
        out.append(f'<p class="metric">Metric: <b>{e(task.metric or "n/a")}</b> ({direction} is better).</p>')
        for n in task.notes:
            out.append(f'<p class="note">{e(n)}</p>')
        out.append(_html_table([r for r in rows if r["task"] == task.task]))
        for fid, kind, png in figures.get(task.task, []):
            data = base64.b64encode(png).decode("ascii")
            out.append(
                f'<figure><img class="figure" id="{e(fid)}" alt="{e(_TITLES[kind])}: {e(task.task)}" '
                f'src="data:image/png;base64,{data}"><figcaption>{e(_caption(kind, task))}</figcaption></figure>'
            )
        out.append("</section>")
    out.append('<section id="method"><h2>Method</h2><ul>')
    out += [f"<li>{e(m)}</li>" for m in _method_lines(summary)]
    out.append("</ul></section>")
    out.append('</main><pre id="state" hidden>{}</pre>')
    out.append(f"<script>{STATE_JS}</script></body></html>\n")
    return "\n".join(out)


_HTML_COLUMNS = (  # std is in the Markdown and JSON; the page keeps the table within its width
    ("rank", "#", "num"),
    ("activation", "activation", "name"),
    ("n", "seeds ok", "num"),
    ("mean", "mean", "num"),
    ("ci", "95 % CI", "num"),
    ("mean_rank", "mean rank", "num"),
    ("diverged", "diverged", "num"),
    ("failed", "failed", "num"),
    ("seconds_per_epoch", "s / epoch", "num"),
    ("test", "test", "nowrap"),
    ("p", "p", "num"),
    ("p_holm", "p (Holm)", "num"),
    ("verdict", "verdict", "verdict"),
)


def _html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    e = html.escape
    head = "".join(f'<th class="{c}">{e(h)}</th>' for _, h, c in _HTML_COLUMNS)
    body = []
    for r in rows:
        cells = []
        for key, _, cls in _HTML_COLUMNS:
            if key == "ci":
                text = f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]" if r["ci_low"] is not None else "–"
            elif key == "mean":
                text = _num(r["mean"])
            elif key == "seconds_per_epoch":
                text = _num(r[key], 3)
            else:
                text = _fmt_cell(key, r[key]) if r[key] != "" else ""
            cells.append(f'<td class="{cls}">{e(text)}</td>')
        kind = "baseline" if r["is_baseline"] else (r["direction"] or "same")
        body.append(f'<tr class="{kind}">' + "".join(cells) + "</tr>")
    return f'<table class="ranking"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


# ----------------------------------------------------------------------------- writing
def _write_atomic(path: Path, data: bytes) -> None:
    """A temporary file beside ``path``, then ``os.replace``: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp's 0600 is wrong for a report
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _parse_formats(formats: Iterable[str] | str) -> list[str]:
    if isinstance(formats, str):
        formats = [formats]
    out: list[str] = []
    for f in formats:
        for part in str(f).split(","):
            part = part.strip().lower()
            if part == "all":
                out += [x for x in FORMATS if x not in out]
            elif part in FORMATS:
                if part not in out:
                    out.append(part)
            else:
                raise ValueError(f"formats: unknown format {part!r}; allowed: {', '.join(FORMATS)}, all")
    if not out:
        raise ValueError(f"formats must name at least one of {', '.join(FORMATS)}, all")
    return out


def write_report(
    run_dir: str | os.PathLike,
    *,
    formats: Iterable[str] | str = FORMATS,
    baseline: str | None = "relu",
    alpha: float = 0.05,
    out_dir: str | os.PathLike | None = None,
    records: Sequence[Mapping[str, Any]] | None = None,
    suite: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Summarise the run in ``run_dir`` and write the report files; returns {format: path}.

    ``records`` replaces reading the store (``actlab.arena.store.read_records(run_dir)``), ``suite``
    the stored plan's suite (:func:`stored_suite`), which titles the report (:func:`run_title`);
    ``out_dir`` defaults to ``RUN_DIR/report``. Every file is written atomically; arguments and
    records are checked before anything is written.

    >>> write_report("runs/arena", formats=("html",))  # doctest: +SKIP
    {'html': PosixPath('runs/arena/report/report.html')}
    """
    wanted = _parse_formats(formats)
    run = Path(run_dir)
    if records is None:
        from actlab.arena.store import read_records

        records = read_records(run)
    records = list(records)
    if not records:
        raise ValueError(f"no finished trials in {str(run)!r}: nothing to report")
    summary = summarize(records, baseline=baseline, alpha=alpha)
    target = Path(out_dir) if out_dir is not None else run / "report"
    target.mkdir(parents=True, exist_ok=True)
    from actlab import __version__

    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    title = f"Arena report: {run_title(suite if suite is not None else stored_suite(run), run.resolve().name)}"
    subtitle = f"{run.resolve()} · generated {now} by actlab {__version__}"
    written: dict[str, Path] = {}
    figures = _figures(records, summary) if {"html", "md"} & set(wanted) else {}
    if "md" in wanted:
        fig_dir = target / "figures"
        fig_dir.mkdir(exist_ok=True)
        paths: dict[str, list[tuple[str, str]]] = {}
        for task, figs in figures.items():
            for fid, kind, png in figs:
                _write_atomic(fig_dir / f"{fid}.png", png)
                paths.setdefault(task, []).append((kind, f"figures/{fid}.png"))
        text = render_markdown(summary, records, paths, title=title, subtitle=subtitle)
        written["md"] = target / FILENAMES["md"]
        _write_atomic(written["md"], text.encode("utf-8"))
    if "html" in wanted:
        written["html"] = target / FILENAMES["html"]
        page = render_html(summary, records, figures, title=title, subtitle=subtitle)
        _write_atomic(written["html"], page.encode("utf-8"))
    if "json" in wanted:
        written["json"] = target / FILENAMES["json"]
        doc = {
            "title": title,
            "run_dir": str(run.resolve()),
            "generated_at": now,
            "actlab_version": __version__,
            "summary": summary.to_dict(),
            "ranking": json_safe(ranking_rows(summary)),
            "trials": json_safe([dict(r) for r in records]),
        }
        _write_atomic(written["json"], json.dumps(doc, indent=1, default=str, allow_nan=False).encode("utf-8"))
    if "csv" in wanted:
        written["csv"] = target / FILENAMES["csv"]
        rows = trial_rows(records, summary)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _csv_value(v) for k, v in r.items()} for r in rows)
        _write_atomic(written["csv"], buf.getvalue().encode("utf-8"))
    return {f: written[f] for f in wanted}


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v
