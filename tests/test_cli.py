"""The command line, through ``actlab.cli.main`` and once through a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import actlab
from actlab.cli import main

SRC = str(Path(actlab.__file__).resolve().parents[1])  # this checkout's actlab for subprocesses in other folders


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_formats_are_generated_from_the_registry(capsys):
    code, out, _ = run(capsys, "list", "--format", "json")
    assert code == 0
    names = [row["name"] for row in json.loads(out)]
    assert names == actlab.list_activations()
    code, out, _ = run(capsys, "list", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == names
    code, out, _ = run(capsys, "list")
    assert code == 0 and "gelu" in out and f"{len(names)} activations" in out


def test_list_family(capsys):
    family = actlab.get_spec("tanh").family
    code, out, _ = run(capsys, "list", "--family", family, "--format", "json")
    assert {r["family"] for r in json.loads(out)} == {family}
    code, _, err = run(capsys, "list", "--family", "no_such_family")
    assert code == 2 and "families" in err


def test_show(capsys):
    code, out, _ = run(capsys, "show", "leaky_relu")
    assert code == 0
    for word in ("negative_slope", "allowed", "kinks", "pytorch", "values"):
        assert word in out
    code, out, _ = run(capsys, "show", "gelu", "--format", "json")
    info = json.loads(out)
    assert info["name"] == "gelu" and "erfc" in info["formula"]


def test_unknown_name_exit_code(capsys):
    code, _, err = run(capsys, "show", "gleu")
    assert code == 2 and "did you mean 'gelu'" in err


def test_accuracy_small(capsys):
    code, out, _ = run(capsys, "accuracy", "tanh", "--size", "500", "--format", "json", "--jobs", "1")
    rows = json.loads(out)
    assert code == 0 and [r["dtype"] for r in rows] == ["float32", "float64"]
    assert all(r["passed"] for r in rows) and rows[0]["torch_forward_ulps"] is not None


def test_accuracy_in_half_precision(capsys, monkeypatch):
    argv = ("accuracy", "quick_gelu", "--dtype", "half", "--format", "json", "--jobs", "1", "--quiet")
    code, out, _ = run(capsys, *argv)
    rows = json.loads(out)
    assert code == 0 and [r["dtype"] for r in rows] == ["bfloat16", "float16"]
    assert all(r["passed"] and r["points"] > 100 for r in rows)
    # Half precision computed without the float32 upcast: the command reports it and fails.
    from actlab.ops.torch_ops import TORCH
    from actlab.torch import functional, kernels

    monkeypatch.setattr(functional, "_compute", lambda fn, x, params: fn(x, TORCH, **params))
    monkeypatch.setattr(kernels, "_enabled", False)  # the eager path, where the upcast was removed
    code, out, _ = run(capsys, "accuracy", "quick_gelu", "--dtype", "bfloat16", "--format", "json", "--jobs", "1")
    assert code == 1 and not json.loads(out)[0]["passed"]


def test_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "actlab", "show", "relu"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("relu")


def test_import_needs_numpy_only():
    code = (
        "import sys, actlab; actlab.get('gelu'); "
        "heavy = [m for m in ('torch', 'sympy', 'mpmath', 'scipy', 'matplotlib', 'rich') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_missing_extra_names_the_install(monkeypatch):
    import builtins
    import importlib

    from actlab.ops import _lazy

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", lambda name: fake_import(name))
    try:
        _lazy.require("matplotlib.pyplot", "plots")
    except ImportError as err:
        assert "pip install 'actlab[plot]'" in str(err)
    else:
        raise AssertionError("no ImportError")


# ----------------------------------------------------------------------------- tables that fit
_RANKING_LIKE = [
    {
        "task": "checkerboard",
        "rank": 1,
        "activation": "leaky_relu(negative_slope=0.2) [init=he]",
        "n": "3/3",
        "mean_ci": "0.9467 [0.9216, 0.9718]",
        "mean_rank": 2.17,
        "diverged": 0,
        "test": "paired t",
        "p_holm": 0.00958,
        "verdict": "no significant difference",
    },
    {
        "task": "digits",
        "rank": 2,
        "activation": "relu [init=auto]",
        "n": "3/3",
        "mean_ci": "0.8817 [0.7377, 0.9905]",
        "mean_rank": 5.67,
        "diverged": 12,
        "test": "Wilcoxon",
        "p_holm": 0.872,
        "verdict": "baseline",
    },
]
_RANKING_HEADERS = {
    "rank": "#",
    "n": "seeds",
    "mean_ci": "mean [95 % CI]",
    "mean_rank": "mean rank",
    "p_holm": "p (Holm)",
}
_NUMBERS = ("0.9467", "0.9216", "0.9718", "0.8817", "0.7377", "0.9905", "2.17", "5.67", "0.00958", "0.872", "12", "3/3")


@pytest.mark.parametrize("width", [100, 80])
def test_a_table_fits_the_width_without_splitting_a_number(width):
    """The ranking needed 162 columns: at 100 it folded words, at 80 it split numbers across lines."""
    from actlab.cli import _render

    out = _render(
        _RANKING_LIKE, list(_RANKING_LIKE[0]), "table", title="ranking", headers=_RANKING_HEADERS, width=width
    )
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= width, out
    for number in _NUMBERS:  # each number whole on one line, not cut at a column edge
        assert any(re.search(rf"(?<![\d./]){re.escape(number)}(?![\d/])", line) for line in lines), (number, out)
    if width == 100:  # room enough for the labels' words: markup-like text printed literally, whole
        assert "[init=he]" in out and "[init=auto]" in out and "significant" in out, out


def test_a_narrow_table_folds_long_words_but_never_a_number():
    from actlab.cli import _render

    rows = [{"name": "an_unusually_long_identifier", "value": "123456.789012", "note": "incomprehensibilities x"}]
    out = _render(rows, ["name", "value", "note"], "table", width=40)
    assert max(len(line) for line in out.splitlines()) <= 40 and "123456.789012" in out, out


def test_wide_tables_keep_their_natural_width():
    from actlab.render import render

    out = render(_RANKING_LIKE, list(_RANKING_LIKE[0]), "table", headers=_RANKING_HEADERS, wide=True)
    assert max(len(line) for line in out.splitlines()) > 100
    assert "leaky_relu(negative_slope=0.2) [init=he]" in out and "no significant difference" in out


def test_command_tables_fit_100_columns_unless_wide(capsys):
    argv = ["props", "relu", "leaky_relu(negative_slope=0.2)", "gelu", "elu"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 100, out
    code, out, _ = run(capsys, *argv, "--wide")
    assert code == 0 and "leaky_relu(negative_slope=0.2)" in out and max(map(len, out.splitlines())) > 100


def test_the_renderer_lives_below_the_command_line():
    """Subsystems render tables without importing actlab.cli (which imports every subcommand)."""
    code = (
        "import sys; from actlab.render import render; "
        "render([{'a': 1}], ['a'], 'table'); print('actlab.cli' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_accuracy_shows_progress_whatever_the_format(capsys):
    """`actlab accuracy --format md` ran for minutes without a word: progress goes to stderr in every format."""
    code, out, err = run(capsys, "accuracy", "tanh", "--size", "200", "--format", "md", "--jobs", "1")
    assert code == 0 and out.startswith("**accuracy")
    assert re.findall(r"^\[(\d)/2\] tanh float(32|64)", err, re.M) == [("1", "32"), ("2", "64")], err


# ----------------------------------------------------------------------------- errors: one paragraph, what to do
def _one_paragraph(code: int, err: str) -> str:
    text = err.strip()
    assert code != 0 and re.match(r"actlab( \w+)?: ", text) and "Traceback" not in err, err
    assert "\n\n" not in text and len(text) < 600, err
    return text


_FACTORIES = """
import torch

