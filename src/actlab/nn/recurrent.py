"""Recurrent cells and layers whose activations are catalog identifiers: LSTM variants and GRU.

``LSTMCell``/``LSTM`` and ``GRUCell``/``GRU`` follow ``torch.nn``'s call conventions and shapes
(``batch_first``, ``num_layers``, ``bidirectional``, ``dropout`` between layers, initial state in,
final state out, unbatched inputs, ``PackedSequence`` inputs) and add:

- the gate, candidate (block input) and cell-output activations as any elementwise catalog
  identifier (defaults sigmoid / tanh / tanh, as in every LSTM since Hochreiter & Schmidhuber 1997);
- LSTM variants: peephole connections (Gers & Schmidhuber 2000) on all gates or a subset, the
  coupled input-forget gate (CIFG, input gate = 1 - forget gate), and the component ablations of
  Greff et al., "LSTM: A Search Space Odyssey" (2017, arXiv:1503.04069): NIG, NFG, NOG, NIAF, NOAF,
  NP (``peepholes=False``, the default here) and FGR;
- a forget-gate bias of 1.0 at initialisation (Gers et al. 2000; Jozefowicz et al. 2015 found it
  closes most of the gap between the LSTM and the best architectures they searched); PyTorch
  initialises it like every other bias, ``forget_bias=None`` keeps that;
- the GRU in PyTorch's formulation (``reset_after=True``: the reset gate multiplies the recurrent
  projection, as cuDNN and Keras' default do) or the original one of Cho et al. 2014
  (``reset_after=False``: the reset gate multiplies the previous state before its projection);
- a ``lengths`` argument for right-padded batches (final states are taken at each sequence's last
  valid step, padded output positions are 0, as ``pad_packed_sequence`` gives them);
- :class:`Bidirectional`, which runs any actlab cell in both directions.

Speed: the input projection of all time steps is one matrix product before the loop, each step is
one matrix product plus a few in-place elementwise kernels, and the backward pass is written by
hand (backpropagation through time over the saved gate activations) instead of being an autograd
graph of ~15 small operations per step. ``actlab bench lstm`` measures it against torch.nn.LSTM.
The hand-written backward is not differentiable twice; pass ``fused=False`` for double backward
(an autograd graph of plain torch operations, also the reference the tests compare against).

Parameters keep PyTorch's names and row layout (``weight_ih``: gate rows in the order input,
forget, cell, output for the LSTM and reset, update, new for the GRU; a gate that a variant removes
has no rows), so :func:`from_torch` copies a ``torch.nn`` module's weights exactly.

Example::

    >>> import torch, actlab.nn as anl
    >>> lstm = anl.LSTM(8, 16, num_layers=2, peepholes=True, gate_activation="hard_sigmoid")
    >>> out, (h_n, c_n) = lstm(torch.randn(5, 3, 8))
    >>> out.shape, h_n.shape
    (torch.Size([5, 3, 16]), torch.Size([2, 3, 16]))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd import forward_ad as fwAD
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from actlab.ops.torch_ops import TORCH
from actlab.registry import BoundActivation, get, serialize
from actlab.torch.functional import apply

__all__ = ["RecurrentCell", "LSTMCell", "GRUCell", "LSTM", "GRU", "Bidirectional", "from_torch"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_PEEPHOLE_GATES = {"i": "input", "input": "input", "f": "forget", "forget": "forget", "o": "output", "output": "output"}
_aten = torch.ops.aten


# --------------------------------------------------------------------------- activations inside cells
def _resolve(identifier: Any, argument: str) -> BoundActivation:
    """A catalog activation for a cell argument; vector activations (softmax, ...) are refused."""
    act = get(identifier)
    if not isinstance(act, BoundActivation):
        raise TypeError(f"{argument} must be a catalog activation identifier, got the callable {identifier!r}")
    if act.spec.kind != "elementwise":
        raise ValueError(f"{argument} must be an elementwise activation; {act.name!r} is a {act.spec.kind} activation")
    return act


class _Kernel:
    """One activation as the recurrences use it: a forward into a buffer and ``grad * f'``.

    sigmoid and tanh use PyTorch's kernels (actlab's specs mark them native, i.e. accurate) and
    ``sigmoid_backward``/``tanh_backward``, which compute ``grad * f'`` from the output in one pass.
    Other activations run through the catalog spec: forward by ``actlab.torch.functional.apply``,
    derivative from the output where the spec has one, from the input otherwise.
    """

    __slots__ = ("act", "mode", "needs_input", "stochastic")

    def __init__(self, act: BoundActivation | None):
        self.act = act
        if act is None:
            self.mode = "identity"
        elif act.spec.native and act.spec.torch_native is not None and act.name in ("sigmoid", "tanh"):
            self.mode = act.name
        else:
            self.mode = "spec"
        self.needs_input = self.mode == "spec" and act.spec.derivative_from_output is None
        self.stochastic = act is not None and act.spec.train_forward is not None

    def __call__(self, x: Tensor, training: bool = False) -> Tensor:
        """Differentiable forward (the autograd path)."""
        if self.mode == "identity":
            return x
        if self.mode == "sigmoid":
            return torch.sigmoid(x)
        if self.mode == "tanh":
            return torch.tanh(x)
        return apply(self.act.spec, x, self.act.params, training=training)

    def into(self, x: Tensor, out: Tensor) -> Tensor:
        if self.mode == "sigmoid":
            return torch.sigmoid(x, out=out)
        if self.mode == "tanh":
            return torch.tanh(x, out=out)
        if self.mode == "identity":
            return out.copy_(x)
        return out.copy_(apply(self.act.spec, x, self.act.params))

    def grad(self, grad: Tensor, x: Tensor | None, y: Tensor, out: Tensor | None = None) -> Tensor:
        """``grad * f'(x)`` given the input ``x`` (only needed when ``needs_input``) and output ``y``."""
        if self.mode == "sigmoid":
            if out is None:
                return _aten.sigmoid_backward(grad, y)
            return _aten.sigmoid_backward.grad_input(grad, y, grad_input=out)
        if self.mode == "tanh":
            if out is None:
                return _aten.tanh_backward(grad, y)
            return _aten.tanh_backward.grad_input(grad, y, grad_input=out)
        if self.mode == "identity":
            return grad if out is None else out.copy_(grad)
        spec, params = self.act.spec, self.act.params
        fn, arg = (spec.derivative, x) if self.needs_input else (spec.derivative_from_output, y)
        low = arg.dtype in _LOW_PRECISION
        d = fn(arg.float() if low else arg, TORCH, **params)
        d = d.to(arg.dtype) if low else d
        return torch.mul(grad, d) if out is None else torch.mul(grad, d, out=out)

    def __repr__(self) -> str:
        return "identity" if self.act is None else repr(self.act)


# --------------------------------------------------------------------------- shared helpers
def _composable_path(cell: nn.Module, *tensors: Any) -> bool:
    """True under forward-mode AD (dual tensors) and torch.func transforms (vmap, jvp, jacfwd, hessian).

    The fused recurrences (_FusedLSTM, _FusedGRU) write into preallocated buffers and have a
    hand-written, once-differentiable BPTT: they have no jvp and cannot be batched by vmap. The
    step-by-step path computes the same recurrence (it is the fused path's reference in the tests)
    from ops and catalog Functions that all have forward-mode rules, so it is used instead.
    """
    if torch.compiler.is_compiling():
        return False
    if torch._C._are_functorch_transforms_active():
        return True
    if getattr(fwAD, "_current_level", 0) < 0:  # no dual level open: no tangent can exist
        return False
    found = [t for t in tensors if isinstance(t, Tensor)] + list(cell.parameters())
    return any(fwAD.unpack_dual(t).tangent is not None for t in found)


