"""The interactive explorer: its data (computed by Python from the registry), the self-contained
page, and the page in a real headless Chromium (skipped where Debian's chromium is absent)."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import actlab
from _browser import chromium, chromium_command
from actlab.plot.explorer import decode, explorer_data, write_explorer
from actlab.registry import all_specs


@pytest.fixture(scope="module")
def data():
    return explorer_data(formulas=False)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path = tmp_path_factory.mktemp("explorer") / "explorer.html"
    write_explorer(path)
    return path


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    both = np.isfinite(b)
    if not np.array_equal(np.isfinite(a), both):
        return False
    return np.allclose(a[both], b[both], rtol=1e-4, atol=1e-12)


def test_every_elementwise_spec_with_its_curves(data):
    names = [a["name"] for a in data["activations"]]
    assert names == [s.name for s in all_specs() if s.kind == "elementwise"]
    assert np.allclose(decode(data["x"]), np.linspace(-5.0, 5.0, 401))
    x = np.linspace(-5.0, 5.0, 401)
    for a in data["activations"]:
        act = actlab.get(a["name"])
        with np.errstate(all="ignore"):
            f, df = np.asarray(act(x), float), np.asarray(act.derivative(x), float)
        assert _close(decode(a["f"]), f), a["name"]
        assert _close(decode(a["df"]), df), a["name"]
        assert set(a["properties"]) == {"range", "monotonic", "smoothness", "zero_centered", "saturates"}


def test_gain_beside_pytorch(data):
    by = {a["name"]: a for a in data["activations"]}
    assert by["relu"]["gain"] == pytest.approx(2**0.5)
    assert by["relu"]["pytorch_gain"] == pytest.approx(2**0.5)
    assert by["tanh"]["pytorch_gain"] == pytest.approx(5 / 3)
    assert by["gelu"]["pytorch_gain"] is None


def test_sliders_are_valid_and_change_the_curve(data):
    x = np.linspace(-5.0, 5.0, 401)  # the exact grid (the page's copy is rounded)
    n_sliders = 0
    for a in data["activations"]:
        default_f = decode(a["f"])
        for s in a["sliders"]:
            n_sliders += 1
            assert 2 <= len(s["values"]) <= 15, (a["name"], s["name"])
            assert len(s["f"]) == len(s["df"]) == len(s["values"])
            for i, v in enumerate(s["values"]):
                act = actlab.get(a["name"], **{s["name"]: v})  # raises if the value were invalid
                with np.errstate(all="ignore"):
                    assert _close(decode(s["f"][i]), np.asarray(act(x), float)), (a["name"], s["name"], v)
            changed = [i for i in range(len(s["values"])) if not _close(decode(s["f"][i]), default_f)]
            assert changed, f"{a['name']}.{s['name']}: no slider value changes the curve"
    assert n_sliders >= 20
    by = {a["name"]: a for a in data["activations"]}
    assert [s["name"] for s in by["leaky_relu"]["sliders"]] == ["negative_slope"]
    assert by["gelu"]["sliders"] == []  # a string choice gets no slider


def test_page_is_self_contained_and_small(page):
    text = page.read_text(encoding="utf-8")
    assert page.stat().st_size < 6_000_000
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.I)
    assert not re.search(r"<link\b", text, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, re.I)
    assert "</script>" not in text.split('id="data">', 1)[1].split("</script>", 1)[0]
    payload = text.split('<script type="application/json" id="data">', 1)[1].split("</script>", 1)[0]
    parsed = json.loads(payload.replace("<\\/", "</"))
    assert len(parsed["activations"]) == sum(s.kind == "elementwise" for s in all_specs())
    assert oct(page.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


def test_cli_explore(tmp_path):
    out = tmp_path / "e.html"
    r = subprocess.run(
        [sys.executable, "-m", "actlab", "explore", "-o", str(out), "--names", "relu", "elu", "softmax"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert out.is_file()
    names = [
        a["name"] for a in json.loads(out.read_text().split('id="data">', 1)[1].split("</script>")[0])["activations"]
    ]
    assert names == ["relu", "elu"]  # vector activations have no curve


# ----------------------------------------------------------------------------- real Chromium
def dump_state(page: Path, query: str, profile: Path) -> dict:
    exe = chromium()
    url = page.resolve().as_uri() + query
    r = subprocess.run([*chromium_command(exe, profile), "--dump-dom", url], capture_output=True, text=True, timeout=60)
    m = re.search(r'<pre id="state">(.*?)</pre>', r.stdout, re.S)
    assert m, f"no state in the dumped DOM (rc {r.returncode}): {r.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


def screenshot(page: Path, query: str, png: Path, profile: Path, size: str = "1200,900") -> Path:
    exe = chromium()
    url = page.resolve().as_uri() + query
    subprocess.run(
        [*chromium_command(exe, profile), f"--screenshot={png}", f"--window-size={size}", url],
        capture_output=True,
        timeout=60,
    )
    return png


def _paths(state: dict, name: str, panel: str) -> list[dict]:
    return [c for c in state["curves"] if c["name"] == name and c["panel"] == panel]


def test_chromium_two_curves_no_errors(page, tmp_path):
    state = dump_state(page, "?select=gelu,relu", tmp_path / "profile")
    assert state["ready"] is True
    assert state["errors"] == []
    assert state["selected"] == ["gelu", "relu"]
    assert state["paths"] == {"f": 2, "df": 2}
    for n in ("gelu", "relu"):
        for panel in ("f", "df"):
            (c,) = _paths(state, n, panel)
            assert c["d_len"] > 1000  # 401 points drawn
    assert _paths(state, "gelu", "f")[0]["d_hash"] != _paths(state, "relu", "f")[0]["d_hash"]


def test_chromium_slider_changes_the_curve(page, tmp_path):
    # relu beside it fixes the y scale, so the derivative's step height shows too
    plain = dump_state(page, "?select=relu,leaky_relu", tmp_path / "p1")
    moved = dump_state(page, "?select=relu,leaky_relu&slider=leaky_relu:negative_slope:8", tmp_path / "p2")
    assert plain["errors"] == [] and moved["errors"] == []
    assert moved["sliders"] == {"leaky_relu": {"param": "negative_slope", "index": 8}}
    for panel in ("f", "df"):
        (a,) = _paths(plain, "leaky_relu", panel)
        (b,) = _paths(moved, "leaky_relu", panel)
        assert a["d_hash"] != b["d_hash"], panel
        (r1,) = _paths(plain, "relu", panel)
        (r2,) = _paths(moved, "relu", panel)
        assert r1["d_len"] > 1000 and r2["d_len"] > 1000


def test_chromium_reports_bad_query_as_error(page, tmp_path):
    state = dump_state(page, "?select=relu,no_such_thing", tmp_path / "p")
    assert state["selected"] == ["relu"]
    assert any("no_such_thing" in e for e in state["errors"])  # the error capture works


def test_chromium_url_state_names_outside_the_data_are_refused(page, tmp_path):
    # Object.prototype's names are no activations: the page refuses them like any unknown name and still draws
    names = ["__proto__", "constructor", "toString", "hasOwnProperty"]
    sliders = [f"{n}:alpha:0" for n in names] + [f"elu:{n}:0" for n in names] + ["elu:alpha:__proto__", "elu:alpha:1x"]
    query = f"?select=relu,{','.join(names)}" + "".join(f"&slider={t}" for t in sliders)
    state = dump_state(page, query, tmp_path / "p")
    assert state["ready"] is True
    assert state["selected"] == ["relu"]
    assert state["sliders"] == {}
    assert state["paths"] == {"f": 1, "df": 1}
    assert len(_paths(state, "relu", "f")[0]["d_head"]) > 100
    # each refused and said once, and no TypeError from a prototype's member taken for an activation
    expected = [f"unknown activation in ?select: {n}" for n in names] + [f"bad ?slider {t}" for t in sliders]
    assert sorted(state["errors"]) == sorted(expected)


def test_chromium_screenshot(page, tmp_path):
    png = screenshot(page, "?select=gelu,swish,elu&slider=elu:alpha:2", tmp_path / "shot.png", tmp_path / "p")
    assert png.is_file()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


if __name__ == "__main__":  # python tests/test_explorer.py OUT.png: regenerate docs/explorer.png
    import tempfile

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/explorer.png")
    with tempfile.TemporaryDirectory() as d:
        p = write_explorer(Path(d) / "explorer.html")
        screenshot(p, "?select=gelu,swish,elu&slider=elu:alpha:2", out.resolve(), Path(d) / "profile")
    print(out)
