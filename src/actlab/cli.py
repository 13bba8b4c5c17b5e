"""The ``actlab`` command line: ``list``, ``show``, ``accuracy``.

Every listing is generated from the registry. Output formats: a rich table for people, and
JSON / CSV / Markdown for machines and docs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from actlab.catalog import ParameterError
from actlab.registry import (
    IdentifierError,
    UnknownActivationError,
    all_specs,
    get_spec,
    learnable_params,
    list_activations,
)
from actlab.render import FORMATS, cell, json_default, render

# ----------------------------------------------------------------------------- rendering
# The shared renderer lives in actlab.render (subsystems use it without importing the command line);
# these names stay for the code and scripts that used them from here.
_render = render
_cell = cell
_json_default = json_default


# ----------------------------------------------------------------------------- commands
def _spec_row(spec: Any) -> dict[str, Any]:
    layer = spec.kind == "layer"
    lo, hi = (None, None) if layer else spec.bounds_for()
    return {
        "name": spec.name,
        "family": spec.family,
        "kind": spec.kind,
        "aliases": list(spec.aliases),
        "params": [f"{p.name}={p.default!r}" for p in spec.params],
        "learnable": [w.name for w in spec.weights] if layer else list(learnable_params(spec)),
        "range": None if layer else f"[{_cell(lo)}, {_cell(hi)}]",
        "monotonic": None if layer else spec.monotonic,
        "smoothness": None if layer else _smoothness(spec.smoothness),
        "summary": spec.summary,
    }


def _smoothness(k: float) -> str:
    if k == -1:
        return "discontinuous"
    return "C^inf" if k == math.inf else f"C^{int(k)}"


TRAINABLE = "trainable"


def _peer_row(peer: Any) -> dict[str, Any]:
    act = peer.activation
    plain = peer.plain
    if plain is None:
        unqualified = "ambiguous"
    elif plain == act:
        unqualified = "same"
    else:
        unqualified = repr(plain)
    return {
        "name": " / ".join(peer.spellings),
        "framework": peer.framework,
        "symbol": peer.symbol,
        "actlab": repr(act),
        "unqualified": unqualified,
        "differences": peer.differences,
    }


def cmd_list_framework(args: argparse.Namespace) -> int:
    from actlab.registry import framework_key, peer_names

    try:
        fw = framework_key(args.framework)
    except ValueError as err:
        print(f"actlab: {err}", file=sys.stderr)
        return 2
    rows = [_peer_row(p) for p in sorted(peer_names(fw), key=lambda p: (p.name.lower(), p.name))]
    if args.format in ("json", "csv"):
        columns = ["name", "framework", "symbol", "actlab", "unqualified", "differences"]
    else:
        columns = ["name", "actlab", "unqualified", "differences"]
    title = f"{len(rows)} {fw} names and what actlab.get('{fw}:NAME') resolves them to"
    headers = {"name": f"{fw} name", "actlab": "actlab (peer's defaults)", "unqualified": "plain name in actlab"}
    print(_render(rows, columns, args.format, title=title, headers=headers, wide=args.wide))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if getattr(args, "framework", None):
        return cmd_list_framework(args)
    if args.family == TRAINABLE:
        # The layers with trained weights, then the functions whose parameters may be learned.
        names = list_activations(family=TRAINABLE, kind="all")
        names += [n for n in list_activations() if learnable_params(get_spec(n)) and n not in names]
    else:
        names = list_activations(family=args.family, kind="all" if args.family else None)
    specs = [get_spec(n) for n in names]
    if args.family and not specs:
        families = sorted({s.family for s in all_specs("all")})
        print(f"actlab: no family {args.family!r}; families: {', '.join(families)}", file=sys.stderr)
        return 2
    rows = [_spec_row(s) for s in specs]
    if args.family == TRAINABLE:
        columns = ["name", "kind", "family", "params", "learnable", "summary"]
        title = (
            f"{len(rows)} trainable activations: layers (learnable = their weights) and functions "
            "(learnable = parameters that accept 'learnable', e.g. swish(beta='learnable'))"
        )
    else:
        columns = ["name", "family", "params", "range", "monotonic", "smoothness", "summary"]
        title = f"{len(rows)} activations"
        layers = list_activations(kind="layer")
        if not args.family and layers:
            title += f" (and {len(layers)} layers with trained weights: actlab list --family {TRAINABLE})"
    if args.format in ("json", "csv"):
        columns = list(rows[0]) if rows else columns
    print(_render(rows, columns, args.format, title=title, wide=args.wide))
    return 0


def _allowed(p: Any) -> str:
    description = getattr(p.choices, "description", None)  # an open set, e.g. any activation identifier
    return description if description else p.allowed()


def describe(identifier: Any) -> dict[str, Any]:
    """Everything ``actlab show`` prints, as data, for a spec or any identifier :func:`actlab.get`
    accepts (``"gelu(approximate='tanh')"``): the bound parameters' values beside the defaults, and
    the range, kinks and values at those parameters."""
    import numpy as np

    from actlab.catalog import Spec
    from actlab.registry import BoundActivation, get

    act = BoundActivation(identifier) if isinstance(identifier, Spec) else get(identifier)
    if not isinstance(act, BoundActivation):
        raise IdentifierError(f"{identifier!r} is a plain callable, not a registered activation")
    spec, params = act.spec, act.params
    layer = spec.kind == "layer"
    learnable = learnable_params(spec)
    info: dict[str, Any] = {
        "name": spec.name,
        "identifier": repr(act),
        "aliases": list(spec.aliases),
        "family": spec.family,
        "kind": spec.kind,
        "summary": spec.summary,
        "formula": _formula(act),
        "parameters": [
            {
                "name": p.name,
                "value": params.get(p.name, p.default),
                "default": p.default,
                "allowed": _allowed(p),
                "doc": p.doc,
                **({"learnable": p.name in learnable, "learned": p.name in act.learnable} if not layer else {}),
            }
            for p in spec.params
        ],
    }
    if layer:
        initial = spec.initial(params) if spec.initial is not None else None
        info["layer"] = {
            "module": spec.module.replace(":", "."),
            "weights": [{"name": w.name, "shape": w.shape, "doc": w.doc} for w in spec.weights],
            "initially": initial,
            "initially_note": spec.initial_note,
            "build": f"actlab.nn.create_activation({repr(act)!r})",
        }
    else:
        info["properties"] = {
            "range": list(spec.bounds_for(params)),
            "monotonic": spec.monotonic,
            "smoothness": _smoothness(spec.smoothness),
            "zero_centered": spec.zero_centered,
            "saturates": list(spec.saturates),
            "self_normalizing": spec.self_normalizing,
            "approximates": spec.approximates,
            "approximation_error": spec.approximation_error,
            "derivative_from_output": spec.derivative_from_output is not None,
            "torch_path": "native" if spec.native else "actlab",
        }
        info["kinks"] = [{"at": at, "gradient": g} for at, g in spec.kink_points(params)]
        if learnable:
            info["learnable"] = {
                "parameters": list(learnable),
                "example": f"actlab.nn.Activation({spec.name!r}, {learnable[0]}='learnable')",
            }
    info["references"] = [str(r) for r in spec.references]
    info["equivalents"] = [
        {"framework": e.framework, "symbol": e.symbol, "differences": e.differences} for e in spec.equivalents
    ]
    info["notes"] = spec.notes
    if spec.tolerance.reason:
        info["tolerance"] = spec.tolerance.reason
    if spec.kind == "elementwise":
        xs = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
        with np.errstate(all="ignore"):
            fs, dfs = act(xs), act.derivative(xs)
        info["values"] = [{"x": float(x), "f": float(f), "df": float(d)} for x, f, d in zip(xs, fs, dfs)]
    return info


def _formula(act: Any) -> str | None:
    """LaTeX at the bound parameters (a learnable one at its initial value)."""
    spec = act.spec
    if not (spec.formula or spec.definition):
        return None
    bound = {k: act.params[k] for k in act.config if k in act.params}
    try:
        return spec.latex(**bound)
    except Exception:  # a value SymPy cannot take: the formula at the defaults, as before
        return spec.latex()


def _fewbit_info(identifier: str, bits: int) -> dict[str, Any]:
    """``actlab show NAME --fewbit K``: the optimal K-bit derivative table (actlab.torch.fewbit)."""
    from actlab.registry import BoundActivation, get
    from actlab.torch.fewbit import fewbit_table

    act = get(identifier)
    if not isinstance(act, BoundActivation):
        raise IdentifierError(f"{identifier!r} is a plain callable, not a registered activation")
    table = fewbit_table(act.spec, act.params, bits)
    edges = [-math.inf, *table.breakpoints.tolist(), math.inf]
    return {
        "bits": table.bits,
        "bytes_per_element": table.bits / 8,
        "weighted_mse": table.weighted_mse,
        "cosine": table.cosine,
        "codes": [
            {"code": k, "from": edges[k], "to": edges[k + 1], "level": float(level)}
            for k, level in enumerate(table.levels)
        ],
    }


def _fewbit_lines(fb: dict[str, Any]) -> list[str]:
    out = [
        f"few-bit derivative, {fb['bits']} bit(s) (memory='fewbit', {fb['bytes_per_element']:g} bytes per element):",
        "  backward uses f'(x) ~ level of the code of x: from <= x < to; fitted for x ~ N(0, 1)",
        f"  weighted MSE E[(f' - q)^2] = {fb['weighted_mse']:.6g}   cosine(f', q) = {fb['cosine']:.6f}",
        f"  {'code':>4}  {'from':>12}  {'to':>12}  {'level':>12}",
    ]
    for c in fb["codes"]:
        out.append(f"  {c['code']:>4}  {c['from']:>12.6g}  {c['to']:>12.6g}  {c['level']:>12.6g}")
    return out


def cmd_show(args: argparse.Namespace) -> int:
    try:
        info = describe(args.name)
        if args.fewbit is not None:
            info["fewbit"] = _fewbit_info(args.name, args.fewbit)
    except (IdentifierError, ParameterError, TypeError, ValueError) as err:  # a malformed call, a bad parameter
        print(f"actlab: {err}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(info, indent=2, default=_json_default))
        return 0
    at_defaults = info["identifier"] == info["name"]
    kind, params = info["kind"], info["parameters"]
    out = [
        f"{info['identifier']}  ({info['family']}, {kind})"
        + (f"  aliases: {', '.join(info['aliases'])}" if info["aliases"] else "")
    ]
    out.append(f"  {info['summary']}")
    if info["formula"]:
        out.append(f"  f(x) = {info['formula']}" if kind != "layer" else f"  {info['formula']}")
    out.append("parameters:" if params else "parameters: none")
    for p in params:
        doc = f"  ({p['doc']})" if p["doc"] else ""
        mark = "  [learnable]" if p.get("learnable") else ""
        if p.get("learned"):
            shown = f"learnable, from {p['value']!r} (default {p['default']!r})"
        elif p["value"] != p["default"]:
            shown = f"{p['value']!r} (default {p['default']!r})"
        else:
            shown = repr(p["default"])
        out.append(f"  {p['name']} = {shown}; allowed: {p['allowed']}{mark}{doc}")
    if "learnable" in info:
        out.append(f"learnable in the module form: {info['learnable']['example']}")
    if "layer" in info:
        lay = info["layer"]
        out.append(f"module: {lay['module']}  (build: {lay['build']})")
        out.append("trained weights:")
        out += [f"  {w['name']} {w['shape']}: {w['doc']}" for w in lay["weights"]]
        if lay["initially"] and lay["initially_note"]:
            out.append(f"at initialisation: {lay['initially']} ({lay['initially_note']})")
        elif lay["initially"] or lay["initially_note"]:
            out.append(f"at initialisation: {lay['initially'] or lay['initially_note']}")
    if "properties" in info:
        # The range is computed at the bound parameters; the other properties are declared at the defaults.
        out.append("properties:" if at_defaults else "properties (range at these parameters, others at the defaults):")
        for k, v in info["properties"].items():
            if v not in (None, [], False) or k in ("monotonic", "zero_centered"):
                out.append(f"  {k}: {_cell(v) if not isinstance(v, list) else '[' + ', '.join(map(_cell, v)) + ']'}")
    if info.get("kinks"):
        out.append("kinks (gradient actlab returns there):")
        for k in info["kinks"]:
            out.append(f"  x = {k['at']:g}: f' := {k['gradient']:g}")
    if "tolerance" in info:
        out.append(f"accuracy allowance: {info['tolerance']}")
    if info["references"]:
        out.append("references:")
        out += [f"  {r}" for r in info["references"]]
    if info["equivalents"]:
        out.append("equivalents:")
        for e in info["equivalents"]:
            diff = f" — {e['differences']}" if e["differences"] else ""
            out.append(f"  {e['framework']}: {e['symbol']}{diff}")
    if info["notes"]:
        out.append(f"notes: {info['notes']}")
    if "values" in info:
        out.append("values:")
        out.append("  " + f"{'x':>9}" + "".join(f"{v['x']:>12g}" for v in info["values"]))
        out.append("  " + f"{'f(x)':>9}" + "".join(f"{v['f']:>12.6g}" for v in info["values"]))
        out.append("  " + f"{'df/dx':>9}" + "".join(f"{v['df']:>12.6g}" for v in info["values"]))
    if "fewbit" in info:
        out += _fewbit_lines(info["fewbit"])
    print("\n".join(out))
    return 0


def _accuracy_job(job: tuple[str, str, int, dict[str, Any]]) -> dict[str, Any]:
    name, dtype, size, params = job
    from actlab.verify.accuracy import measure
    from actlab.verify.samples import params_for_dtype, sample_label

    spec = get_spec(name)
    label = sample_label(spec, spec.resolve_params(**params))  # the sample, before float32 rounds it
    if dtype in _HALF_DTYPES:
        # computed in float32 and rounded once: the parameters as float32 holds them, the limit 1 step
        from actlab.verify.low_precision import measure_any

        half = measure_any(spec, dtype, params_for_dtype(spec, spec.resolve_params(**params), "float32"))
        return {
            "name": spec.name,
            "params": label,
            "dtype": dtype,
            "points": half.points,
            "forward_ulps": half.forward_ulps,
            "derivative_ulps": max(half.backward_ulps, half.cotangent_ulps),
            "nonfinite": half.nonfinite,
            "passed": half.passed,
        }
    params = params_for_dtype(spec, spec.resolve_params(**params), dtype)  # float32 ops round them
    if spec.kind == "vector":
        from actlab.verify.vector import measure_vector

        row = measure_vector(spec, dtype, params=params)
    else:
        row = measure(spec, dtype, params=params, size=size)
    out = row.as_dict()
    out["params"] = label
    return out


def _accuracy_samples(spec: Any, level: str) -> list[dict[str, Any]]:
    """The parameter samples ``actlab accuracy --params LEVEL`` measures for one spec."""
    from actlab.verify.samples import parameter_samples

    samples = parameter_samples(spec, level)
    if spec.kind == "vector":
        # The row oracle works along the last axis: axis samples are checked by the test suite
        # (tests/test_param_samples.py: the function on the moved axis, bit for bit).
        samples = [s for s in samples if s.get("axis", -1) == -1 or s == samples[0]]
        samples = [{**s, "axis": -1} for s in samples]
    return samples


def cmd_accuracy(args: argparse.Namespace) -> int:
    names = [get_spec(n).name for n in args.names] if args.names else list_activations()
    dtypes = {"all": ["float32", "float64"], "half": list(_HALF_DTYPES)}.get(args.dtype, [args.dtype])
    # float64 reuses float32's oracle values; a spec's samples run one after another (shared cache)
    jobs = [(n, d, args.size, p) for n in names for p in _accuracy_samples(get_spec(n), args.params) for d in dtypes]
    # Progress goes to stderr whatever the format: stdout holds only the data, and a run takes minutes.
    rows = _run_jobs(_accuracy_job, jobs, args.jobs, quiet=args.quiet)
    rows.sort(key=lambda r: (r["name"], r["params"] != "defaults", r["dtype"]))
    columns = [
        "name",
        "dtype",
        "points",
        "forward_ulps",
        "derivative_ulps",
        "nonfinite",
        "conditioned",
        "torch_name",
        "torch_forward_ulps",
        "torch_derivative_ulps",
        "torch_nonfinite",
        "passed",
    ]
    if args.params != "defaults":
        columns.insert(1, "params")
    if set(dtypes) <= set(_HALF_DTYPES):  # PyTorch's half kernels: python -m actlab.verify.low_precision
        columns = [c for c in columns if c != "conditioned" and not c.startswith("torch_")]
    elif args.format == "table" and not args.wide:
        columns.remove("torch_name")  # the peer's full symbol ("torch.nn.functional...") is in the other formats
    failed = [r for r in rows if not r["passed"]]
    limits = (
        "forward and derivative 1 step of the dtype (computed in float32, rounded once)"
        if set(dtypes) <= set(_HALF_DTYPES)
        else "forward 4 ulp float32 / 8 ulp float64, derivative 8"
    )
    title = f"accuracy vs the mpmath oracle ({len(rows)} rows; limits: {limits}): "
    title += f"{len(rows) - len(failed)} pass, {len(failed)} fail"
    if args.params != "defaults":
        specs = len({r["name"] for r in rows})
        samples = len(jobs) // len(dtypes)
        worst_f = max((r["forward_ulps"] for r in rows), default=0.0)
        worst_d = max((r["derivative_ulps"] for r in rows if not math.isnan(r["derivative_ulps"])), default=0.0)
        title += (
            f"; {specs} activations at {samples} parameter samples ({args.params}); worst forward "
            f"{_cell(worst_f)} ulp, worst derivative {_cell(worst_d)} (in the units of each spec's rule: "
            "ulps, divided by the condition number where the spec declares that allowance)"
        )
    print(_render(rows, columns, args.format, title=title, headers=_ACCURACY_HEADERS, wide=args.wide))
    return 1 if failed else 0


_HALF_DTYPES = ("float16", "bfloat16")
_ACCURACY_HEADERS = {
    "forward_ulps": "fwd ulp",
    "derivative_ulps": "f' ulp",
    "nonfinite": "non-finite",
    "conditioned": "cond. pts",
    "torch_name": "PyTorch",
    "torch_forward_ulps": "PyTorch fwd ulp",
    "torch_derivative_ulps": "PyTorch f' ulp",
    "torch_nonfinite": "PyTorch non-finite",
}


def _progress(row: dict[str, Any]) -> str:
    params = row.get("params")
    ok = "" if row.get("passed", True) else "  FAILED"
    return f"{row['name']} {row['dtype']}" + (f" [{params}]" if params and params != "defaults" else "") + ok


def _run_jobs(fn: Callable[[Any], dict[str, Any]], jobs: list, n_jobs: int, quiet: bool) -> list[dict[str, Any]]:
    n_jobs = max(1, min(n_jobs or os.cpu_count() or 1, len(jobs)))
    if n_jobs == 1:
        out = []
        for i, job in enumerate(jobs):
            out.append(fn(job))
            if not quiet:
                print(f"[{i + 1}/{len(jobs)}] {_progress(out[-1])}", file=sys.stderr)
        return out
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        out = []
        for i, row in enumerate(pool.map(fn, jobs)):
            if not quiet:
                print(f"[{i + 1}/{len(jobs)}] {_progress(row)}", file=sys.stderr)
            out.append(row)
        return out


# ----------------------------------------------------------------------------- plots and analysis
_PLOT_FORMATS = ("png", "svg", "pdf")


def cmd_plot(args: argparse.Namespace) -> int:
    fmt = os.path.splitext(args.output)[1].lower().lstrip(".")
    if fmt not in _PLOT_FORMATS:
        print(f"actlab: output must end in .png, .svg or .pdf, got {args.output!r}", file=sys.stderr)
        return 2
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        print(
            f"actlab: the folder {folder} for {args.output!r} does not exist; create it or choose another -o",
            file=sys.stderr,
        )
        return 2
    lo, hi = args.range
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        print(f"actlab: --range needs two finite numbers A < B, got {lo} {hi}", file=sys.stderr)
        return 2
    for name in args.names:  # every name resolved before any work: unknown ones write nothing
        if "(" not in name:
            get_spec(name)
    from actlab.plot import curve_data, plot_curves

    try:
        data = curve_data(args.names, (lo, hi), derivative=not args.no_derivative)
    except (TypeError, ValueError) as err:  # a vector activation (no curve); a malformed call string
        print(f"actlab: {err}", file=sys.stderr)
        return 2
    fig = plot_curves(data, derivative=not args.no_derivative)
    _save_atomic(fig, args.output, fmt)
    print(args.output)
    return 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _save_atomic(fig: Any, path: str, fmt: str) -> None:
    """Render into a temporary file beside ``path`` and rename it into place."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".actlab-plot-", suffix=f".{fmt}", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=110)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; a plot is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def props_row(identifier: str) -> dict[str, Any]:
    """The analysis numbers of one activation (what ``actlab props`` prints), as data."""
    from actlab import analysis as aa

    g = aa.gain(identifier)
    m = aa.moments(identifier)
    p = aa.properties(identifier)
    mf = aa.mean_field(identifier, sigma_w2=g.computed**2, sigma_b2=0.0)
    lo, hi = p.range
    return {
        "name": identifier if "(" in identifier else get_spec(identifier).name,
        "gain": g.computed,
        "pytorch_gain": g.pytorch,
        "mean": m.mean,
        "variance": m.variance,
        "second_moment": m.second_moment,
        "max_abs_derivative": p.max_abs_derivative,
        "range": f"[{_cell(lo)}, {_cell(hi)}]",
        "monotonic": p.monotonic,
        "zero_centered": p.zero_centered,
        "saturates": list(p.saturates),
        "identity_near_zero": p.identity_near_zero,
        "q_star": mf.q_star,
        "chi": mf.chi,
        "phase": mf.phase,
        "declared_consistent": p.consistent,
    }


