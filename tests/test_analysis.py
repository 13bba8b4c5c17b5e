"""actlab.analysis: Gaussian moments, gains, mean-field propagation, measured properties."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import actlab
import actlab.analysis as aa
from actlab.registry import BoundActivation
from conftest import ELEMENTWISE


def _phi(a: float) -> float:
    return math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)


def _Phi(a: float) -> float:
    return 0.5 * math.erfc(-a / math.sqrt(2))


def test_imports_stay_light():
    code = (
        "import sys, actlab; assert 'scipy' not in sys.modules and 'torch' not in sys.modules;"
        "import actlab.analysis; assert 'torch' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


# ----------------------------------------------------------------------------- moments
@pytest.mark.parametrize("mu,q", [(0.0, 1.0), (0.0, 0.3), (0.0, 7.0), (0.3, 1.7), (-1.2, 0.5)])
def test_relu_moments_closed_form(mu, q):
    s = math.sqrt(q)
    a = mu / s
    m = aa.moments("relu", mu, q)
    mean = mu * _Phi(a) + s * _phi(a)
    second = (mu * mu + q) * _Phi(a) + mu * s * _phi(a)
    assert m.mean == pytest.approx(mean, abs=1e-13)
    assert m.second_moment == pytest.approx(second, abs=1e-13)
    assert m.variance == pytest.approx(second - mean**2, abs=1e-13)
    assert m.mean_derivative == pytest.approx(_Phi(a), abs=1e-13)
    assert m.derivative_second_moment == pytest.approx(_Phi(a), abs=1e-13)
    if mu == 0:  # the forms the literature quotes
        assert abs(m.mean - math.sqrt(q / (2 * math.pi))) < 1e-13
        assert abs(m.second_moment - q / 2) < 1e-13
        assert abs(m.mean_derivative - 0.5) < 1e-14


def test_plain_gauss_hermite_is_not_enough_at_a_kink():
    """Why the integral is split at kinks: 100-node Gauss–Hermite misses ReLU's mean by ~1e-3."""
    exact = math.sqrt(1 / (2 * math.pi))
    assert abs(aa.hermite_moments("relu", n=100).mean - exact) > 1e-4
    assert abs(aa.moments("relu").mean - exact) < 1e-14


def test_linear_moments():
    m = aa.moments("linear", 0.7, 2.5)
    assert (m.mean, m.second_moment, m.variance) == pytest.approx((0.7, 0.49 + 2.5, 2.5), abs=1e-13)
    assert (m.mean_derivative, m.derivative_second_moment) == pytest.approx((1.0, 1.0), abs=1e-14)


@pytest.mark.parametrize("q", [0.25, 1.0, 4.0])
def test_erf_closed_forms(q):
    m = aa.moments("erf", 0.0, q)
    assert abs(m.mean) < 1e-15
    assert m.second_moment == pytest.approx((2 / math.pi) * math.asin(2 * q / (1 + 2 * q)), abs=1e-13)
    # E[erf'(z)] = (2/sqrt(pi)) E[exp(-z^2)] = (2/sqrt(pi)) / sqrt(1 + 2q)
    assert m.mean_derivative == pytest.approx(2 / math.sqrt(math.pi) / math.sqrt(1 + 2 * q), abs=1e-13)
    # with a mean: E[erf(z)] = erf(mu / sqrt(1 + 2q))
    assert aa.moments("erf", 0.8, q).mean == pytest.approx(math.erf(0.8 / math.sqrt(1 + 2 * q)), abs=1e-13)


def test_tanh_symmetry():
    assert abs(aa.moments("tanh", 0.0, 3.0).mean) < 1e-15
    a, b = aa.moments("tanh", 0.4, 1.3), aa.moments("tanh", -0.4, 1.3)
    assert a.mean == pytest.approx(-b.mean, abs=1e-15)
    assert a.second_moment == pytest.approx(b.second_moment, abs=1e-15)


def test_zero_variance_is_a_point_mass():
    m = aa.moments("silu", 0.9, 0.0)
    y = float(actlab.get("silu")(np.array([0.9]))[0])
    assert (m.mean, m.second_moment, m.variance) == (y, y * y, 0.0)


