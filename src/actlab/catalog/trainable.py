"""Layers with trained weights: PReLU, PAU, APL, maxout and the gated linear units with their
projections (registry kind ``"layer"``).

A layer entry describes a module, not a fixed curve: its parameters are the module's
configuration (sizes, initial values), its ``weights`` are the tensors training changes, and
``module`` names the ``actlab.nn`` class that ``actlab.nn.create_activation`` builds. The
function a layer computes at initialisation, where that is a catalog function, is ``initial``
(PReLU starts as ``leaky_relu(negative_slope=init)``).

The catalog functions whose parameters may be learned (``swish(beta='learnable')``) are not
here: they are the catalog specs, with ``Param.trainable`` on those parameters.

This module also holds the NumPy side of PAU: the rational function and its least-squares fit
to a catalog activation, cached on disk like the oracle's values.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actlab.catalog._refs import DAUPHIN_GLU, GOODFELLOW_MAXOUT, SHAZEER_GLU
from actlab.catalog.spec import Equivalent, Param, ParameterError, Reference, Spec
from actlab.catalog.vector import VAN_DEN_OORD_GATED

__all__ = ["LayerSpec", "Weight", "PadeFit", "pade_fit", "pade_numpy", "SPECS"]


@dataclass(frozen=True)
class Weight:
    """A trained tensor of a layer: its attribute name, shape (in terms of the configuration) and role."""

    name: str
    shape: str
    doc: str


@dataclass(frozen=True)
class LayerSpec(Spec):
    """A registry entry for a layer: ``module`` is ``"package.module:Class"``; the class takes the
    entry's parameters as keyword arguments."""

    module: str = ""
    weights: tuple[Weight, ...] = ()
    # The catalog identifier of the function the layer computes at initialisation (None: random).
    initial: Callable[[Mapping[str, Any]], str | None] | None = None
    initial_note: str = ""


def _not_a_function(name: str, cls: str) -> Callable[..., Any]:
    def forward(x: Any, ops: Any, **params: Any) -> Any:
        raise TypeError(
            f"{name} is a layer with trained weights, not a fixed function: build the module with "
            f"actlab.nn.create_activation({name!r}) or actlab.nn.{cls}(...)"
        )

    return forward


class _ActivationIdentifiers:
    """``choices`` for PAU's ``approximates``: any identifier of an elementwise activation.

    Membership accepts every string (the registry is not importable while the catalog loads);
    :func:`_canonical_target` checks it afterwards, with close-match suggestions.
    """

    description = "an identifier of an elementwise activation, e.g. 'gelu' or 'leaky_relu(negative_slope=0.2)'"

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str)

    def __iter__(self) -> Iterator[str]:
        from actlab.registry import list_activations

        return iter(list_activations(kind="elementwise"))

    def __repr__(self) -> str:
        return "<elementwise activation identifiers>"


def _canonical_target(params: dict[str, Any]) -> None:
    """Constraint of ``pau``: ``approximates`` resolves to an elementwise activation (canonicalised)."""
    from actlab.registry import BoundActivation, get

    value = params["approximates"]
    try:
        act = get(value)
    except (KeyError, ValueError, TypeError) as err:
        raise ParameterError(f"invalid value {value!r} for parameter 'approximates': {err}") from None
    if not isinstance(act, BoundActivation) or act.spec.kind != "elementwise":
        raise ParameterError(
            f"parameter 'approximates' must name an elementwise activation, got {value!r} (a {act.spec.kind} entry)"
        )
    if act.learnable:
        raise ParameterError(f"parameter 'approximates' must be a fixed function, got {value!r}")
    params["approximates"] = repr(act)


# ----------------------------------------------------------------------------- PAU on NumPy
PADE_X_RANGE = (-3.0, 3.0)
_PADE_POINTS = 2001
_PADE_VERSION = 1  # bump when the fit changes: cached fits are keyed by it


@dataclass(frozen=True)
class PadeFit:
    """A safe Padé approximant P(x) / (1 + |B(x)|) of a catalog activation on ``x_range``.

    ``numerator`` = (a_0, ..., a_m), ``denominator`` = (b_1, ..., b_n); the errors are measured on
    the fit's grid (2001 points).
    """

    approximates: str
    numerator: tuple[float, ...]
    denominator: tuple[float, ...]
    x_range: tuple[float, float]
    max_abs_error: float
    rms_error: float

    def __call__(self, x: Any) -> np.ndarray:
        return pade_numpy(x, self.numerator, self.denominator)


