"""The command line, through ``actlab.cli.main`` and once through a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import actlab
from actlab.cli import main


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
