"""One arena trial: (task, model, activation, seed, hyper-parameters) -> a result dict.

``normalize_trial`` fills every default and canonicalises the config (its canonical JSON is the
trial's identity in the store), ``validate_trial`` lists every problem at once, and
``run_trial`` trains deterministically on the CPU.

Fairness, as the arena's issue asks:

- ``init`` (default ``"auto"``): :func:`actlab.init.init_` with each layer's gain computed for
  the activation that follows it, so every activation starts variance-preserving; the fixed
  schemes ``"he"``, ``"lecun"``, ``"xavier"``, ``"orthogonal"``, ``"gaussian"`` and ``"torch"``
  (PyTorch's own default, untouched) are control arms. The result records the scheme and every
  layer's gain and std. The random draws are the same for every activation (seeded by the
  trial's seed), only their scale differs. Recurrent cores (lstm, gru) keep actlab.nn's own
  initialisation; the scheme applies to their heads.
- ``lr`` may be a list: each value trains for the full budget on 80 % of the training split,
  the one with the best final metric on the other 20 % is chosen, and the trial is then trained
  with it on the whole training split and scored on the validation split (which the search
  never sees). ``result["lr"]`` is the chosen value, ``result["lr_search"]`` every candidate.
- ``clip_grad_norm``, ``model_params.norm`` and ``model_params.norm_placement`` are options;
  ``torch.set_flush_denormal(True)`` is set (subnormals make CPU runs 10-40x slower);
  a NaN/inf loss stops the trial with ``status == "diverged"``, keeping the curve so far.

Determinism: the same normalised config gives the same result dict on the same machine (same
thread count), except the measured fields ``seconds_per_epoch``, ``peak_memory_bytes`` and each
curve entry's ``seconds`` (:data:`MEASURED_FIELDS`). With ``time_budget_s`` the number of epochs
depends on the machine's speed, so a time budget is deterministic only per epoch.

    >>> from actlab.arena.trial import run_trial
    >>> r = run_trial({"task": "spirals", "activation": "gelu", "seed": 0, "epochs": 5})  # doctest: +SKIP
    >>> r["status"], r["metric"], r["epochs_run"]  # doctest: +SKIP
    ('ok', 'accuracy', 5)
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from actlab.arena import tasks as _tasks
from actlab.arena._train_params import Param, close_matches

__all__ = [
    "CONFIG_KEYS",
    "OPTIMIZERS",
    "init_schemes",
    "MEASURED_FIELDS",
    "TrialInterrupted",
    "normalize_trial",
    "validate_trial",
    "run_trial",
    "without_measurements",
]

CONFIG_KEYS = (
    "task",
    "task_params",
    "model",
    "model_params",
    "activation",
    "seed",
    "epochs",
    "time_budget_s",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "init",
    "clip_grad_norm",
    "target",
)
OPTIMIZERS = ("sgd", "adam", "adamw")
# actlab.init's schemes (listed there; imported lazily because actlab.init needs torch) + PyTorch's own.
_TORCH_DEFAULT_INIT = "torch"
MEASURED_FIELDS = ("seconds_per_epoch", "peak_memory_bytes", "peak_cuda_bytes", "curve[].seconds")

_CELL_MODELS = ("lstm", "gru")  # the activation goes inside actlab.nn's recurrent cells
_LR_SEARCH_HOLDOUT = 0.2
_LR_SEARCH_STREAM = 0x1E5
_EVAL_CHUNK = 2048


class TrialInterrupted(KeyboardInterrupt):
    """``should_stop()`` returned True: the trial was abandoned and has no result."""


def init_schemes() -> tuple[str, ...]:
    """The allowed ``init`` values: actlab.init's schemes and "torch" (PyTorch's default, untouched)."""
    from actlab.init import SCHEMES

    return (*SCHEMES, _TORCH_DEFAULT_INIT)


def _numbers() -> dict[str, Param]:
    return {
        "seed": Param("seed", 0, "int", "random seed (data split, initialisation, batch order)", 0, 2**63 - 1),
        "epochs": Param("epochs", None, "int", "maximum epochs", 1, 1_000_000),
        "time_budget_s": Param(
            "time_budget_s",
            None,
            "float",
            "stop after the epoch that passes this many seconds",
            0,
            open_low=True,
            nullable=True,
        ),
        "optimizer": Param("optimizer", None, "str", "optimizer", choices=OPTIMIZERS),
        "momentum": Param("momentum", 0.9, "float", "SGD momentum / Adam beta1", 0, 1, open_high=True),
        "weight_decay": Param("weight_decay", 0.0, "float", "L2 weight decay (decoupled for adamw)", 0),
        "batch_size": Param("batch_size", None, "int", "mini-batch size", 1, 10_000_000),
        "init": Param("init", "auto", "str", "weight initialisation", choices=init_schemes()),
        "clip_grad_norm": Param(
            "clip_grad_norm", None, "float", "clip the gradient's global norm to this", 0, open_low=True, nullable=True
        ),
        "target": Param("target", None, "float", "val metric that counts as reached", nullable=True),
    }


_LR = Param("lr", None, "float", "learning rate", 0, open_low=True)


def _canonical_activation(identifier: Any) -> tuple[str | None, str | None]:
    """(canonical call string, None) or (None, problem)."""
    import actlab

    if identifier is None:
        return None, "activation: required (a name such as 'relu' or a call string such as 'leaky_relu(0.2)')"
    try:
        act = actlab.get(identifier)
    except (KeyError, ValueError, TypeError) as err:
        return None, f"activation: {err}"
    if not isinstance(act, actlab.BoundActivation):
        return None, f"activation: {identifier!r} is a plain callable; register it (actlab.register) to use it"
    canonical = repr(act)
    if act.spec.kind == "elementwise":
        return canonical, None
    # Layers (PReLU, GLU, Maxout, ...) must build without extra arguments and keep the shape:
    # the arena's models put the activation between layers of a fixed width.
    import torch

    from actlab.arena.models import make_activation

    try:
        module = make_activation(canonical)
    except (TypeError, ValueError) as err:
        return None, f"activation: {canonical!r} cannot be built as a module on its own ({err})"
    try:
        with torch.no_grad():
            shape = tuple(module(torch.zeros(2, 6)).shape)
    except (RuntimeError, ValueError):
        return canonical, None  # e.g. a per-channel parameter count for a wider layer: checked when built
    if shape != (2, 6):
        return None, (
            f"activation: {canonical!r} maps 6 features to {shape[-1]}; the arena's models need an "
            "activation that keeps the shape (gated layers such as GLU halve it)"
        )
    return canonical, None


def _check_lr(value: Any) -> tuple[Any, list[str]]:
    if isinstance(value, (list, tuple)):
        if not value:
            return None, ["lr: an empty list; give a number or a non-empty list of numbers > 0"]
        if len(value) > 32:
            return None, [f"lr: {len(value)} values; a search grid has at most 32"]
        problems = [p for i, v in enumerate(value) if (p := _LR.problem(v, f"lr[{i}]"))]
        if problems:
            return None, problems
        grid = [float(v) for v in value]
        if len(set(grid)) != len(grid):
            return None, [f"lr: the grid {grid} repeats a value"]
        return (grid if len(grid) > 1 else grid[0]), []
    problem = _LR.problem(value, "lr")
    if problem:
        return None, [problem + " (or a list of such numbers for a per-activation search)"]
    return float(value), []


def _normalize(config: Any) -> tuple[dict[str, Any], list[str]]:
    from actlab.arena.models import TASK_MODEL, check_model_params, model_names, model_spec

    if not isinstance(config, Mapping):
        return {}, [f"trial config must be a mapping (dict / TOML table), got {type(config).__name__}"]
    problems: list[str] = []
    for key in config:
        if key not in CONFIG_KEYS:
            close = close_matches(str(key), CONFIG_KEYS)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            problems.append(f"{key}: unknown key{hint} (known: {', '.join(CONFIG_KEYS)})")
    out: dict[str, Any] = {}

    # task and its defaults
    task = config.get("task")
    spec = None
    # An unknown task has no defaults: then only what is given is checked.
    defaults: dict[str, Any] = {}
    if not isinstance(task, str) or not task:
        problems.append(
            f"task: {task!r} is not allowed; expected one of {', '.join(_tasks.task_names())} "
            "or a user task 'package.module:function'"
        )
    elif _tasks.is_user_task(task):
        defaults = dict(_tasks.USER_TASK_DEFAULTS)
        problem = _tasks.user_task_problem(task)  # found without running its code (validation imports nothing)
        if problem:
            problems.append(f"task: {problem}")
    else:
        try:
            spec = _tasks.task_spec(task)
        except KeyError as err:
            problems.append(f"task: {err.args[0]}")
        else:
            defaults = {
                "model": spec.model,
                "epochs": spec.epochs,
                "optimizer": spec.optimizer,
                "lr": spec.lr,
                "batch_size": spec.batch_size,
                "target": spec.target,
                "clip_grad_norm": spec.clip_grad_norm,
            }
    out["task"] = task
    if isinstance(task, str) and task and (spec is not None or _tasks.is_user_task(task)):
        out["task_params"], found = _tasks.check_task_params(task, config.get("task_params"))
        problems += found
    else:
        out["task_params"] = (
            dict(config.get("task_params") or {}) if isinstance(config.get("task_params"), Mapping) else {}
        )

    # model
    model = config.get("model", defaults.get("model"))
    model_params = config.get("model_params")
    out["model"] = model
    out["model_params"] = {}
    if model is None and not defaults:
        pass  # the task is unknown (reported above); its default model is too
    elif model == TASK_MODEL:
        if spec is not None or not _tasks.is_user_task(task):
            problems.append(
                f"model: {TASK_MODEL!r} (the task's own model) exists only for user tasks; "
                f"choose one of {', '.join(model_names())}"
            )
        elif model_params:
            problems.append("model_params: the task's own model takes no model_params (configure it in the task)")
    elif not isinstance(model, str) or model not in model_names():
        close = close_matches(str(model), model_names())
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        problems.append(f"model: {model!r} is not allowed; expected one of {', '.join(model_names())}{hint}")
    else:
        given = dict(model_params) if isinstance(model_params, Mapping) else model_params
        if spec is not None and model == spec.model and isinstance(given, Mapping):
            given = {**spec.model_params, **given}  # the task's tuned defaults for its own model
        elif spec is not None and model == spec.model and given is None:
            given = dict(spec.model_params)
        out["model_params"], found = check_model_params(model, given)
        problems += found
        if spec is not None and spec.input_kind and spec.input_kind not in model_spec(model).inputs:
            fitting = [m for m in model_names() if spec.input_kind in model_spec(m).inputs]
            problems.append(
                f"model: {model!r} does not take the {spec.input_kind} inputs of task {task!r}; "
                f"choose one of {', '.join(fitting)}"
            )

    canonical, problem = _canonical_activation(config.get("activation"))
    out["activation"] = canonical
    if problem:
        problems.append(problem)
    elif out["model"] in _CELL_MODELS:
        import actlab

        kind = actlab.get(canonical).spec.kind
        if kind != "elementwise":
            problems.append(
                f"activation: {canonical!r} is a {kind} activation; the {out['model']} model uses it inside "
                "its cells, which need an elementwise one"
            )

    numbers = _numbers()
    for key in CONFIG_KEYS[CONFIG_KEYS.index("seed") :]:
        declared = numbers.get(key, _LR)
        if key in config:
            value = config[key]
        elif key in defaults:
            value = defaults[key]
        elif declared.default is not None or declared.nullable:
            value = declared.default
        else:
            out[key] = None  # a task default, and the task is unknown (reported above)
            continue
        if key == "lr":
            out["lr"], found = _check_lr(value)
            problems += found
            continue
        issue = numbers[key].problem(value, key)
        if issue:
            problems.append(issue)
            out[key] = None
        else:
            out[key] = numbers[key].canonical(value)
    return {k: out.get(k) for k in CONFIG_KEYS}, problems


def validate_trial(config: Any) -> list[str]:
    """Every problem with ``config`` (an empty list when it is fine); nothing is trained.

    Each problem names the key, the allowed values or range, and close matches for unknown names.

        >>> validate_trial({"task": "spiral", "activation": "rellu", "epochs": 0})  # doctest: +SKIP
        ["task: unknown task 'spiral'; did you mean 'spirals'? ...", "activation: unknown activation 'rellu'; ..."]
    """
    return _normalize(config)[1]


def normalize_trial(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every default filled and the activation as its canonical call string.

    The result is JSON-serialisable, has exactly the keys :data:`CONFIG_KEYS`, and is a fixed
    point (normalising it again changes nothing). Raises ValueError listing every problem.

        >>> normalize_trial({"task": "spirals", "activation": "LeakyReLU(0.2)"})["activation"]  # doctest: +SKIP
        'leaky_relu(negative_slope=0.2)'
    """
    out, problems = _normalize(config)
    if problems:
        raise ValueError("invalid trial configuration:\n  - " + "\n  - ".join(problems))
    return out


