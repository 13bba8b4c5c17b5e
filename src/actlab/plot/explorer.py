# ruff: noqa: E501  (the inline CSS and JavaScript of the page keep their long lines)
"""The interactive explorer: one self-contained offline HTML file (inline CSS, JavaScript and
data; no network, works from ``file://``) generated from the registry (DESIGN.md §5: data first,
rendering second).

:func:`explorer_data` computes everything in Python: f and f' of every elementwise activation on
one grid, and for each numeric parameter of a parametric activation a handful of valid values
with their own f and f' arrays (one parameter moved at a time, the others at their defaults).
The page only draws these arrays; no formula is rewritten in JavaScript.

The page reads ``?select=a,b`` and ``&slider=name:param:index`` from its URL (so a headless
browser can put it in a state without clicking) and writes its state as JSON into
``<pre id="state">`` (selected names, drawn paths, JavaScript errors).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actlab.registry import all_specs, get, get_spec

__all__ = ["explorer_data", "write_explorer", "X_RANGE", "N_POINTS"]

X_RANGE = (-5.0, 5.0)
N_POINTS = 401
MAX_SLIDER_VALUES = 13


class _Raw(str):
    """A JSON fragment already encoded (the rounded arrays), spliced in by :func:`_dumps`."""


def _rounded(a: Any) -> _Raw:
    """An array as a compact JSON list: 5 significant digits, non-finite values as null."""
    arr = np.asarray(a, dtype=np.float64).ravel()
    return _Raw("[" + ",".join(f"{v:.5g}" if math.isfinite(v) else "null" for v in arr.tolist()) + "]")


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(_fmt, v)) if v else "none"
    return str(v)


def _candidates(p: Any) -> list[float]:
    """Values around the default inside [low, high] (before validation)."""
    d = float(p.default)
    lo, hi = p.low, p.high
    if lo is not None and hi is not None:
        return [float(v) for v in np.linspace(lo, hi, 11)] + [d]
    if lo is not None:  # [low, inf): scale the default, or step up from the bound
        if d > lo and d != 0:
            span = d - lo
            return [lo + span * f for f in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0)] + [d]
        return [lo + s for s in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)] + [d]
    if hi is not None:
        return [hi - s for s in (3.0, 2.0, 1.5, 1.0, 0.75, 0.5, 0.25, 0.1, 0.0)] + [d]
    span = max(abs(d) * 0.5, 0.5)
    return [d + span * k for k in (-2.0, -1.5, -1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)]


def _slider(spec: Any, p: Any, x: np.ndarray) -> dict[str, Any] | None:
    """A slider for one numeric parameter: valid values (others at default) with f and f'."""
    if p.choices is not None or p.kind is bool or p.default is None or isinstance(p.default, bool):
        return None
    if not isinstance(p.default, (int, float)) or not math.isfinite(float(p.default)):
        return None
    seen: set[float] = set()
    values, fs, dfs = [], [], []
    for v in sorted(_candidates(p)):
        v = float(f"{v:.6g}")
        if p.kind is int:
            v = float(round(v))
        if v in seen:
            continue
        seen.add(v)
        try:
            val = int(v) if p.kind is int else v
            act = get(spec.name, **{p.name: val})  # validates the value and the spec's constraints
            f = np.asarray(act(x), dtype=np.float64)
            df = np.asarray(act.derivative(x), dtype=np.float64)
        except (ValueError, TypeError, ArithmeticError):
            continue
        values.append(val)
        fs.append(f)
        dfs.append(df)
    if len(values) < 2:
        return None
    default = float(p.default)
    if len(values) > MAX_SLIDER_VALUES:  # thin out, keeping the default
        keep = set(np.linspace(0, len(values) - 1, MAX_SLIDER_VALUES).round().astype(int).tolist())
        keep.add(min(range(len(values)), key=lambda i: abs(values[i] - default)))
        idx = sorted(keep)
        values, fs, dfs = [values[i] for i in idx], [fs[i] for i in idx], [dfs[i] for i in idx]
    d_index = min(range(len(values)), key=lambda i: abs(values[i] - default))
    f_txt, df_txt = [_rounded(a) for a in fs], [_rounded(a) for a in dfs]
    if all(f_txt[i] == f_txt[d_index] and df_txt[i] == df_txt[d_index] for i in range(len(values))):
        return None  # a parameter that does not change the curve on the grid (softplus' threshold)
    return {
        "name": p.name,
        "default": p.default,
        "allowed": p.allowed(),
        "values": values,
        "default_index": d_index,
        "f": f_txt,
        "df": df_txt,
    }


