"""actlab reproduce: discovery, the verdict rule, each experiment's record at --scale tiny, the CLI.

Each experiment runs once per session at tiny scale (module fixture); the tests read its record and
check that the verdict follows the stated rule from the measured numbers (not which verdict it is).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from actlab.cli import main  # noqa: E402
from actlab.experiments import UnknownExperimentError, experiment_names, experiments, get_experiment  # noqa: E402
from actlab.experiments._base import Rule, run_experiment  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "actlab" / "experiments"
RECORD_KEYS = {"name", "claim", "source", "rule", "published", "measured", "interval", "verdict", "runtime_s", "config"}
VERDICTS = {"reproduced", "not reproduced", "inconclusive"}
# Student's t 97.5 % quantiles (tables), to recompute the intervals without scipy.
T975 = {2: 12.706204736174698, 3: 4.302652729911275, 4: 3.182446305284263}


def _module_names() -> set[str]:
    return {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_") and p.stem != "cli"}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("reproduce")
    return {name: run_experiment(exp, "tiny", out_dir=out, quiet=True) for name, exp in experiments().items()} | {
        "_dir": str(out)
    }


def test_discovery_finds_every_module():
    # module file names with '_' are experiment names with '-'
    assert set(experiment_names()) == {m.replace("_", "-") for m in _module_names()}
    assert len(experiment_names()) >= 6


def test_unknown_name_is_refused_with_suggestions(capsys):
    with pytest.raises(UnknownExperimentError, match="did you mean 'vanishing'"):
        get_experiment("vanishin")
    assert main(["reproduce", "selu-jacobian", "--scale", "tiny", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'selu-jacobian'" in err and "'selu'" in err
    assert main(["reproduce"]) == 2 and "--all" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("rule", "low", "high", "n", "expected"),
    [
        (Rule("above", 0.0), 0.01, 0.2, 3, "reproduced"),
        (Rule("above", 0.0), -0.2, -0.01, 3, "not reproduced"),
        (Rule("above", 0.0), -0.01, 0.2, 3, "inconclusive"),
        (Rule("above", 0.0), 0.01, 0.2, 2, "inconclusive"),  # too few seeds
        (Rule("above", 0.0), 0.0, 0.0, 5, "inconclusive"),  # on the boundary
        (Rule("below", -1.0), -2.0, -1.5, 3, "reproduced"),
        (Rule("below", -1.0), -0.5, 0.5, 3, "not reproduced"),
        (Rule("within", 0.7877, tolerance=5e-4, min_seeds=1), 0.78767, 0.78767, 1, "reproduced"),
        (Rule("within", 0.7877, tolerance=5e-4, min_seeds=1), 0.70, 0.75, 1, "not reproduced"),
        (Rule("within", 0.7877, tolerance=5e-4, min_seeds=1), 0.787, 0.80, 1, "inconclusive"),
        (Rule("above", 0.0), math.nan, math.nan, 3, "inconclusive"),
    ],
)
def test_rule_decides_constructed_cases(rule, low, high, n, expected):
    assert rule.decide(low, high, n) == expected


def _expected_verdict(spec: dict, interval: list, n: int) -> str:
    """An independent reading of the rule: where the interval lies relative to the boundary."""
    low, high = interval
    if low is None or high is None or n < spec["min_seeds"]:
        return "inconclusive"
    t, tol = spec["threshold"], spec["tolerance"]
    if spec["kind"] == "within":
        edges = (t - tol, t + tol)
        if edges[0] <= low and high <= edges[1]:
            return "reproduced"
        return "not reproduced" if high < edges[0] or low > edges[1] else "inconclusive"
    wholly_above, wholly_below = low > t, high < t
    if spec["kind"] == "above":
        return "reproduced" if wholly_above else "not reproduced" if wholly_below else "inconclusive"
    return "reproduced" if wholly_below else "not reproduced" if wholly_above else "inconclusive"


@pytest.mark.parametrize("name", experiment_names())
def test_record_structure_and_verdict_follow_the_rule(records, name):
    rec = records[name]
    assert RECORD_KEYS <= set(rec)
    assert rec["name"] == name and rec["verdict"] in VERDICTS
    assert rec["runtime_s"] > 0 and rec["claim"] and rec["source"] and rec["published"]
    config = rec["config"]
    assert config["scale"] == "tiny" and config["seeds"] == list(range(get_experiment(name).scales["tiny"]["seeds"]))
    assert config["arms"] and all({"init", "lr"} <= set(arm) for arm in config["arms"].values())
    png = Path(rec["figure"])
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    verdicts = []
    for check in rec["checks"]:
        samples = [v for v in check["samples"] if v is not None and math.isfinite(v)]
        assert check["n"] == len(samples)
        assert check["key"] in rec["rule"] and f"{check['rule_spec']['threshold']:g}" in check["rule"]
        if samples:
            assert check["measured"] == pytest.approx(statistics.fmean(samples), abs=1e-12)
        if len(samples) in T975 and statistics.stdev(samples) > 0:  # recompute the t interval
            half = T975[len(samples)] * statistics.stdev(samples) / math.sqrt(len(samples))
            assert check["interval"] == pytest.approx([check["measured"] - half, check["measured"] + half], rel=1e-9)
        expected = _expected_verdict(check["rule_spec"], check["interval"], check["n"])
        assert check["verdict"] == expected, check
        verdicts.append(expected)
    # the headline is the first check; the experiment's verdict combines the checks as its rule says
    assert rec["measured"] == rec["checks"][0]["measured"] and rec["interval"] == rec["checks"][0]["interval"]
    if all(v == "reproduced" for v in verdicts):
        assert rec["verdict"] == "reproduced"
    elif "not reproduced" in verdicts:
        assert rec["verdict"] == "not reproduced"
    else:
        assert rec["verdict"] == "inconclusive"
    on_disk = json.loads((Path(records["_dir"]) / name / "record.json").read_text())
    assert on_disk == rec


def test_json_format_keys_and_record_reuse(records, capsys):
    argv = ["reproduce", "selu", "vanishing", "--scale", "tiny", "-o", records["_dir"], "--format", "json", "--quiet"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in out] == ["selu", "vanishing"]
    for r in out:
        assert RECORD_KEYS <= set(r)
        # finished before with the same configuration: the stored record, not a new run
        assert r["runtime_s"] == records[r["name"]]["runtime_s"]


def test_table_and_md_show_the_rule(records, capsys):
    assert main(["reproduce", "selu", "--scale", "tiny", "-o", records["_dir"], "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "rule: reproduced if the 95% interval lies within 0.7877" in table
    assert all(len(line) <= 100 for line in table.splitlines())
    assert main(["reproduce", "selu", "--scale", "tiny", "-o", records["_dir"], "--quiet", "--format", "md"]) == 0
    assert "| `selu` |" in capsys.readouterr().out


def test_arena_experiment_resumes_from_its_store(records):
    from actlab.arena.store import read_records

    run_dir = Path(records["_dir"]) / "init-depth" / "arena"
    before = {r["key"]: r["finished_at"] for r in read_records(run_dir)}
    rec = run_experiment(get_experiment("init-depth"), "tiny", out_dir=records["_dir"], quiet=True, reuse=False)
    after = {r["key"]: r["finished_at"] for r in read_records(run_dir)}
    assert after == before  # every trial came from the store, none trained again
    assert rec["checks"] == records["init-depth"]["checks"]


def test_same_seeds_same_numbers(tmp_path, records):
    again = run_experiment(get_experiment("selu"), "tiny", out_dir=tmp_path, quiet=True)
    assert again["checks"] == records["selu"]["checks"]


def test_listing_the_experiments_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; from actlab.experiments import experiment_names; from actlab.cli import build_parser; "
        "build_parser(); print(len(experiment_names()), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(_module_names())), "False"]


def test_bad_flags_are_refused(capsys):
    assert main(["reproduce", "selu", "--all"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["reproduce", "selu", "--seeds", "0"]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_all_writes_one_html_page(records, capsys):
    assert main(["reproduce", "--all", "--scale", "tiny", "-o", records["_dir"], "--quiet", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in out] == experiment_names()
    page = (Path(records["_dir"]) / "index.html").read_text()
    for name in experiment_names():
        assert f'id="{name}"' in page and f'id="fig-{name}"' in page
    assert page.count("data:image/png;base64,") == len(experiment_names())
    assert "<script" not in page and "'as much as 40% of your network can be dead'" not in page  # text is escaped


def test_an_experiment_that_cannot_finish_is_reported_plainly(records, monkeypatch, capsys):
    from actlab.experiments import _base

    def unfinished(exp, **kw):
        raise RuntimeError("2 trial(s) did not finish (interrupted); run the same command again to resume")

    monkeypatch.setattr(_base, "run_experiment", unfinished)
    assert main(["reproduce", "init-depth", "--scale", "tiny", "-o", records["_dir"], "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("actlab reproduce: init-depth: 2 trial(s) did not finish") and "Traceback" not in err


def test_a_changed_rule_is_not_answered_from_an_old_record(records, tmp_path):
    import shutil
    from dataclasses import replace

    shutil.copytree(Path(records["_dir"]) / "selu", tmp_path / "selu")
    exp = get_experiment("selu")
    checks = (replace(exp.checks[0], rule=Rule("within", 0.7877, tolerance=1e-4, min_seeds=1)), *exp.checks[1:])
    rec = run_experiment(replace(exp, checks=checks), "tiny", out_dir=tmp_path, quiet=True)
    assert "0.7877 ± 0.0001" in rec["rule"] and rec["runtime_s"] != records["selu"]["runtime_s"]
