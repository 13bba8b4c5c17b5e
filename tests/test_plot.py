"""Plots: the data objects numerically, the renderers structurally, and the CLI commands
``plot``, ``props`` and ``gallery``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import actlab.analysis as aa  # noqa: E402
from actlab.cli import main  # noqa: E402
from actlab.plot import (  # noqa: E402
    curve_data,
    meanfield_data,
    moments_data,
    plot_curves,
    plot_meanfield,
    plot_moments,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- data
def test_relu_curve_data():
    d = curve_data("relu", (-2, 2), n=401)
    c = d["relu"]
    assert np.array_equal(c.f, np.maximum(d.x, 0.0))
    assert set(np.unique(c.df).tolist()) == {0.0, 1.0}
    assert np.all(c.df[d.x > 0] == 1.0) and np.all(c.df[d.x <= 0] == 0.0)  # PyTorch: relu'(0) = 0
    assert c.kinks == ((0.0, 0.0, 0.0),)
    assert c.saturation == ((-2.0, 0.0),)  # declared saturating on the left, f' = 0 there


def test_sigmoid_saturation_is_symmetric_and_excludes_zero():
    d = curve_data("sigmoid", (-10, 10), n=2001)
    sat = d.curves[0].saturation
    assert len(sat) == 2
    (a, b), (c, e) = sat
    assert a == -10 and e == 10
    assert b == pytest.approx(-c, abs=1e-9)
    assert not (a <= 0 <= b) and not (c <= 0 <= e)
    # sigmoid' = s(1-s) < 0.01 * 0.25 beyond |x| ≈ 5.99
    assert c == pytest.approx(math.log((1 + math.sqrt(1 - 0.01)) / (1 - math.sqrt(1 - 0.01))), abs=0.011)


def test_unbounded_and_interior_flat_regions_are_not_saturation():
    assert curve_data("gelu", (-3, 3)).curves[0].saturation == ()  # within ±3 gelu' is not < 1%
    assert curve_data("hardshrink").curves[0].saturation == ()  # flat interior, not a side
    assert curve_data("linear").curves[0].saturation == ()


def test_curve_data_kinks_in_range_only_and_params():
    d = curve_data(["hard_tanh", "leaky_relu(negative_slope=0.2)"], (-0.5, 3))
    assert [k[0] for k in d["hard_tanh"].kinks] == [1.0]
    lr = d["leaky_relu(negative_slope=0.2)"]
    assert lr.name == "leaky_relu"
    assert np.allclose(lr.df[d.x < 0], 0.2)
    with pytest.raises(ValueError):
        curve_data("relu", (1, 1))
    with pytest.raises(TypeError):
        curve_data("softmax")


def test_moments_data_matches_analysis():
    q = [0.25, 1.0, 4.0]
    d = moments_data("tanh", q)
    for i, qi in enumerate(q):
        m = aa.moments("tanh", 0.0, qi)
        assert d.mean[i] == m.mean
        assert d.variance[i] == m.variance
        assert d.derivative_second_moment[i] == m.derivative_second_moment
        assert d.gain[i] == pytest.approx(aa.gain("tanh", q=qi).computed, rel=1e-14)
    assert d.pytorch_gain == pytest.approx(5 / 3)
    r = moments_data("relu", q)
    assert np.allclose(r.second_moment, np.array(q) / 2, rtol=1e-10)
    assert np.allclose(r.gain, math.sqrt(2), rtol=1e-10)


def test_meanfield_data_matches_mean_field():
    d = meanfield_data("tanh", 1.5, 0.05, depth=20)
    mf = aa.mean_field("tanh", 1.5, 0.05)
    assert d.q_star == pytest.approx(mf.q_star, rel=1e-12)
    assert d.chi == pytest.approx(mf.chi, rel=1e-12)
    assert d.phase == mf.phase
    # the fixed point lies on the identity line of the length map
    assert aa.length_map("tanh", d.q_star, 1.5, 0.05) == pytest.approx(d.q_star, rel=1e-10)
    assert np.allclose(d.q_next, [aa.length_map("tanh", q, 1.5, 0.05) for q in d.q])
    assert np.allclose(d.gradient_factor, mf.chi ** np.arange(21))
    assert d.trajectory.size == 21 and d.trajectory[0] == 1.0
    relu = meanfield_data("relu", depth=5)  # σ_w² = gain² = 2: critical
    assert relu.sigma_w2 == pytest.approx(2.0) and relu.chi == pytest.approx(1.0)
    assert np.allclose(relu.q_next, relu.q)


# ----------------------------------------------------------------------------- renderers
@pytest.fixture
def rc_guard():
    import matplotlib

    before = {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}
    yield
    after = {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}
    assert after == before


def test_plot_curves_figure(rc_guard):
    from matplotlib.figure import Figure

    data = curve_data(["gelu", "relu", "sigmoid"], n=201)
    fig = plot_curves(data)
    assert isinstance(fig, Figure)
    fax, dax = fig.axes
    curves = [ln for ln in fax.get_lines() if ln.get_linestyle() == "-"]
    assert [ln.get_label() for ln in curves] == ["gelu", "relu", "sigmoid"]
    assert fax.get_legend() is not None
    assert len([ln for ln in dax.get_lines() if ln.get_linestyle() == "-"]) == 3
    assert fax.get_xlabel() == "x" and dax.get_ylabel() == "f'(x)"
    assert len(plot_curves(data, derivative=False).axes) == 1


def test_plot_curves_into_given_axes(rc_guard):
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    out = plot_curves(curve_data(["relu", "tanh"], n=101), ax=ax)
    assert out is fig and fig.axes == [ax]
    styles = sorted(ln.get_linestyle() for ln in ax.get_lines() if ln.get_linestyle() in ("-", "--"))
    assert styles == ["-", "-", "--", "--"]  # f solid, f' dashed on one axes
    fig2 = Figure()
    axs = fig2.subplots(1, 2)
    assert plot_curves(curve_data("relu", n=51), ax=axs) is fig2 and len(fig2.axes) == 2


def test_plot_moments_and_meanfield(rc_guard):
    from matplotlib.figure import Figure

    fig = plot_moments(moments_data("tanh", [0.1, 1.0, 10.0]))
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == 3 and len(fig.axes[1].get_lines()) == 2  # gain + PyTorch's
    fig = plot_meanfield(meanfield_data("tanh", 1.5, 0.05, depth=10, n=21))
    assert len(fig.axes) == 2 and fig.axes[1].get_yscale() == "log"
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert "identity" in labels and any(lab.startswith("q* =") for lab in labels)
    single = Figure()
    ax = single.add_subplot()
    assert plot_meanfield(meanfield_data("relu", depth=3, n=11), ax=ax) is single and single.axes == [ax]


# ----------------------------------------------------------------------------- CLI
def test_cli_plot_writes_png(tmp_path, capsys):
    out = tmp_path / "a.png"
    assert main(["plot", "gelu", "relu", "-o", str(out), "--range", "-3", "3"]) == 0
    blob = out.read_bytes()
    assert blob[:8] == PNG_SIGNATURE and len(blob) > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left
    svg = tmp_path / "b.svg"
    assert main(["plot", "tanh", "--no-derivative", "-o", str(svg)]) == 0
    assert b"<svg" in svg.read_bytes()[:2000]


def test_cli_plot_refuses_unknown_names(tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["plot", "relu", "gelux", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "gelux" in err and "gelu" in err  # the registry's suggestion
    assert main(["plot", "softmax", "-o", str(out)]) == 2
    assert main(["plot", "relu", "-o", str(tmp_path / "x.gif")]) == 2
    assert main(["plot", "relu", "--range", "2", "1", "-o", str(out)]) == 2
    assert list(tmp_path.iterdir()) == []


def test_cli_props_json(capsys):
    assert main(["props", "relu", "tanh", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    relu, tanh = rows
    assert relu["name"] == "relu" and relu["gain"] == pytest.approx(math.sqrt(2), rel=1e-12)
    assert relu["pytorch_gain"] == pytest.approx(math.sqrt(2))
    assert relu["mean"] == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-10)
    assert relu["chi"] == pytest.approx(1.0, rel=1e-9) and relu["phase"] == "critical"
    assert tanh["pytorch_gain"] == pytest.approx(5 / 3)
    assert tanh["max_abs_derivative"] == pytest.approx(1.0)
    assert tanh["saturates"] == ["left", "right"] and tanh["zero_centered"] is True
    assert main(["props", "relu", "--format", "md"]) == 0
    assert "| relu |" in capsys.readouterr().out
    assert main(["props", "nosuch"]) == 2


def test_cli_gallery(tmp_path, capsys):
    out = tmp_path / "gal"
    names = ["relu", "tanh", "hard_sigmoid"]
    assert main(["gallery", "-o", str(out), "--names", *names, "--quiet"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"{n}.png" for n in names] + ["index.html", "index.md"])
    for n in names:
        assert (out / f"{n}.png").read_bytes()[:8] == PNG_SIGNATURE
    md = (out / "index.md").read_text()
    page = (out / "index.html").read_text()
    for n in names:
        assert f"## {n}" in md and f"({n}.png)" in md
        assert f'id="{n}"' in page and f'src="{n}.png"' in page
    assert "\\frac{1}{2}" in md or "\\begin{cases}" in md  # the spec's LaTeX
    assert "Nair" in md  # relu's reference
    # a second run replaces the earlier gallery; nothing temporary is left beside it
    assert main(["gallery", "-o", str(out), "--names", "relu", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "index.md", "relu.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["gal"]


def test_cli_gallery_refuses_foreign_folder_and_unknown_names(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["gallery", "-o", str(foreign), "--names", "relu", "--quiet"]) == 2
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert main(["gallery", "-o", str(tmp_path / "g"), "--names", "relux", "--quiet"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_plot_package_is_not_imported_by_actlab():
    import subprocess
    import sys

    code = "import sys, actlab, actlab.cli; print('matplotlib' in sys.modules, 'actlab.plot' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False", "False"]


def test_vector_curve_data_matches_closed_forms():
    from actlab.plot.data import vector_curve_data

    d = vector_curve_data("softmax", (-4, 4), n=81)
    s = 1 / (1 + np.exp(-(1 - d.x)))  # softmax((1, x))[0] = sigmoid(1 - x)
    np.testing.assert_allclose(d.curves[0].f, s, rtol=1e-12)
    np.testing.assert_allclose(d.curves[0].df, -s * (1 - s), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(d.curves[0].f + d.curves[1].f, 1.0, rtol=1e-14)
    m = vector_curve_data("maxout", (-3, 3), n=61)  # max(1, x), one output
    assert len(m.curves) == 1
    np.testing.assert_array_equal(m.curves[0].f, np.maximum(1.0, m.x))
    np.testing.assert_array_equal(m.curves[0].df, (m.x > 1).astype(float))


def test_gallery_draws_vector_activations(tmp_path):
    from actlab.plot.gallery import write_gallery

    entries = write_gallery(tmp_path / "g", ["softmax", "swiglu"])
    assert [e.image for e in entries] == ["softmax.png", "swiglu.png"]
    for e in entries:
        png = (tmp_path / "g" / e.image).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