_PROPS_HEADERS = {
    "gain": "gain",
    "pytorch_gain": "PyTorch gain",
    "mean": "mean f",
    "variance": "var f",
    "second_moment": "mean f²",
    "max_abs_derivative": "max |f'|",
    "zero_centered": "zero-centred",
    "identity_near_zero": "f ≈ x at 0",
    "q_star": "q*",
    "chi": "χ",
    "declared_consistent": "matches spec",
}


def cmd_props(args: argparse.Namespace) -> int:
    for name in args.names:
        if "(" not in name:
            get_spec(name)
    try:
        rows = [props_row(n) for n in args.names]
    except (TypeError, ValueError) as err:  # a vector activation; a malformed call string
        print(f"actlab: {err}", file=sys.stderr)
        return 2
    columns = list(rows[0])
    if args.format in ("table", "md"):
        hidden = ("second_moment", "identity_near_zero", "q_star", "declared_consistent")
        columns = [c for c in columns if c not in hidden]
    title = "analysis under z ~ N(0, 1); mean field at σ_w² = gain², σ_b² = 0"
    print(_render(rows, columns, args.format, title=title, headers=_PROPS_HEADERS, wide=args.wide))
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    from actlab.plot.gallery import write_gallery

    def progress(i: int, total: int, name: str) -> None:
        if not args.quiet:
            print(f"[{i + 1}/{total}] {name}", file=sys.stderr)

    try:
        entries = write_gallery(args.output, args.names or None, progress=progress)
    except FileExistsError as err:
        print(f"actlab: {err}", file=sys.stderr)
        return 2
    n_img = sum(e.image is not None for e in entries)
    print(f"{args.output}: {n_img} images, index.md, index.html")
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from actlab.plot.explorer import write_explorer

    path = write_explorer(args.output, args.names or None)
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB, open it in a browser (works offline)")
    return 0