def _uniform_(cell: nn.Module, hidden_size: int) -> None:
    """PyTorch's RNN initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    with torch.no_grad():
        for p in cell.parameters():
            p.uniform_(-bound, bound)


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_step_input(cell: RecurrentCell, input: Tensor) -> tuple[Tensor, bool]:
    if not isinstance(input, Tensor):
        raise TypeError(f"{type(cell).__name__}: input must be a torch.Tensor, got {type(input).__name__}")
    if input.dim() not in (1, 2) or input.shape[-1] != cell.input_size:
        raise ValueError(
            f"{type(cell).__name__}: input must have shape (batch, {cell.input_size}) or ({cell.input_size},), "
            f"got {tuple(input.shape)}"
        )
    batched = input.dim() == 2
    return (input if batched else input.unsqueeze(0)), batched


def _check_state_tensor(cell: RecurrentCell, name: str, t: Any, batch: int, batched: bool) -> Tensor:
    shape = (batch, cell.hidden_size) if batched else (cell.hidden_size,)
    if not isinstance(t, Tensor) or tuple(t.shape) != shape:
        got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{type(cell).__name__}: {name} must have shape {shape}, got {got}")
    return t if batched else t.unsqueeze(0)


def _zip_state(fn: Any, a: Any, b: Any) -> Any:
    return tuple(fn(x, y) for x, y in zip(a, b)) if isinstance(a, tuple) else fn(a, b)


def _reverse_index(lengths: Tensor, steps: int) -> Tensor:
    """Time index (T, B) that reverses each sequence within its length and leaves the padding."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(1)
    n = lengths.unsqueeze(0)
    return torch.where(t < n, n - 1 - t, t)


def _gather_time(seq: Tensor, index: Tensor) -> Tensor:
    return seq.gather(0, index.unsqueeze(-1).expand(-1, -1, seq.shape[-1]))


def _final_at(seq: Tensor, initial: Tensor, lengths: Tensor | None) -> Tensor:
    """The state after each sequence's last valid step: seq[L-1] per batch row, initial where L = 0."""
    if lengths is None:
        return seq[-1] if seq.shape[0] else initial
    if seq.shape[0] == 0:
        return initial
    rows = torch.arange(seq.shape[1], device=seq.device)
    last = seq[(lengths - 1).clamp(min=0), rows]
    return torch.where((lengths > 0).unsqueeze(-1), last, initial)


def _valid_mask(lengths: Tensor, steps: int, dtype: torch.dtype) -> Tensor:
    return (torch.arange(steps, device=lengths.device).unsqueeze(1) < lengths.unsqueeze(0)).to(dtype).unsqueeze(-1)


def _check_lengths(lengths: Any, batch: int, steps: int, device: torch.device) -> Tensor | None:
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths)
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape (batch,) = ({batch},), got {tuple(lengths.shape)}")
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > steps):
        raise ValueError(
            f"lengths must lie in [0, {steps}] (the sequence length), got min {int(lengths.min())}, "
            f"max {int(lengths.max())}"
        )
    return lengths.to(device=device, dtype=torch.long)


# --------------------------------------------------------------------------- base cell
class RecurrentCell(nn.Module):
    """Base class of actlab's cells: one step in ``forward``, a whole sequence in ``scan``.

    A subclass defines ``forward(input, state) -> state`` (``state`` a tensor or a tuple of
    tensors whose first element is the output ``h``) and ``initial_state(batch, like)``; it then
    works with :class:`Bidirectional` and ``lengths``. LSTMCell and GRUCell override ``scan`` with
    their fused recurrences.
    """

    input_size: int
    hidden_size: int

    def initial_state(self, batch: int, like: Tensor) -> Any:
        return like.new_zeros(batch, self.hidden_size)

    @staticmethod
    def output_of(state: Any) -> Tensor:
        return state[0] if isinstance(state, tuple) else state

    def scan(
        self, inputs: Tensor, state: Any = None, lengths: Tensor | None = None, reverse: bool = False
    ) -> tuple[Tensor, Any]:
        """Run a (time, batch, input_size) sequence; returns (outputs (time, batch, hidden), final state).

        With ``lengths``, sequence b is ``inputs[:lengths[b], b]``: outputs after it are 0 and its
        final state is the one after its last valid step; ``reverse`` runs each sequence from its
        last valid step back to its first.
        """
        if not isinstance(inputs, Tensor) or inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            got = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise ValueError(
                f"{type(self).__name__}.scan: inputs must have shape (time, batch, {self.input_size}), got {got}"
            )
        steps, batch = inputs.shape[0], inputs.shape[1]
        if state is None:
            state = self.initial_state(batch, inputs)
        index = None
        if reverse:
            if lengths is None:
                inputs = inputs.flip(0)
            else:
                index = _reverse_index(lengths, steps)
                inputs = _gather_time(inputs, index)
        outputs, final = self._scan_forward(inputs, state, lengths)
        if lengths is not None:
            outputs = outputs * _valid_mask(lengths, steps, outputs.dtype)
        if reverse:
            outputs = outputs.flip(0) if index is None else _gather_time(outputs, index)
        return outputs, final

    def _scan_forward(self, inputs: Tensor, state: Any, lengths: Tensor | None) -> tuple[Tensor, Any]:
        """A Python loop over ``forward``: the generic path for any cell."""
        outputs = []
        for t in range(inputs.shape[0]):
            new = self(inputs[t], state)
            if lengths is not None:
                keep = (t < lengths).unsqueeze(-1)
                new = _zip_state(lambda n, o: torch.where(keep, n, o), new, state)
            state = new
            outputs.append(self.output_of(state))
        if not outputs:
            return inputs.new_zeros(0, inputs.shape[1], self.hidden_size), state
        return torch.stack(outputs), state


# --------------------------------------------------------------------------- LSTM
class _LSTMPlan:
    """The static structure of one LSTM variant: which gates exist and where their rows are."""

    def __init__(self, cell: LSTMCell):
        self.has_i = not (cell.no_input_gate or cell.cifg)
        self.has_f = not cell.no_forget_gate
        self.has_o = not cell.no_output_gate
        self.cifg = cell.cifg
        # Stored rows follow PyTorch (i, f, g, o); the fused recurrence puts the sigmoid gates first.
        self.stored = [n for n, keep in (("i", self.has_i), ("f", self.has_f), ("g", True), ("o", self.has_o)) if keep]
        self.sigmoid = [n for n in ("i", "f", "o") if n in self.stored]
        self.fused = self.sigmoid + ["g"]
        self.n_gates = len(self.stored)
        self.n_sig = len(self.sigmoid)
        self.peep = [g[0] for g in cell.peephole_gates]  # "input" -> "i", in the order i, f, o
        self.fgr = cell.full_gate_recurrence
        self.gate = _Kernel(cell.gate_activation)
        self.input = _Kernel(None if cell.no_input_activation else cell.input_activation)
        self.output = _Kernel(None if cell.no_output_activation else cell.output_activation)
        self.stochastic = self.gate.stochastic or self.input.stochastic or self.output.stochastic

    def rows(self, hidden: int, device: torch.device) -> Tensor | None:
        """Row permutation from the stored order to the fused order (None when they agree)."""
        if self.stored == self.fused:
            return None
        order = [self.stored.index(n) for n in self.fused]
        return torch.cat([torch.arange(k * hidden, (k + 1) * hidden, device=device) for k in order])


