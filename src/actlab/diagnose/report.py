"""What :func:`actlab.watch` measured, as data: per-site statistics, findings with advice, and
text renderers (table, Markdown, JSON). Plots are in :mod:`actlab.diagnose.render`.

Nothing here imports torch: a report is plain Python numbers and can be saved as JSON.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from actlab._json import json_safe

__all__ = [
    "Histogram",
    "SiteReport",
    "Finding",
    "ModelFacts",
    "DiagnosisReport",
    "THRESHOLDS",
    "site_rows",
    "SITE_COLUMNS",
]

# When a figure becomes a finding. A healthy ReLU net with He init stays below all of them.
THRESHOLDS = {
    "dead_fraction": 0.10,  # of a site's units never active over all batches
    "saturated_fraction": 0.25,  # of inputs where |f'| < 1 % of max |f'| (bounded activations)
    "vanishing_ratio": 0.1,  # gradient RMS per element at the first site / at the last site below this
    "exploding_ratio": 10.0,  # ... above this
    "shift": 2.0,  # |mean| of the pre-activations in standard deviations
    "off_centre": 1.0,  # |mean| of a bounded activation's output in standard deviations
}


@dataclass(frozen=True)
class Histogram:
    """Counts of pre-activations in fixed bins ``edges`` (len(counts) + 1 edges), plus the
    values below the first edge and above the last."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    below: int = 0
    above: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts) + self.below + self.above


@dataclass(frozen=True)
class ModelFacts:
    """What the findings need to know about the model as it was when the watch began
    (:func:`actlab.diagnose.structure.model_facts`).

    ``zero_scales``: parameters that multiply and are exactly zero (a norm's weight, a linear or
    convolution weight, a layer scale): nothing flows back through them. ``default_init``: every
    linear and convolution layer still has PyTorch's default initialisation (nobody chose one).
    """

    zero_scales: tuple[str, ...] = ()
    default_init: bool = False


@dataclass(frozen=True)
class SiteReport:
    """Statistics of one activation site over every batch the watch saw.

    ``dead_units`` are the indices of units (features; channels of convolutions) whose inputs, over
    every batch, stayed where f' = 0 (ReLU: never a positive input; decided on each unit's running
    [min, max]; without a catalog spec: output always 0); ``saturated_fraction`` is the
    fraction of inputs where |f'(x)| < 1 % of max |f'| (bounded activations only: sigmoid,
    tanh, hard_tanh, ...; None for the others and for sites without a catalog spec);
    ``grad_norm`` is the mean over backward passes of the norm of the gradient with respect to
    the site's output (None without backward), ``grad_rms`` the same per element (the norm over
    the square root of the elements of one call), which compares layers of different sizes.
    ``gated``: the output is multiplied by another tensor of the network (a gate; None: not known,
    no forward with gradients seen); ``sum_input``: the input is a sum of two tensors (a residual
    addition). Means and standard deviations use every value;
    the fractions and the histogram a random sample of about 1024 values per call, stratified by
    unit (``actlab.diagnose.monitor.SAMPLE``), the same positions in input and output.
    """

    name: str
    activation: str
    index: int  # execution order (0 = first applied)
    kind: str  # "module" | "function"
    shape: tuple[int, ...]  # of the last input seen
    batches: int
    elements: int
    pre_mean: float
    pre_std: float
    out_mean: float
    out_std: float
    negative_fraction: float  # of pre-activations < 0
    zero_fraction: float  # of outputs == 0
    units: int | None
    unit_dim: int | None
    dead_units: tuple[int, ...] | None
    saturated_fraction: float | None
    grad_norm: float | None
    backward_passes: int
    histogram: Histogram | None = None
    bounded: bool = False  # the activation has finite bounds on both sides (sigmoid, tanh, ...)
    zero_centered: bool = True
    gated: bool | None = None
    sum_input: bool | None = None

    @property
    def grad_rms(self) -> float | None:
        if self.grad_norm is None or not self.batches or not self.elements:
            return None
        return self.grad_norm / math.sqrt(self.elements / self.batches)

    @property
    def dead_fraction(self) -> float | None:
        if self.dead_units is None or not self.units:
            return None
        return len(self.dead_units) / self.units


@dataclass(frozen=True)
class Finding:
    """One problem, the figure that shows it, and what to try."""

    # "dead_units" | "saturation" | "vanishing_gradients" | "exploding_gradients" | "shift" | "off_centre"
    # | "zero_gradients"
    kind: str
    site: str | None  # None for findings about the whole model
    value: float
    threshold: float
    message: str
    advice: str

    def __str__(self) -> str:
        return f"{self.message}: {self.advice}"