def pade_numpy(x: Any, numerator: Any, denominator: Any) -> np.ndarray:
    """P(x) / (1 + |B(x)|), P = sum a_j x^j, B = sum_{k>=1} b_k x^k (Molina et al.'s safe PAU)."""
    x = np.asarray(x, dtype=np.float64)
    p = np.zeros_like(x)
    for a in reversed(list(numerator)):
        p = p * x + a
    b = np.zeros_like(x)
    for c in reversed(list(denominator)):
        b = (b + c) * x
    return p / (1.0 + np.abs(b))


def _residual_and_jacobian(theta: np.ndarray, x: np.ndarray, f: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    a, bk = theta[: m + 1], theta[m + 1 :]
    vp = x[:, None] ** np.arange(m + 1)
    vb = x[:, None] ** np.arange(1, bk.size + 1)
    p = vp @ a
    b = vb @ bk
    q = 1.0 + np.abs(b)
    r = p / q - f
    jac = np.hstack([vp / q[:, None], (-(p / q**2) * np.sign(b))[:, None] * vb])
    return r, jac


def _levenberg_marquardt(theta: np.ndarray, x: np.ndarray, f: np.ndarray, m: int) -> np.ndarray:
    """Least squares on the safe form itself (the |.| makes it nonlinear); deterministic."""
    lam = 1e-3
    r, jac = _residual_and_jacobian(theta, x, f, m)
    cost = float(r @ r)
    for _ in range(300):
        jtj = jac.T @ jac
        step = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), -(jac.T @ r))
        trial = theta + step
        r_new, jac_new = _residual_and_jacobian(trial, x, f, m)
        cost_new = float(r_new @ r_new)
        if np.isfinite(cost_new) and cost_new < cost:
            converged = cost - cost_new <= 1e-13 * cost
            theta, r, jac, cost = trial, r_new, jac_new, cost_new
            lam = max(lam / 3.0, 1e-12)
            if converged:
                break
        else:
            lam *= 4.0
            if lam > 1e12:
                break
    return theta


def _fit(x: np.ndarray, f: np.ndarray, m: int, n: int) -> np.ndarray:
    # Two starts: the classic linearised Padé solve P - f B = f (no |.|), and the degree-m
    # polynomial with B = 0; Levenberg-Marquardt refines each, the better one wins.
    vp = x[:, None] ** np.arange(m + 1)
    vb = x[:, None] ** np.arange(1, n + 1)
    linear = np.linalg.lstsq(np.hstack([vp, -f[:, None] * vb]), f, rcond=None)[0]
    poly = np.concatenate([np.linalg.lstsq(vp, f, rcond=None)[0], np.zeros(n)])
    best, best_cost = poly, math.inf
    for start in (linear, poly):
        theta = _levenberg_marquardt(start, x, f, m)
        r, _ = _residual_and_jacobian(theta, x, f, m)
        cost = float(r @ r)
        if np.isfinite(cost) and cost < best_cost:
            best, best_cost = theta, cost
    return best


def _cache_dir() -> Path | None:
    # The oracle's convention: ACTLAB_CACHE names the folder, an empty value turns caching off.
    root = os.environ.get("ACTLAB_CACHE")
    if root == "":
        return None
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "actlab"
    return base / "pade"