def _formula_svg(latex: str) -> str | None:
    """The formula as an SVG data URI via matplotlib mathtext, or None where mathtext cannot
    parse it (or matplotlib is missing); the page then shows the LaTeX source."""
    try:
        from actlab.plot.gallery import _formula_img

        return _formula_img(latex)
    except Exception:  # matplotlib absent or a mathtext failure: fall back to the LaTeX source
        return None


def explorer_data(names: Sequence[str] | None = None, *, formulas: bool = True) -> dict[str, Any]:
    """Everything the explorer page shows, computed from the registry.

    ``names``: only these activations (default: every elementwise spec). Arrays are JSON-ready
    strings (5 significant digits, null for non-finite values); use :func:`decode` to get
    NumPy arrays back. ``formulas=False`` skips the mathtext SVGs (faster).
    """
    from actlab.analysis import gain

    specs = [get_spec(n) for n in names] if names else all_specs()
    specs = [s for s in specs if s.kind == "elementwise"]
    x = np.linspace(X_RANGE[0], X_RANGE[1], N_POINTS)
    out = []
    for spec in specs:
        act = get(spec.name)
        try:
            latex = spec.latex() if (spec.formula or spec.definition) else None
        except Exception:  # a formula SymPy cannot print is not a reason to drop the entry
            latex = None
        lo, hi = spec.bounds_for()
        props = {
            "range": f"[{_fmt(float(lo))}, {_fmt(float(hi))}]",
            "monotonic": _fmt(spec.monotonic),
            "smoothness": "C^∞"
            if spec.smoothness == math.inf
            else ("discontinuous" if spec.smoothness < 0 else f"C^{int(spec.smoothness)}"),
            "zero_centered": _fmt(spec.zero_centered),
            "saturates": _fmt(tuple(spec.saturates)),
        }
        try:
            g = gain(spec.name)
            computed = float(g.computed) if math.isfinite(g.computed) else None
            pytorch = None if g.pytorch is None else float(g.pytorch)
        except Exception:  # an activation without a finite second moment has no gain
            computed = pytorch = None
        sliders = [s for s in (_slider(spec, p, x) for p in spec.params) if s is not None]
        out.append(
            {
                "name": spec.name,
                "family": spec.family,
                "summary": spec.summary,
                "aliases": list(spec.aliases),
                "properties": props,
                "references": [str(r) for r in spec.references],
                "gain": computed,
                "pytorch_gain": pytorch,
                "latex": latex,
                "formula_svg": _formula_svg(latex) if (latex and formulas) else None,
                "params": [{"name": p.name, "default": repr(p.default), "allowed": p.allowed()} for p in spec.params],
                "f": _rounded(act(x)),
                "df": _rounded(act.derivative(x)),
                "sliders": sliders,
            }
        )
    return {"x": _rounded(x), "x_range": list(X_RANGE), "activations": out}


def _dumps(obj: Any) -> str:
    """JSON with the pre-encoded arrays spliced in verbatim."""
    if isinstance(obj, _Raw):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + _dumps(v) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_dumps(v) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def decode(array: Any) -> np.ndarray:
    """A rounded array of :func:`explorer_data` back as float64 (null -> nan)."""
    return np.array([math.nan if v is None else v for v in json.loads(str(array))], dtype=np.float64)