class LSTMCell(RecurrentCell):
    """One LSTM step with selectable variant and activations; ``forward(input, hx) -> (h, c)``.

    Equations (⊙ elementwise; σ = ``gate_activation``, g = ``input_activation``,
    h = ``output_activation``; p the diagonal peephole weights)::

        i_t = σ(W_i x_t + R_i h_{t-1} + p_i ⊙ c_{t-1} + b_i)     1 with no_input_gate, 1 - f_t with cifg
        f_t = σ(W_f x_t + R_f h_{t-1} + p_f ⊙ c_{t-1} + b_f)     1 with no_forget_gate
        z_t = g(W_z x_t + R_z h_{t-1} + b_z)                     identity with no_input_activation
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ z_t
        o_t = σ(W_o x_t + R_o h_{t-1} + p_o ⊙ c_t + b_o)         1 with no_output_gate
        y_t = o_t ⊙ h(c_t)                                       o_t ⊙ c_t with no_output_activation

    ``full_gate_recurrence`` adds the previous step's gate activations to every gate's input
    (Greff et al.'s FGR: ``+ U [i_{t-1}; f_{t-1}; o_{t-1}]``, the gates this variant has); the cell's
    state is then ``(h, c, gates)``. ``peepholes`` is True (all gates the variant has), False, or
    a subset such as ``("forget", "output")`` or ``"fo"``. ``forget_bias`` (default 1.0) sets the
    forget-gate bias at initialisation: ``bias_ih``'s forget rows get it and ``bias_hh``'s get 0.

    Example::

        >>> cell = LSTMCell(4, 8, cifg=True, peepholes="fo")
        >>> h, c = cell(torch.randn(2, 4))
        >>> sorted(cell.gates(torch.randn(2, 4)))
        ['cell', 'forget', 'input', 'output']
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        gate_activation: Any = "sigmoid",
        input_activation: Any = "tanh",
        output_activation: Any = "tanh",
        peepholes: bool | str | Iterable[str] = False,
        cifg: bool = False,
        no_input_gate: bool = False,
        no_forget_gate: bool = False,
        no_output_gate: bool = False,
        no_input_activation: bool = False,
        no_output_activation: bool = False,
        full_gate_recurrence: bool = False,
        forget_bias: float | None = 1.0,
        fused: bool = True,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        self.input_size = _check_positive("input_size", input_size)
        self.hidden_size = _check_positive("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.gate_activation = _resolve(gate_activation, "gate_activation")
        self.input_activation = _resolve(input_activation, "input_activation")
        self.output_activation = _resolve(output_activation, "output_activation")
        if cifg and (no_input_gate or no_forget_gate):
            raise ValueError(
                "cifg couples the input gate to the forget gate (i = 1 - f); it cannot be combined with "
                f"no_input_gate={no_input_gate} or no_forget_gate={no_forget_gate}"
            )
        self.cifg = bool(cifg)
        self.no_input_gate = bool(no_input_gate)
        self.no_forget_gate = bool(no_forget_gate)
        self.no_output_gate = bool(no_output_gate)
        self.no_input_activation = bool(no_input_activation)
        self.no_output_activation = bool(no_output_activation)
        self.full_gate_recurrence = bool(full_gate_recurrence)
        if forget_bias is not None and (isinstance(forget_bias, bool) or not math.isfinite(float(forget_bias))):
            raise ValueError(f"forget_bias must be a finite number or None, got {forget_bias!r}")
        self.forget_bias = None if forget_bias is None else float(forget_bias)
        self.fused = bool(fused)
        own = {"input": not (self.no_input_gate or self.cifg), "forget": not self.no_forget_gate}
        own["output"] = not self.no_output_gate
        self.peephole_gates = self._peephole_gates(peepholes, own)
        self._plan = _LSTMPlan(self)
        factory = {"device": device, "dtype": dtype}
        rows = self._plan.n_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size, **factory))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(rows, **factory))
            self.bias_hh = nn.Parameter(torch.empty(rows, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        for gate in ("input", "forget", "output"):
            name = f"weight_c{gate[0]}"
            if gate in self.peephole_gates:
                setattr(self, name, nn.Parameter(torch.empty(hidden_size, **factory)))
            else:
                self.register_parameter(name, None)
        if self.full_gate_recurrence:
            n = self._plan.n_sig * hidden_size
            self.weight_gg = nn.Parameter(torch.empty(n, n, **factory))
        else:
            self.register_parameter("weight_gg", None)
        self.reset_parameters()

    @staticmethod
    def _peephole_gates(peepholes: Any, own: dict[str, bool]) -> tuple[str, ...]:
        if isinstance(peepholes, bool):
            return tuple(g for g, keep in own.items() if keep) if peepholes else ()
        if isinstance(peepholes, str):  # one gate name, or letters such as "fo"
            names = [peepholes] if peepholes in _PEEPHOLE_GATES else list(peepholes)
        else:
            names = list(peepholes) if isinstance(peepholes, Iterable) else [peepholes]
        bad = [n for n in names if n not in _PEEPHOLE_GATES]
        if bad:
            raise ValueError(
                f"peepholes must be True, False or gates among 'input', 'forget', 'output' (or 'i', 'f', 'o'), "
                f"got {peepholes!r}"
            )
        chosen = {_PEEPHOLE_GATES[n] for n in names}
        missing = sorted(g for g in chosen if not own[g])
        if missing:
            raise ValueError(
                f"peepholes={peepholes!r} names gate(s) {missing} that this variant does not compute "
                "(removed by no_*_gate or derived by cifg)"
            )
        return tuple(g for g in ("input", "forget", "output") if g in chosen)

    def reset_parameters(self) -> None:
        """PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every parameter, then the forget-gate bias."""
        _uniform_(self, self.hidden_size)
        if self.bias and self.forget_bias is not None and self._plan.has_f:
            k = self._plan.stored.index("f")
            rows = slice(k * self.hidden_size, (k + 1) * self.hidden_size)
            with torch.no_grad():
                self.bias_ih[rows] = self.forget_bias
                self.bias_hh[rows] = 0.0

    # -- configuration ---------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable: ``LSTMCell.from_config(cell.get_config())``."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "bias": self.bias,
            "gate_activation": serialize(self.gate_activation),
            "input_activation": serialize(self.input_activation),
            "output_activation": serialize(self.output_activation),
            "peepholes": list(self.peephole_gates),
            "cifg": self.cifg,
            "no_input_gate": self.no_input_gate,
            "no_forget_gate": self.no_forget_gate,
            "no_output_gate": self.no_output_gate,
            "no_input_activation": self.no_input_activation,
            "no_output_activation": self.no_output_activation,
            "full_gate_recurrence": self.full_gate_recurrence,
            "forget_bias": self.forget_bias,
            "fused": self.fused,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LSTMCell:
        return cls(**dict(config))

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if not self.bias:
            parts.append("bias=False")
        defaults = {"gate_activation": "sigmoid", "input_activation": "tanh", "output_activation": "tanh"}
        parts += [f"{k}={repr(getattr(self, k))!r}" for k, v in defaults.items() if repr(getattr(self, k)) != v]
        if self.peephole_gates:
            parts.append(f"peepholes={self.peephole_gates}")
        flags = ("cifg", "no_input_gate", "no_forget_gate", "no_output_gate", "no_input_activation")
        flags += ("no_output_activation", "full_gate_recurrence")
        parts += [f"{f}=True" for f in flags if getattr(self, f)]
        return ", ".join(parts)

    # -- state ---------------------------------------------------------------------------
    def initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        h = like.new_zeros(batch, self.hidden_size)
        if self.full_gate_recurrence:
            return h, h.clone(), like.new_zeros(batch, self._plan.n_sig * self.hidden_size)
        return h, h.clone()

    def _check_hx(self, hx: Any, batch: int, batched: bool, like: Tensor) -> tuple[Tensor, ...]:
        if hx is None:
            return self.initial_state(batch, like)
        size = 3 if self.full_gate_recurrence else 2
        if not isinstance(hx, (tuple, list)) or len(hx) not in (2, size):
            raise ValueError(
                f"LSTMCell: hx must be a tuple (h, c){' or (h, c, gates)' if size == 3 else ''}, "
                f"got {type(hx).__name__}" + (f" of length {len(hx)}" if isinstance(hx, (tuple, list)) else "")
            )
        h = _check_state_tensor(self, "hx[0] (h)", hx[0], batch, batched)
        c = _check_state_tensor(self, "hx[1] (c)", hx[1], batch, batched)
        if size == 3:
            if len(hx) == 3:
                shape = (batch, self._plan.n_sig * self.hidden_size)
                s = hx[2] if batched else hx[2].unsqueeze(0)
                if tuple(s.shape) != shape:
                    raise ValueError(f"LSTMCell: hx[2] (previous gates) must have shape {shape}, got {tuple(s.shape)}")
            else:
                s = like.new_zeros(batch, self._plan.n_sig * self.hidden_size)
            return h, c, s
        return h, c

    # -- one step (autograd) -------------------------------------------------------------------
    def _step(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], dict[str, Tensor]]:
        plan, H = self._plan, self.hidden_size
        h, c = state[0], state[1]
        pre = nn.functional.linear(x, self.weight_ih, self.bias_ih) + nn.functional.linear(
            h, self.weight_hh, self.bias_hh
        )
        chunks = dict(zip(plan.stored, pre.split(H, dim=-1)))
        if plan.fgr:
            rec = nn.functional.linear(state[2], self.weight_gg).split(H, dim=-1)
            for name, r in zip(plan.sigmoid, rec):
                chunks[name] = chunks[name] + r
        gate, training = plan.gate, self.training
        peep = {g[0]: getattr(self, f"weight_c{g[0]}") for g in self.peephole_gates}
        one = torch.ones_like(c)
        f = gate(chunks["f"] + peep["f"] * c if "f" in peep else chunks["f"], training) if plan.has_f else one
        if plan.cifg:
            i = 1.0 - f
        elif plan.has_i:
            i = gate(chunks["i"] + peep["i"] * c if "i" in peep else chunks["i"], training)
        else:
            i = one
        z = plan.input(chunks["g"], training)
        c_new = f * c + i * z
        o = gate(chunks["o"] + peep["o"] * c_new if "o" in peep else chunks["o"], training) if plan.has_o else one
        h_new = o * plan.output(c_new, training)
        gates = {"input": i, "forget": f, "cell": z, "output": o}
        new: tuple[Tensor, ...] = (h_new, c_new)
        if plan.fgr:
            new = (
                h_new,
                c_new,
                torch.cat([gates[n] for n in ("input", "forget", "output") if n[0] in plan.sigmoid], -1),
            )
        return new, gates

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, ...]:
        """One step: ``input`` (batch, input_size) or (input_size,) -> ``(h, c)`` (``(h, c, gates)`` with FGR)."""
        x, batched = _check_step_input(self, input)
        state = self._check_hx(hx, x.shape[0], batched, x)
        new, _ = self._step(x, state)
        return new if batched else tuple(s.squeeze(0) for s in new)

    def gates(self, input: Tensor, hx: Any = None) -> dict[str, Tensor]:
        """The gate values of one step: ``{"input", "forget", "cell", "output"}`` (the cell entry is the
        activated block input). Gates a variant removes are ones; CIFG's input gate is 1 - forget."""
        x, batched = _check_step_input(self, input)
        _, gates = self._step(x, self._check_hx(hx, x.shape[0], batched, x))
        return gates if batched else {k: v.squeeze(0) for k, v in gates.items()}

    # -- a whole sequence --------------------------------------------------------------------
    def _scan_forward(self, inputs: Tensor, state: Any, lengths: Tensor | None) -> tuple[Tensor, Any]:
        plan = self._plan
        if not self.fused or (plan.stochastic and self.training) or _composable_path(self, inputs, *state):
            return super()._scan_forward(inputs, state, lengths)
        steps, batch = inputs.shape[0], inputs.shape[1]
        if steps == 0:
            return super()._scan_forward(inputs, state, lengths)
        H, n_rows = self.hidden_size, plan.n_gates * self.hidden_size
        perm = plan.rows(H, inputs.device)
        w_ih, w_hh = self.weight_ih, self.weight_hh
        b = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        if perm is not None:
            w_ih, w_hh = w_ih[perm], w_hh[perm]
            b = None if b is None else b[perm]
        flat = inputs.reshape(steps * batch, self.input_size)
        proj = (torch.addmm(b, flat, w_ih.t()) if b is not None else flat @ w_ih.t()).view(steps, batch, n_rows)
        peep = [getattr(self, f"weight_c{g}") for g in plan.peep]
        s0 = state[2] if plan.fgr else None
        hs, cs, ss = _FusedLSTM.apply(plan, proj, state[0], state[1], s0, w_hh, self.weight_gg, *peep)
        final: tuple[Tensor, ...] = (_final_at(hs, state[0], lengths), _final_at(cs, state[1], lengths))
        if plan.fgr:
            final = (*final, _final_at(ss, s0, lengths))
        return hs, final


