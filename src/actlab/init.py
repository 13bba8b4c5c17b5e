"""Initialise a model's weights for the activations that follow its layers: ``init_(model)``.

Schemes (weights ~ N(0, std²) unless orthogonal; biases are set to 0):

- ``"auto"``: std = g / sqrt(fan_in), with g the variance-preserving gain of the activation that
  consumes the layer's output, computed by :func:`actlab.analysis.gain` (g = 1/sqrt(E[f(z)²]),
  z ~ N(0, 1); He et al. 2015, arXiv:1502.01852). ReLU gives He init, the identity LeCun init,
  and every other catalog activation its own value.
- ``"he"``: std = sqrt(2 / fan_in) (He et al. 2015, for ReLU).
- ``"lecun"``: std = 1 / sqrt(fan_in) (LeCun et al. 1998; Klambauer et al. 2017 for SELU).
- ``"xavier"``: std = sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio 2010).
- ``"orthogonal"``: a (semi-)orthogonal matrix times the computed gain (Saxe et al. 2013,
  arXiv:1312.6120); convolution kernels are flattened to (out, in·k...) first.
- ``"gaussian"``: std = ``std`` (default 0.01), the fixed-scale init of early papers.

Which activation consumes a layer's output ("auto", "orthogonal") is found by tracing one forward
pass on ``example_inputs``: each Linear/Conv output is followed, tensor by tensor, through reshapes,
dropout, pooling, residual additions, normalisation layers, attention (the value path) and gating
products, to the first activation (module or functional call, recognised by
:mod:`actlab.nn.recognition` from the catalog's ``equivalents``) or layer that consumes it. Without
``example_inputs`` the structure of ``nn.Sequential`` containers is used. A layer that cannot be
paired keeps its existing initialisation, and the report says why: its output feeds another layer
with no activation between (attention's value and output projections, a GLU's linear half, a
residual branch read by the next norm and layer: the library's scale there, such as GPT-2's
residual-branch scaling or a layer scale, is a design choice no activation's gain speaks to), it is
the model's output, an attention query/key, an operation that is no activation (x·f(x) written out
included), several different activations, a vector activation such as softmax, or a layer the trace
never reached. A weight shared by several modules (a language model's output layer tied to its
token embedding) is left alone.

A normalisation layer between a layer and its activation (conv → BatchNorm → ReLU) is looked
through: the layer gets the gain of the activation after the norm, as torchvision and timm give a
conv before BN + ReLU He init. The norm rescales its input, so there the gain sets the scale the
norm sees (and, in eval mode at its initial statistics, the activation's input); the report notes it.

Recurrent layers (RNN, LSTM, GRU): the hidden-to-hidden weights are always orthogonal, one
orthogonal block per gate; the input-to-hidden weights follow the scheme (``"auto"`` uses the
RNN's tanh/relu gain, gain 1 for the gated LSTM/GRU).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from actlab.registry import BoundActivation, get

__all__ = ["LayerInit", "InitReport", "init_", "activation_of", "SCHEMES"]

SCHEMES = ("auto", "he", "xavier", "lecun", "orthogonal", "gaussian")

_LINEAR_LIKE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_RECURRENT = (nn.RNN, nn.LSTM, nn.GRU)
_NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
# Modules between a layer and its activation in an nn.Sequential that do not change which
# activation follows (normalisation is looked through and noted, see the module docstring).
_TRANSPARENT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
)


def _recognise(module: nn.Module) -> tuple[bool, BoundActivation | None]:
    """(is an activation module, the catalog function it computes now or None).

    The one place init asks which activation a module is: the recognition shared with watch and
    swap (derived from the specs' ``equivalents``), so init knows the same modules they do.
    """
    from actlab.nn.recognition import recognise_module

    found = recognise_module(module)
    if found is None:
        return False, None
    return True, found[1]


def activation_of(module: nn.Module) -> BoundActivation | None:
    """The catalog activation a torch module computes (with its parameters), or None."""
    return _recognise(module)[1]


@dataclass(frozen=True)
class LayerInit:
    """What was done to one parameter tensor.

    ``action`` is "initialised", "kept" (the existing values stay: the layer could not be paired
    with an activation) or "tied" (a parameter shared with another module, left alone); for the
    last two ``gain`` and ``std`` are measured from the weight as it is (gain = std·sqrt(fan_in)).
    ``consumer`` says what the layer's output feeds: "activation", "layer" (another layer, no activation between),
    "output", "attention", "operation", "several", "unreached", "given" (activation= passed),
    "recurrent", "tied" or "" (a fixed scheme that needs none).
    """

    name: str  # qualified parameter name, e.g. "0.weight" or "rnn.weight_hh_l0"
    layer: str  # module class name
    scheme: str
    activation: str | None  # the activation the gain is for (None: not used by the scheme)
    gain: float
    std: float  # the standard deviation of the entries (orthogonal: gain / sqrt(fan_in) for square)
    fan_in: int
    fan_out: int
    note: str = ""
    action: str = "initialised"
    consumer: str = ""


def _count(items: list[str]) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


_KEPT_WHY = {
    "output": "model output",
    "layer": "feeds a layer",
    "attention": "attention query/key",
    "operation": "no activation",
    "several": "several activations",
    "activation": "no gain",
    "unreached": "not traced",
    "structure": "unknown structure",
}


@dataclass(frozen=True)
class InitReport:
    """One row per weight tensor; ``str(report)`` is a one-line summary, ``report.table()`` the
    table (rich, 100 columns), ``report.by_name(name)`` one row."""

    scheme: str
    layers: tuple[LayerInit, ...] = field(default=())

    def __iter__(self):
        return iter(self.layers)

    def by_name(self, name: str) -> LayerInit:
        for entry in self.layers:
            if entry.name == name:
                return entry
        raise KeyError(name)

    @property
    def initialised(self) -> tuple[LayerInit, ...]:
        return tuple(r for r in self.layers if r.action == "initialised")

    @property
    def kept(self) -> tuple[LayerInit, ...]:
        return tuple(r for r in self.layers if r.action == "kept")

    @property
    def tied(self) -> tuple[LayerInit, ...]:
        return tuple(r for r in self.layers if r.action == "tied")

    def summary(self) -> str:
        done = self.initialised
        parts = [f"init {self.scheme}: initialised {len(done)} of {len(self.layers)} weights"]
        if done:
            parts[0] += f" ({_count([r.activation or 'identity' for r in done])})"
        if self.kept:
            why = _count([_KEPT_WHY.get(r.consumer, r.consumer) for r in self.kept])
            parts.append(f"kept {len(self.kept)} ({why})")
        if self.tied:
            parts.append(f"left {len(self.tied)} tied alone")
        return "; ".join(parts)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<InitReport {self.summary()}>"

    def _rich_table(self) -> Any:
        from rich.markup import escape
        from rich.table import Table

        table = Table(expand=False)
        for header, kw in (
            ("weight", {"overflow": "fold", "max_width": 26}),
            ("done", {}),
            ("activation", {"overflow": "fold", "max_width": 16}),
            ("gain", {"justify": "right"}),
            ("std", {"justify": "right"}),
            ("why", {"overflow": "fold"}),
        ):
            table.add_column(header, **kw)
        for r in self.layers:
            table.add_row(
                escape(r.name),
                r.action,
                escape(r.activation or ("identity" if r.action == "initialised" else "-")),
                f"{r.gain:.3g}",
                f"{r.std:.3g}",
                escape(r.note or "-"),
            )
        return table

    def __rich__(self) -> Any:
        return self._rich_table()

    def table(self, width: int = 100) -> str:
        """The report as a plain-text table ``width`` columns wide (rich, no colour)."""
        from rich.console import Console

        console = Console(width=width, record=True, color_system=None, force_terminal=False, file=_Null())
        console.print(self._rich_table())
        return "\n".join(line.rstrip() for line in console.export_text().splitlines())


class _Null:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


_GAIN_CACHE: dict[BoundActivation, float] = {}


def _gain(act: BoundActivation) -> float:
    if act not in _GAIN_CACHE:
        from actlab.analysis import gain

        _GAIN_CACHE[act] = gain(act).computed
    return _GAIN_CACHE[act]


def _gain_or_none(act: BoundActivation) -> float | None:
    try:
        return _gain(act)
    except Exception:  # noqa: BLE001 - vector/learnable forms the analysis cannot integrate
        return None


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


# A pairing: (consumer kind, activation or None, note). Kinds as in LayerInit.consumer.
_Pairing = tuple[str, "BoundActivation | None", str]


def _pair_activation(act: BoundActivation | None, label: str, via: str) -> _Pairing:
    if act is None or _gain_or_none(act) is None:
        return "activation", None, f"feeds {label}{via}, which has no variance-preserving gain"
    return "activation", act, via.removeprefix(", ").strip()


def _following_activations(model: nn.Module) -> dict[str, _Pairing]:
    """For each Linear/Conv inside an nn.Sequential: what follows it there."""
    found: dict[str, _Pairing] = {}
    for seq_name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for i, (child_name, child) in enumerate(children):
            if not isinstance(child, _LINEAR_LIKE):
                continue
            full = f"{seq_name}.{child_name}" if seq_name else child_name
            if seq is model:
                pairing: _Pairing = ("output", None, "the model's output: no activation follows")
            else:
                pairing = (
                    "structure",
                    None,
                    f"last layer of nn.Sequential {seq_name!r}: what follows is outside it; "
                    "pass example_inputs= to trace",
                )
            norms: list[str] = []
            for _, nxt in children[i + 1 :]:
                if isinstance(nxt, _TRANSPARENT):
                    continue
                if isinstance(nxt, _NORMS):
                    norms.append(type(nxt).__name__)
                    continue
                via = "".join(f", through {n}" for n in norms)
                is_act, act = _recognise(nxt)
                if is_act:
                    pairing = _pair_activation(act, type(nxt).__name__, via)
                elif isinstance(nxt, (*_LINEAR_LIKE, *_RECURRENT)):
                    pairing = ("layer", None, f"feeds {type(nxt).__name__}{via}")
                else:
                    pairing = ("operation", None, f"followed by {type(nxt).__name__}, not an activation")
                break
            found[full] = pairing
    return found


# ----------------------------------------------------------------------------- tracing
# Function names (Tensor methods and torch / torch.nn.functional functions, with in-place and
# dunder spellings normalised) through which a layer's output keeps being the same signal.
_SAME_SIGNAL = frozenset(
    "view view_as reshape reshape_as flatten unflatten transpose permute contiguous squeeze unsqueeze "
    "expand expand_as getitem split split_with_sizes chunk unbind narrow select to float half bfloat16 "
    "double type type_as clone cat concat concatenate stack hstack vstack pad flip roll repeat "
    "repeat_interleave movedim moveaxis t swapaxes swapdims tensor_split neg pos "
    "dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout "
    "pixel_shuffle pixel_unshuffle channel_shuffle interpolate upsample "
    "masked_fill where get".split()  # "get": a property that is a tensor (x.T, x.mT)
)
_POOLING = frozenset(
    "avg_pool1d avg_pool2d avg_pool3d max_pool1d max_pool2d max_pool3d max_pool1d_with_indices "
    "max_pool2d_with_indices max_pool3d_with_indices adaptive_avg_pool1d adaptive_avg_pool2d "
    "adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d lp_pool1d "
    "lp_pool2d mean sum".split()  # not max(x, y): relu written out is no pooling
)
_ADD = frozenset({"add", "sub", "rsub", "addcmul"})
_MUL = frozenset({"mul", "div", "truediv", "rmul", "multiply", "divide"})
_MATMUL = frozenset({"matmul", "bmm", "mm", "einsum", "baddbmm", "rmatmul"})
_LAYER_FN = frozenset(
    "linear bilinear conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d embedding "
    "multi_head_attention_forward".split()
)
_NORM_FN = frozenset("layer_norm batch_norm group_norm instance_norm rms_norm local_response_norm normalize".split())


def _fn_name(func: Any) -> str:
    name = getattr(func, "__name__", "") or ""
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name[:1] in "ir" and name[1:] in ("add", "sub", "mul", "truediv", "matmul", "div"):
            name = name[1:]
    return name.rstrip("_") or name


def _norm_like(module: nn.Module) -> bool:
    """A normalisation module (torch's, or another library's ``...Norm`` / ``...RMSNorm`` class)."""
    if isinstance(module, _NORMS):
        return True
    name = type(module).__name__
    return name.endswith(("Norm", "Norm1d", "Norm2d", "Norm3d")) and not any(True for _ in module.children())


def _transposed_linear(module: nn.Module) -> bool:
    """transformers' ``Conv1D`` (GPT-2): a linear layer whose weight is stored (in, out)."""
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D"
        and hasattr(module, "nf")
        and isinstance(weight, nn.Parameter)
        and weight.dim() == 2
        and weight.shape[1] == module.nf
    )