def without_measurements(result: Mapping[str, Any]) -> dict[str, Any]:
    """``result`` without the machine-dependent fields (:data:`MEASURED_FIELDS`), for comparisons."""
    out = {k: v for k, v in result.items() if k not in ("seconds_per_epoch", "peak_memory_bytes", "peak_cuda_bytes")}
    out["curve"] = [{k: v for k, v in row.items() if k != "seconds"} for row in result.get("curve", [])]
    return out


# ----------------------------------------------------------------------------- training
def run_trial(
    config: Mapping[str, Any],
    *,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train one trial and return its result dict (see the module docstring and the arena contract).

    ``on_epoch(record)`` is called after every epoch with the curve entry plus ``"phase"``
    ("lr_search" or "train") and ``"lr"``; ``should_stop()`` is polled between batches and, when
    it returns True, the trial is abandoned with :class:`TrialInterrupted` (a KeyboardInterrupt).
    The global torch RNG state is restored afterwards and flush-denormal switched off again; the
    thread count is not changed.
    """
    import torch

    from actlab.arena._memory import TrialMemory

    cfg = normalize_trial(config)
    meter = TrialMemory()  # this trial's peak, not the process's lifetime mark
    # torch has no getter for this flag: it is switched off again afterwards (PyTorch's default),
    # so a trial does not change the numerics of code that runs after it in the same process.
    torch.set_flush_denormal(True)
    try:
        result = _run_trial(cfg, on_epoch, should_stop)
    finally:
        torch.set_flush_denormal(False)
    result.update(meter.fields())
    return result


def _run_trial(
    cfg: dict[str, Any],
    on_epoch: Callable[[dict[str, Any]], None] | None,
    should_stop: Callable[[], bool] | None,
) -> dict[str, Any]:
    import torch

    with torch.random.fork_rng(devices=[]):
        data = _tasks.build_task(cfg["task"], cfg["task_params"], cfg["seed"])
        train = (_as_tensor(data.x_train), _as_tensor(data.y_train))
        val = (_as_tensor(data.x_val), _as_tensor(data.y_val))
        lr_search = None
        lr = cfg["lr"]
        if isinstance(lr, list):
            inner, holdout = _holdout_split(train, cfg["seed"])
            lr_search = []
            for candidate in lr:
                run = _fit(cfg, data, inner, holdout, candidate, on_epoch, should_stop, "lr_search")
                lr_search.append(
                    {
                        "lr": candidate,
                        "status": run["status"],
                        "final_metric": run["final_metric"],
                        "best_metric": run["best_metric"],
                        "epochs_run": run["epochs_run"],
                    }
                )
            lr = _choose_lr(lr_search, data.higher_is_better)
        result = _fit(cfg, data, train, val, lr, on_epoch, should_stop, "train")
    result["lr_search"] = lr_search
    return result


def _as_tensor(a: Any) -> Any:
    import torch

    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.is_floating_point():
        return t.float()
    return t.long() if not t.dtype == torch.bool else t


def _holdout_split(train: tuple, seed: int) -> tuple[tuple, tuple]:
    """Split the training tensors for the learning-rate search (seed-only, like the task split)."""
    n = len(train[0])
    perm = np.random.default_rng([seed, _LR_SEARCH_STREAM]).permutation(n)
    n_hold = min(max(1, round(n * _LR_SEARCH_HOLDOUT)), n - 1)
    hold, keep = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    return (train[0][keep], train[1][keep]), (train[0][hold], train[1][hold])


def _choose_lr(search: list[dict[str, Any]], higher_is_better: bool) -> float:
    """The best final metric; ties and all-diverged go to the smallest learning rate."""
    finite = [s for s in search if s["status"] == "ok" and s["final_metric"] is not None]
    if not finite:
        return min(s["lr"] for s in search)
    sign = -1.0 if higher_is_better else 1.0
    return min(finite, key=lambda s: (sign * s["final_metric"], s["lr"]))["lr"]


def _loss_fn(data: _tasks.TaskData) -> Callable[[Any, Any], Any]:
    import torch.nn.functional as F

    if callable(data.loss):
        return data.loss
    if data.loss == "cross_entropy":
        return lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    return lambda out, y: F.mse_loss(out, y.reshape(out.shape))


def _metric(data: _tasks.TaskData, out: Any, y: Any) -> float:
    if data.metric_fn is not None:
        return float(data.metric_fn(out, y))
    if data.metric == "accuracy":
        return float((out.argmax(-1) == y.reshape(out.shape[:-1])).double().mean())
    return float(((out.double() - y.reshape(out.shape).double()) ** 2).mean())


def _build(cfg: Mapping[str, Any], data: _tasks.TaskData) -> Any:
    from actlab.arena.models import TASK_MODEL, build_model

    if cfg["model"] == TASK_MODEL:
        if data.model_factory is None:
            raise ValueError(
                f"user task {cfg['task']!r} returned no 'model' factory; set the trial's model to a built-in one"
            )
        model = data.model_factory(cfg["activation"])
        model.arena_gains = None  # found from the model's structure by actlab.init
        model.arena_init_roots = ("",)
        return model
    return build_model(cfg["model"], cfg["activation"], data.input_shape, data.output_shape, cfg["model_params"])


def _gain_activation(identifier: str) -> Any:
    """The catalog activation whose gain ``auto`` uses, or None when the analysis has no gain for it
    (then every layer gets gain 1 and the init record says so)."""
    import actlab
    from actlab.analysis import gain
    from actlab.arena.models import make_activation
    from actlab.init import activation_of

    candidates = [actlab.get(identifier)]
    candidates.append(activation_of(make_activation(identifier)))  # e.g. a layer's initial function
    for act in candidates:
        if not isinstance(act, actlab.BoundActivation):
            continue
        try:
            gain(act)
        except Exception:  # noqa: BLE001 - learnable or layer forms the analysis cannot integrate
            continue
        return act
    return None


def _initialise(model: Any, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the init scheme (seeded) and describe what was done, per weight tensor."""
    import torch

    from actlab.init import init_

    scheme = cfg["init"]
    layers: list[dict[str, Any]] = []
    if scheme == _TORCH_DEFAULT_INIT:
        for name, module in model.named_modules():
            weight = getattr(module, "weight", None)
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)) and weight is not None:
                fan_in = weight[0].numel()
                std = float(weight.detach().double().std()) if weight.numel() > 1 else 0.0
                layers.append(
                    {
                        "name": f"{name}.weight",
                        "activation": None,
                        "gain": std * math.sqrt(fan_in),
                        "std": std,
                        "fan_in": fan_in,
                        "note": "PyTorch default init (measured)",
                    }
                )
        return {"scheme": scheme, "layers": layers}
    generator = torch.Generator().manual_seed(int(cfg["seed"]))
    act = _gain_activation(cfg["activation"]) if model.arena_gains is not None else None
    for root in model.arena_init_roots:
        module = model.get_submodule(root) if root else model
        prefix = f"{root}." if root else ""
        if model.arena_gains is None:
            mapping = None  # user model: actlab.init finds each layer's activation from the structure
        else:
            mapping = {
                name[len(prefix) :]: act for name in model.arena_gains if act is not None and name.startswith(prefix)
            }
        report = init_(module, scheme, activation=mapping, generator=generator)
        for row in report:
            layers.append(
                {
                    "name": prefix + row.name,
                    "activation": row.activation,
                    "gain": float(row.gain),
                    "std": float(row.std),
                    "fan_in": int(row.fan_in),
                    "note": row.note,
                }
            )
    return {"scheme": scheme, "layers": layers}