def raises():
    raise RuntimeError("no weights in this folder")

def needs(width):
    return torch.nn.Linear(width, width)
"""


@pytest.mark.parametrize(
    "case",
    [
        "out is a file",
        "unreachable ray://",
        "factory raises",
        "factory needs arguments",
        "plot into a missing folder",
        "a path it cannot write",
        "unexpected error",
    ],
)
def test_error_paths_say_what_to_do_without_a_traceback(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    arena = ["arena", "--activations", "relu", "--tasks", "spirals", "--seeds", "1", "--budget", "1"]
    if case == "out is a file":
        (tmp_path / "notes.txt").write_text("mine\n")
        text = _one_paragraph(*run(capsys, *arena, "--out", "notes.txt")[::2])
        assert "--out notes.txt is a file; give a directory" in text
        assert (tmp_path / "notes.txt").read_text() == "mine\n"
    elif case == "unreachable ray://":
        text = _one_paragraph(*run(capsys, *arena, "--backend", "ray", "--address", "ray://127.0.0.1:1")[::2])
        assert "no Ray Client answers there" in text or "pip install 'actlab[distributed]'" in text
        assert not (tmp_path / "arena-runs").exists()
    elif case.startswith("factory"):
        pytest.importorskip("torch")
        module = f"clarity_factories_{tmp_path.name}"
        (tmp_path / f"{module}.py").write_text(_FACTORIES)
        name = "raises" if case == "factory raises" else "needs"
        text = _one_paragraph(*run(capsys, "diagnose", f"{module}:{name}")[::2])
        if name == "raises":
            assert "raised RuntimeError: no weights in this folder; fix the factory" in text, text
        else:
            assert "needs arguments" in text and "'width'" in text and "builds the model with none" in text
    elif case == "plot into a missing folder":
        text = _one_paragraph(*run(capsys, "plot", "relu", "-o", "no/such/folder/relu.png")[::2])
        assert "does not exist; create it or choose another -o" in text
    elif case == "a path it cannot write":
        import actlab.cli

        def denied(name):
            raise PermissionError(13, "Permission denied", "/srv/shared/out.csv")

        monkeypatch.setattr(actlab.cli, "props_row", denied)
        text = _one_paragraph(*run(capsys, "props", "relu")[::2])
        assert "cannot use /srv/shared/out.csv: Permission denied; check the path" in text
    else:  # whatever a command did not expect still reads as one paragraph
        import actlab.cli

        def boom(name):
            raise RuntimeError("first line\nsecond line")

        monkeypatch.setattr(actlab.cli, "props_row", boom)
        text = _one_paragraph(*run(capsys, "props", "relu")[::2])
        assert "unexpected RuntimeError: first line second line" in text and "ACTLAB_DEBUG=1" in text


# A module that is not installed, as Python sees it (sys.modules[name] = None would also break the
# libraries that only probe for it, such as SciPy's array API support).
_WITHOUT = """
import sys
from importlib.machinery import PathFinder