_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa;height:100vh;display:flex;flex-direction:column}
header{padding:8px 16px;background:#2b3a55;color:#fff;display:flex;gap:12px;align-items:center;flex-wrap:wrap;flex:none}
header h1{font-size:18px;margin:0;font-weight:600}
header input,header select{font-size:14px;padding:4px 6px;border-radius:4px;border:1px solid #99a}
header .hint{font-size:12px;opacity:.8}
main{display:grid;grid-template-columns:250px 1fr 340px;gap:0;flex:1;min-height:0}
#list{overflow-y:auto;border-right:1px solid #ddd;background:#fff;padding:4px 0}
#list label{display:flex;align-items:center;gap:6px;padding:3px 10px;font-size:13px;cursor:pointer}
#list label:hover{background:#eef2f8}
#list .fam{margin-left:auto;font-size:11px;color:#778}
#list .sw{width:10px;height:10px;border-radius:2px;display:inline-block;flex:none}
#list input{flex:none;margin:0}
#center{overflow-y:auto;padding:8px 12px}
.panel{background:#fff;border:1px solid #ddd;border-radius:6px;margin-bottom:8px}
.panel h2{font-size:14px;margin:6px 10px 0;font-weight:600}
svg.plot{display:block;width:100%;height:auto}
svg.plot .grid{stroke:#eee}svg.plot .axis{stroke:#999}
svg.plot text{font-size:11px;fill:#555}
#legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:13px;padding:6px 10px}
#legend span.key{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
#sliders{padding:6px 10px;font-size:13px}
#sliders .row{display:grid;grid-template-columns:190px 1fr 70px;gap:8px;align-items:center;margin:3px 0}
#sliders .empty{color:#888}
#details{overflow-y:auto;border-left:1px solid #ddd;background:#fff;padding:8px 12px;font-size:13px}
#details .card{border-bottom:1px solid #eee;padding:6px 0 10px}
#details h3{margin:4px 0;font-size:15px}
#details .formula{margin:6px 0}#details .formula img{max-width:100%}
#details code{background:#f4f4f4;padding:2px 4px;white-space:pre-wrap;word-break:break-all;display:block}
#details table{border-collapse:collapse;margin:4px 0}
#details td{padding:1px 10px 1px 0;vertical-align:top}
#details td:first-child{color:#667}
#details ul{padding-left:18px;margin:4px 0}
#state{display:none}
"""

_JS = r"""
(function(){
"use strict";
var STATE = {selected: [], curves: [], errors: [], sliders: {}, ready: false};
window.onerror = function(msg, src, line){ STATE.errors.push(String(msg) + " @" + line); writeState(); };
var _ce = console.error;
console.error = function(){ STATE.errors.push(Array.prototype.map.call(arguments, String).join(" ")); writeState(); if (_ce) _ce.apply(console, arguments); };
function writeState(){ var el = document.getElementById("state"); if (el) el.textContent = JSON.stringify(STATE); }

var D = JSON.parse(document.getElementById("data").textContent);
// Names from the URL index these tables: without a prototype, "__proto__", "constructor" or "toString" are
// no entries, and known() asks only for own keys (a URL is user input, never a way into Object.prototype).
var X = D.x, BY = Object.create(null), COLORS = ["#1f77b4","#d62728","#2ca02c","#ff7f0e","#9467bd","#8c564b","#e377c2","#17becf","#7f7f7f","#bcbd22"];
D.activations.forEach(function(a){ BY[a.name] = a; });
var selected = [];       // names in selection order
var choice = Object.create(null);  // name -> {param, index} (one parameter moved at a time)
var focus = null;        // activation shown first in the details panel

function known(name){ return typeof name === "string" && Object.prototype.hasOwnProperty.call(BY, name); }
function esc(s){ return String(s).replace(/[&<>"]/g, function(c){ return {"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]; }); }
function color(name){ return COLORS[selected.indexOf(name) % COLORS.length]; }
function fmt(v){ return (v === null || v === undefined) ? "n/a" : Number(v).toPrecision(4).replace(/\.?0+$/, ""); }

function arrays(name){
  var a = BY[name], c = choice[name];
  if (c){ for (var i = 0; i < a.sliders.length; i++){ var s = a.sliders[i];
    if (s.name === c.param && c.index !== s.default_index) return {f: s.f[c.index], df: s.df[c.index], label: name + "(" + s.name + "=" + s.values[c.index] + ")"}; } }
  return {f: a.f, df: a.df, label: name};
}

// ---------------------------------------------------------------- list and filters
function buildFilters(){
  var fams = Object.create(null); D.activations.forEach(function(a){ fams[a.family] = 1; });
  var sel = document.getElementById("family");
  Object.keys(fams).sort().forEach(function(f){ var o = document.createElement("option"); o.value = f; o.textContent = f; sel.appendChild(o); });
  sel.onchange = renderList; document.getElementById("search").oninput = renderList;
  document.getElementById("property").onchange = renderList;
  document.getElementById("clear").onclick = function(){ selected = []; choice = Object.create(null); update(); };
}
function matches(a){
  var q = document.getElementById("search").value.trim().toLowerCase();
  var fam = document.getElementById("family").value, prop = document.getElementById("property").value;
  if (fam && a.family !== fam) return false;
  if (prop === "monotonic" && a.properties.monotonic !== "yes") return false;
  if (prop === "zero_centered" && a.properties.zero_centered !== "yes") return false;
  if (prop === "smooth" && a.properties.smoothness !== "C^\u221e") return false;
  if (prop === "parametric" && !a.sliders.length) return false;
  if (prop === "saturating" && a.properties.saturates === "none") return false;
  if (!q) return true;
  var hay = [a.name, a.family, a.summary].concat(a.aliases).join(" ").toLowerCase();
  return hay.indexOf(q) >= 0;
}
function renderList(){
  var box = document.getElementById("list"); box.innerHTML = "";
  D.activations.forEach(function(a){
    if (!matches(a) && selected.indexOf(a.name) < 0) return;
    var l = document.createElement("label"), cb = document.createElement("input");
    cb.type = "checkbox"; cb.checked = selected.indexOf(a.name) >= 0; cb.dataset.name = a.name;
    cb.onchange = function(){ toggle(a.name, cb.checked); };
    l.appendChild(cb);
    var sw = document.createElement("span"); sw.className = "sw"; sw.style.background = cb.checked ? color(a.name) : "transparent"; l.appendChild(sw);
    var n = document.createElement("span"); n.textContent = a.name; n.title = a.summary; l.appendChild(n);
    var f = document.createElement("span"); f.className = "fam"; f.textContent = a.family; l.appendChild(f);
    box.appendChild(l);
  });
}
function toggle(name, on){
  var i = selected.indexOf(name);
  if (on && i < 0){ selected.push(name); focus = name; }
  if (!on && i >= 0){ selected.splice(i, 1); delete choice[name]; if (focus === name) focus = selected[selected.length - 1] || null; }
  update();
}

// ---------------------------------------------------------------- plots
var W = 760, H = 300, M = {l: 48, r: 12, t: 10, b: 26};
function niceTicks(lo, hi, n){
  var span = hi - lo, step = Math.pow(10, Math.floor(Math.log10(span / n))), err = span / n / step;
  if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
  var t = [], v = Math.ceil(lo / step) * step; for (; v <= hi + 1e-9; v += step) t.push(Math.abs(v) < 1e-12 ? 0 : v); return t;
}
function yRange(key){
  var lo = Infinity, hi = -Infinity;
  selected.forEach(function(n){ var ys = arrays(n)[key]; for (var i = 0; i < ys.length; i++){ var y = ys[i]; if (y === null) continue; if (y < lo) lo = y; if (y > hi) hi = y; } });
  if (!isFinite(lo)) { lo = -1; hi = 1; }
  var cap = key === "f" ? 6 : 3; lo = Math.max(lo, -cap); hi = Math.min(hi, cap);
  if (hi - lo < 1e-6){ lo -= 0.5; hi += 0.5; }
  var pad = (hi - lo) * 0.06; return [lo - pad, hi + pad];
}
function drawPanel(id, key){
  var svg = document.getElementById(id), x0 = D.x_range[0], x1 = D.x_range[1], yr = yRange(key);
  function sx(x){ return M.l + (x - x0) / (x1 - x0) * (W - M.l - M.r); }
  function sy(y){ var v = H - M.b - (y - yr[0]) / (yr[1] - yr[0]) * (H - M.t - M.b); return Math.max(-2000, Math.min(2000 + H, v)); }
  var s = ['<defs><clipPath id="clip-' + id + '"><rect x="' + M.l + '" y="' + M.t + '" width="' + (W - M.l - M.r) + '" height="' + (H - M.t - M.b) + '"/></clipPath></defs>'];
  niceTicks(yr[0], yr[1], 6).forEach(function(t){ var y = sy(t).toFixed(1);
    s.push('<line class="grid" x1="' + M.l + '" x2="' + (W - M.r) + '" y1="' + y + '" y2="' + y + '"/><text x="' + (M.l - 5) + '" y="' + y + '" dy="4" text-anchor="end">' + fmt(t) + '</text>'); });
  niceTicks(x0, x1, 10).forEach(function(t){ var x = sx(t).toFixed(1);
    s.push('<line class="grid" x1="' + x + '" x2="' + x + '" y1="' + M.t + '" y2="' + (H - M.b) + '"/><text x="' + x + '" y="' + (H - M.b + 15) + '" text-anchor="middle">' + fmt(t) + '</text>'); });
  if (yr[0] < 0 && yr[1] > 0) s.push('<line class="axis" x1="' + M.l + '" x2="' + (W - M.r) + '" y1="' + sy(0).toFixed(1) + '" y2="' + sy(0).toFixed(1) + '"/>');
  s.push('<line class="axis" x1="' + sx(0).toFixed(1) + '" x2="' + sx(0).toFixed(1) + '" y1="' + M.t + '" y2="' + (H - M.b) + '"/>');
  s.push('<rect x="' + M.l + '" y="' + M.t + '" width="' + (W - M.l - M.r) + '" height="' + (H - M.t - M.b) + '" fill="none" stroke="#ccc"/>');
  s.push('<g clip-path="url(#clip-' + id + ')">');
  selected.forEach(function(n){
    var ys = arrays(n)[key], d = "", pen = false;
    for (var i = 0; i < X.length; i++){
      if (ys[i] === null){ pen = false; continue; }
      d += (pen ? "L" : "M") + sx(X[i]).toFixed(1) + "," + sy(ys[i]).toFixed(1); pen = true;
    }
    s.push('<path class="curve" data-name="' + esc(n) + '" d="' + d + '" fill="none" stroke="' + color(n) + '" stroke-width="2" stroke-linejoin="round"/>');
    STATE.curves.push({name: n, panel: key, d_len: d.length, d_head: d.slice(0, 200), d_hash: hash(d)});
  });
  s.push('</g>');
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.innerHTML = s.join("");
}
function hash(s){ var h = 0; for (var i = 0; i < s.length; i++){ h = (h * 31 + s.charCodeAt(i)) | 0; } return h; }
function renderLegend(){
  var box = document.getElementById("legend");
  box.innerHTML = selected.length ? selected.map(function(n){ return '<span><span class="key" style="background:' + color(n) + '"></span>' + esc(arrays(n).label) + '</span>'; }).join("")
    : '<span style="color:#888">Tick activations on the left to draw them.</span>';
}

// ---------------------------------------------------------------- sliders
function renderSliders(){
  var box = document.getElementById("sliders"), rows = [];
  box.innerHTML = "";
  selected.forEach(function(n){ BY[n].sliders.forEach(function(s){
    var c = choice[n], idx = (c && c.param === s.name) ? c.index : s.default_index;
    var row = document.createElement("div"); row.className = "row";
    var lab = document.createElement("span"); lab.innerHTML = '<b style="color:' + color(n) + '">' + esc(n) + '</b> ' + esc(s.name);
    lab.title = "allowed: " + s.allowed + "; default " + s.default;
    var r = document.createElement("input"); r.type = "range"; r.min = 0; r.max = s.values.length - 1; r.step = 1; r.value = idx;
    r.id = "slider-" + n + "-" + s.name;
    var v = document.createElement("span"); v.textContent = s.values[idx];
    r.oninput = function(){ choice[n] = {param: s.name, index: +r.value}; focus = n; update(true); };
    row.appendChild(lab); row.appendChild(r); row.appendChild(v); box.appendChild(row); rows.push(row);
  }); });
  if (!rows.length) box.innerHTML = '<span class="empty">No numeric parameters among the selected activations.</span>';
  else { var note = document.createElement("div"); note.className = "empty"; note.textContent = "Values precomputed by Python; one parameter per activation moves at a time (the others at their defaults)."; box.appendChild(note); }
}

// ---------------------------------------------------------------- details
function card(a){
  var h = ['<div class="card"><h3 style="color:' + color(a.name) + '">' + esc(a.name) + '</h3>'];
  h.push('<div><em>' + esc(a.family) + '</em> \u2014 ' + esc(a.summary) + '</div>');
  if (a.aliases.length) h.push('<div>aliases: ' + a.aliases.map(esc).join(", ") + '</div>');
  if (a.formula_svg) h.push('<div class="formula"><img alt="' + esc(a.latex) + '" onload="this.style.width=Math.round(this.naturalWidth*1.6)+\'px\'" src="' + a.formula_svg + '"></div>');
  else if (a.latex) h.push('<code>' + esc(a.latex) + '</code>');
  var rows = Object.keys(a.properties).map(function(k){ return '<tr><td>' + esc(k.replace("_", "-")) + '</td><td>' + esc(a.properties[k]) + '</td></tr>'; });
  rows.push('<tr><td>gain</td><td>' + fmt(a.gain) + ' <span style="color:#888">(PyTorch: ' + (a.pytorch_gain === null ? "none" : fmt(a.pytorch_gain)) + ')</span></td></tr>');
  if (a.params.length) rows.push('<tr><td>parameters</td><td>' + a.params.map(function(p){ return esc(p.name + "=" + p.default); }).join(", ") + '</td></tr>');
  h.push('<table>' + rows.join("") + '</table>');
  if (a.references.length) h.push('<div>References:</div><ul>' + a.references.map(function(r){ return '<li>' + esc(r) + '</li>'; }).join("") + '</ul>');
  h.push('</div>'); return h.join("");
}
function renderDetails(){
  var box = document.getElementById("details");
  if (!selected.length){ box.innerHTML = '<p style="color:#888">Details of the selected activations appear here: formula, properties, the variance-preserving gain beside PyTorch\'s <code>calculate_gain</code>, references.</p>'; return; }
  var order = focus ? [focus].concat(selected.filter(function(n){ return n !== focus; })) : selected;
  box.innerHTML = order.map(function(n){ return card(BY[n]); }).join("");
}

function update(keepSliders){
  STATE.curves = [];
  drawPanel("plot-f", "f"); drawPanel("plot-df", "df");
  renderLegend(); if (!keepSliders) renderSliders(); else syncSliderLabels();
  renderDetails(); renderList();
  STATE.selected = selected.slice(); STATE.sliders = JSON.parse(JSON.stringify(choice));
  STATE.paths = {f: document.querySelectorAll("#plot-f path.curve").length, df: document.querySelectorAll("#plot-df path.curve").length};
  writeState();
}
function syncSliderLabels(){
  selected.forEach(function(n){ BY[n].sliders.forEach(function(s){
    var r = document.getElementById("slider-" + n + "-" + s.name); if (!r) return;
    var c = choice[n], idx = (c && c.param === s.name) ? c.index : s.default_index;
    r.value = idx; r.nextSibling.textContent = s.values[idx]; }); });
}

// ---------------------------------------------------------------- URL state
function fromURL(){
  var q = new URLSearchParams(window.location.search);
  (q.get("select") || "").split(",").forEach(function(n){ n = n.trim(); if (known(n) && selected.indexOf(n) < 0) selected.push(n); else if (n && !known(n)) console.error("unknown activation in ?select: " + n); });
  q.getAll("slider").join(",").split(",").forEach(function(t){
    if (!t) return; var p = t.split(":"), a = known(p[0]) ? BY[p[0]] : null;
    var s = a && a.sliders.filter(function(s){ return s.name === p[1]; })[0];
    var i = /^[0-9]+$/.test(p[2] || "") ? parseInt(p[2], 10) : -1;
    if (p.length !== 3 || !s || !(i >= 0 && i < s.values.length)) { console.error("bad ?slider " + t); return; }
    if (selected.indexOf(p[0]) < 0) selected.push(p[0]);
    choice[p[0]] = {param: p[1], index: i};
  });
  focus = selected[selected.length - 1] || null;
}

buildFilters(); fromURL(); update();
STATE.ready = true; writeState();
})();
"""

_BODY = """<header><h1>actlab explorer</h1>
<input id="search" type="search" placeholder="search name, alias, summary" size="26">
<select id="family"><option value="">all families</option></select>
<select id="property"><option value="">any property</option><option value="monotonic">monotonic</option>
<option value="zero_centered">zero-centred</option><option value="smooth">smooth (C^\u221e)</option>
<option value="saturating">saturating</option><option value="parametric">has parameters</option></select>
<button id="clear" type="button">clear</button>
<span class="hint">__COUNT__ elementwise activations on [__LO__, __HI__]; curves precomputed by Python</span></header>
<main><div id="list"></div>
<div id="center">
<div class="panel"><div id="legend"></div></div>
<div class="panel"><h2>f(x)</h2><svg id="plot-f" class="plot" xmlns="http://www.w3.org/2000/svg"></svg></div>
<div class="panel"><h2>f\u2032(x)</h2><svg id="plot-df" class="plot" xmlns="http://www.w3.org/2000/svg"></svg></div>
<div class="panel"><h2>parameters</h2><div id="sliders"></div></div>
</div>
<div id="details"></div></main>
<pre id="state">{}</pre>
"""


def explorer_html(data: dict[str, Any]) -> str:
    """The page for ``data`` (from :func:`explorer_data`)."""
    payload = _dumps(data).replace("</", "<\\/")  # no "</script>" can close the data block early
    body = (
        _BODY.replace("__COUNT__", str(len(data["activations"])))
        .replace("__LO__", f"{data['x_range'][0]:g}")
        .replace("__HI__", f"{data['x_range'][1]:g}")
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>actlab explorer</title>\n<style>{_CSS}</style></head><body>\n{body}"
        f'<script type="application/json" id="data">{payload}</script>\n'
        f"<script>{_JS}</script>\n</body></html>\n"
    )


def write_explorer(path: str | os.PathLike, names: Sequence[str] | None = None) -> Path:
    """Write the explorer page to ``path`` atomically (a temporary file beside it, then
    ``os.replace``); returns the path. Unknown names raise before anything is written."""
    target = Path(path)
    text = explorer_html(explorer_data(names))
    parent = target.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target
