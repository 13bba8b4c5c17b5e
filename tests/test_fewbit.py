"""Few-bit derivative tables (actlab.torch.fewbit, issue #12 item 1): the fit against answers known
independently (the Lloyd-Max Gaussian quantizer, brute force, quadrature), the cache, the errors,
``actlab show --fewbit`` and ``actlab bench fewbit``."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

import actlab
from actlab.catalog import ParameterError, Spec
from actlab.cli import main
from actlab.registry import UnknownActivationError, get_spec
from conftest import ELEMENTWISE, spec_id

pytest.importorskip("torch")  # the fit is NumPy, but it lives in actlab.torch, whose import needs torch

from actlab.torch import fewbit as fb  # noqa: E402

SQRT_2_PI = math.sqrt(2.0 / math.pi)
GRID_STEP = 2 * fb.GRID_HALF_WIDTH / fb.GRID_CELLS


def _affine_derivative(slope: float, offset: float) -> Spec:
    """An unregistered spec with f'(x) = slope x + offset: quantizing f' is quantizing a Gaussian."""
    return Spec(
        name="affine_derivative",
        family="test",
        summary="slope x^2 / 2 + offset x",
        definition=lambda x, sp: sp.Rational(1, 2) * slope * x**2 + offset * x,
        forward=lambda x, ops: 0.5 * slope * x * x + offset * x,
        derivative=lambda x, ops: slope * x + offset,
    )


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty disk cache in tmp_path and an empty in-process cache."""
    monkeypatch.setenv("ACTLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(fb, "_MEMORY", {})
    return tmp_path / "fewbit"


# ----------------------------------------------------------------------------- known answers
def test_one_bit_of_a_linear_derivative_splits_at_the_median() -> None:
    # f' = 2x + 0.5, x ~ N(0, 1): the best 1-bit split of a Gaussian is at its median (symmetry), each
    # half's level its conditional mean 0.5 -+ 2 E|x| = 0.5 -+ 2 sqrt(2/pi); E[(f'-q)^2] = 4 (1 - 2/pi).
    t = fb.fewbit_table(_affine_derivative(2.0, 0.5), {}, 1)
    assert t.breakpoints.shape == (1,) and abs(t.breakpoints[0]) < 1e-12
    np.testing.assert_allclose(t.levels, [0.5 - 2 * SQRT_2_PI, 0.5 + 2 * SQRT_2_PI], rtol=1e-9)
    assert t.weighted_mse == pytest.approx(4 * (1 - 2 / math.pi), rel=1e-9)
    # cosine = sqrt(E[q^2] / E[f'^2]) with E[q^2] = 0.25 + 4 * 2/pi and E[f'^2] = 0.25 + 4
    assert t.cosine == pytest.approx(math.sqrt((0.25 + 8 / math.pi) / 4.25), rel=1e-9)


# Max (1960), "Quantizing for minimum distortion", Table I: optimal Gaussian quantizers (positive half).
MAX_1960 = {
    2: ([0.0, 0.9816], [0.4528, 1.510], 0.1175),
    3: ([0.0, 0.5006, 1.050, 1.748], [0.2451, 0.7560, 1.344, 2.152], 0.03454),
}


@pytest.mark.parametrize("bits", sorted(MAX_1960))
def test_identity_derivative_reproduces_the_published_lloyd_max_quantizer(bits: int) -> None:
    thresholds, levels, mse = MAX_1960[bits]
    t = fb.fewbit_table(_affine_derivative(1.0, 0.0), {}, bits)
    expected_bp = sorted({-v for v in thresholds} | set(thresholds))
    expected_lv = [-v for v in levels[::-1]] + levels
    # breakpoints lie on the grid: within one cell of the continuous optimum (and Max's 4 digits)
    np.testing.assert_allclose(t.breakpoints, expected_bp, atol=GRID_STEP + 1e-3)
    # a level is the mean over its cell-aligned segment: it moves by < 1 per unit its breakpoints move
    np.testing.assert_allclose(t.levels, expected_lv, atol=GRID_STEP + 1e-3)
    assert t.weighted_mse == pytest.approx(mse, rel=2e-3)


def test_dynamic_programming_matches_brute_force_on_a_tiny_grid() -> None:
    rng = np.random.default_rng(12)
    for _ in range(20):
        n = int(rng.integers(4, 10))
        w = rng.uniform(0.1, 1.0, n)
        v = rng.normal(size=n)  # one point value per cell, not monotone
        results = fb.optimal_segments(w, w * v, w * v * v, 4)
        for m, (cuts, cost) in enumerate(results, start=1):
            best_cost, best_cuts = math.inf, None
            for combo in itertools.combinations(range(1, n), m - 1):
                bounds = [0, *combo, n]
                c = 0.0
                for a, b in itertools.pairwise(bounds):
                    mean = np.average(v[a:b], weights=w[a:b])
                    c += float(np.sum(w[a:b] * (v[a:b] - mean) ** 2))
                if c < best_cost:
                    best_cost, best_cuts = c, combo
            assert cost == pytest.approx(best_cost, abs=1e-12)
            assert tuple(cuts) == best_cuts


SMOOTH = ["gelu", "silu", "mish", "tanh"]


@pytest.mark.parametrize("name", SMOOTH)
def test_more_bits_never_fit_worse(name: str) -> None:
    tables = fb.fewbit_tables(name)
    mse = [tables[b].weighted_mse for b in fb.BITS]
    cos = [tables[b].cosine for b in fb.BITS]
    assert all(a > b for a, b in itertools.pairwise(mse)), mse
    assert all(a < b for a, b in itertools.pairwise(cos)), cos
    for b, t in tables.items():
        assert t.breakpoints.shape == (2**b - 1,) and t.levels.shape == (2**b,)
        assert np.all(np.diff(t.breakpoints) > 0)


@pytest.mark.parametrize("name", ["gelu", "silu", "mish"])
def test_three_bits_meet_the_issue_target_by_independent_quadrature(name: str) -> None:
    # Recomputed with adaptive quadrature on each segment (scipy), not the fit's grid sums.
    from scipy import integrate

    spec = get_spec(name)
    t = fb.fewbit_table(spec, {}, 3)

    def d(x: float) -> float:
        return float(actlab.get(name).derivative(np.array([x]))[0])

    def phi(x: float) -> float:
        return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    edges = [-math.inf, *t.breakpoints, math.inf]
    mse = ef2 = efq = eq2 = 0.0
    for k, level in enumerate(t.levels):
        a, b = edges[k], edges[k + 1]
        mass = integrate.quad(phi, a, b, epsabs=1e-13)[0]
        first = integrate.quad(lambda x: phi(x) * d(x), a, b, epsabs=1e-13)[0]
        # each level is the mean of f' over its segment (the least-squares condition)
        assert level == pytest.approx(first / mass, abs=1e-7)
        mse += integrate.quad(lambda x, lv=level: phi(x) * (d(x) - lv) ** 2, a, b, epsabs=1e-13)[0]
        ef2 += integrate.quad(lambda x: phi(x) * d(x) ** 2, a, b, epsabs=1e-13)[0]
        efq += level * first
        eq2 += level * level * mass
    assert t.weighted_mse == pytest.approx(mse, abs=1e-8)
    assert t.cosine == pytest.approx(efq / math.sqrt(ef2 * eq2), abs=1e-8)
    assert t.cosine >= 0.99
    # the breakpoint condition: f' at a breakpoint is midway between the levels either side (to a grid cell)
    mid = 0.5 * (t.levels[:-1] + t.levels[1:])
    np.testing.assert_allclose([d(b) for b in t.breakpoints], mid, atol=GRID_STEP)


@pytest.mark.parametrize("spec", ELEMENTWISE, ids=spec_id)
def test_every_elementwise_activation_gets_a_table_or_is_sent_to_mask(spec) -> None:
    try:
        t = fb.fewbit_table(spec, {}, 1)
    except fb.FewBitError as err:
        assert "memory='mask'" in str(err)
        return
    assert t.breakpoints.shape == (1,) and np.all(np.isfinite(t.levels)) and 0 < t.cosine <= 1
    # Monte Carlo on seeded N(0, 1) inputs against the fit's integrals: the weighting and the buckets
    x = np.random.default_rng(5).standard_normal(40_000)
    d = actlab.get(spec).derivative(x)
    q = t(x)
    assert float(np.mean((d - q) ** 2)) == pytest.approx(t.weighted_mse, rel=0.1, abs=1e-4)
    assert float(d @ q / np.sqrt((d @ d) * (q @ q))) == pytest.approx(t.cosine, abs=0.01)


def test_codes_follow_the_bucket_rule() -> None:
    # levels[k] for breakpoints[k-1] <= x < breakpoints[k]: a breakpoint itself belongs to the level above
    t = fb.fewbit_table("gelu", {}, 2)
    bp, lv = t.breakpoints, t.levels
    assert t(bp).tolist() == lv[1:].tolist()
    assert t(np.nextafter(bp, -np.inf)).tolist() == lv[:-1].tolist()
    assert t(np.array([-np.inf, np.inf])).tolist() == [lv[0], lv[-1]]
    assert t.codes(np.array([bp[0] - 1, bp[-1] + 1])).tolist() == [0, 3]


def test_parameters_change_the_table_and_are_validated() -> None:
    exact = fb.fewbit_table("gelu", {}, 2)
    tanh = fb.fewbit_table("gelu", {"approximate": "tanh"}, 2)
    assert tanh.params == {"approximate": "tanh"} and not np.array_equal(exact.levels, tanh.levels)
    with pytest.raises(ParameterError, match="approximate"):
        fb.fewbit_table("gelu", {"approximate": "exact"}, 2)


# ----------------------------------------------------------------------------- cache
def test_disk_cache_round_trip_and_corrupt_file_refit(fresh, monkeypatch) -> None:
    fits = []
    real_fit = fb._fit
    monkeypatch.setattr(fb, "_fit", lambda *a: fits.append(a[2]) or real_fit(*a))
    first = fb.fewbit_table("silu", {}, 2)
    assert fits == [2]
    (path,) = fresh.glob("silu-2bit-*.json")
    assert json.loads(path.read_text())["levels"] == first.levels.tolist()

    monkeypatch.setattr(fb, "_MEMORY", {})  # a new process: read from disk, no fit
    again = fb.fewbit_table("silu", {}, 2)
    assert fits == [2] and again is not first
    np.testing.assert_array_equal(again.breakpoints, first.breakpoints)
    np.testing.assert_array_equal(again.levels, first.levels)
    assert (again.weighted_mse, again.cosine) == (first.weighted_mse, first.cosine)

    for damage in ("{not json", json.dumps({**json.loads(path.read_text()), "levels": [0.0]})):
        path.write_text(damage)
        monkeypatch.setattr(fb, "_MEMORY", {})
        refit = fb.fewbit_table("silu", {}, 2)
        assert len(fits) == 2 and refit.levels.tolist() == first.levels.tolist()
        fits.pop()
        assert json.loads(path.read_text())["levels"] == first.levels.tolist()  # rewritten whole
    assert not list(fresh.glob("*.tmp"))


def test_empty_cache_variable_keeps_nothing_on_disk(fresh, monkeypatch) -> None:
    monkeypatch.setenv("ACTLAB_CACHE", "")
    fb.fewbit_table("mish", {}, 1)
    assert not fresh.exists()


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bits", [0, 5, True, 2.5, "3"])
def test_bits_outside_one_to_four_are_refused(bits) -> None:
    with pytest.raises(fb.FewBitError, match=r"bits must be an integer in 1\.\.4"):
        fb.fewbit_table("gelu", {}, bits)


@pytest.mark.parametrize("name", ["relu", "hard_tanh", "leaky_relu", "linear"])
def test_piecewise_linear_activations_are_sent_to_mask(name: str) -> None:
    with pytest.raises(fb.FewBitError, match=f"{name} is piecewise-linear.*memory='mask'"):
        fb.fewbit_table(name, {}, 2)


def test_vector_activations_and_unknown_names_are_refused() -> None:
    with pytest.raises(fb.FewBitError, match="softmax is a vector activation"):
        fb.fewbit_table("softmax", {}, 2)
    with pytest.raises(UnknownActivationError, match="did you mean 'gelu'"):
        fb.fewbit_table("gelux", {}, 2)


# ----------------------------------------------------------------------------- command line
def test_show_prints_the_table(capsys) -> None:
    assert main(["show", "gelu(approximate='tanh')", "--fewbit", "2"]) == 0
    out = capsys.readouterr().out
    t = fb.fewbit_table("gelu", {"approximate": "tanh"}, 2)
    assert f"cosine(f', q) = {t.cosine:.6f}" in out
    rows = out[out.index("few-bit derivative") :].splitlines()[4:]
    assert [float(r.split()[3]) for r in rows] == pytest.approx(t.levels.tolist(), rel=1e-5)
    assert max(len(line) for line in out[out.index("few-bit derivative") :].splitlines()) <= 100
    assert main(["show", "gelu", "--fewbit", "2", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["fewbit"]["codes"][0]["from"] == -math.inf


@pytest.mark.parametrize(
    ("argv", "message"), [(["gelu", "--fewbit", "7"], "1..4"), (["relu6", "--fewbit", "1"], "memory='mask'")]
)
def test_show_refuses_clearly(capsys, argv, message) -> None:
    assert main(["show", *argv]) == 2
    assert message in capsys.readouterr().err


def test_bench_measured_cosine_agrees_with_the_fit(capsys) -> None:
    argv = ["bench", "fewbit", "silu", "mish", "--bits", "1,3", "--samples", "200000", "--format", "json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["activation"], r["bits"], r["bytes_per_element"]) for r in rows] == [
        ("silu", 1, 0.125),
        ("silu", 3, 0.375),
        ("mish", 1, 0.125),
        ("mish", 3, 0.375),
    ]
    for r in rows:  # Monte Carlo against the fit's integral
        assert r["cosine_measured"] == pytest.approx(r["cosine_expected"], abs=2e-3)
    assert main(["bench", "fewbit", "gelu", "--bits", "2", "--samples", "1000"]) == 0
    assert "2 bits, 0.25 B/elem" in capsys.readouterr().out
    assert main(["bench", "fewbit", "relu"]) == 2
    assert "memory='mask'" in capsys.readouterr().err
