"""The arena report: its data (ranking rows, learning-curve bands), the four files written
atomically, the ``actlab report`` command, and the HTML page in a real headless Chromium (skipped
where Debian's chromium is absent).

``python tests/test_arena_report.py OUT.png [RUN_DIR]`` renders a report (of RUN_DIR, or of
fabricated records) and takes its screenshot, for the README."""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import json
import math
import re
import struct
import subprocess
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from _browser import chromium, chromium_command
from actlab.arena.report import (
    RANKING_COLUMNS,
    learning_curves,
    ranking_rows,
    trial_rows,
    write_report,
)
from actlab.arena.stats import summarize
from test_arena_stats import fake_records

pytest.importorskip("matplotlib")

SUITE = {
    "relu": 0.90,
    "leaky_relu": 0.905,
    "elu": 0.91,
    "selu": 0.895,
    "gelu": 0.925,
    "silu": 0.92,
    "mish": 0.922,
    "tanh": 0.87,
    "sigmoid": 0.72,
}


def example_records() -> list[dict]:
    """Two tasks, 3 seeds (the default suite's shape): one divergence, one failure."""
    acc = fake_records(SUITE, seeds=range(3), noise=0.006, diverged={"selu": [1]}, failed={"tanh": [2]})
    mse = fake_records(
        {k: 0.02 + 0.1 * (0.93 - v) for k, v in SUITE.items()},
        seeds=range(3),
        task="sine",
        metric="mse",
        higher_is_better=False,
        noise=0.001,
        seed_spread=0.002,
        rng_seed=3,
    )
    return acc + mse


@pytest.fixture(scope="module")
def records():
    return example_records()


@pytest.fixture(scope="module")
def report(tmp_path_factory, records):
    run = tmp_path_factory.mktemp("run")
    return write_report(run, records=records)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


# ----------------------------------------------------------------------------- data
def test_ranking_rows(records):
    s = summarize(records)
    rows = ranking_rows(s)
    assert len(rows) == sum(len(t.arms) for t in s.tasks) == 18
    for r in rows:
        assert set(RANKING_COLUMNS) <= set(r)
    spirals = [r for r in rows if r["task"] == "spirals"]
    assert [r["rank"] for r in spirals] == list(range(1, 10))
    assert spirals[0]["activation"] == "gelu"
    by = {r["activation"]: r for r in spirals}
    assert by["relu"]["verdict"] == "baseline" and by["relu"]["p_holm"] is None
    assert by["selu"]["diverged"] == 1 and by["selu"]["n"] == "2/3" and "diverged 1/3" in by["selu"]["verdict"]
    assert by["tanh"]["failed"] == 1 and by["tanh"]["n"] == "2/3"
    assert by["gelu"]["test"] == "paired t" and 0 < by["gelu"]["p"] <= by["gelu"]["p_holm"] <= 1
    assert by["gelu"]["mean_ci"].startswith(f"{by['gelu']['mean']:.4g} [")
    sine = [r for r in rows if r["task"] == "sine"]
    assert sine[0]["activation"] == "gelu"  # lowest mse first
    json.dumps(rows, allow_nan=False)


def test_learning_curve_bands_are_mean_and_range_over_seeds(records):
    s = summarize(records)
    curves = {c.label: c for c in learning_curves(records, s)["spirals"]}
    assert list(curves) == [a.label for a in s.task("spirals").arms]
    relu = [
        r["result"]["curve"]
        for r in records
        if r["config"]["activation"] == "relu" and r["config"]["task"] == "spirals"
    ]
    at3 = [c[2]["val_metric"] for c in relu]
    c = curves["relu"]
    assert c.epochs.tolist() == list(range(1, 9))
    assert c.metric_mean[2] == pytest.approx(np.mean(at3))
    assert (c.metric_low[2], c.metric_high[2]) == pytest.approx((min(at3), max(at3)))
    assert c.n_seeds.tolist() == [3] * 8
    # selu diverged at seed 1 after 4 epochs (NaN loss at its last epoch): fewer seeds later on
    selu = curves["selu"]
    assert selu.n_seeds.tolist() == [3] * 4 + [2] * 4
    assert np.all(np.isfinite(selu.loss_mean))  # the NaN loss is left out, not propagated