def _optimizer(model: Any, cfg: Mapping[str, Any], lr: float) -> Any:
    import torch

    from actlab.nn import param_groups

    # Trainable activation parameters (PReLU slopes, ...) get no weight decay.
    groups = param_groups(model, cfg["weight_decay"])
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg["momentum"])
    cls = torch.optim.Adam if cfg["optimizer"] == "adam" else torch.optim.AdamW
    return cls(groups, lr=lr, betas=(cfg["momentum"], 0.999))


def _evaluate(model: Any, data: _tasks.TaskData, loss_fn: Callable, x: Any, y: Any) -> tuple[float, float]:
    import torch

    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x[i : i + _EVAL_CHUNK]) for i in range(0, len(x), _EVAL_CHUNK)])
        loss = float(loss_fn(out, y))
        metric = _metric(data, out, y)
    return loss, metric


def dead_unit_fraction(model: Any, x: Any) -> float | None:
    """Dead units / all units over the model's activation sites on ``x`` (``actlab.watch``).

    None when ``watch`` finds no site. A failure inside the diagnostics is a warning, not a failed
    trial: the health figure is an extra.
    """
    import torch

    from actlab.diagnose import watch

    model.eval()
    try:
        watcher = watch(model)
    except ValueError:
        return None  # no activation site to watch (e.g. activations inside a recurrent cell)
    try:
        with torch.no_grad(), watcher as w:
            for i in range(0, len(x), _EVAL_CHUNK):
                model(x[i : i + _EVAL_CHUNK])
        fraction = w.report().dead_fraction
    except Exception as err:  # noqa: BLE001 - see the docstring
        warnings.warn(f"dead-unit fraction not measured: actlab.watch failed ({err!r})", RuntimeWarning, stacklevel=2)
        return None
    return None if fraction is None else float(fraction)