@dataclass(frozen=True)
class DiagnosisReport:
    """Everything :func:`actlab.watch` measured; ``findings`` are the problems, with advice."""

    model: str
    sites: tuple[SiteReport, ...]
    findings: tuple[Finding, ...]
    batches: int
    backward_passes: int
    skipped: tuple[str, ...] = field(default=())  # sites not monitored, with the reason
    facts: ModelFacts = field(default_factory=ModelFacts)

    @property
    def dead_fraction(self) -> float | None:
        """Dead units / all units over every site (None without sites with units)."""
        known = [s for s in self.sites if s.dead_units is not None and s.units]
        if not known:
            return None
        return sum(len(s.dead_units) for s in known) / sum(s.units for s in known)

    @property
    def gradient_sites(self) -> tuple[SiteReport, SiteReport] | None:
        """The first and the last site whose gradients :attr:`gradient_ratio` compares: sites with a
        nonzero gradient that are not gates, of the activation most of them use (the trunk: a
        classifier head's tanh or a pooler is not compared with the blocks' GELUs), or all of them
        when that activation has fewer than two sites. None with fewer than two sites."""
        live = [s for s in self.sites if s.grad_rms and not s.gated]
        counts: dict[str, int] = {}
        for s in live:
            counts[s.activation] = counts.get(s.activation, 0) + 1
        trunk = [s for s in live if counts and s.activation == max(counts, key=counts.get)]
        chosen = trunk if len(trunk) >= 2 else live
        return (chosen[0], chosen[-1]) if len(chosen) >= 2 else None

    @property
    def gradient_ratio(self) -> float | None:
        """Gradient RMS per element at the first site over that at the last (:attr:`gradient_sites`;
        None without backward or with fewer than two sites). Far below 1: vanishing gradients; far
        above: exploding. Sites with exactly zero gradient are a finding of their own."""
        pair = self.gradient_sites
        return None if pair is None else pair[0].grad_rms / pair[1].grad_rms

    def site(self, name: str) -> SiteReport:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(f"no site {name!r}; sites: {', '.join(s.name for s in self.sites)}")

    # ------------------------------------------------------------------ rendering
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for s, d in zip(self.sites, out["sites"]):
            d["dead_fraction"] = s.dead_fraction
            d["grad_rms"] = s.grad_rms
        out["dead_fraction"] = self.dead_fraction
        out["gradient_ratio"] = self.gradient_ratio
        out["method"] = list(METHOD)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(json_safe(self.to_dict()), indent=indent)

    def render(self, fmt: str = "table") -> str:
        """The report as text: ``"table"`` (terminal), ``"md"`` (Markdown) or ``"json"``."""
        if fmt == "json":
            return self.to_json()
        if fmt not in ("table", "md"):
            raise ValueError(f"fmt must be one of 'table', 'md', 'json', got {fmt!r}")
        from actlab.render import render as _render

        title = f"activation health of {self.model}: {self.batches} batches, {self.backward_passes} backward passes"
        # To fit 100 columns the terminal table leaves out the index (sites are listed in execution
        # order) and the unit count (the dead-units cell gives count and fraction); JSON has both.
        columns = SITE_COLUMNS if fmt == "md" else tuple(c for c in SITE_COLUMNS if c not in ("index", "units"))
        table = _render(site_rows(self), columns, fmt, title=title, headers=_HEADERS)
        lines = [table, ""]
        summary = [
            f"dead units overall: {_pct(self.dead_fraction)}",
            f"gradient RMS first/last site: {_num(self.gradient_ratio)}",
        ]
        if fmt == "md":
            lines += [f"- {s}" for s in summary] + [""]
            lines += ["**Findings**", ""] if self.findings else ["**No findings.**"]
            lines += [f"- **{f.message}**: {f.advice}" for f in self.findings]
            lines += [f"- not monitored: {s}" for s in self.skipped]
            lines += ["", "**Method**", ""] + [f"- {m}" for m in METHOD]
        else:
            lines += summary + [""]
            lines += ["findings:"] if self.findings else ["no findings."]
            lines += [f"  - {f.message}: {f.advice}" for f in self.findings]
            lines += [f"not monitored: {s}" for s in self.skipped]
            lines += ["", "method:"] + [f"  - {m}" for m in METHOD]
        return "\n".join(lines).rstrip()

    def __str__(self) -> str:
        return self.render("table")