def test_trial_rows_one_per_trial(records):
    rows = trial_rows(records, summarize(records))
    assert len(rows) == len(records)
    assert {"key", "task", "arm", "seed", "status", "final_metric", "config.lr", "config.task_params"} <= set(rows[0])
    assert sum(r["status"] == "diverged" for r in rows) == 1 and sum(r["status"] == "failed" for r in rows) == 1


# ----------------------------------------------------------------------------- files
def test_files_written_atomically(report, records):
    assert sorted(report) == ["csv", "html", "json", "md"]
    folder = report["html"].parent
    assert folder.name == "report"
    assert not [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    for path in report.values():
        assert path.stat().st_size > 0
        assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    assert len(list((folder / "figures").glob("*.png"))) == 6


def test_html_is_self_contained_with_every_figure(report, records):
    text = report["html"].read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.I)
    assert not re.search(r"<link\b", text, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, re.I)
    images = re.findall(r'<img class="figure" id="([^"]+)"[^>]*src="data:image/png;base64,([^"]+)"', text)
    assert [i for i, _ in images] == [
        f"{t}-{kind}" for t in ("sine", "spirals") for kind in ("final", "curves", "health")
    ]
    for _, data in images:
        w, h = _png_size(base64.b64decode(data))
        assert w > 300 and h > 150
    s = summarize(records)
    for task in s.tasks:
        assert html.escape(task.headline) in text
        for a in task.arms:
            assert f'<td class="name">{html.escape(a.label)}</td>' in text
            if a.ci_low is not None:
                assert f"[{a.ci_low:.4g}, {a.ci_high:.4g}]" in text
    assert "Holm" in text and "Wilcoxon" in text  # the method section


def test_markdown_json_csv(report, records):
    md = report["md"].read_text(encoding="utf-8")
    s = summarize(records)
    assert md.count("## ") == len(s.tasks) + 1
    for a in s.task("spirals").arms:
        assert f"| {a.label} |" in md
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (report["md"].parent / link).is_file()
    doc = json.loads(report["json"].read_text(encoding="utf-8"))
    assert doc["summary"] == json.loads(json.dumps(s.to_dict()))
    assert len(doc["trials"]) == len(records) and doc["trials"][0]["result"]["curve"]
    with report["csv"].open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(records)
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(math.isfinite(float(r["final_metric"])) for r in ok)


def test_formats_and_bad_input(tmp_path):
    records = fake_records({"relu": 0.9, "gelu": 0.92}, seeds=range(2))
    paths = write_report(tmp_path, formats="html", records=records)
    assert list(paths) == ["html"] and not (tmp_path / "report" / "report.md").exists()
    paths = write_report(tmp_path, formats=["json", "csv"], records=records, out_dir=tmp_path / "x")
    assert sorted(p.name for p in paths.values()) == ["report.json", "trials.csv"]
    with pytest.raises(ValueError, match=r"formats: unknown format 'pdf'; allowed: html, md, json, csv, all"):
        write_report(tmp_path / "new", formats="html,pdf", records=records)
    with pytest.raises(ValueError, match="no finished trials"):
        write_report(tmp_path / "new", records=[])
    assert not (tmp_path / "new").exists()  # nothing written


def test_degenerate_runs_still_report(tmp_path):
    # every trial of a task failed; a single arm; a single seed; a single epoch
    failed = fake_records({"relu": 0.9, "gelu": 0.9}, seeds=(0,), failed={"relu": [0], "gelu": [0]})
    alone = fake_records({"elu": 0.8}, seeds=(0,), task="sine", epochs=1)
    paths = write_report(tmp_path, formats="all", records=failed + alone)
    s = summarize(failed + alone)
    assert s.task("spirals").arms[0].mean is None and s.task("spirals").metric is None
    assert "No relu arm" in s.task("sine").headline
    assert "not tested" in ranking_rows(s)[0]["verdict"]
    text = paths["html"].read_text()
    assert text.count('<img class="figure"') == 6
    assert json.loads(paths["json"].read_text())["summary"]["tasks"][0]["arms"][0]["mean"] == pytest.approx(
        0.8, abs=0.1
    )


def test_renderers_draw_on_given_axes(records):
    from matplotlib.figure import Figure

    from actlab.arena._report_figures import arm_colors, plot_health, plot_strip

    task = summarize(records).task("spirals")
    colors = arm_colors([a.label for a in task.arms])
    fig = Figure()
    ax = fig.subplots()
    assert plot_strip(task, colors, ax=ax) is fig
    assert len(ax.collections) >= len(task.arms)
    fig2 = Figure()
    axs = fig2.subplots(1, 4, sharey=True)
    assert plot_health(task, colors, ax=axs) is fig2
    assert [t.get_text() for t in axs[0].get_yticklabels()][0] == task.arms[0].label