class _FusedLSTM(torch.autograd.Function):
    """The LSTM recurrence over a projected sequence with a hand-written BPTT backward.

    Inputs: ``proj`` (T, B, G·H) = x W_ihᵀ + b in the fused gate order (sigmoid gates i, f, o that
    the variant has, then the block input), h0, c0, the previous gates s0 (FGR) or None, W_hh
    (fused order), the FGR matrix or None, and the peephole vectors. Outputs: all hidden states,
    all cell states and the sigmoid-gate activations (T, B, ·), from which the caller takes
    outputs and final states. The per-step views of every buffer are made once before the loops
    (``unbind``): slicing inside the loop costs as much as a small kernel.
    """

    @staticmethod
    def forward(ctx: Any, plan: _LSTMPlan, proj: Tensor, h0: Tensor, c0: Tensor, s0: Any, w_hh: Tensor,
                w_gg: Any, *peep: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        steps, batch, rows = proj.shape
        H = h0.shape[-1]
        S = plan.n_sig * H
        new = proj.new_empty
        hs, cs, sig, z = new(steps, batch, H), new(steps, batch, H), new(steps, batch, S), new(steps, batch, H)
        tc = new(steps, batch, H) if plan.output.mode != "identity" else None
        # Pre-activations are kept for backward only when a derivative needs its input.
        pre_buf = new(steps, batch, rows) if (plan.gate.needs_input or plan.input.needs_input) else None
        pre_cols = _step_views(pre_buf, new(batch, rows), steps)
        off = {n: k * H for k, n in enumerate(plan.fused)}
        p = dict(zip(plan.peep, peep))
        o_after = "o" in p  # the output gate's peephole reads c_t: o is computed after the cell update
        n_first = S - H if o_after else S
        pre, pre_sig, pre_first, pre_z = pre_cols(0, rows), pre_cols(0, S), pre_cols(0, n_first), pre_cols(S, rows)
        pre_peep = {g: pre_cols(off[g], off[g] + H) for g in p}
        sig_all, sig_first = sig.unbind(0), sig[..., :n_first].unbind(0)
        s_i, s_f, s_o = (sig[..., off[g] : off[g] + H].unbind(0) if g in off else None for g in "ifo")
        x_t, z_t, c_t, h_t = proj.unbind(0), z.unbind(0), cs.unbind(0), hs.unbind(0)
        y_t = tc.unbind(0) if tc is not None else c_t
        w_hh_t = w_hh.t()
        w_gg_t = w_gg.t() if w_gg is not None else None
        peep_if = [g for g in ("i", "f") if g in p]
        gate_into, input_into, output_into = plan.gate.into, plan.input.into, plan.output.into
        cifg, out_act = plan.cifg, tc is not None
        h, c, s = h0, c0, s0
        for t in range(steps):
            torch.addmm(x_t[t], h, w_hh_t, out=pre[t])
            if w_gg_t is not None:
                pre_sig[t].addmm_(s, w_gg_t)
            for g in peep_if:
                pre_peep[g][t].addcmul_(p[g], c)
            if n_first:
                gate_into(pre_first[t], sig_first[t])
            zt = input_into(pre_z[t], z_t[t])
            ct = c_t[t]
            f = s_f[t] if s_f is not None else None
            if cifg:
                torch.lerp(zt, c, f, out=ct)  # c = f c + (1 - f) z = z + f (c - z)
            elif s_i is not None:
                if f is None:
                    torch.addcmul(c, s_i[t], zt, out=ct)
                else:
                    torch.mul(f, c, out=ct).addcmul_(s_i[t], zt)
            elif f is None:
                torch.add(c, zt, out=ct)
            else:
                torch.addcmul(zt, f, c, out=ct)
            if o_after:
                gate_into(pre_peep["o"][t].addcmul_(p["o"], ct), s_o[t])
            y = output_into(ct, y_t[t]) if out_act else ct
            if s_o is not None:
                torch.mul(s_o[t], y, out=h_t[t])
            else:
                h_t[t].copy_(y)
            h, c, s = h_t[t], ct, sig_all[t]
        ctx.plan = plan
        ctx.save_for_backward(h0, c0, s0, w_hh, w_gg, hs, cs, sig, z, tc, pre_buf, *peep)
        if not plan.fgr:
            ctx.mark_non_differentiable(sig)
        return hs, cs, sig

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g_hs: Tensor | None, g_cs: Tensor | None, g_sig: Tensor | None) -> tuple:
        plan = ctx.plan
        h0, c0, s0, w_hh, w_gg, hs, cs, sig, z, tc, pre_buf, *peep = ctx.saved_tensors
        steps, batch, H = hs.shape
        S, rows = plan.n_sig * H, plan.n_gates * H
        off = {n: k * H for k, n in enumerate(plan.fused)}
        p = dict(zip(plan.peep, peep))
        o_after = "o" in p
        n_first = S - H if o_after else S
        d_pre = hs.new_empty(steps, batch, rows)
        d_all, d_first, d_z = d_pre.unbind(0), d_pre[..., :n_first].unbind(0), d_pre[..., S:].unbind(0)
        d_peep_t = {g: d_pre[..., off[g] : off[g] + H].unbind(0) for g in p}
        none = [None] * steps
        pre_first = pre_buf[..., :n_first].unbind(0) if pre_buf is not None else none
        pre_z = pre_buf[..., S:].unbind(0) if pre_buf is not None else none
        pre_o = pre_buf[..., S - H : S].unbind(0) if pre_buf is not None and o_after else none
        sig_first = sig[..., :n_first].unbind(0)
        s_i, s_f, s_o = (sig[..., off[g] : off[g] + H].unbind(0) if g in off else None for g in "ifo")
        z_t, c_t = z.unbind(0), cs.unbind(0)
        y_t = tc.unbind(0) if tc is not None else c_t
        # d loss / d (gate activations) of one step, before σ'; its gate slices are fixed views
        d_sig_out = hs.new_empty(batch, S)
        dso_first = d_sig_out[:, :n_first]
        dso_i, dso_f, dso_o = (d_sig_out[:, off[g] : off[g] + H] if g in off else None for g in "ifo")
        gh = g_hs.unbind(0) if g_hs is not None else None
        gc = g_cs.unbind(0) if g_cs is not None else None
        gs = g_sig.unbind(0) if g_sig is not None else None
        # The gradients arriving at step t from outside (g_hs[t], g_cs[t]) are added in the same
        # kernel that carries the recurrent gradient back from step t + 1 (addmm / addcmul).
        dh = gh[-1] if gh is not None else h0.new_zeros(batch, H)
        dc = gc[-1] if gc is not None else c0.new_zeros(batch, H)
        ds = None
        if plan.fgr:
            ds = gs[-1] if gs is not None else hs.new_zeros(batch, S)
        gate, inp, out = plan.gate, plan.input, plan.output
        peep_if = [g for g in ("i", "f") if g in p]
        for t in range(steps - 1, -1, -1):
            ct = c_t[t]
            c_prev = c_t[t - 1] if t else c0
            y = y_t[t]
            if s_o is not None:
                torch.mul(dh, y, out=dso_o)
                dy = dh * s_o[t]
            else:
                dy = dh
            dc = dc + out.grad(dy, ct, y)
            if o_after:  # o's gradient reaches c_t through the peephole before c's own backward
                if ds is not None:
                    dso_o += ds[:, S - H :]
                gate.grad(dso_o, pre_o[t], s_o[t], out=d_peep_t["o"][t])
                dc.addcmul_(d_peep_t["o"][t], p["o"])  # dc is this step's own tensor here
            zt = z_t[t]
            f = s_f[t] if s_f is not None else None
            if plan.cifg:
                torch.mul(dc, c_prev - zt, out=dso_f)
                dz = torch.addcmul(dc, dc, f, value=-1)  # dc (1 - f)
            else:
                if s_i is not None:
                    torch.mul(dc, zt, out=dso_i)
                    dz = dc * s_i[t]
                else:
                    dz = dc
                if f is not None:
                    torch.mul(dc, c_prev, out=dso_f)
            inp.grad(dz, pre_z[t], zt, out=d_z[t])
            if n_first:
                if ds is not None:
                    dso_first += ds[:, :n_first]
                gate.grad(dso_first, pre_first[t], sig_first[t], out=d_first[t])
            g_c = gc[t - 1] if gc is not None and t else None
            if f is None:
                dc = dc if g_c is None else dc + g_c
            else:
                dc = dc * f if g_c is None else torch.addcmul(g_c, dc, f)
            for g in peep_if:  # in place: dc is a tensor this step made (never autograd's g_cs)
                dc.addcmul_(d_peep_t[g][t], p[g])
            dt = d_all[t]
            dh = torch.addmm(gh[t - 1], dt, w_hh) if gh is not None and t else dt @ w_hh
            if ds is not None:
                ds = torch.addmm(gs[t - 1], dt[:, :S], w_gg) if gs is not None and t else dt[:, :S] @ w_gg
        d_flat = d_pre.view(steps * batch, rows)
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]]).view(steps * batch, H)
        d_w_hh = d_flat.t() @ h_prev
        d_w_gg = d_s0 = None
        if plan.fgr:
            s_prev = torch.cat([s0.unsqueeze(0), sig[:-1]]).view(steps * batch, S)
            d_w_gg = d_flat[:, :S].t() @ s_prev
            d_s0 = ds
        d_peep = []
        c_prev_all = torch.cat([c0.unsqueeze(0), cs[:-1]]) if peep_if else None
        for g in plan.peep:
            c_src = cs if g == "o" else c_prev_all  # o peeks at c_t, i and f at c_{t-1}
            d_peep.append((d_pre[..., off[g] : off[g] + H] * c_src).sum((0, 1)))
        return (None, d_pre, dh, dc, d_s0, d_w_hh, d_w_gg, *d_peep)