class Missing(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] == {missing!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Missing)
from actlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "missing, argv, extra",
    [
        ("torch", ["diagnose", "mymodels:make"], "torch"),
        ("torch", ["arena", "--activations", "relu", "--tasks", "spirals", "--seeds", "1", "--budget", "1"], "arena"),
        ("torch", ["bench", "relu"], "torch"),
        ("torch", ["kernels"], "torch"),
        ("torch", ["accuracy", "tanh", "--size", "100", "--jobs", "1"], "torch"),
        ("matplotlib", ["plot", "relu", "-o", "relu.png"], "plot"),
    ],
    ids=["diagnose", "arena", "bench", "kernels", "accuracy", "plot"],
)
def test_a_missing_extra_names_the_install_on_every_command(missing, argv, extra, tmp_path):
    """The README promises `pip install 'actlab[...]'`; commands printed "No module named 'torch'"."""
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT.format(missing=missing), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])},
    )
    text = _one_paragraph(proc.returncode, proc.stderr)
    assert f"pip install 'actlab[{extra}]'" in text, text
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("topic", ["lstm", "watch"])
def test_the_recurrent_and_watch_benches_show_progress_whatever_the_format(topic, capsys):
    pytest.importorskip("torch")
    if topic == "lstm":
        argv = ["bench", "lstm", "--seq", "3", "--batch", "2", "--input-size", "4", "--hidden", "4"]
        argv += ["--repeats", "2", "--warmup", "1", "--variant", "LSTM cifg"]
        expected = [f"actlab bench lstm: round {i}/3" for i in (1, 2, 3)]
    else:
        argv = ["bench", "watch", "--models", "mlp", "--steps", "1", "--repeats", "2"]
        expected = [f"actlab bench watch: mlp: {i}/2 timed pairs" for i in (1, 2)]
    code, out, err = run(capsys, *argv, "--format", "md")
    assert code == 0 and out.startswith("**") and "actlab bench" not in out
    lines = err.splitlines()
    assert len(lines) == len(expected) and all(line.startswith(e) for line, e in zip(lines, expected)), err
    code, _, err = run(capsys, *argv, "--format", "md", "--quiet")
    assert code == 0 and err == ""