@pytest.mark.parametrize(
    "name,mu,q", [("gelu", 0.3, 1.7), ("elu", -0.5, 2.0), ("hard_tanh", 0.2, 1.5), ("softplus", 1.0, 0.5)]
)
def test_moments_agree_with_monte_carlo(name, mu, q):
    rng = np.random.default_rng(1234)
    z = mu + math.sqrt(q) * rng.standard_normal(200_000)
    act = actlab.get(name)
    f, df = act(z), act.derivative(z)
    m = aa.moments(name, mu, q)
    for est, samples in (
        (m.mean, f),
        (m.second_moment, f * f),
        (m.mean_derivative, df),
        (m.derivative_second_moment, df * df),
    ):
        se = samples.std() / math.sqrt(samples.size)
        assert abs(est - samples.mean()) < 5 * se + 1e-15
    assert m.variance == pytest.approx(f.var(), rel=0.02)


def test_moments_reject_negative_variance():
    with pytest.raises(ValueError):
        aa.moments("relu", 0.0, -1.0)


# ----------------------------------------------------------------------------- gains
def test_gain_relu_and_linear_exact():
    # Exact by construction (E[relu(z)^2] = 1/2, E[z^2] = 1), whatever NumPy/SciPy version.
    assert aa.gain("relu").computed == math.sqrt(2)
    assert aa.gain("linear").computed == 1.0
    assert aa.gain("absolute").computed == 1.0
    # Positively homogeneous functions in closed form, the rest by quadrature: both agree.
    for name in ("leaky_relu(negative_slope=0.2)", "relu(negative_slope=0.5)"):
        closed = aa.gain(name).second_moment
        assert closed == pytest.approx(aa.moments(name).second_moment, rel=1e-13)
    assert not aa.gain("relu").differs and not aa.gain("linear").differs


def test_gains_beside_pytorch():
    table = {r.activation: r for r in aa.gain_table()}
    assert table["tanh"].pytorch == 5 / 3 and table["tanh"].differs
    assert table["tanh"].computed == pytest.approx(1.5925374197, abs=1e-9)
    assert table["selu"].pytorch == 0.75 and abs(table["selu"].computed - 1.0) < 1e-12
    assert table["sigmoid"].pytorch == 1.0 and table["sigmoid"].differs
    assert table["gelu"].pytorch is None and not table["gelu"].differs
    for slope in (0.01, 0.2, 0.5):
        r = aa.gain("leaky_relu", negative_slope=slope)
        expected = math.sqrt(2 / (1 + slope**2))
        assert r.pytorch == pytest.approx(expected, rel=1e-15)
        assert r.computed == pytest.approx(expected, rel=1e-13)
    assert aa.pytorch_gain("conv2d") == 1.0


def test_pytorch_table_matches_torch():
    torch = pytest.importorskip("torch")
    for name in ("linear", "sigmoid", "tanh", "relu", "selu", "conv1d"):
        assert aa.pytorch_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name), rel=1e-15)
    assert aa.pytorch_gain("leaky_relu(negative_slope=0.3)") == pytest.approx(
        torch.nn.init.calculate_gain("leaky_relu", 0.3), rel=1e-15
    )


@pytest.mark.parametrize("name", ["tanh", "gelu", "mish", "elu", "sigmoid"])
def test_gain_preserves_unit_length(name):
    g = aa.gain(name).computed
    assert aa.length_map(name, 1.0, g * g) == pytest.approx(1.0, abs=1e-13)


# ----------------------------------------------------------------------------- mean field
def test_relu_mean_field_closed_form():
    r = aa.mean_field("relu", 1.5, 0.1)
    assert r.q_star == pytest.approx(0.1 / (1 - 0.75), rel=1e-13)
    assert r.chi == pytest.approx(0.75, rel=1e-13) and r.phase == "ordered"
    assert r.depth_scale == pytest.approx(-1 / math.log(0.75), rel=1e-12)
    assert r.gradient_ratio(10) == pytest.approx(0.75**10, rel=1e-12)
    crit = aa.mean_field("relu", 2.0, 0.0, q0=3.0)
    assert crit.phase == "critical" and crit.q_star == pytest.approx(3.0, rel=1e-13)
    assert crit.depth_scale == math.inf
    assert aa.mean_field("relu", 2.5, 0.0).q_star == math.inf


def test_tanh_mean_field():
    r = aa.mean_field("tanh", 1.5, 0.05)
    assert r.converged
    assert aa.length_map("tanh", r.q_star, 1.5, 0.05) == pytest.approx(r.q_star, rel=1e-13)
    expected_chi = 1.5 * aa.expectation("tanh", lambda f, df, z: df * df, 0.0, r.q_star)[0]
    assert r.chi == pytest.approx(expected_chi, rel=1e-13)
    assert r.phase == "ordered" and 0 < r.length_slope < 1
    assert aa.mean_field("tanh", 4.0, 0.05).phase == "chaotic"
    zero = aa.mean_field("tanh", 0.5, 0.0)  # σ_b = 0, σ_w² < 1: the length collapses to 0
    assert zero.q_star == 0.0 and zero.chi == pytest.approx(0.5, rel=1e-14)