# ----------------------------------------------------------------------------- a crafted store
EVIL = "<img src=x onerror=alert(1)>"
EVIL_ARMS = {"relu": 0.9, EVIL: 0.92, "[x](javascript:alert(1)) | *y* $\\undefined$": 0.91}


class _Tags(HTMLParser):
    """Every element with its attributes, and the text content (entities decoded), of an HTML text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _crafted_store(run: Path) -> list[dict]:
    store = pytest.importorskip("actlab.arena.store")
    records = fake_records(EVIL_ARMS, seeds=range(2), task=EVIL)
    with store.ArenaStore(run) as db:
        for r in records:
            db.put(r["config"], r["result"], worker="w0")
        db.set_meta("plan", {"suite": {"name": EVIL, "activations": list(EVIL_ARMS), "tasks": [EVIL], "seeds": [0, 1]}})
    return records


def _no_active_content(tags: list[tuple[str, dict]]) -> None:
    for tag, attrs in tags:
        assert tag not in ("script", "style", "iframe", "object", "embed", "svg", "form"), (tag, attrs)
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        if tag == "a":
            assert str(attrs.get("href")).startswith("#"), attrs
        if tag == "img":
            assert str(attrs.get("src")).startswith(("figures/", "data:image/png;base64,")), attrs


MARKDOWN_TAGS = {"h1", "h2", "p", "em", "strong", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "img"}


def test_a_crafted_store_renders_as_text_in_markdown_and_html(tmp_path):
    markdown_it = pytest.importorskip("markdown_it")
    _crafted_store(tmp_path)
    paths = write_report(tmp_path, formats="md,html")
    md = paths["md"].read_text(encoding="utf-8")
    assert "<img" not in md and "<script" not in md
    # what a Markdown viewer (CommonMark with GitHub's tables) makes of it: text, no element from the store
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(md)
    tags = _Tags(rendered)
    _no_active_content(tags.tags)
    assert {t for t, _ in tags.tags} <= MARKDOWN_TAGS
    assert len([1 for t, _ in tags.tags if t == "img"]) == 3  # the three figures, nothing else
    text = "".join(tags.text)
    h1 = rendered.split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert html.unescape(h1).startswith(f"Arena report: {EVIL} (")  # the suite's name from the stored plan
    for label in EVIL_ARMS:
        assert label in text  # each name as the characters it is
    cells = re.findall(r"<td>(.*?)</td>", rendered)
    assert {html.unescape(c) for c in cells} >= set(EVIL_ARMS)
    page = paths["html"].read_text(encoding="utf-8")
    tags = _Tags(page)
    own = [t for t, _ in tags.tags if t in ("script", "style")]
    assert own == ["style", "script"]  # the page's own inline CSS and state script, nothing from the store
    _no_active_content([(t, a) for t, a in tags.tags if t not in ("script", "style")])
    assert f"<h1>{html.escape(f'Arena report: {EVIL}')}" in page
    text = "".join(tags.text)
    for label in EVIL_ARMS:
        assert f'<td class="name">{html.escape(label)}</td>' in page and label in text


# ----------------------------------------------------------------------------- titles and labels
def _store_with_plan(run: Path, suite) -> list[dict]:
    store = pytest.importorskip("actlab.arena.store")
    records = fake_records({a: 0.9 for a in suite.activations}, seeds=suite.seeds, task=suite.tasks[0])
    with store.ArenaStore(run) as db:
        for r in records:
            db.put(r["config"], r["result"], worker="w0")
        db.set_meta("plan", {"suite": suite.to_dict(), "keys": []})
    return records


def test_titles_say_what_was_run(tmp_path, capsys):
    from actlab.arena.config import load_suite, with_overrides
    from actlab.cli import main

    custom = with_overrides(load_suite("default"), activations=["relu", "gelu"], tasks=["spirals"], seeds=2)
    what = "custom run (relu, gelu on spirals; 2 seeds; from the default suite)"
    _store_with_plan(tmp_path / "custom", custom)
    assert main(["report", str(tmp_path / "custom"), "--format", "md,html,json"]) == 0
    out = capsys.readouterr().out
    assert f"{what}: ranking (4 trials" in out.replace("\n", " ")  # the terminal table's title
    folder = tmp_path / "custom" / "report"
    assert (folder / "report.md").read_text().startswith(f"# Arena report: {what}\n")
    page = (folder / "report.html").read_text()
    assert f"<title>Arena report: {what}</title>" in page and f"<h1>Arena report: {what}</h1>" in page
    assert json.loads((folder / "report.json").read_text())["title"] == f"Arena report: {what}"
    # the shipped suite as it is keeps its name; a suite file's name comes with what it ran
    _store_with_plan(tmp_path / "default", load_suite("default"))
    doc = json.loads(write_report(tmp_path / "default", formats="json")["json"].read_text())
    assert doc["title"] == "Arena report: default"
    mine = dataclasses.replace(with_overrides(load_suite("default"), tasks=["digits"]), name="mine")
    _store_with_plan(tmp_path / "mine", mine)
    doc = json.loads(write_report(tmp_path / "mine", formats="json")["json"].read_text())
    assert doc["title"] == "Arena report: mine (9 activations on digits; 3 seeds)"


def test_the_arena_ranking_is_titled_from_the_plan(tmp_path):
    from actlab.arena.cli import _print_ranking
    from actlab.arena.config import load_suite, with_overrides
    from actlab.arena.runner import plan_trials

    suite = with_overrides(load_suite("default"), activations=["relu", "tanh"], tasks=["spirals"], seeds=2)
    _store_with_plan(tmp_path, suite)
    out, err = io.StringIO(), io.StringIO()
    args = types.SimpleNamespace(format="md", no_report=True)
    assert _print_ranking(plan_trials(suite), tmp_path, args, out, err) == 0
    first = out.getvalue().splitlines()[0]
    assert "arena custom run (relu, tanh on spirals; 2 seeds; from the default suite)" in first
    assert "arena default" not in out.getvalue()


def test_peak_memory_is_labelled_as_what_the_trial_recorded(records):
    from matplotlib.figure import Figure

    from actlab.arena._report_figures import PEAK_MEMORY_LABEL, arm_colors, plot_health
    from actlab.arena.report import render_markdown

    task = summarize(records).task("spirals")
    fig = Figure()
    axs = fig.subplots(1, 4, sharey=True)
    plot_health(task, arm_colors([a.label for a in task.arms]), ax=axs)
    assert axs[3].get_title() == PEAK_MEMORY_LABEL == "recorded peak memory (MiB)"
    figures = {"spirals": [("health", "figures/spirals-health.png")]}
    md = render_markdown(summarize(records), records, figures)
    assert "Memory (MiB): its peak_memory_bytes, a high-water mark whose scope the trials did not record." in md
    # the trial says what it measured (actlab.arena.trial's peak_memory_scope): the caption says it in its words
    scoped = [dict(r, result=dict(r["result"])) for r in records]
    for r in scoped:
        r["result"]["peak_memory_scope"] = "peak RSS of the process during this trial <reset at its start>"
    md = render_markdown(summarize(scoped), scoped, figures)
    assert "Memory (MiB): peak RSS of the process during this trial &lt;reset at its start&gt;." in md


def test_method_section_says_how_intervals_keep_in_range(records):
    from actlab.arena.report import render_html, render_markdown

    s = summarize(records)
    rule = "the t interval is cut at the range (accuracy [0, 1], mse [0, ∞))"
    md = render_markdown(s, records)
    method = md.split("## Method", 1)[1]
    assert rule.replace("[", "\\[").replace("]", "\\]") in method  # literal brackets in Markdown
    assert rule in render_html(s, records, {}).split('id="method"', 1)[1]
    assert "keeps the 95 % coverage" in method


# ----------------------------------------------------------------------------- command line
@pytest.fixture
def fake_store(monkeypatch):
    """``actlab.arena.store.read_records`` returning fabricated records (three arms: quick figures)."""
    records = fake_records({"relu": 0.9, "gelu": 0.92, "tanh": 0.85}, seeds=range(3))
    try:
        import actlab.arena.store as store
    except ImportError:
        store = types.ModuleType("actlab.arena.store")
        monkeypatch.setitem(sys.modules, "actlab.arena.store", store)
    monkeypatch.setattr(store, "read_records", lambda run_dir: list(records), raising=False)
    return store


def test_cli_report(tmp_path, fake_store, capsys):
    from actlab.cli import main

    assert main(["report", str(tmp_path), "--format", "md,json", "--table", "md"]) == 0
    out = capsys.readouterr().out
    assert "| task | # | activation |" in out and "| spirals | 1 | gelu |" in out
    assert (tmp_path / "report" / "report.md").is_file() and (tmp_path / "report" / "report.json").is_file()
    assert not (tmp_path / "report" / "report.html").exists()
    assert main(["report", str(tmp_path), "--format", "json", "-o", str(tmp_path / "o"), "--baseline", "none"]) == 0
    out = capsys.readouterr().out
    assert "No baseline chosen" in out and str(tmp_path / "o" / "report.json") in out


def test_cli_report_bad_input(tmp_path, fake_store, capsys):
    from actlab.cli import main

    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path), "--format", "pdf"])
    assert "unknown format 'pdf'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path), "--alpha", "2"])
    assert "must be a number in (0, 1), got '2'" in capsys.readouterr().err
    fake_store.read_records = lambda run_dir: []
    assert main(["report", str(tmp_path)]) == 2
    assert "no finished trials" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_cli_report_reads_the_real_store(tmp_path, records, capsys):
    store = pytest.importorskip("actlab.arena.store")
    from actlab.cli import main

    with store.ArenaStore(tmp_path) as db:
        for r in records:
            db.put(r["config"], r["result"], worker="w0")
    assert main(["report", str(tmp_path), "--format", "json,csv", "--table", "none"]) == 0
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(doc["trials"]) == len(records)
    assert doc["summary"] == json.loads(json.dumps(summarize(records).to_dict()))
    # a foreign file where the store should be is refused and left as it was
    other = tmp_path / "foreign"
    other.mkdir()
    (other / "arena.sqlite").write_bytes(b"not a database at all")
    assert main(["report", str(other)]) == 2
    assert "not an SQLite database" in capsys.readouterr().err
    assert (other / "arena.sqlite").read_bytes() == b"not a database at all"
    assert not (other / "report").exists()
    assert main(["report", str(tmp_path / "foreign" / ".."), "--format", "csv"]) == 0  # the first run, another path


def test_report_cli_parser_imports_nothing_heavy():
    code = (
        "import sys, argparse; from actlab.arena import report_cli; p = argparse.ArgumentParser(); "
        "report_cli.add_arguments(p); print(sorted(m for m in ('torch', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- real Chromium
def dump_state(page: Path, profile: Path) -> dict:
    exe = chromium()
    r = subprocess.run(
        [*chromium_command(exe, profile), "--window-size=1280,1000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
    )
    m = re.search(r'<pre id="state" hidden="">(.*?)</pre>', r.stdout, re.S)
    assert m, f"no state in the dumped DOM (rc {r.returncode}): {r.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


def screenshot(page: Path, png: Path, profile: Path, size: str = "1280,1700") -> Path:
    exe = chromium()
    subprocess.run(
        [*chromium_command(exe, profile), f"--screenshot={png}", f"--window-size={size}", page.resolve().as_uri()],
        capture_output=True,
        timeout=90,
    )
    return png


def test_chromium_every_figure_shown_no_errors(report, records, tmp_path):
    state = dump_state(report["html"], tmp_path / "profile")
    assert state["ready"] is True
    assert state["errors"] == []
    assert len(state["figures"]) == 6
    for f in state["figures"]:
        assert f["complete"] and f["natural_width"] > 300 and f["natural_height"] > 150, f
        assert f["shown_width"] > 300 and f["shown_height"] > 100, f
    assert state["table_rows"] == 18


def test_chromium_screenshot(report, tmp_path):
    png = screenshot(report["html"], tmp_path / "shot.png", tmp_path / "p")
    assert png.is_file()
    assert _png_size(png.read_bytes()) == (1280, 1700)
    assert png.stat().st_size > 50_000


if __name__ == "__main__":  # python tests/test_arena_report.py OUT.png [RUN_DIR]: the README's screenshot
    import tempfile

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/arena-report.png").resolve()
    with tempfile.TemporaryDirectory() as d:
        if len(sys.argv) > 2:
            paths = write_report(sys.argv[2], formats="html", out_dir=d)
        else:
            paths = write_report(Path(d) / "example-run", formats="html", records=example_records())
        screenshot(paths["html"], out, Path(d) / "profile")
    print(out)