def _fit(
    cfg: Mapping[str, Any],
    data: _tasks.TaskData,
    train: tuple,
    val: tuple,
    lr: float,
    on_epoch: Callable | None,
    should_stop: Callable | None,
    phase: str,
) -> dict[str, Any]:
    import torch

    torch.manual_seed(cfg["seed"])  # module defaults, dropout and rrelu draw from the global stream
    model = _build(cfg, data)
    init = _initialise(model, cfg)
    optimizer = _optimizer(model, cfg, lr)
    params = [p for p in model.parameters() if p.requires_grad]
    loss_fn = _loss_fn(data)
    order = torch.Generator().manual_seed(int(cfg["seed"]))
    x_train, y_train = train
    n, batch = len(x_train), cfg["batch_size"]
    higher = data.higher_is_better
    curve: list[dict[str, Any]] = []
    status, diverged_at = "ok", None
    started = time.perf_counter()
    for epoch in range(1, cfg["epochs"] + 1):
        epoch_start = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=order)
        total = 0.0
        seen = 0
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            if len(idx) < 2 < n:
                continue  # a lone last sample: batch norm cannot train on it
            if should_stop is not None and should_stop():
                raise TrialInterrupted(f"trial stopped in epoch {epoch}")
            out = model(x_train[idx])
            loss = loss_fn(out, y_train[idx])
            value = float(loss.detach())
            if not math.isfinite(value):
                status, diverged_at = "diverged", epoch
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["clip_grad_norm"] is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg["clip_grad_norm"])
            optimizer.step()
            total += value * len(idx)
            seen += len(idx)
        if status == "diverged":
            break
        val_loss, val_metric = _evaluate(model, data, loss_fn, *val)
        if not (math.isfinite(val_loss) and math.isfinite(val_metric)):
            status, diverged_at = "diverged", epoch
            break
        record = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "val_loss": val_loss,
            "val_metric": val_metric,
            "seconds": time.perf_counter() - epoch_start,
        }
        curve.append(record)
        if on_epoch is not None:
            on_epoch({**record, "phase": phase, "lr": lr})
        if cfg["time_budget_s"] is not None and time.perf_counter() - started >= cfg["time_budget_s"]:
            break

    metrics = [row["val_metric"] for row in curve]
    best_index = None
    if metrics:
        best_index = int(np.argmax(metrics) if higher else np.argmin(metrics))
    target = cfg["target"]
    reached = None
    if target is not None:
        reached = next(
            (row["epoch"] for row in curve if (row["val_metric"] >= target if higher else row["val_metric"] <= target)),
            None,
        )
    dead = dead_unit_fraction(model, val[0]) if status == "ok" and phase == "train" else None
    return {
        "status": status,
        "metric": data.metric,
        "higher_is_better": higher,
        "final_metric": metrics[-1] if metrics and status == "ok" else None,
        "best_metric": metrics[best_index] if best_index is not None else None,
        "best_epoch": curve[best_index]["epoch"] if best_index is not None else None,
        "epochs_to_target": reached,
        "epochs_run": len(curve),
        "curve": curve,
        "seconds_per_epoch": (sum(r["seconds"] for r in curve) / len(curve)) if curve else 0.0,
        "dead_fraction": dead,
        "init": init,
        "lr": lr,
        "lr_search": None,
        "diverged_at_epoch": diverged_at,
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }
