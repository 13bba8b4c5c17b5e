"""Every spec at parameter samples generated from its declared ``Param`` ranges (issue #10 item 2;
DESIGN.md §7), against the mpmath oracle.

For each sample of ``parameter_samples(spec, "ci")`` other than the defaults (tests/test_elementwise.py
covers those on a larger grid), in float32 and float64:

- the forward and the derivative through torch autograd, on the functional path (``apply`` and
  ``function_for(spec)``) and the module path (``actlab.nn.Activation(name, **params)``);
- the learnable form at the same values (``Activation(name, p="learnable(v)")`` for every Param
  marked trainable): the same accuracy for the output and the input gradient, and the parameter
  gradient, per element (one parameter per element), against SymPy's derivative of the definition
  with respect to that parameter;
- vector specs: their non-axis samples (maxout's ``pieces``) against the row oracle, and every
  ``axis`` sample against the same function on the moved axis, values and gradients.

``actlab accuracy --params all`` runs every sample on the full grid.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from actlab.nn import Activation
from actlab.registry import learnable_params
from actlab.torch.functional import apply, function_for
from actlab.verify.accuracy import accuracy_grid, measure, ulp, ulp_errors
from actlab.verify.oracle import oracle
from actlab.verify.samples import LEVELS, parameter_samples, params_for_dtype, sample_label
from conftest import ALL, ELEMENTWISE, VECTOR

# Smaller than test_elementwise's 3000: the grid's floor is ~1000 float32 points (+400 float64).
SAMPLE_GRID = 1000
# Parameter gradients of the learnable forms (plain formulas under autograd): 128 units, times the
# condition number in x. Loose next to the input derivative's 8 ulp, but a parameter's gradient is a
# sum over every element it touches, and a wrong or ignored parameter is off by ~2^23 units.
PARAM_GRAD_LIMIT = 128.0
DTYPES = ("float32", "float64")


def _cases(specs, keep=lambda spec, params: True):
    out = []
    for spec in specs:
        for params in parameter_samples(spec, "ci")[1:]:
            if keep(spec, params):
                out.append(pytest.param(spec, params, id=f"{spec.name}[{sample_label(spec, params)}]"))
    return out


ELEMENTWISE_CASES = _cases(ELEMENTWISE)


# ----------------------------------------------------------------------------- the generator
@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_samples_are_valid_deterministic_and_nested(spec):
    by_level = {level: parameter_samples(spec, level) for level in LEVELS}
    assert by_level["defaults"] == [spec.resolve_params()]
    for level, samples in by_level.items():
        assert samples[0] == spec.resolve_params(), level  # the defaults first
        assert samples == parameter_samples(spec, level)  # deterministic
        keys = [tuple(sorted((k, repr(v)) for k, v in s.items())) for s in samples]
        assert len(set(keys)) == len(keys), f"{level}: duplicate samples"
        for s in samples:
            assert spec.resolve_params(**s) == s  # every sample is accepted as it is
    as_set = lambda level: {tuple(sorted((k, repr(v)) for k, v in s.items())) for s in by_level[level]}
    assert as_set("defaults") <= as_set("ci") <= as_set("all")
    choices = sum(len(list(p.choices)) for p in spec.params if p.choices is not None)
    assert len(by_level["all"]) <= 20 * max(1, len(spec.params)) + choices, "sample counts stay bounded"


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_samples_reach_every_declared_value(spec):
    """Each end of each range (the nearest float64 inside an open one), each choice, True and
    False, None where nullable, and both signs where the range allows."""
    samples = parameter_samples(spec, "ci")
    for p in spec.params:
        seen = [s[p.name] for s in samples]
        if p.nullable:
            assert None in seen, p.name
        if p.choices is not None:
            assert set(p.choices) <= set(seen), p.name
            continue
        if p.kind is bool:
            assert {True, False} <= set(seen), p.name
            continue
        numbers = [v for v in seen if v is not None]
        if p.kind is float:
            # The extremes: one float64 (or float32) step beyond the smallest and the largest sample
            # is refused, by the Param or by the cross-constraint at that sample's other values.
            for pick, toward in ((min, -math.inf), (max, math.inf)):
                v = pick(numbers)
                sample = next(s for s in samples if s[p.name] == v)
                beyond = [math.nextafter(v, toward), _step32(v, toward)]
                assert any(_refused(spec, {**sample, p.name: b}) for b in beyond), (p.name, v)
            lo = -math.inf if p.low is None else p.low
            hi = math.inf if p.high is None else p.high
            if lo < 0 < hi:
                assert any(v < 0 for v in numbers) and any(v > 0 for v in numbers), p.name
        elif p.low is not None:
            assert int(p.low) + bool(p.low_open) in numbers, p.name


def _step32(v: float, toward: float) -> float:
    """The float32 next to float32(v) toward ``toward`` (inf beyond float32's largest value)."""
    with np.errstate(over="ignore"):
        return float(np.nextafter(np.float32(v), np.float32(toward)))


def _refused(spec, params) -> bool:
    try:
        spec.resolve_params(**params)
    except ValueError:
        return True
    return False


def _at_constraint_edge(spec, params) -> bool:
    """One float64 or float32 step of some parameter, valid on its own, is refused by the cross-constraint."""
    for p in spec.params:
        value = params[p.name]
        if p.kind is not float or p.choices is not None or value is None:
            continue
        steps = [math.nextafter(value, math.inf), math.nextafter(value, -math.inf)]
        steps += [_step32(value, t) for t in (math.inf, -math.inf)]
        for b in steps:
            try:
                p.validate(b, spec.name)
            except ValueError:
                continue
            try:
                spec.resolve_params(**{**params, p.name: b})
            except ValueError:
                return True
    return False


def _real_params(spec) -> list[str]:
    return [p.name for p in spec.params if p.kind is float and p.choices is None]


@pytest.mark.parametrize(
    "spec", [s for s in ALL if s.constraints is not None and len(_real_params(s)) >= 2], ids=lambda s: s.name
)
def test_constraint_edges_are_generated(spec):
    """Generic: every spec with cross-constraints between real parameters gets samples where two of
    them are equal or adjacent, so that one step further is refused."""
    edges = [s for s in parameter_samples(spec, "ci") if _at_constraint_edge(spec, s)]
    assert edges, f"{spec.name}: no constraint edge among the samples"


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="level"):
        parameter_samples(ELEMENTWISE[0], "some")