def _layer_like(module: nn.Module) -> bool:
    """A layer whose inner calls are not followed (its input is consumed by a layer): an embedding,
    nn.MultiheadAttention (its projections are called functionally), nn.Bilinear, GPT-2's Conv1D."""
    return isinstance(module, (nn.Embedding, nn.EmbeddingBag, nn.MultiheadAttention, nn.Bilinear)) or (
        _transposed_linear(module)
    )


class _Trace:
    """One forward pass on example inputs, following every Linear/Conv output to its consumers.

    Tensors carry tags {(layer name, via)}: ``via`` is the path notes ("through LayerNorm",
    "through a residual addition"). Modules that are one step (layers, norms, activation and
    recurrent modules) are seen by forward hooks and the calls inside them are not; everything
    else is seen call by call by a TorchFunctionMode.
    """

    def __init__(self, model: nn.Module, targets: Mapping[str, nn.Module]) -> None:
        self.model = model
        self.targets = dict(targets)  # name -> Linear/Conv to follow
        self.tags: dict[int, frozenset[tuple[str, tuple[str, ...]]]] = {}
        self.keep: list[torch.Tensor] = []  # the tensors tagged stay alive, so their ids stay unique
        # outputs of activations (a product with one is a gate) -> the layers whose output they took
        self.act_out: dict[int, frozenset[str]] = {}
        self.terminals: dict[str, list[tuple[str, BoundActivation | None, str, tuple[str, ...]]]] = {}
        self.reached: set[str] = set()
        self.depth = 0

    # -- tags
    def _tensors(self, obj: Any) -> list[torch.Tensor]:
        from torch.utils._pytree import tree_flatten

        return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]

    def _tags_of(self, tensors: list[torch.Tensor]) -> set[tuple[str, tuple[str, ...]]]:
        out: set[tuple[str, tuple[str, ...]]] = set()
        for t in tensors:
            out |= self.tags.get(id(t), frozenset())
        return out

    def _set(self, outputs: Any, tags: set[tuple[str, tuple[str, ...]]], note: str | None = None) -> None:
        if note is not None:
            tags = {(layer, via if note in via else (*via, note)) for layer, via in tags}
        for t in self._tensors(outputs):
            if tags:
                self.tags[id(t)] = frozenset(tags)
                self.keep.append(t)
            else:
                self.tags.pop(id(t), None)

    def _end(self, tags: set[tuple[str, tuple[str, ...]]], kind: str, act: BoundActivation | None, what: str) -> None:
        for layer, via in tags:
            self.terminals.setdefault(layer, []).append((kind, act, what, via))

    def _activation_output(self, out: Any, tags: Any, layers: frozenset[str] | None = None) -> None:
        src = frozenset(layer for layer, _ in tags) if layers is None else layers
        for t in self._tensors(out):
            self.act_out[id(t)] = src
            self.keep.append(t)

    # -- module hooks
    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.depth += 1
        if self.depth > 1:
            return
        tags = self._tags_of(self._tensors((args, kwargs)))
        self._pending = tags
        name = self.names.get(id(module), type(module).__name__)
        is_act, act = _recognise(module)
        if is_act:
            self._end(tags, "activation", act, type(module).__name__)
        elif _norm_like(module):
            pass  # propagated in post_hook
        else:
            self._end(tags, "layer", None, f"{type(module).__name__} {_short(name)}")

    def post_hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        self.depth -= 1
        if self.depth > 0:
            return
        name = self.names.get(id(module), "")
        if _norm_like(module):
            self._set(output, self._pending, f"through {type(module).__name__}")
            return
        if name in self.targets and self.targets[name] is module:
            self.reached.add(name)
            self._set(output, {(name, ())})
            return
        self._set(output, set())
        if _recognise(module)[0]:
            self._activation_output(output, self._pending)

    # -- function calls
    def on_call(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        if self.depth:
            return
        outputs = self._tensors(out)
        if not outputs:
            return  # x.shape, x.size(), x.dim(): reading a tensor's metadata consumes no signal
        inputs = self._tensors((args, kwargs))
        tags = self._tags_of(inputs)
        if not tags:
            gates = [self.act_out[id(t)] for t in inputs if id(t) in self.act_out]
            if gates and _fn_name(func) in _SAME_SIGNAL:  # a gate reshaped
                self._activation_output(out, set(), frozenset().union(*gates))
            return
        from actlab.nn.recognition import bind_call, recognise_function

        name = _fn_name(func)
        method = getattr(torch.Tensor, getattr(func, "__name__", ""), None) is func
        entry = recognise_function(getattr(func, "__name__", ""), method=True) if method else recognise_function(func)
        if entry is not None:
            try:
                act: BoundActivation | None = get(entry.spec.name, **bind_call(entry, func, args, kwargs))
            except (TypeError, ValueError, KeyError):
                act = None
            self._end(tags, "activation", act, entry.name)
            self._set(out, set())
            self._activation_output(out, tags)
            return
        if name in _SAME_SIGNAL:
            self._set(out, tags)
        elif name in _POOLING:
            self._set(out, tags, "through pooling")
        elif name in _NORM_FN:
            self._set(out, tags, f"through {name}")
        elif name in _ADD:
            others = [t for t in inputs if id(t) not in self.tags and not isinstance(t, nn.Parameter)]
            residual = len([t for t in inputs if t.dim() > 0]) > 1 and (others or len(tags) > 1)
            self._set(out, tags, "through a residual addition" if residual else None)
        elif name in _MUL:
            by_layer = {layer for layer, _ in tags}
            tagged = [t for t in inputs if id(t) in self.tags]
            divisor = args[1] if name in ("div", "truediv", "divide") and len(args) > 1 else None
            if isinstance(divisor, torch.Tensor) and id(divisor) in self.tags:
                self._end(tags, "operation", None, "a division by a layer's output")
                self._set(out, set())
            elif len(tagged) > 1 and len(by_layer) > 1:
                self._end(tags, "operation", None, "a product with another layer's output")
                self._set(out, set())
            elif by_layer & frozenset().union(*(self.act_out.get(id(t), ()) for t in inputs)):
                # x * f(x): an activation written out (x * sigmoid(1.702 x) is quick_gelu), or a GLU whose
                # gate and value come from one layer; the activation inside it is not the one applied
                self._end(tags, "operation", None, "a product with an activation of its own output")
                self._set(out, set())
            elif any(id(t) in self.act_out for t in inputs):
                self._set(out, tags, "through a gating product")
            else:
                self._set(out, tags)
        elif name in _MATMUL:
            tagged = [t for t in inputs if id(t) in self.tags]
            if len(tagged) > 1:
                self._end(tags, "attention", None, "a product of two layers' outputs (attention query/key)")
                self._set(out, set())
            elif any(isinstance(t, nn.Parameter) for t in inputs):
                self._end(tags, "layer", None, f"a functional {name}")
                self._set(out, set())
            else:
                self._set(out, tags, "through attention")
        elif name == "scaled_dot_product_attention":
            qk = self._tags_of(self._tensors((args[:2], kwargs.get("query"), kwargs.get("key"))))
            value = self._tags_of(self._tensors((args[2:3], kwargs.get("value"))))
            self._end(qk, "attention", None, "attention query/key")
            self._set(out, value, "through attention")
        elif name in _LAYER_FN:
            self._end(tags, "layer", None, f"a functional {name}")
            self._set(out, set())
        else:
            self._end(tags, "operation", None, name or repr(func))
            self._set(out, set())

    def run(self, example_inputs: Any) -> None:
        from torch.overrides import TorchFunctionMode

        trace = self

        class _Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                trace.on_call(func, args, kwargs, out)
                return out

        self.names = {id(m): n for n, m in self.model.named_modules()}
        handles = []
        for module in self.model.modules():
            one_step = (
                isinstance(module, (*_LINEAR_LIKE, *_RECURRENT))
                or _norm_like(module)
                or _layer_like(module)
                or _recognise(module)[0]
            )
            if one_step:
                handles.append(module.register_forward_pre_hook(self.pre_hook, with_kwargs=True))
                handles.append(module.register_forward_hook(self.post_hook, with_kwargs=True))
        modes = {m: m.training for m in self.model.modules()}
        self.model.eval()  # no dropout, no BatchNorm statistics updated by the trace
        try:
            with torch.no_grad(), _Mode():
                if isinstance(example_inputs, Mapping):
                    out = self.model(**example_inputs)
                elif isinstance(example_inputs, tuple):
                    out = self.model(*example_inputs)
                else:
                    out = self.model(example_inputs)
            self._end(self._tags_of(self._tensors(_plain(out))), "output", None, "the model's output")
        except Exception as err:
            raise ValueError(
                f"init_ could not trace the model on example_inputs ({type(err).__name__}: {err}); pass "
                "example_inputs the model accepts: a tensor, a tuple of positional arguments or a dict of keywords"
            ) from err
        finally:
            for h in handles:
                h.remove()
            for m, training in modes.items():
                m.train(training)
            self.keep.clear()

    def pairing(self, name: str) -> _Pairing:
        if name not in self.reached:
            return "unreached", None, "not called in the traced forward"
        ends = self.terminals.get(name, [])
        if not ends:
            return "unreached", None, "its output is not used in the traced forward"

        def via(path: tuple[str, ...]) -> str:
            return ", ".join(path)

        acts = [(a, what, p) for kind, a, what, p in ends if kind == "activation"]
        odd = [(kind, what, p) for kind, _, what, p in ends if kind in ("operation", "attention")]
        layers = [(what, p) for kind, _, what, p in ends if kind == "layer"]
        if any(kind == "attention" for kind, _, _ in odd):
            return "attention", None, "an attention query/key: its product with another layer's output has no gain"
        if odd:
            kind, what, path = odd[0]
            return kind, None, f"feeds {what}{', ' + via(path) if path else ''}, not an activation"
        if acts:
            distinct = {repr(a) if a is not None else what for a, what, _ in acts}
            if len(distinct) > 1:
                return "several", None, f"feeds several activations ({', '.join(sorted(distinct))})"
            act, what, path = acts[0]
            paths = sorted({via(p) for _, _, p in acts if p})
            note = "; ".join(paths)
            if layers:
                note = (note + "; " if note else "") + f"also feeds {layers[0][0]}"
            return _pair_activation(act, what, (", " + note) if note else "")
        if layers:
            what, path = layers[0]
            more = f" and {len({w for w, _ in layers}) - 1} more" if len({w for w, _ in layers}) > 1 else ""
            return "layer", None, f"feeds {what}{more}{', ' + via(path) if path else ''}"
        return "output", None, "its output is the model's output: no activation follows"


def _short(name: str) -> str:
    """The last two parts of a qualified module name: enough to find it in the report's table."""
    return ".".join(name.split(".")[-2:]) or "(the model)"


def _plain(out: Any) -> Any:
    """A model output as tensors: transformers' ModelOutput and dataclasses become their values."""
    import dataclasses

    if hasattr(out, "to_tuple"):
        return out.to_tuple()
    if isinstance(out, Mapping):
        return list(out.values())
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return [getattr(out, f.name) for f in dataclasses.fields(out)]
    return out


def _shared(model: nn.Module) -> dict[int, list[str]]:
    """id(parameter) -> every qualified name it has in the model, for parameters with several."""
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    return {k: v for k, v in names.items() if len(v) > 1}


def _orthogonal_(w: torch.Tensor, gain: float, blocks: int, generator: torch.Generator | None) -> None:
    """Fill ``w`` (rows split into ``blocks`` equal blocks) with (semi-)orthogonal blocks times gain."""
    rows = w.shape[0] // blocks
    flat = w.detach().reshape(w.shape[0], -1)
    cols = flat.shape[1]
    with torch.no_grad():
        for b in range(blocks):
            big, small = max(rows, cols), min(rows, cols)
            a = torch.randn(big, small, generator=generator, dtype=torch.float64)
            qm, r = torch.linalg.qr(a)
            qm = qm * torch.sign(torch.diagonal(r)).unsqueeze(0)  # uniform (Haar) distribution
            block = qm if rows >= cols else qm.T
            flat[b * rows : (b + 1) * rows].copy_(gain * block.to(w.dtype))


def _measured(name: str, layer: str, scheme: str, w: torch.Tensor, note: str, action: str, consumer: str) -> LayerInit:
    fan_in, fan_out = _fans(w)
    s = float(w.detach().double().std()) if w.numel() > 1 else 0.0
    return LayerInit(name, layer, scheme, None, s * math.sqrt(fan_in), s, fan_in, fan_out, note, action, consumer)


def init_(
    model: nn.Module,
    scheme: str = "auto",
    activation: Any = None,
    *,
    example_inputs: Any = None,
    std: float = 0.01,
    generator: torch.Generator | None = None,
) -> InitReport:
    """Initialise the Linear, Conv1d/2d/3d, RNN, LSTM and GRU weights (and transformers' GPT-2-style
    ``Conv1D``) of ``model`` in place.

    ``activation``: one identifier for every layer, or a mapping from layer (module) name to
    identifier (layers not in it get gain 1). When None, ``"auto"`` and ``"orthogonal"`` find the
    activation that consumes each layer's output: by tracing ``model(example_inputs)`` once (a
    tensor, a tuple of positional arguments or a dict of keywords; run in eval mode without
    gradients, nothing in the model changes but the weights set here), else from ``nn.Sequential``
    structure. Layers that cannot be paired keep their initialisation, and parameters shared
    between modules (tied weights) are left alone; the report says why for each. Biases of the
    layers initialised are set to 0. Returns an :class:`InitReport` with one row per weight tensor.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    compiled = getattr(model, "_orig_mod", None)
    if isinstance(compiled, nn.Module):  # torch.compile's wrapper: its parameters are the original's
        model = compiled
    needs_pairing = activation is None and scheme in ("auto", "orthogonal")
    targets = {
        n: m
        for n, m in model.named_modules()
        if (isinstance(m, _LINEAR_LIKE) and not isinstance(m.weight, nn.parameter.UninitializedParameter))
        or _transposed_linear(m)
    }
    traced: _Trace | None = None
    structural: dict[str, _Pairing] = {}
    if needs_pairing and example_inputs is not None:
        traced = _Trace(model, targets)
        traced.run(example_inputs)
    elif needs_pairing:
        structural = _following_activations(model)
    shared = _shared(model)
    rows: list[LayerInit] = []

    def act_for(name: str) -> _Pairing:
        if isinstance(activation, Mapping):
            if name in activation:
                return "given", get(activation[name]), ""
            return "given", None, "not in the given activation mapping: gain 1"
        if activation is not None:
            return "given", get(activation), ""
        if not needs_pairing:
            return "", None, ""
        if traced is not None:
            return traced.pairing(name)
        if name in structural:
            return structural[name]
        return "structure", None, "not in an nn.Sequential: pass example_inputs= to trace the model"

    def fill(name: str, layer: str, w: torch.Tensor, pairing: _Pairing) -> None:
        consumer, act, note = pairing
        fan_in, fan_out = _fans(w)
        g = _gain(act) if act is not None else 1.0
        used_act = repr(act) if act is not None else None
        if scheme == "he":
            g, used_act = math.sqrt(2.0), "relu"
            s = g / math.sqrt(fan_in)
        elif scheme == "lecun":
            g, used_act = 1.0, None
            s = 1.0 / math.sqrt(fan_in)
        elif scheme == "xavier":
            g, used_act = 1.0, None
            s = math.sqrt(2.0 / (fan_in + fan_out))
        elif scheme == "gaussian":
            g, used_act = 1.0, None
            s = std
        else:  # auto, orthogonal
            s = g / math.sqrt(fan_in)
        with torch.no_grad():
            if scheme == "orthogonal":
                _orthogonal_(w, g, 1, generator)
                s = float(w.detach().std()) if w.numel() > 1 else s
            else:
                w.copy_(torch.randn(w.shape, generator=generator, dtype=torch.float64).to(w.dtype) * s)
        keep_note = note if scheme in ("auto", "orthogonal") else ""
        rows.append(LayerInit(name, layer, scheme, used_act, g, s, fan_in, fan_out, keep_note, "initialised", consumer))

    def tied_to(name: str, p: torch.Tensor) -> str | None:
        others = [n for n in shared.get(id(p), []) if n != name]
        return ", ".join(others) if others else None

    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        kind = type(module).__name__
        if mod_name in targets:
            weight = module.weight
            # GPT-2's Conv1D stores its weight as (in, out): fill the (out, in) view
            as_filled = weight.T if _transposed_linear(module) else weight
            others = tied_to(prefix + "weight", weight)
            if others is not None:
                note = f"shared with {others}: left alone"
                rows.append(_measured(prefix + "weight", kind, scheme, as_filled, note, "tied", "tied"))
                continue
            pairing = act_for(mod_name)
            consumer, act, note = pairing
            if needs_pairing and act is None and consumer != "given":
                rows.append(_measured(prefix + "weight", kind, scheme, as_filled, note, "kept", consumer))
                continue
            fill(prefix + "weight", kind, as_filled, pairing)
            if module.bias is not None and tied_to(prefix + "bias", module.bias) is None:
                with torch.no_grad():
                    module.bias.zero_()
        elif isinstance(module, _RECURRENT):
            gates = 4 if isinstance(module, nn.LSTM) else 3 if isinstance(module, nn.GRU) else 1
            if isinstance(module, nn.RNN):
                cell: _Pairing = ("recurrent", get(module.nonlinearity), "")
            else:
                cell = ("recurrent", None, "gated cell: input weights use gain 1")
            for pname, p in module.named_parameters(recurse=False):
                others = tied_to(prefix + pname, p)
                if others is not None:
                    if not pname.startswith("bias"):
                        note = f"shared with {others}: left alone"
                        rows.append(_measured(prefix + pname, kind, scheme, p, note, "tied", "tied"))
                    continue
                if pname.startswith("bias"):
                    with torch.no_grad():
                        p.zero_()
                elif pname.startswith("weight_hh"):
                    with torch.no_grad():
                        _orthogonal_(p, 1.0, gates, generator)
                    fan_in, fan_out = _fans(p)
                    note = "recurrent: orthogonal per gate"
                    s = 1.0 / math.sqrt(fan_in)
                    rows.append(LayerInit(prefix + pname, kind, "orthogonal", None, 1.0, s, fan_in, fan_out, note))
                elif pname.startswith("weight_ih"):
                    fill(prefix + pname, kind, p, cell)
                # weight_hr (LSTM projections) keep PyTorch's init
    return InitReport(scheme, tuple(rows))