def test_length_map_slope_matches_finite_difference():
    h = 1e-5
    fd = (aa.length_map("gelu", 1.3 + h, 2.0) - aa.length_map("gelu", 1.3 - h, 2.0)) / (2 * h)
    assert aa.length_map_slope("gelu", 1.3, 2.0) == pytest.approx(fd, rel=1e-8)


def test_critical_line_tanh():
    sw2 = aa.critical_sigma_w2("tanh", 0.05, lo=1.0, hi=3.0)
    assert aa.mean_field("tanh", sw2, 0.05).chi == pytest.approx(1.0, abs=1e-9)
    assert aa.mean_field("tanh", sw2 * 0.9, 0.05).phase == "ordered"
    assert aa.mean_field("tanh", sw2 * 1.1, 0.05).phase == "chaotic"


def test_length_map_predicts_a_wide_random_net():
    """The trajectory q_l matches a simulated 2000-wide tanh net (seeded) to 5%."""
    rng = np.random.default_rng(7)
    n, sw2, sb2 = 1500, 1.8, 0.1
    r = aa.mean_field("tanh", sw2, sb2, q0=3.0, layers=6)
    h = math.sqrt(3.0) * rng.standard_normal((64, n))
    for layer in range(1, 7):
        w = rng.standard_normal((n, n)) * math.sqrt(sw2 / n)
        b = rng.standard_normal(n) * math.sqrt(sb2)
        h = np.tanh(h) @ w.T + b
        assert np.mean(h * h) == pytest.approx(r.trajectory[layer], rel=0.05)


def test_selu_self_normalizing_fixed_point():
    m, v = aa.self_normalizing_map("selu", 0.0, 1.0)
    assert abs(m) < 1e-12 and abs(v - 1) < 1e-12
    run = aa.self_normalizing("selu", 0.5, 2.0, layers=50)
    assert run.layers_to_reach((0.0, 1.0), tol=1e-5) is not None
    assert run.layers_to_reach((0.0, 1.0), tol=1e-5) <= 50
    dist = [abs(a) + abs(b - 1) for a, b in zip(run.mu, run.nu)]
    assert all(x > y for x, y in zip(dist[1:], dist[2:]))  # contracts every layer
    # relu is not self-normalising: Var[relu] = (1/2 - 1/(2π)) ν, so the variance collapses
    relu = aa.self_normalizing("relu", 0.5, 2.0, layers=20)
    assert relu.nu[-1] == pytest.approx(2.0 * (0.5 - 0.5 / math.pi) ** 20, rel=1e-10)


# ----------------------------------------------------------------------------- properties
def test_measured_properties_match_every_declared_spec():
    bad = {s.name: aa.properties(s.name).mismatches for s in ELEMENTWISE}
    assert {k: v for k, v in bad.items() if v} == {}


def test_measured_property_values():
    sig = aa.properties("sigmoid")
    assert sig.max_abs_derivative == pytest.approx(0.25, abs=1e-15) and abs(sig.argmax_abs_derivative) < 1e-6
    assert sig.range == (0.0, 1.0) and not sig.zero_centered and not sig.identity_near_zero
    tanh = aa.properties("tanh")
    assert tanh.identity_near_zero and tanh.zero_centered and tanh.saturates == ("left", "right")
    gelu = aa.properties("gelu")
    assert gelu.range[0] == pytest.approx(-0.16997120747990366, abs=1e-12) and not gelu.monotonic
    assert gelu.max_abs_derivative == pytest.approx(1.1289, abs=1e-4)
    relu = aa.properties("relu")
    assert relu.range == (0.0, math.inf) and relu.saturates == ("left",)
    assert aa.properties("hard_tanh", min_val=-2.0, max_val=3.0).range == (-2.0, 3.0)


def test_a_lying_spec_is_caught():
    import dataclasses

    liar = dataclasses.replace(actlab.get_spec("tanh"), name="lying_tanh", bounds=(-2.0, 2.0), saturates=("left",))
    report = aa.properties(BoundActivation(liar))
    assert not report.consistent
    assert any("upper bound" in m for m in report.mismatches) and any("saturates" in m for m in report.mismatches)