def _step_views(buf: Tensor | None, scratch: Tensor, steps: int) -> Any:
    """``cols(lo, hi)`` -> per-step views of columns lo:hi: of ``buf`` (T, B, N) when it is kept, or
    of one (B, N) scratch buffer reused by every step when it is not."""
    if buf is not None:
        return lambda lo, hi: buf[..., lo:hi].unbind(0)
    return lambda lo, hi: [scratch[:, lo:hi]] * steps


# --------------------------------------------------------------------------- GRU
class _GRUPlan:
    def __init__(self, cell: GRUCell):
        self.reset_after = cell.reset_after
        self.gate = _Kernel(cell.gate_activation)
        self.candidate = _Kernel(cell.candidate_activation)
        self.stochastic = self.gate.stochastic or self.candidate.stochastic


class GRUCell(RecurrentCell):
    """One GRU step with selectable activations; ``forward(input, hx) -> h``.

    Equations (σ = ``gate_activation``, φ = ``candidate_activation``; rows in PyTorch's order
    reset, update, new)::

        r_t = σ(W_r x_t + b_ir + R_r h_{t-1} + b_hr)
        z_t = σ(W_z x_t + b_iz + R_z h_{t-1} + b_hz)
        n_t = φ(W_n x_t + b_in + r_t ⊙ (R_n h_{t-1} + b_hn))       reset_after=True (PyTorch, cuDNN, Keras' default)
        n_t = φ(W_n x_t + b_in + R_n (r_t ⊙ h_{t-1}) + b_hn)       reset_after=False (Cho et al. 2014)
        h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    Example::

        >>> cell = GRUCell(4, 8, reset_after=False, candidate_activation="softsign")
        >>> cell(torch.randn(2, 4)).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        gate_activation: Any = "sigmoid",
        candidate_activation: Any = "tanh",
        reset_after: bool = True,
        fused: bool = True,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        self.input_size = _check_positive("input_size", input_size)
        self.hidden_size = _check_positive("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.gate_activation = _resolve(gate_activation, "gate_activation")
        self.candidate_activation = _resolve(candidate_activation, "candidate_activation")
        self.reset_after = bool(reset_after)
        self.fused = bool(fused)
        self._plan = _GRUPlan(self)
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size, **factory))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every parameter."""
        _uniform_(self, self.hidden_size)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable: ``GRUCell.from_config(cell.get_config())``."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "bias": self.bias,
            "gate_activation": serialize(self.gate_activation),
            "candidate_activation": serialize(self.candidate_activation),
            "reset_after": self.reset_after,
            "fused": self.fused,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GRUCell:
        return cls(**dict(config))

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if not self.bias:
            parts.append("bias=False")
        if repr(self.gate_activation) != "sigmoid":
            parts.append(f"gate_activation={repr(self.gate_activation)!r}")
        if repr(self.candidate_activation) != "tanh":
            parts.append(f"candidate_activation={repr(self.candidate_activation)!r}")
        if not self.reset_after:
            parts.append("reset_after=False")
        return ", ".join(parts)

    def _step(self, x: Tensor, h: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        plan, H = self._plan, self.hidden_size
        xr, xz, xn = nn.functional.linear(x, self.weight_ih, self.bias_ih).split(H, dim=-1)
        w_hh, b_hh = self.weight_hh, self.bias_hh
        if plan.reset_after:
            hr, hz, hn = nn.functional.linear(h, w_hh, b_hh).split(H, dim=-1)
        else:
            hr, hz = nn.functional.linear(h, w_hh[: 2 * H], None if b_hh is None else b_hh[: 2 * H]).split(H, dim=-1)
        r = plan.gate(xr + hr, self.training)
        z = plan.gate(xz + hz, self.training)
        if plan.reset_after:
            n = plan.candidate(xn + r * hn, self.training)
        else:
            n = plan.candidate(xn + nn.functional.linear(r * h, w_hh[2 * H :], None if b_hh is None else b_hh[2 * H :]))
        h_new = (1.0 - z) * n + z * h
        return h_new, {"reset": r, "update": z, "candidate": n}

    def _check_hx(self, hx: Any, batch: int, batched: bool, like: Tensor) -> Tensor:
        if hx is None:
            return self.initial_state(batch, like)
        return _check_state_tensor(self, "hx", hx, batch, batched)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """One step: ``input`` (batch, input_size) or (input_size,) -> ``h``."""
        x, batched = _check_step_input(self, input)
        h, _ = self._step(x, self._check_hx(hx, x.shape[0], batched, x))
        return h if batched else h.squeeze(0)

    def gates(self, input: Tensor, hx: Tensor | None = None) -> dict[str, Tensor]:
        """The values of one step: ``{"reset", "update", "candidate"}``."""
        x, batched = _check_step_input(self, input)
        _, gates = self._step(x, self._check_hx(hx, x.shape[0], batched, x))
        return gates if batched else {k: v.squeeze(0) for k, v in gates.items()}

    def _scan_forward(self, inputs: Tensor, state: Any, lengths: Tensor | None) -> tuple[Tensor, Any]:
        plan = self._plan
        steps, batch = inputs.shape[0], inputs.shape[1]
        if steps == 0 or not self.fused or (plan.stochastic and self.training) or _composable_path(self, inputs, state):
            return super()._scan_forward(inputs, state, lengths)
        H = self.hidden_size
        b_ih, b_hh = self.bias_ih, self.bias_hh
        if b_ih is not None and not plan.reset_after:
            # Without reset_after the recurrent bias is outside the reset product: it folds into the input bias.
            b_ih = b_ih + torch.cat([b_hh[: 2 * H], b_hh[2 * H :]])
            b_hh = None
        flat = inputs.reshape(steps * batch, self.input_size)
        w_ih_t = self.weight_ih.t()
        proj = (torch.addmm(b_ih, flat, w_ih_t) if b_ih is not None else flat @ w_ih_t).view(steps, batch, 3 * H)
        hs = _FusedGRU.apply(plan, proj, state, self.weight_hh, b_hh)
        return hs, _final_at(hs, state, lengths)


class _FusedGRU(torch.autograd.Function):
    """The GRU recurrence over ``proj`` (T, B, 3H) = x W_ihᵀ + b with a hand-written BPTT backward."""

    @staticmethod
    def forward(ctx: Any, plan: _GRUPlan, proj: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Any) -> Tensor:
        steps, batch, _ = proj.shape
        H = h0.shape[-1]
        new = proj.new_empty
        hs, rz, n = new(steps, batch, H), new(steps, batch, 2 * H), new(steps, batch, H)
        keep_rz = plan.gate.needs_input
        keep_n = plan.candidate.needs_input
        rz_pre = new(steps, batch, 2 * H) if keep_rz else None
        n_pre = new(steps, batch, H) if keep_n else None
        hg = new(steps, batch, 3 * H) if plan.reset_after else None
        gate_into, cand_into = plan.gate.into, plan.candidate.into
        w_t = w_hh.t()
        w_rz_t, w_n_t = w_hh[: 2 * H].t(), w_hh[2 * H :].t()
        h = h0
        for t in range(steps):
            pt = proj[t]
            if plan.reset_after:
                g = torch.addmm(b_hh, h, w_t, out=hg[t]) if b_hh is not None else torch.mm(h, w_t, out=hg[t])
                pre = (
                    torch.add(pt[:, : 2 * H], g[:, : 2 * H], out=rz_pre[t])
                    if keep_rz
                    else pt[:, : 2 * H] + g[:, : 2 * H]
                )
            else:
                pre = (
                    torch.addmm(pt[:, : 2 * H], h, w_rz_t, out=rz_pre[t])
                    if keep_rz
                    else torch.addmm(pt[:, : 2 * H], h, w_rz_t)
                )
            gate_into(pre, rz[t])
            r, z = rz[t, :, :H], rz[t, :, H:]
            if plan.reset_after:
                npre = (
                    torch.addcmul(pt[:, 2 * H :], r, g[:, 2 * H :], out=n_pre[t])
                    if keep_n
                    else torch.addcmul(pt[:, 2 * H :], r, g[:, 2 * H :])
                )
            else:
                npre = (
                    torch.addmm(pt[:, 2 * H :], r * h, w_n_t, out=n_pre[t])
                    if keep_n
                    else torch.addmm(pt[:, 2 * H :], r * h, w_n_t)
                )
            cand_into(npre, n[t])
            torch.lerp(n[t], h, z, out=hs[t])  # (1 - z) n + z h
            h = hs[t]
        ctx.plan = plan
        ctx.has_bias = b_hh is not None
        ctx.save_for_backward(h0, w_hh, hs, rz, n, rz_pre, n_pre, hg)
        return hs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g_hs: Tensor) -> tuple:
        plan = ctx.plan
        h0, w_hh, hs, rz, n, rz_pre, n_pre, hg = ctx.saved_tensors
        steps, batch, H = hs.shape
        d = hs.new_empty(steps, batch, 3 * H)  # d loss / d (recurrent pre-activations)
        d_n = hs.new_empty(steps, batch, H) if plan.reset_after else None  # d loss / d (n's input part)
        d_rz_out = hs.new_empty(batch, 2 * H)
        w_rz, w_n = w_hh[: 2 * H], w_hh[2 * H :]
        gate, cand = plan.gate, plan.candidate
        dh = g_hs[-1]
        for t in range(steps - 1, -1, -1):
            r, z, nt = rz[t, :, :H], rz[t, :, H:], n[t]
            h_prev = hs[t - 1] if t else h0
            # dh's direct path to h_{t-1}, plus the gradient arriving at h_{t-1} from outside
            dz_h = torch.addcmul(g_hs[t - 1], dh, z) if t else dh * z
            torch.mul(dh, h_prev - nt, out=d_rz_out[:, H:])
            dn_in = d_n[t] if plan.reset_after else d[t, :, 2 * H :]
            cand.grad(torch.addcmul(dh, dh, z, value=-1), None if n_pre is None else n_pre[t], nt, out=dn_in)
            if plan.reset_after:
                torch.mul(dn_in, hg[t, :, 2 * H :], out=d_rz_out[:, :H])
                gate.grad(d_rz_out, None if rz_pre is None else rz_pre[t], rz[t], out=d[t, :, : 2 * H])
                torch.mul(dn_in, r, out=d[t, :, 2 * H :])
                dh = torch.addmm(dz_h, d[t], w_hh)
            else:
                d_rh = dn_in @ w_n
                torch.mul(d_rh, h_prev, out=d_rz_out[:, :H])
                gate.grad(d_rz_out, None if rz_pre is None else rz_pre[t], rz[t], out=d[t, :, : 2 * H])
                dh = torch.addmm(dz_h.addcmul_(d_rh, r), d[t, :, : 2 * H], w_rz)
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]])
        flat = d.view(steps * batch, 3 * H)
        if plan.reset_after:
            d_proj = torch.cat([d[..., : 2 * H], d_n], dim=-1)
            d_w = flat.t() @ h_prev.view(steps * batch, H)
        else:
            d_proj = d
            rh = (rz[..., :H] * h_prev).view(steps * batch, H)
            d_w = torch.cat([flat[:, : 2 * H].t() @ h_prev.view(steps * batch, H), flat[:, 2 * H :].t() @ rh])
        d_b = flat.sum(0) if ctx.has_bias else None
        return None, d_proj, dh, d_w, d_b