# ----------------------------------------------------------------------------- entry point
WIDE_HELP = "tables at their natural width (default: fit the terminal, at most 100 columns)"


def build_parser() -> argparse.ArgumentParser:
    from actlab import __version__

    parser = argparse.ArgumentParser(prog="actlab", description="The activation-function laboratory for PyTorch.")
    parser.add_argument("--version", action="version", version=f"actlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the activations in the catalog")
    p.add_argument("--family", help="only this family")
    p.add_argument(
        "--framework",
        help="the names of another framework (transformers, timm, keras, jax, torch, tfa) and what they resolve to",
    )
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--wide", action="store_true", help=WIDE_HELP)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="formula, parameters, properties, references and equivalents of one activation")
    p.add_argument("name")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--fewbit",
        type=int,
        metavar="K",
        help="also the optimal K-bit (1-4) piecewise-constant derivative of memory='fewbit' (smooth activations)",
    )
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("accuracy", help="max error in ulps against the mpmath oracle, actlab beside PyTorch")
    p.add_argument("names", nargs="*", metavar="NAME", help="activations to measure (default: all)")
    p.add_argument(
        "--dtype",
        choices=("float32", "float64", "all", "float16", "bfloat16", "half"),
        default="all",
        help="all: float32 and float64 (default); half: float16 and bfloat16, forward and backward against "
        "the oracle rounded once to that dtype",
    )
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--wide", action="store_true", help=WIDE_HELP)
    p.add_argument(
        "--size", type=int, default=20000, help="grid points per activation (default 20000; half dtypes: 512 samples)"
    )
    p.add_argument("--jobs", type=int, default=0, help="worker processes (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument(
        "--params",
        choices=("defaults", "ci", "all"),
        default="defaults",
        help="parameter samples generated from each spec's declared ranges: the defaults only (default), "
        "the test suite's subset, or every sample",
    )
    p.set_defaults(func=cmd_accuracy)

    p = sub.add_parser("plot", help="draw activations and their derivatives to a PNG, SVG or PDF")
    p.add_argument("names", nargs="+", metavar="NAME", help="activations (names or call strings)")
    p.add_argument("--no-derivative", action="store_true", help="draw the function only")
    p.add_argument("--range", nargs=2, type=float, default=(-5.0, 5.0), metavar=("A", "B"), help="x range")
    p.add_argument("-o", "--output", default="activations.png", help="file .png/.svg/.pdf (default activations.png)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("props", help="analysis numbers: gain, Gaussian moments, properties, mean-field χ")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--wide", action="store_true", help=WIDE_HELP)
    p.set_defaults(func=cmd_props)

    p = sub.add_parser("gallery", help="a PNG per activation plus index.md and index.html")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write (replaced if a gallery)")
    p.add_argument("--names", nargs="+", metavar="NAME", help="only these activations (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_gallery)

    p = sub.add_parser("explore", help="one self-contained offline HTML page to compare activations interactively")
    p.add_argument("-o", "--output", default="explorer.html", help="HTML file to write (default explorer.html)")
    p.add_argument("--names", nargs="+", metavar="NAME", help="only these activations (default: all elementwise)")
    p.set_defaults(func=cmd_explore)

    # Subcommands that live with their subsystem. Their `add_arguments` imports nothing heavy, so
    # building the parser stays torch-free; `run` imports what it needs.
    for name, module, help_text in _SUBSYSTEM_COMMANDS:
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)
    return parser