def pade_fit(
    approximates: str = "leaky_relu",
    numerator_degree: int = 5,
    denominator_degree: int = 4,
    x_range: tuple[float, float] = PADE_X_RANGE,
    *,
    cache: bool = True,
) -> PadeFit:
    """Least-squares fit of P(x) / (1 + |B(x)|) to a catalog activation on ``x_range``.

    Computed by actlab (NumPy, deterministic) and cached on disk per target, degrees and range.

    >>> fit = pade_fit("leaky_relu", cache=False)
    >>> fit.max_abs_error < 0.05, len(fit.numerator), len(fit.denominator)
    (True, 6, 4)
    """
    from actlab.registry import get

    params = {"approximates": approximates}
    _canonical_target(params)
    target = params["approximates"]
    m, n = int(numerator_degree), int(denominator_degree)
    lo, hi = (float(v) for v in x_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"x_range must be two finite numbers lo < hi, got {x_range!r}")
    key = hashlib.sha256(f"pade-{_PADE_VERSION}/{target}/{m}/{n}/{lo!r}/{hi!r}/{_PADE_POINTS}".encode()).hexdigest()
    folder = _cache_dir() if cache else None
    path = folder / f"{target.split('(')[0]}-{key[:32]}.json" if folder is not None else None
    if path is not None:
        try:
            data = json.loads(path.read_text())
            return PadeFit(
                data["approximates"],
                tuple(data["numerator"]),
                tuple(data["denominator"]),
                tuple(data["x_range"]),
                data["max_abs_error"],
                data["rms_error"],
            )
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing or damaged: recomputed
    x = np.linspace(lo, hi, _PADE_POINTS)
    with np.errstate(all="ignore"):
        f = np.asarray(get(target)(x), dtype=np.float64)
    if not np.all(np.isfinite(f)):
        raise ValueError(f"pau: {target} is not finite everywhere on [{lo}, {hi}]; it cannot be fitted there")
    theta = _fit(x, f, m, n)
    err = pade_numpy(x, theta[: m + 1], theta[m + 1 :]) - f
    fit = PadeFit(
        target,
        tuple(float(v) for v in theta[: m + 1]),
        tuple(float(v) for v in theta[m + 1 :]),
        (lo, hi),
        float(np.max(np.abs(err))),
        float(np.sqrt(np.mean(err**2))),
    )
    if path is not None:
        _store(path, asdict(fit))
    return fit


def _store(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)  # never a half-written cache file
    except OSError:
        pass


# ----------------------------------------------------------------------------- references
HE_PRELU = Reference(
    "Delving Deep into Rectifiers: Surpassing Human-Level Performance on ImageNet Classification",
    "He, Zhang, Ren, Sun",
    2015,
    arxiv="1502.01852",
)
MOLINA_PAU = Reference(
    "Padé Activation Units: End-to-end Learning of Flexible Activation Functions in Deep Networks",
    "Molina, Schramowski, Kersting",
    2020,
    arxiv="1907.06732",
)
AGOSTINELLI_APL = Reference(
    "Learning Activation Functions to Improve Deep Neural Networks",
    "Agostinelli, Hoffman, Sadowski, Baldi",
    2014,
    arxiv="1412.6830",
)

_CHANNEL_DIM = Param(
    "channel_dim",
    1,
    kind=int,
    doc="the channel axis: 1 for channels-first (N, C, ...), -1 for channels-last (N, ..., C)",
)


def _num_parameters(what: str) -> Param:
    return Param(
        "num_parameters",
        1,
        low=1,
        kind=int,
        doc=f"1: one {what} shared by all channels; C: one per channel (C = the input's size along channel_dim)",
    )


PRELU = LayerSpec(
    name="prelu",
    aliases=("parametric_relu",),
    family="trainable",
    kind="layer",
    summary="Parametric ReLU max(0, x) + a min(0, x): the negative slope a is learned, shared or one per channel.",
    definition=None,
    formula=r"f(x_c) = \max(0, x_c) + a_c \min(0, x_c)",
    forward=_not_a_function("prelu", "PReLU"),
    params=(
        _num_parameters("slope"),
        Param("init", 0.25, doc="the initial slope (He et al. use 0.25)"),
        _CHANNEL_DIM,
    ),
    module="actlab.nn.trainable:PReLU",
    weights=(
        Weight(
            "weight",
            "(num_parameters,)",
            "the negative slopes, initialised to init; He et al. do not decay them (see actlab.nn.param_groups)",
        ),
    ),
    initial=lambda p: f"leaky_relu(negative_slope={p['init']!r})" if p["init"] >= 0 else None,
    smoothness=0,
    references=(HE_PRELU,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.PReLU",
            "num_parameters=1, init=0.25, channels on dim 1 only (actlab: any channel_dim); the same weight "
            "name and shape, so state_dicts load into each other.",
            names=("PReLU",),
        ),
        Equivalent(
            "keras",
            "keras.layers.PReLU",
            "alpha_initializer='zeros' and one slope per input entry unless shared_axes is given "
            "(shared_axes=[1, 2] gives one per channel of an NHWC map). A Keras PReLU config resolves to "
            "prelu(init=<its constant initializer>) with one shared slope: the function at initialisation is "
            "the same, the slopes' layout (shared_axes) is not carried over (num_parameters=C, channel_dim=-1 "
            "gives one per channel).",
            names=("PReLU",),
            params={"init": 0.0},
        ),
        Equivalent(
            "transformers",
            "torch.nn.PReLU",
            "ACT2CLS['prelu']: PyTorch's defaults (one slope, init 0.25)",
            names=("prelu",),
        ),
        Equivalent(
            "timm",
            "timm.layers.PReLU",
            "create_act name 'prelu': torch.nn.PReLU with num_parameters=1, init=0.25",
            names=("prelu",),
        ),
    ),
    notes="A channel count that does not match num_parameters raises a ValueError at the forward that "
    "sees it (the layer cannot know the input shape before). He et al. found the learned slopes "
    "larger in the first layers and smaller in deeper ones.",
)

PAU = LayerSpec(
    name="pau",
    aliases=("pade_activation_unit",),
    family="trainable",
    kind="layer",
    summary="Padé activation unit P(x) / (1 + |B(x)|), degrees (5, 4), initialised by a least-squares fit to a catalog activation.",
    definition=None,
    formula=r"f(x) = \frac{\sum_{j=0}^{m} a_j x^j}{1 + \left|\sum_{k=1}^{n} b_k x^k\right|}",
    forward=_not_a_function("pau", "PAU"),
    params=(
        Param(
            "approximates",
            "leaky_relu",
            choices=_ActivationIdentifiers(),  # type: ignore[arg-type]
            kind=str,
            doc="the catalog activation the coefficients are fitted to at initialisation (on [-3, 3])",
        ),
        Param("numerator_degree", 5, low=1, high=16, kind=int, doc="m, the degree of P"),
        Param("denominator_degree", 4, low=0, high=16, kind=int, doc="n, the degree of B (no constant term)"),
    ),
    constraints=_canonical_target,
    module="actlab.nn.trainable:PAU",
    weights=(
        Weight("numerator", "(numerator_degree + 1,)", "a_0 ... a_m"),
        Weight("denominator", "(denominator_degree,)", "b_1 ... b_n"),
    ),
    initial=lambda p: p["approximates"],
    initial_note="approximately: a least-squares fit on [-3, 3], its error in PAU.fit",
    references=(MOLINA_PAU,),
    notes="The denominator 1 + |B(x)| >= 1 has no poles, so training cannot create a singularity "
    "(Molina et al.'s 'safe' PAU; version 'B' of the authors' rational_activations package, which ships "
    "precomputed coefficients where actlab fits its own). One set of coefficients per layer, as in the paper.",
)

APL = LayerSpec(
    name="apl",
    aliases=("adaptive_piecewise_linear",),
    family="trainable",
    kind="layer",
    summary="Adaptive piecewise linear unit max(0, x) + sum_s a_s max(0, b_s - x) with S learned hinges per channel.",
    definition=None,
    formula=r"f(x_c) = \max(0, x_c) + \sum_{s=1}^{S} a_c^s \max(0, b_c^s - x_c)",
    forward=_not_a_function("apl", "APL"),
    params=(
        Param("hinges", 2, low=1, high=64, kind=int, doc="S, the number of hinges (a hyper-parameter)"),
        _num_parameters("set of hinges"),
        _CHANNEL_DIM,
    ),
    module="actlab.nn.trainable:APL",
    weights=(
        Weight("a", "(num_parameters, hinges)", "hinge slopes, initialised ~ U(-0.2, 0.2)"),
        Weight("b", "(num_parameters, hinges)", "hinge locations, initialised ~ N(0, 0.5^2)"),
    ),
    initial_note="random (the initialisation of the authors' released configuration)",
    smoothness=0,
    references=(AGOSTINELLI_APL,),
    notes="Agostinelli et al. penalise the slopes a with a small L2 term; actlab.nn.param_groups "
    "exempts activation parameters from weight decay, so add that penalty yourself if wanted.",
)


# ----------------------------------------------------------------------------- layers with projections
def _size(name: str, doc: str) -> Param:
    return Param(name, None, low=1, kind=int, nullable=True, doc=doc)


_GATED_CONVENTION = (
    "proj maps in_features to 2 * hidden_features = [a, b]; the second half b is the gate (the catalog's "
    "{name}: a * act(b)); only proj's output is saved for backward (the activation is recomputed). For "
    "LLaMA weights (silu(gate_proj x) * up_proj x) set proj.weight = cat([up_proj.weight, gate_proj.weight])."
)


def _gated_layer(variant: str, cls: str, what: str, references: tuple[Reference, ...]) -> LayerSpec:
    return LayerSpec(
        name=f"{variant}_layer",
        family="trainable",
        kind="layer",
        summary=f"{what} as a layer: in -> 2 x hidden (one fused projection) -> {variant} -> optional output projection.",
        definition=None,
        formula=rf"y = W_2\,\mathrm{{{variant}}}(W_1 x + c_1) + c_2",
        forward=_not_a_function(f"{variant}_layer", cls),
        params=(
            _size("in_features", "input size (required)"),
            _size("hidden_features", "size of each half of the projection (default: in_features)"),
            _size("out_features", "size of the output projection (default None: no output projection)"),
            Param("bias", True, kind=bool, doc="biases in the projections"),
            Param(
                "recompute",
                None,
                choices=("elementwise", "projections"),
                kind=str,
                nullable=True,
                doc="None: keep proj's output and the gated product; 'elementwise'/'projections': the fused "
                "MLP of actlab.nn.GatedMLP (needs out_features and a gate a * act(b))",
            ),
        ),
        module=f"actlab.nn.gated:{cls}",
        weights=(
            Weight("proj.weight", "(2 * hidden_features, in_features)", "rows [a; b]: value half, then gate half"),
            Weight("proj.bias", "(2 * hidden_features,)", "only with bias=True"),
            Weight("out.weight", "(out_features, hidden_features)", "only with out_features"),
            Weight("out.bias", "(out_features,)", "only with out_features and bias=True"),
        ),
        references=references,
        notes=_GATED_CONVENTION.format(name=variant),
    )


GATED_LAYERS = (
    _gated_layer("glu", "GLU", "Gated linear unit a * sigmoid(b)", (DAUPHIN_GLU,)),
    _gated_layer("gtu", "GTU", "Gated tanh unit tanh(a) * sigmoid(b)", (VAN_DEN_OORD_GATED, DAUPHIN_GLU)),
    _gated_layer("bilinear", "Bilinear", "Bilinear unit a * b", (SHAZEER_GLU,)),
    _gated_layer("reglu", "ReGLU", "ReLU-gated unit a * relu(b)", (SHAZEER_GLU,)),
    _gated_layer("geglu", "GEGLU", "GELU-gated unit a * gelu(b)", (SHAZEER_GLU,)),
    _gated_layer("swiglu", "SwiGLU", "SiLU-gated unit a * silu(b) (the LLaMA MLP)", (SHAZEER_GLU,)),
)

MAXOUT_LAYER = LayerSpec(
    name="maxout_layer",
    family="trainable",
    kind="layer",
    summary="Maxout unit: `pieces` affine maps per output, their elementwise maximum (a learned convex piecewise-linear function).",
    definition=None,
    formula=r"y_i = \max_{0 \le j < k} (W x + c)_{ik + j}",
    forward=_not_a_function("maxout_layer", "Maxout"),
    params=(
        _size("in_features", "input size (required)"),
        _size("out_features", "output size (required)"),
        Param("pieces", 2, low=1, kind=int, doc="k, the affine maps per output"),
        Param("bias", True, kind=bool, doc="a bias in the affine maps"),
    ),
    module="actlab.nn.gated:Maxout",
    weights=(
        Weight("linear.weight", "(out_features * pieces, in_features)", "rows [ik, (i+1)k) are output i's pieces"),
        Weight("linear.bias", "(out_features * pieces,)", "only with bias=True"),
    ),
    smoothness=0,
    references=(GOODFELLOW_MAXOUT,),
    equivalents=(
        Equivalent(
            "tfa", "tfa.layers.Maxout", "the maximum only (num_units outputs), without the affine maps; same grouping."
        ),
    ),
    notes="The channel-group maxout of conv feature maps has no weights: it is the catalog's maxout "
    "(actlab.nn.ChannelMaxout(pieces, dim=1)).",
)

SPECS = (PRELU, PAU, APL, MAXOUT_LAYER, *GATED_LAYERS)