# --------------------------------------------------------------------------- sequences: packing, layout
class _Batch:
    """An input sequence brought to (time, batch, features), and how to give outputs back."""

    def __init__(self, owner: str, input: Any, lengths: Any, batch_first: bool, input_size: int, unbatched_ok: bool):
        self.packed = input if isinstance(input, PackedSequence) else None
        self.batch_first = batch_first
        self.unbatched = False
        if self.packed is not None:
            if lengths is not None:
                raise ValueError(f"{owner}: pass lengths or a PackedSequence, not both")
            x, lens = pad_packed_sequence(self.packed, batch_first=False)
            self.lengths = lens.to(x.device)
        else:
            if not isinstance(input, Tensor):
                raise TypeError(
                    f"{owner}: input must be a torch.Tensor or a PackedSequence, got {type(input).__name__}"
                )
            allowed = (2, 3) if unbatched_ok else (3,)
            if input.dim() not in allowed:
                shape = "(batch, time, features)" if batch_first else "(time, batch, features)"
                extra = " or (time, features)" if unbatched_ok else ""
                raise ValueError(f"{owner}: input must have shape {shape}{extra}, got {tuple(input.shape)}")
            x = input
            if x.dim() == 2:
                self.unbatched = True
                x = x.unsqueeze(1)
            elif batch_first:
                x = x.transpose(0, 1)
            self.lengths = _check_lengths(lengths, x.shape[1], x.shape[0], x.device)
        if x.shape[-1] != input_size:
            raise ValueError(f"{owner}: input has {x.shape[-1]} features, expected input_size={input_size}")
        if not x.is_floating_point():
            raise TypeError(f"{owner}: input must be floating point, got dtype {x.dtype}")
        self.x = x

    @property
    def batch(self) -> int:
        return self.x.shape[1]

    def output(self, out: Tensor) -> Any:
        if self.packed is not None:
            p = self.packed
            lens = self.lengths.cpu()
            if p.sorted_indices is not None:
                out = out.index_select(1, p.sorted_indices)
                lens = lens[p.sorted_indices.cpu()]
            data = pack_padded_sequence(out, lens, enforce_sorted=True)
            return PackedSequence(data.data, data.batch_sizes, p.sorted_indices, p.unsorted_indices)
        if self.unbatched:
            return out.squeeze(1)
        return out.transpose(0, 1) if self.batch_first else out