_SUBSYSTEM_COMMANDS = (
    ("diagnose", "actlab.diagnose.cli", "run a model a few steps; report dead and saturated units and gradient flow"),
    ("arena", "actlab.arena.cli", "train one model with many activations and seeds and rank them, with statistics"),
    ("report", "actlab.arena.report_cli", "HTML, Markdown, JSON and CSV report of an arena run directory"),
    ("bench", "actlab.bench.cli", "benchmarks: speed and memory as ratios to a reference measured in the same run"),
    ("kernels", "actlab.kernels_cli", "the fused kernels: status, and --build to build them ahead of first use"),
    ("reproduce", "actlab.experiments.cli", "re-run the classic claims about activations; a verdict with intervals"),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `actlab bench gelu silu`: a bench argument that is not a topic names activations (argparse's
    # subcommands cannot default, so the default topic is inserted before parsing).
    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if command is not None and argv[command] == "bench":
        from actlab.bench.cli import with_default_topic

        argv[command + 1 :] = with_default_topic(argv[command + 1 :])
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UnknownActivationError, IdentifierError, ParameterError) as err:  # the user's input, said plainly
        print(f"actlab: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(f"actlab {args.command}: {missing_module_message(err, args.command)}", file=sys.stderr)
        return 3
    except BrokenPipeError:
        return 0
    except OSError as err:  # a path that cannot be read or written, a full disk
        where = f" {err.filename}" if err.filename else ""
        print(
            f"actlab {args.command}: cannot use{where}: {err.strerror or err}; check the path and its "
            "permissions (or the free space), then run the command again",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"actlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # whatever escaped the commands: one paragraph, never a traceback
        if os.environ.get("ACTLAB_DEBUG"):
            raise
        text = str(err).strip().replace("\n", " ") or "(no message)"
        print(
            f"actlab {args.command}: stopped by an unexpected {type(err).__name__}: {text}. If the message does "
            "not say what to change, run the command again with ACTLAB_DEBUG=1 to see where it happened "
            "(and report it if the fault is actlab's).",
            file=sys.stderr,
        )
        return 1


# The extra that installs what a command needs, when that is more than the missing module's own extra
# (a torch-only install still lacks scikit-learn for the arena).
_COMMAND_EXTRA = {"arena": "arena", "report": "arena"}


def missing_module_message(err: ImportError, command: str = "") -> str:
    """An ImportError as a sentence naming what to install: the ``pip install 'actlab[EXTRA]'`` hint for
    an optional dependency, the package to install for any other module."""
    from actlab.ops._lazy import _EXTRA_FOR

    name = (getattr(err, "name", None) or "").split(".")[0]
    if not name or "pip install" in str(err):  # already says what to install (actlab.ops._lazy.require)
        return str(err)
    extra = _EXTRA_FOR.get(name)
    if extra is not None:
        extra = _COMMAND_EXTRA.get(command, extra) if extra in ("torch", "arena", "plot") else extra
        return f"this needs {name!r}, which is not installed; install it with: pip install 'actlab[{extra}]'"
    return f"{err}; install the package that provides {name!r} (or check the name), then run the command again"


if __name__ == "__main__":
    raise SystemExit(main())