SITE_COLUMNS = (
    "index",
    "name",
    "activation",
    "units",
    "dead",
    "saturated",
    "negative",
    "zero",
    "pre_mean",
    "pre_std",
    "out_mean",
    "out_std",
    "grad_rms",
)
_HEADERS = {
    "index": "#",
    "dead": "dead units",
    "saturated": "saturated",
    "negative": "pre < 0",
    "zero": "out == 0",
    "pre_mean": "pre mean",
    "pre_std": "pre std",
    "out_mean": "out mean",
    "out_std": "out std",
    "grad_rms": "grad rms",
}


def site_rows(report: DiagnosisReport) -> list[dict[str, Any]]:
    """One row per site for :func:`actlab.render.render` tables."""
    rows = []
    for s in report.sites:
        dead = None
        if s.dead_units is not None:
            dead = f"{len(s.dead_units)} ({_pct(s.dead_fraction)})"
        rows.append(
            {
                "index": s.index,
                "name": s.name,
                "activation": f"{s.activation} (gate)" if s.gated else s.activation,
                "units": s.units,
                "dead": dead,
                "saturated": _pct(s.saturated_fraction) if s.saturated_fraction is not None else None,
                "negative": _pct(s.negative_fraction),
                "zero": _pct(s.zero_fraction),
                "pre_mean": _mean_shown(s.pre_mean, s.pre_std),
                "pre_std": s.pre_std,
                "out_mean": _mean_shown(s.out_mean, s.out_std),
                "out_std": s.out_std,
                "grad_rms": s.grad_rms,
            }
        )
    return rows


def _mean_shown(mean: float | None, std: float | None) -> float | None:
    """The mean as the table shows it: 0 where it is below 1e-6 standard deviations (after a
    normalisation layer the mean is rounding noise, such as 8e-10, that changes with the summation
    order and says nothing); JSON keeps the value."""
    if mean is None or std is None or not math.isfinite(mean) or not math.isfinite(std):
        return mean
    return 0.0 if abs(mean) < 1e-6 * std else mean


def _pct(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.3g} %"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


# ----------------------------------------------------------------------------- findings
def _torch_activations() -> list[Any]:
    """Elementwise catalog specs that torch itself offers as activations (F.*, torch.sigmoid/tanh)."""
    from actlab.nn.recognition import _torch_activation_symbol
    from actlab.registry import all_specs

    return [
        spec
        for spec in all_specs()
        if spec.kind == "elementwise"
        and spec.train_forward is None
        and any(e.framework == "pytorch" and _torch_activation_symbol(e.framework, e.symbol) for e in spec.equivalents)
    ]


@functools.cache
def _alternatives(kind: str, limit: int = 4) -> tuple[str, ...]:
    """Catalog activations to suggest, chosen by their measured shape (not a hand list), among
    those torch has, so that the advice is one ``swap`` away.

    "dead": monotonic, ReLU-like on the right (f'(2) within 20 % of 1), a gradient of at least 0.01 at every
    x in [-3, -0.5] so that no unit stops learning, and bounded below (|f(-10)| <= 2).
    "saturation": zero at 0, responsive near 0 (f'(0.25) >= 0.25) and not saturating on the right.
    """
    import numpy as np

    from actlab.registry import BoundActivation

    picked = []
    left = np.linspace(-3.0, -0.5, 251)
    for spec in _torch_activations():
        act = BoundActivation(spec)
        d = act.derivative(np.array([0.25, 2.0, 50.0]))
        if kind == "dead":
            ok = (
                spec.monotonic
                and abs(d[1] - 1.0) <= 0.2
                and float(np.min(np.abs(act.derivative(left)))) >= 0.01
                and abs(float(act(np.array([-10.0]))[0])) <= 2.0
            )
            rank = (spec.family != "rectifier", len(spec.name), spec.name)
        else:
            ok = d[0] >= 0.25 and d[2] > 0.5 and abs(float(act(np.array([0.0]))[0])) < 1e-12
            ok = ok and "right" not in spec.saturates
            rank = (len(spec.params) > 1, len(spec.name), spec.name)
        if ok:
            picked.append((rank, spec.name))
    return tuple(name for _, name in sorted(picked)[:limit])


@functools.cache
def _learned_slopes() -> tuple[str, ...]:
    """PReLU, when the registry has it: the negative slope is learned, so it cannot die."""
    from actlab.registry import list_activations

    return tuple(n for n in ("prelu",) if n in list_activations(kind="layer"))