# --------------------------------------------------------------------------- bidirectional
_MERGES = ("concat", "sum", "mean", "mul")


def _reinitialised_copy(cell: RecurrentCell) -> RecurrentCell:
    """A copy of ``cell`` with fresh parameters: its own ``reset_parameters``, else its submodules'."""
    new = copy.deepcopy(cell)
    if callable(getattr(new, "reset_parameters", None)):
        new.reset_parameters()
        return new
    resettable = [m for m in new.modules() if m is not new and callable(getattr(m, "reset_parameters", None))]
    for m in resettable:
        m.reset_parameters()
    if not resettable and any(True for _ in new.parameters()):
        raise ValueError(
            f"Bidirectional: cannot re-initialise a copy of {type(cell).__name__} (no reset_parameters); "
            "pass backward_cell explicitly"
        )
    return new


class Bidirectional(nn.Module):
    """Runs any actlab cell forward and a second cell backward over a sequence; merges the outputs.

    ``backward_cell`` defaults to a copy of ``cell`` with freshly initialised parameters (as the
    two directions of torch.nn.LSTM are). ``merge`` is ``"concat"`` (PyTorch, Keras' default),
    ``"sum"``, ``"mean"`` or ``"mul"`` (Keras' ``merge_mode``). With ``lengths`` or packed input the
    backward direction starts at each sequence's last valid step.

    ``forward(input, hx=None, lengths=None) -> (output, (forward_state, backward_state))`` with
    ``input`` (time, batch, features) (batch first with ``batch_first=True``) or a PackedSequence;
    ``hx`` is a pair of the two cells' states.

    Example::

        >>> bi = Bidirectional(GRUCell(4, 8, candidate_activation="softsign"), batch_first=True)
        >>> out, (h_fwd, h_bwd) = bi(torch.randn(2, 5, 4), lengths=[5, 3])
        >>> out.shape
        torch.Size([2, 5, 16])
    """

    def __init__(
        self,
        cell: RecurrentCell,
        backward_cell: RecurrentCell | None = None,
        *,
        merge: str = "concat",
        batch_first: bool = False,
    ):
        super().__init__()
        if not isinstance(cell, RecurrentCell):
            raise TypeError(f"cell must be an actlab RecurrentCell (LSTMCell, GRUCell, ...), got {type(cell).__name__}")
        if backward_cell is None:
            backward_cell = _reinitialised_copy(cell)
        elif not isinstance(backward_cell, RecurrentCell):
            raise TypeError(f"backward_cell must be an actlab RecurrentCell, got {type(backward_cell).__name__}")
        if backward_cell.input_size != cell.input_size:
            raise ValueError(
                f"backward_cell.input_size={backward_cell.input_size} differs from cell.input_size={cell.input_size}"
            )
        if merge not in _MERGES:
            raise ValueError(f"merge must be one of {_MERGES}, got {merge!r}")
        if merge != "concat" and backward_cell.hidden_size != cell.hidden_size:
            raise ValueError(
                f"merge={merge!r} needs equal hidden sizes, got {cell.hidden_size} and {backward_cell.hidden_size}"
            )
        self.forward_cell = cell
        self.backward_cell = backward_cell
        self.merge = merge
        self.batch_first = bool(batch_first)
        self.input_size = cell.input_size
        self.output_size = cell.hidden_size + backward_cell.hidden_size if merge == "concat" else cell.hidden_size

    def run(self, x: Tensor, states: Any = None, lengths: Tensor | None = None) -> tuple[Tensor, tuple[Any, Any]]:
        """Time-major core: ``x`` (time, batch, features) -> (merged outputs, (forward, backward) final states)."""
        sf, sb = (None, None) if states is None else states
        out_f, final_f = self.forward_cell.scan(x, sf, lengths)
        out_b, final_b = self.backward_cell.scan(x, sb, lengths, reverse=True)
        if self.merge == "concat":
            out = torch.cat([out_f, out_b], dim=-1)
        elif self.merge == "sum":
            out = out_f + out_b
        elif self.merge == "mean":
            out = (out_f + out_b) * 0.5
        else:
            out = out_f * out_b
        return out, (final_f, final_b)

    def forward(self, input: Any, hx: Any = None, lengths: Any = None) -> tuple[Any, tuple[Any, Any]]:
        seq = _Batch("Bidirectional", input, lengths, self.batch_first, self.input_size, unbatched_ok=False)
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError("Bidirectional: hx must be a pair (forward_state, backward_state)")
        out, finals = self.run(seq.x, hx, seq.lengths)
        return seq.output(out), finals

    def extra_repr(self) -> str:
        return f"merge={self.merge!r}" + (", batch_first=True" if self.batch_first else "")