# ----------------------------------------------------------------------------- elementwise accuracy
def _learnable_module(spec, params, dtype, per_element: int | None = None):
    names = [n for n in learnable_params(spec)]
    if not names:
        return None
    cfg = {k: v for k, v in params.items() if k not in names}
    extra = {"num_parameters": per_element, "channel_dim": 0} if per_element else {}
    module = Activation(spec.name, **cfg, **{n: "learnable" for n in names}, **extra).to(getattr(torch, dtype))
    with torch.no_grad():  # exact values after the cast: the oracle uses them unrounded
        for n in names:
            getattr(module, n).fill_(params[n])
    return module.eval()


def _describe(row, path=None):
    p = row.paths[path] if path else row.__dict__
    return (
        f"{path or 'functional'}: forward {p['forward_ulps']} ulp at x={p['worst_forward_x']}, "
        f"derivative {p['derivative_ulps']} ulp at x={p['worst_derivative_x']}, nonfinite {p['nonfinite']} "
        f"(limits {row.forward_limit} / {row.derivative_limit})"
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec, params", ELEMENTWISE_CASES)
def test_sample_against_oracle(spec, params, dtype):
    params = params_for_dtype(spec, params, dtype)  # float32 ops round a parameter to float32
    fn = function_for(spec)
    paths = {
        "function_for": lambda t: fn(t, **params),
        "module": Activation(spec.name, **params).eval(),  # eval: rrelu is random in training
    }
    learnable = _learnable_module(spec, params, dtype)
    if learnable is not None:
        paths["learnable"] = learnable
    row = measure(
        spec, dtype, params=params, size=SAMPLE_GRID, with_torch=False, paths=paths, absolute_paths=("learnable",)
    )
    failures = []
    if not (
        row.forward_ulps <= row.forward_limit and row.derivative_ulps <= row.derivative_limit and not row.nonfinite
    ):
        failures.append(_describe(row))
    failures += [_describe(row, name) for name in row.paths if not row.path_passed(name)]
    assert not failures, "; ".join(failures)


def _param_grad_cases():
    out = []
    for spec in ELEMENTWISE:
        names = learnable_params(spec)
        for params in parameter_samples(spec, "ci"):
            for n in names:
                out.append(pytest.param(spec, params, n, id=f"{spec.name}[{sample_label(spec, params)}]-d/d{n}"))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec, params, name", _param_grad_cases())
def test_learnable_parameter_gradient(spec, params, name, dtype):
    """d f / d p per element (one parameter per element) against SymPy's derivative of the
    definition, within PARAM_GRAD_LIMIT units of the true value or of the largest |df/dp| on the
    grid, whichever is larger, times its condition number in x where that exceeds 1 (snake's
    x sin(2ax)/a takes sin and cos of a rounded ax: at a = 50, x = 7600, ~70 such units)."""
    params = params_for_dtype(spec, params, dtype)
    xs = accuracy_grid(spec, params, dtype, size=300)
    kinks = np.array([at for at, _ in spec.kink_points(params)] + [v for k, v in params.items() if k.startswith("t_")])
    if kinks.size:
        xs = xs[np.min(np.abs(xs[:, None] - kinks[None, :]), axis=1) > 1e-6 * np.maximum(1, np.abs(xs))]
    try:
        true = oracle(spec, xs, params, wrt=name)
    except TypeError:  # soft_exponential: the definition picks its branch from alpha's value
        pytest.skip(f"{spec.name}'s definition branches on the value of {name}: no symbolic d/d{name}")
    module = _learnable_module(spec, params, dtype, per_element=xs.size)
    x = torch.tensor(xs, dtype=getattr(torch, dtype))
    y = module(x)
    (grad,) = torch.autograd.grad(y.sum(), getattr(module, name))
    got = grad.double().numpy()
    finite = np.isfinite(true) & (np.abs(true) <= np.finfo(np.dtype(dtype)).max)
    largest = float(np.max(np.abs(true[finite]))) if finite.any() else 0.0
    err, bad = ulp_errors(got, true, dtype, floor=float(ulp(np.array([largest]), dtype)[0]))
    # its condition number in x, |x d/dx (df/dp) / (df/dp)|: snake's x sin(2ax)/a takes sin of a
    # rounded 2ax (at a = 5000, x = 1e4: 1e8), which no fixed number of ulps bounds
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        kappa = np.abs(xs) * np.abs(oracle(spec, xs, params, order=1, wrt=name, strict=False) / true)
    err = err / np.where(np.isfinite(kappa), np.maximum(kappa, 1.0), 1.0)
    err = np.where(finite, err, 0.0)
    i = int(np.argmax(err))
    assert not (bad & finite).any(), f"non-finite d/d{name} at x={xs[bad & finite][:5]}"
    assert err[i] <= PARAM_GRAD_LIMIT, f"d/d{name} at x={xs[i]}: got {got[i]}, true {true[i]} ({err[i]} units)"


# ----------------------------------------------------------------------------- vector specs
def _vector_cases(axis: bool):
    def keep(spec, params):
        other = {k: v for k, v in spec.non_default(params).items() if k != "axis"}
        return ("axis" in spec.non_default(params)) if axis else bool(other)

    return _cases(VECTOR, keep)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec, params", _vector_cases(axis=False))
def test_vector_sample_against_row_oracle(spec, params, dtype):
    from actlab.verify.vector import measure_vector

    params = {**params, "axis": -1}  # the row oracle works on the last axis; the axis test below
    row = measure_vector(spec, dtype, rows=32, params=params)
    assert row.nonfinite == 0, row
    assert row.forward_ulps <= row.forward_limit, row
    assert row.derivative_ulps <= row.derivative_limit, row
    module = Activation(spec.name, **params)
    x = torch.tensor(np.random.default_rng(0).normal(0, 3, (4, row.width)), dtype=getattr(torch, dtype))
    torch.testing.assert_close(module(x), apply(spec, x, params), rtol=0, atol=0)


@pytest.mark.parametrize("spec, params", _vector_cases(axis=True))
def test_vector_axis_sample(spec, params):
    """The function along ``axis`` is the function along the last axis of the moved input (values
    and gradients bit for bit), on the functional and module paths."""
    axis = params["axis"]
    ndim = max(4, axis + 1 if axis >= 0 else -axis)
    step = 2 * params.get("pieces", 1)
    shape = [3] * ndim
    shape[axis] = 2 * step
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).requires_grad_(True)
    y = apply(spec, x, params)
    last = {**params, "axis": -1}
    want = apply(spec, x.movedim(axis, -1), last).movedim(-1, axis)
    torch.testing.assert_close(y, want, rtol=0, atol=0)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (gx,) = torch.autograd.grad(y, x, g)
    (gw,) = torch.autograd.grad(want, x, g)
    torch.testing.assert_close(gx, gw, rtol=0, atol=0)
    torch.testing.assert_close(Activation(spec.name, **params)(x), y, rtol=0, atol=0)


# ----------------------------------------------------------------------------- the CLI
def test_accuracy_command_reports_every_sample(capsys):
    """`actlab accuracy --params LEVEL` gives a row per spec x sample x dtype, labelled by the sample."""
    import json

    from actlab.cli import main

    spec = next(s for s in ELEMENTWISE if s.name == "leaky_relu")
    args = ["accuracy", "leaky_relu", "--params", "ci", "--size", "200", "--jobs", "1", "--format", "json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    samples = parameter_samples(spec, "ci")
    assert len(rows) == 2 * len(samples)
    assert {r["params"] for r in rows} == {sample_label(spec, s) for s in samples}
    assert all(r["passed"] for r in rows)
    assert main(args[:-1] + ["table"]) == 0
    table = capsys.readouterr().out
    assert "negativ" in table and "0 fail" in table  # the parameters column (folded to fit)