def _or_list(names: Sequence[str]) -> str:
    return "/".join(names)


_T = THRESHOLDS
# The rule behind each finding, printed as the report's method section (the thresholds are THRESHOLDS').
METHOD = (
    "NaN/inf (actlab.diagnose.monitor): in the parameters or their .grad, in a site's input or output (a batch "
    "whose sum is not finite) or in the gradient reaching it; listed first, at the first site it reaches",
    f"dead units: units whose every input lay where f' = 0 (ReLU: never > 0); from {_pct(_T['dead_fraction'])} "
    "of a site's units",
    f"saturation: inputs where |f'| < 1 % of its max (bounded activations); from "
    f"{_pct(_T['saturated_fraction'])}; at a gate: stuck open or closed",
    "gates: a sigmoid-like site whose output multiplies another tensor (SE, GLU, LSTM; from the autograd "
    "graph): no shift or off-centre finding",
    f"shift: |mean| of the pre-activations >= {_T['shift']:g} std; at a residual sum the skip path is the cause",
    f"off-centre: a bounded, not zero-centred activation with output |mean| >= {_T['off_centre']:g} std",
    "zero gradients: exactly 0 in every backward pass; cause named: multiplying parameters that are 0",
    "gradient flow: gradient RMS per element, first / last site of the most used activation (no gates, "
    f"no zeros); vanishing <= {_T['vanishing_ratio']:g}, exploding >= {_T['exploding_ratio']:g}",
    "init advice (actlab.init.init_) only where all linear/conv layers have PyTorch's default init",
)