# --------------------------------------------------------------------------- layers
class _RecurrentLayer(nn.Module):
    """A stack of cells (one per layer and direction) with torch.nn.LSTM/GRU's interface."""

    _cell_type: type[RecurrentCell]
    _name: str

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        cell_options: dict[str, Any],
        factory: dict[str, Any],
    ):
        super().__init__()
        _check_positive("input_size", input_size)
        _check_positive("hidden_size", hidden_size)
        _check_positive("num_layers", num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            import warnings

            warnings.warn(
                f"dropout={dropout} is applied between recurrent layers, so it has no effect with num_layers=1",
                stacklevel=3,
            )
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional = bool(bidirectional)
        self._cell_options = dict(cell_options)
        directions = 2 if bidirectional else 1
        layers = []
        for k in range(num_layers):
            size = input_size if k == 0 else hidden_size * directions
            cell = self._cell_type(size, hidden_size, bias, **cell_options, **factory)
            layers.append(Bidirectional(cell) if bidirectional else cell)
        self.layers = nn.ModuleList(layers)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def cell(self, layer: int, direction: int = 0) -> RecurrentCell:
        """The cell of ``layer`` (0-based) and ``direction`` (0 forward, 1 backward)."""
        if not 0 <= layer < self.num_layers or direction not in range(self.num_directions):
            raise IndexError(
                f"layer must be in [0, {self.num_layers - 1}] and direction in {list(range(self.num_directions))}, "
                f"got layer={layer}, direction={direction}"
            )
        block = self.layers[layer]
        if isinstance(block, Bidirectional):
            return block.backward_cell if direction else block.forward_cell
        return block

    def cells(self) -> list[RecurrentCell]:
        """All cells in the order of h_n's first axis: layer 0 forward, layer 0 backward, layer 1 ..."""
        return [self.cell(k, d) for k in range(self.num_layers) for d in range(self.num_directions)]

    def reset_parameters(self) -> None:
        for cell in self.cells():
            cell.reset_parameters()

    def flatten_parameters(self) -> None:
        """No-op, for code written for torch.nn.LSTM/GRU on cuDNN."""

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable: ``type(m).from_config(m.get_config())``."""
        cell_config = self.cell(0).get_config()
        options = {k: cell_config[k] for k in self._cell_options}
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            **options,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        return cls(**dict(config))

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0)):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)!r}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        return ", ".join(parts)

    # subclasses: hx <-> per-cell states
    def _split_hx(self, hx: Any, batch: int, unbatched: bool, like: Tensor) -> list[Any]:
        raise NotImplementedError

    def _merge_finals(self, finals: list[Any], unbatched: bool) -> Any:
        raise NotImplementedError

    def _check_stacked(self, name: str, t: Any, batch: int, unbatched: bool) -> Tensor:
        rows = self.num_layers * self.num_directions
        shape = (rows, self.hidden_size) if unbatched else (rows, batch, self.hidden_size)
        if not isinstance(t, Tensor) or tuple(t.shape) != shape:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(
                f"{self._name}: {name} must have shape (num_layers * num_directions, "
                f"{'' if unbatched else 'batch, '}hidden_size) = {shape}, got {got}"
            )
        return t.unsqueeze(1) if unbatched else t

    def forward(self, input: Any, hx: Any = None, lengths: Any = None) -> tuple[Any, Any]:
        seq = _Batch(self._name, input, lengths, self.batch_first, self.input_size, unbatched_ok=True)
        x, lengths = seq.x, seq.lengths
        states = self._split_hx(hx, seq.batch, seq.unbatched, x)
        finals: list[Any] = []
        for k, block in enumerate(self.layers):
            if isinstance(block, Bidirectional):
                x, pair = block.run(x, (states[2 * k], states[2 * k + 1]), lengths)
                finals += list(pair)
            else:
                x, final = block.scan(x, states[k], lengths)
                finals.append(final)
            if self.dropout and self.training and k < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, training=True)
        return seq.output(x), self._merge_finals(finals, seq.unbatched)


_LSTM_OPTIONS = (
    "gate_activation",
    "input_activation",
    "output_activation",
    "peepholes",
    "cifg",
    "no_input_gate",
    "no_forget_gate",
    "no_output_gate",
    "no_input_activation",
    "no_output_activation",
    "full_gate_recurrence",
    "forget_bias",
    "fused",
)


class LSTM(_RecurrentLayer):
    """Multi-layer LSTM with torch.nn.LSTM's interface and the variants and activations of :class:`LSTMCell`.

    ``forward(input, hx=None, lengths=None) -> (output, (h_n, c_n))``: ``input`` (time, batch,
    input_size), (batch, time, input_size) with ``batch_first``, (time, input_size) unbatched, or a
    PackedSequence (then ``output`` is one too); ``h_n``/``c_n`` (num_layers · num_directions,
    batch, hidden_size). ``lengths`` (batch,) marks right-padded sequences: outputs past a
    sequence's end are 0 and its final state is the one after its last valid step. With
    ``full_gate_recurrence`` the previous-gate state starts at zero on every call.
    ``dropout`` applies between layers in training, as in PyTorch.

    Example::

        >>> lstm = LSTM(8, 16, batch_first=True, cifg=True, peepholes=True, gate_activation="hard_sigmoid")
        >>> out, (h_n, c_n) = lstm(torch.randn(3, 5, 8), lengths=torch.tensor([5, 2, 4]))
        >>> out.shape, h_n.shape
        (torch.Size([3, 5, 16]), torch.Size([1, 3, 16]))
    """

    _cell_type = LSTMCell
    _name = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        gate_activation: Any = "sigmoid",
        input_activation: Any = "tanh",
        output_activation: Any = "tanh",
        peepholes: bool | str | Iterable[str] = False,
        cifg: bool = False,
        no_input_gate: bool = False,
        no_forget_gate: bool = False,
        no_output_gate: bool = False,
        no_input_activation: bool = False,
        no_output_activation: bool = False,
        full_gate_recurrence: bool = False,
        forget_bias: float | None = 1.0,
        fused: bool = True,
        device: Any = None,
        dtype: Any = None,
    ):
        options = {k: v for k, v in locals().items() if k in _LSTM_OPTIONS}
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, options,
            {"device": device, "dtype": dtype},
        )  # fmt: skip

    def _split_hx(self, hx: Any, batch: int, unbatched: bool, like: Tensor) -> list[Any]:
        cells = self.cells()
        if hx is None:
            return [cell.initial_state(batch, like) for cell in cells]
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError("LSTM: hx must be a tuple (h_0, c_0)")
        h0 = self._check_stacked("hx[0] (h_0)", hx[0], batch, unbatched)
        c0 = self._check_stacked("hx[1] (c_0)", hx[1], batch, unbatched)
        states = []
        for j, cell in enumerate(cells):
            state = (h0[j], c0[j])
            if cell.full_gate_recurrence:
                state = (*state, like.new_zeros(batch, cell._plan.n_sig * self.hidden_size))
            states.append(state)
        return states

    def _merge_finals(self, finals: list[Any], unbatched: bool) -> tuple[Tensor, Tensor]:
        h_n = torch.stack([f[0] for f in finals])
        c_n = torch.stack([f[1] for f in finals])
        if unbatched:
            return h_n.squeeze(1), c_n.squeeze(1)
        return h_n, c_n


_GRU_OPTIONS = ("gate_activation", "candidate_activation", "reset_after", "fused")


class GRU(_RecurrentLayer):
    """Multi-layer GRU with torch.nn.GRU's interface and the activations of :class:`GRUCell`.

    ``forward(input, hx=None, lengths=None) -> (output, h_n)`` with torch.nn.GRU's shapes; input
    layouts, ``lengths`` and PackedSequence as for :class:`LSTM`. ``reset_after=True`` (default)
    is PyTorch's formulation; ``False`` is Cho et al.'s (Keras' ``reset_after=False``).

    Example::

        >>> gru = GRU(8, 16, num_layers=2, bidirectional=True, reset_after=False)
        >>> out, h_n = gru(torch.randn(5, 3, 8))
        >>> out.shape, h_n.shape
        (torch.Size([5, 3, 32]), torch.Size([4, 3, 16]))
    """

    _cell_type = GRUCell
    _name = "GRU"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        gate_activation: Any = "sigmoid",
        candidate_activation: Any = "tanh",
        reset_after: bool = True,
        fused: bool = True,
        device: Any = None,
        dtype: Any = None,
    ):
        options = {k: v for k, v in locals().items() if k in _GRU_OPTIONS}
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, options,
            {"device": device, "dtype": dtype},
        )  # fmt: skip

    def _split_hx(self, hx: Any, batch: int, unbatched: bool, like: Tensor) -> list[Any]:
        cells = self.cells()
        if hx is None:
            return [cell.initial_state(batch, like) for cell in cells]
        h0 = self._check_stacked("hx (h_0)", hx, batch, unbatched)
        return [h0[j] for j in range(len(cells))]

    def _merge_finals(self, finals: list[Any], unbatched: bool) -> Tensor:
        h_n = torch.stack(finals)
        return h_n.squeeze(1) if unbatched else h_n


# --------------------------------------------------------------------------- torch interop
def from_torch(module: nn.Module) -> RecurrentCell | LSTM | GRU:
    """An actlab copy of a ``torch.nn.LSTM``, ``GRU``, ``LSTMCell`` or ``GRUCell`` with its weights.

    The copy is the vanilla variant with the module's sizes, flags, dtype and device; every
    parameter (biases included) is copied exactly, so both compute the same function.

    Example::

        >>> ref = torch.nn.LSTM(4, 8, num_layers=2, bidirectional=True)
        >>> ours = from_torch(ref)
        >>> x = torch.randn(6, 3, 4)
        >>> torch.allclose(ours(x)[0], ref(x)[0], atol=1e-6)
        True
    """
    pairs: list[tuple[RecurrentCell, str]]
    if isinstance(module, (nn.LSTM, nn.GRU)):
        if getattr(module, "proj_size", 0):
            raise ValueError(f"from_torch: LSTM projections (proj_size={module.proj_size}) are not supported")
        if module.mode not in ("LSTM", "GRU"):
            raise TypeError(f"from_torch: unsupported RNN mode {module.mode!r}")
        p = module.weight_ih_l0
        kwargs = {
            "num_layers": module.num_layers,
            "bias": module.bias,
            "batch_first": module.batch_first,
            "dropout": float(module.dropout),
            "bidirectional": module.bidirectional,
            "device": p.device,
            "dtype": p.dtype,
        }
        if isinstance(module, nn.LSTM):
            new: Any = LSTM(module.input_size, module.hidden_size, forget_bias=None, **kwargs)
        else:
            new = GRU(module.input_size, module.hidden_size, **kwargs)
        pairs = [
            (new.cell(k, d), f"_l{k}{'_reverse' if d else ''}")
            for k in range(new.num_layers)
            for d in range(new.num_directions)
        ]
    elif isinstance(module, (nn.LSTMCell, nn.GRUCell)):
        p = module.weight_ih
        cls = LSTMCell if isinstance(module, nn.LSTMCell) else GRUCell
        extra = {"forget_bias": None} if cls is LSTMCell else {}
        new = cls(module.input_size, module.hidden_size, module.bias, device=p.device, dtype=p.dtype, **extra)
        pairs = [(new, "")]
    else:
        raise TypeError(f"from_torch expects torch.nn.LSTM, GRU, LSTMCell or GRUCell, got {type(module).__name__}")
    with torch.no_grad():
        for cell, suffix in pairs:
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                target = getattr(cell, name)
                if target is not None:
                    target.copy_(getattr(module, name + suffix))
    new.train(module.training)
    return new