def _names(names: Sequence[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def findings_for(
    sites: Sequence[SiteReport], ratio: float | None = None, facts: ModelFacts | None = None
) -> tuple[Finding, ...]:
    """The findings the rules in :data:`METHOD` (thresholds :data:`THRESHOLDS`) raise, each with
    catalog-aware advice tied to what the model is (``facts``). The gradient ratio is the one
    :attr:`DiagnosisReport.gradient_ratio` computes from ``sites`` (``ratio`` is not used; kept for
    callers of the former signature)."""
    facts = facts or ModelFacts()
    pair = DiagnosisReport("", tuple(sites), (), 0, 0).gradient_sites
    ratio = None if pair is None else pair[0].grad_rms / pair[1].grad_rms
    out: list[Finding] = []
    t = THRESHOLDS
    for s in sites:
        frac = s.dead_fraction
        if frac is not None and frac >= t["dead_fraction"]:
            he = "use He initialisation (actlab.init.init_(model, 'he')), " if facts.default_init else ""
            out.append(
                Finding(
                    "dead_units",
                    s.name,
                    frac,
                    t["dead_fraction"],
                    f"{_pct(frac)} dead units at {s.name} ({len(s.dead_units)} of {s.units}, {s.activation})",
                    f"lower the learning rate, {he}or try "
                    f"{_or_list(_alternatives('dead') + _learned_slopes())} "
                    f"(actlab.swap(model, 'leaky_relu'))",
                )
            )
        sat = s.saturated_fraction
        if sat is not None and s.bounded and sat >= t["saturated_fraction"] and s.gated:
            out.append(
                Finding(
                    "saturation",
                    s.name,
                    sat,
                    t["saturated_fraction"],
                    f"the gate {s.name} ({s.activation}) is saturated on {_pct(sat)} of its inputs "
                    "(|f'| < 1 % of its max): stuck open or closed, it passes almost no gradient there",
                    "scale down the weights or biases of the layer that feeds the gate, or normalise its input; "
                    "keep the bounded activation (a gate needs one)",
                )
            )
        elif sat is not None and s.bounded and sat >= t["saturated_fraction"]:
            init = "initialise for the activation (actlab.init.init_(model, 'auto')), " if facts.default_init else ""
            out.append(
                Finding(
                    "saturation",
                    s.name,
                    sat,
                    t["saturated_fraction"],
                    f"{_pct(sat)} of the inputs to {s.name} ({s.activation}) are in saturation (|f'| < 1 % of its max)",
                    f"normalise the inputs or add normalisation layers, {init}or use a non-saturating activation "
                    f"such as {_or_list(_alternatives('saturation'))}",
                )
            )
        if not s.gated and s.pre_std > 0 and abs(s.pre_mean) >= t["shift"] * s.pre_std:
            shift = abs(s.pre_mean) / s.pre_std
            if s.sum_input and facts.zero_scales:
                advice = (
                    f"its input is a residual sum and the model has zero-initialised scales "
                    f"({_names(facts.zero_scales, 2)}): the branches add nothing yet, so {s.name} sees the skip "
                    "path only; expected at initialisation (it changes as training moves those scales): "
                    "no normalisation layer is needed for it"
                )
            elif s.sum_input:
                advice = (
                    "its input is a residual sum, whose mean comes from the skip path: normalise inside the "
                    "branch (pre-norm) or check the biases of the branch's last layer"
                )
            else:
                advice = "add a normalisation layer (BatchNorm/LayerNorm) before the activation or check the biases"
            out.append(
                Finding(
                    "shift",
                    s.name,
                    shift,
                    t["shift"],
                    f"pre-activations of {s.name} are shifted: mean {s.pre_mean:.3g} = {shift:.3g} standard deviations",
                    advice,
                )
            )
    off = [
        s
        for s in sites
        if s.bounded
        and not s.gated
        and not s.zero_centered
        and s.out_std > 0
        and abs(s.out_mean) >= t["off_centre"] * s.out_std
    ]
    if off:  # one finding for all of them: the cause and the cure are the same
        worst = max(off, key=lambda s: abs(s.out_mean) / s.out_std)
        where = f"{off[0].name}" if len(off) == 1 else f"{len(off)} sites ({_names([s.name for s in off])})"
        out.append(
            Finding(
                "off_centre",
                off[0].name if len(off) == 1 else None,
                abs(worst.out_mean) / worst.out_std,
                t["off_centre"],
                f"outputs of {where} are not zero-centred: mean {worst.out_mean:.3g} with std {worst.out_std:.3g} "
                f"at {worst.name} ({worst.activation})",
                "the next layer's weight gradients then share one sign per unit (zig-zag updates); "
                f"a zero-centred activation such as {_or_list(_zero_centred_bounded())} avoids it",
            )
        )
    zero = [s for s in sites if s.backward_passes and s.grad_norm == 0.0]
    if zero:  # one finding: one cause (nothing flows back through them)
        names = [s.name for s in zero]
        if facts.zero_scales:
            advice = (
                f"likely cause: zero-initialised scales downstream ({_names(facts.zero_scales)}), such as the "
                "last normalisation layer of a residual branch set to 0 (timm's zero_init_last): nothing flows "
                "back through them until training moves them from 0; expected at initialisation, a problem "
                "only if it lasts"
            )
        else:
            advice = (
                "nothing downstream passes a gradient back to them (a zero weight, a detached or unused output, "
                "or a flat activation after them): check that these outputs reach the loss"
            )
        out.append(
            Finding(
                "zero_gradients",
                names[0] if len(names) == 1 else None,
                float(len(zero)),
                0.0,
                f"{len(zero)} site(s) get exactly zero gradient in every backward pass: {_names(names)}",
                advice,
            )
        )
    if ratio is not None and math.isfinite(ratio) and ratio > 0:
        first, last = pair
        where = f"from {last.name} back to {first.name}"
        if ratio <= t["vanishing_ratio"]:
            init = (
                "use an initialisation for the activation (actlab.init.init_(model, 'auto')), "
                if facts.default_init
                else ""
            )
            out.append(
                Finding(
                    "vanishing_gradients",
                    None,
                    ratio,
                    t["vanishing_ratio"],
                    f"gradients vanish {where}: the first site gets {ratio:.3g} times the gradient RMS per element "
                    "of the last",
                    f"{init}add normalisation or residual connections, or use a non-saturating activation such as "
                    f"{_or_list(_alternatives('saturation'))}",
                )
            )
        elif ratio >= t["exploding_ratio"]:
            init = (
                ", or initialise with smaller weights (actlab.init.init_(model, 'auto'))" if facts.default_init else ""
            )
            out.append(
                Finding(
                    "exploding_gradients",
                    None,
                    ratio,
                    t["exploding_ratio"],
                    f"gradients explode {where}: the first site gets {ratio:.3g} times the gradient RMS per element "
                    "of the last",
                    f"lower the learning rate or clip gradients (torch.nn.utils.clip_grad_norm_){init}",
                )
            )
    return tuple(out)


@functools.cache
def _zero_centred_bounded() -> tuple[str, ...]:
    """Bounded, monotonic, zero-centred activations torch has, without parameters (tanh, softsign)."""
    out = []
    for spec in _torch_activations():
        lo, hi = spec.bounds_for()
        if spec.zero_centered and spec.monotonic and not spec.params and math.isfinite(lo) and math.isfinite(hi):
            out.append(spec.name)
    return tuple(sorted(out))
