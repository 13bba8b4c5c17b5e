"""Arena suites: which activations, seeds, tasks and hyper-parameters to train, from TOML or flags.

A suite is a TOML file (or one of the embedded ones in ``actlab/arena/suites/``, by name)::

    name = "mine"                   # run directory arena-runs/mine (default: the file name)
    description = "what it asks"
    activations = ["relu", "gelu", "leaky_relu(negative_slope=0.2)"]
    seeds = 3                       # seeds 0, 1, 2; or a list: [0, 7, 42]
    tasks = ["spirals", "digits"]
    budget = 20                     # epochs per trial, or wall time per trial: "30s", "2m"
    baseline = "relu"               # the activation the statistics compare against
    workers = 2                     # trials at once (a process pool); threads = torch threads each
    threads = 1

    [params]                        # settings of every trial (any trial key; see actlab.arena.trial)
    optimizer = "adam"

    [grid]                          # each key a list: every combination is trained
    lr = [0.003, 0.01]

    [task.digits]                   # settings of one task's trials
    model_params = { width = 64 }

A trial's settings are, from weakest to strongest: the task's defaults, ``[params]``, ``budget``,
``[task.NAME]``, the ``[grid]`` point; dict values (``model_params``, ``task_params``) merge key by
key. Command-line flags replace the suite's value for what they name.

    >>> suite = load_suite("default")
    >>> suite.activations[:3]
    ('relu', 'leaky_relu', 'elu')
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from actlab.arena.limits import HARD_MAX_TRIALS, MAX_SEEDS, trial_count_problems

__all__ = [
    "Budget",
    "Suite",
    "SuiteError",
    "suite_names",
    "load_suite",
    "suite_from_mapping",
    "parse_budget",
    "parse_seeds",
    "split_list",
    "with_overrides",
    "expand_trials",
]

SUITE_KEYS = (
    "name",
    "description",
    "activations",
    "seeds",
    "tasks",
    "budget",
    "baseline",
    "workers",
    "threads",
    "params",
    "grid",
    "task",
)
# Keys with a field of their own: a [params]/[grid]/[task.X] table may not set them.
_DEDICATED = {"activation": "activations", "seed": "seeds", "task": "tasks"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
# A wall-time budget sets epochs to the trial's largest allowed value (actlab.arena.trial).
UNBOUNDED_EPOCHS = 1_000_000


class SuiteError(ValueError):
    """Everything wrong with a suite or the flags, all at once (``.problems``)."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(dict.fromkeys(problems))  # ordered, without repeats
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Budget:
    """Per-trial budget: ``epochs`` or wall-time ``seconds`` (exactly one is set)."""

    epochs: int | None = None
    seconds: float | None = None

    def settings(self) -> dict[str, Any]:
        """The trial keys this budget sets."""
        if self.seconds is not None:  # train until the time is up: no epoch limit to speak of
            return {"time_budget_s": self.seconds, "epochs": UNBOUNDED_EPOCHS}
        return {"epochs": self.epochs, "time_budget_s": None}

    def __str__(self) -> str:
        return f"{self.seconds:g}s per trial" if self.seconds is not None else f"{self.epochs} epochs"


@dataclass(frozen=True)
class Suite:
    """A grid of trials: activations x seeds x tasks x grid points, plus the settings they share."""

    name: str
    activations: tuple[str, ...]
    seeds: tuple[int, ...]
    tasks: tuple[str, ...]
    description: str = ""
    budget: Budget | None = None
    baseline: str = "relu"
    workers: int | None = None
    threads: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    task_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; ``suite_from_mapping(suite.to_dict())`` gives the suite back."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "activations": list(self.activations),
            "seeds": list(self.seeds),
            "tasks": list(self.tasks),
            "baseline": self.baseline,
            "params": self.params,
            "grid": {k: list(v) for k, v in self.grid.items()},
            "task": self.task_settings,
        }
        if self.budget is not None:
            out["budget"] = self.budget.epochs if self.budget.seconds is None else f"{self.budget.seconds:g}s"
        for key in ("workers", "threads"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @property
    def n_trials(self) -> int:
        return len(self.activations) * len(self.seeds) * len(self.tasks) * math.prod(len(v) for v in self.grid.values())


# ----------------------------------------------------------------------------- parsing helpers
def parse_budget(value: Any) -> Budget:
    """``20`` or ``"20"`` -> 20 epochs; ``"30s"``, ``"2m"``, ``"1.5min"``, ``"1h"`` -> wall time per trial."""
    if isinstance(value, bool):
        raise ValueError(f"budget must be a number of epochs or a duration like '30s', got {value!r}")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        epochs = int(value)
        if epochs < 1:
            raise ValueError(f"budget must be at least 1 epoch, got {value!r}")
        return Budget(epochs=epochs)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)[0]]
        if seconds <= 0:
            raise ValueError(f"budget must be a positive duration, got {value!r}")
        return Budget(seconds=seconds)
    raise ValueError(
        f"budget must be a whole number of epochs (e.g. 20) or a wall time per trial (e.g. '30s', '2m'), got {value!r}"
    )


def parse_seeds(value: Any) -> tuple[int, ...]:
    """``3`` -> (0, 1, 2); ``"0,7,42"`` or ``[0, 7, 42]`` -> those seeds; ``"7,"`` -> (7,)."""
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            value = int(text)
        else:
            parts = [p.strip() for p in text.split(",") if p.strip()]
            if not parts or not all(p.isdigit() for p in parts):
                raise ValueError(f"seeds must be a count N (seeds 0..N-1) or a comma list like 0,7,42; got {value!r}")
            value = [int(p) for p in parts]
    if isinstance(value, bool):
        raise ValueError(f"seeds must be a count or a list of integers, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            hint = " (for the single seed 0 write '0,')" if value == 0 else ""
            raise ValueError(f"seeds must be a count of at least 1{hint}, got {value}")
        if value > MAX_SEEDS:  # before range() makes them: 1e10 seeds is a MemoryError, not a plan
            raise ValueError(f"too many seeds ({value:,}); the arena runs at most {MAX_SEEDS:,} (give a smaller count)")
        return tuple(range(value))
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        if any(s < 0 or s >= 2**63 for s in value):
            raise ValueError(f"seeds must be integers from 0 to 2**63 - 1, got {list(value)[:20]}")
        if len(value) > MAX_SEEDS:
            raise ValueError(f"too many seeds ({len(value):,}); the arena runs at most {MAX_SEEDS:,} (give fewer)")
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must not repeat, got {list(value)}")
        return tuple(value)
    raise ValueError(f"seeds must be a count N (seeds 0..N-1) or a non-empty list of integers, got {value!r}")


def split_list(items: str | Iterable[str]) -> list[str]:
    """Split on commas outside brackets and quotes: ``"relu,elu(alpha=0.5),f(a=1, b=2)"`` -> 3 items."""
    texts = [items] if isinstance(items, str) else list(items)
    out: list[str] = []
    for text in texts:
        depth, quote, current = 0, "", []
        for ch in text:
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            elif ch == "," and depth == 0:
                out.append("".join(current).strip())
                current = []
                continue
            current.append(ch)
        out.append("".join(current).strip())
    return [s for s in out if s]


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _positive_int(value: Any, what: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    problems.append(f"{what} must be a whole number >= 1, got {value!r}")
    return None


def _string_list(value: Any, what: str, problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = split_list(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v.strip() for v in value):
        items = [v.strip() for v in value]
        repeated = sorted({v for v in items if items.count(v) > 1})
        if repeated:
            problems.append(f"{what} lists {', '.join(repeated)} more than once")
        return tuple(dict.fromkeys(items))
    problems.append(f"{what} must be a non-empty list of names, got {value!r}")
    return ()


def _settings_table(value: Any, what: str, problems: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{what} must be a table of trial settings, got {value!r}")
        return {}
    out = {}
    for key, v in value.items():
        if key in _DEDICATED:
            problems.append(f"{what} sets {key!r}: use the suite's {_DEDICATED[key]!r} list instead")
        else:
            out[str(key)] = _plain(v)
    return out


def _plain(value: Any) -> Any:
    """TOML values as plain JSON types (tomllib gives dicts/lists already; dates become text)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# ----------------------------------------------------------------------------- suites
def suite_from_mapping(data: Mapping[str, Any], *, name: str | None = None, source: str = "") -> Suite:
    """A :class:`Suite` from a parsed TOML table; raises :class:`SuiteError` with every problem."""
    problems: list[str] = []
    where = f" in {source}" if source else ""
    for key in data:
        if key not in SUITE_KEYS:
            problems.append(f"unknown key {key!r}{where}{_suggest(key, SUITE_KEYS)} (allowed: {', '.join(SUITE_KEYS)})")

    suite_name = data.get("name", name or "suite")
    if not isinstance(suite_name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", suite_name):
        problems.append(
            f"name must be letters, digits, '_', '-' or '.' (it names the run directory), got {suite_name!r}"
        )
        suite_name = "suite"
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append(f"description must be text, got {description!r}")
        description = ""

    missing = [k for k in ("activations", "tasks") if k not in data]
    for key in missing:
        problems.append(f"the suite{where} has no {key!r} list")
    activations = _string_list(data["activations"], "activations", problems) if "activations" in data else ()
    tasks = _string_list(data["tasks"], "tasks", problems) if "tasks" in data else ()
    seeds: tuple[int, ...] = (0,)
    try:
        seeds = parse_seeds(data.get("seeds", 1))
    except ValueError as err:
        problems.append(str(err))
    budget = None
    if "budget" in data:
        try:
            budget = parse_budget(data["budget"])
        except ValueError as err:
            problems.append(str(err))
    baseline = data.get("baseline", "relu")
    if not isinstance(baseline, str) or not baseline.strip():
        problems.append(f"baseline must be an activation name, got {baseline!r}")
        baseline = "relu"
    workers = _positive_int(data.get("workers"), "workers", problems)
    threads = _positive_int(data.get("threads"), "threads", problems)
    params = _settings_table(data.get("params"), "[params]", problems)

    grid: dict[str, tuple[Any, ...]] = {}
    for key, values in _settings_table(data.get("grid"), "[grid]", problems).items():
        if not isinstance(values, list) or not values:
            problems.append(f"[grid] {key} must be a non-empty list of values to try, got {values!r}")
            continue
        texts = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(texts)) != len(texts):
            problems.append(f"[grid] {key} lists a value more than once: {values!r}")
        grid[key] = tuple(values)

    task_settings: dict[str, dict[str, Any]] = {}
    raw_tasks = data.get("task") or {}
    if not isinstance(raw_tasks, Mapping):
        problems.append(f"[task] must hold one table per task ([task.NAME]), got {raw_tasks!r}")
        raw_tasks = {}
    for task_name, table in raw_tasks.items():
        settings = _settings_table(table, f"[task.{task_name}]", problems)
        for key in settings:
            if key in grid:
                problems.append(f"[task.{task_name}] sets {key!r}, which is also a [grid] axis; keep one of them")
        if tasks and task_name not in tasks:
            problems.append(
                f"[task.{task_name}] configures a task that is not in tasks = {list(tasks)}{_suggest(task_name, tasks)}"
            )
        task_settings[str(task_name)] = settings
    if problems:
        raise SuiteError(problems)
    return Suite(
        name=suite_name,
        description=description,
        activations=activations,
        seeds=seeds,
        tasks=tasks,
        budget=budget,
        baseline=baseline.strip(),
        workers=workers,
        threads=threads,
        params=params,
        grid=grid,
        task_settings=task_settings,
        source=source,
    )


def suite_names() -> list[str]:
    """Names of the suites shipped in ``actlab/arena/suites/``."""
    folder = resources.files("actlab.arena.suites")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError as err:
            raise SuiteError(
                [f"reading {source} needs Python >= 3.11 or the 'tomli' package (pip install tomli)"]
            ) from err
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SuiteError([f"{source} is not valid TOML: {err}"]) from err


def load_suite(name_or_path: str | os.PathLike) -> Suite:
    """An embedded suite by name (``"default"``) or a TOML file; :class:`SuiteError` lists every problem."""
    text_name = os.fspath(name_or_path)
    looks_like_file = text_name.endswith(".toml") or os.sep in text_name or "/" in text_name
    if not looks_like_file:
        names = suite_names()
        if text_name not in names:
            hint = _suggest(text_name, names)
            raise SuiteError(
                [f"no suite named {text_name!r}{hint} (embedded suites: {', '.join(names)}; or give a FILE.toml)"]
            )
        text = resources.files("actlab.arena.suites").joinpath(f"{text_name}.toml").read_text(encoding="utf-8")
        return suite_from_mapping(
            _parse_toml(text, f"suite {text_name!r}"), name=text_name, source=f"suite {text_name}"
        )
    path = Path(text_name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise SuiteError([f"suite file {text_name} does not exist"]) from err
    except IsADirectoryError as err:
        raise SuiteError([f"suite file {text_name} is a directory, not a TOML file"]) from err
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SuiteError([f"cannot read suite file {text_name}: {reason}"]) from err
    return suite_from_mapping(_parse_toml(text, text_name), name=path.stem, source=text_name)


def _drop_keys(suite: Suite, keys: Iterable[str]) -> Suite:
    keys = set(keys)
    return replace(
        suite,
        params={k: v for k, v in suite.params.items() if k not in keys},
        grid={k: v for k, v in suite.grid.items() if k not in keys},
        task_settings={t: {k: v for k, v in s.items() if k not in keys} for t, s in suite.task_settings.items()},
    )


def with_overrides(
    suite: Suite,
    *,
    activations: Sequence[str] | None = None,
    seeds: Any = None,
    tasks: Sequence[str] | None = None,
    budget: Any = None,
    settings: Mapping[str, Sequence[Any]] | None = None,
    workers: int | None = None,
    threads: int | None = None,
) -> Suite:
    """The suite with command-line values in place of its own; :class:`SuiteError` lists every problem.

    ``settings`` maps a trial key to its values: one value sets it for every trial, several make a
    grid axis. A budget or setting given here replaces what the suite's tables say about that key.
    """
    problems: list[str] = []
    changes: dict[str, Any] = {}
    if activations is not None:
        changes["activations"] = _string_list(split_list(activations), "--activations", problems)
    if tasks is not None:
        changes["tasks"] = _string_list(split_list(tasks), "--tasks", problems)
    if seeds is not None:
        try:
            changes["seeds"] = parse_seeds(seeds)
        except ValueError as err:
            problems.append(f"--seeds: {err}")
    if workers is not None:
        changes["workers"] = _positive_int(workers, "--workers", problems)
    if threads is not None:
        changes["threads"] = _positive_int(threads, "--threads", problems)
    new_budget = None
    if budget is not None:
        try:
            new_budget = parse_budget(budget)
        except ValueError as err:
            problems.append(f"--budget: {err}")
    for key in settings or {}:
        if key in _DEDICATED:
            problems.append(f"--set {key}=...: use --{_DEDICATED[key]} instead")
    if problems:
        raise SuiteError(problems)
    out = replace(suite, **changes)
    if "tasks" in changes:
        out = replace(out, task_settings={t: s for t, s in out.task_settings.items() if t in out.tasks})
    if new_budget is not None:
        out = replace(_drop_keys(out, ("epochs", "time_budget_s")), budget=new_budget)
    if settings:
        out = _drop_keys(out, settings)
        params, grid = dict(out.params), dict(out.grid)
        for key, values in settings.items():
            values = list(values)
            if len(values) == 1:
                params[key] = values[0]
            else:
                grid[key] = tuple(values)
        out = replace(out, params=params, grid=grid)
    return out


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``update``; dict values merge one level (model_params, task_params)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def expand_trials(suite: Suite) -> list[dict[str, Any]]:
    """The suite's trial configurations (not yet normalised), seed by seed.

    Seed-major order: after any interruption the finished trials are complete comparisons across
    activations for the first seeds, rather than all seeds of the first activations.
    """
    if suite.n_trials > HARD_MAX_TRIALS:  # the list below would not fit in memory
        raise SuiteError(trial_count_problems(suite.n_trials, len(suite.seeds), force=True))
    budget = suite.budget.settings() if suite.budget else {}
    axes = list(suite.grid)
    points = [dict(zip(axes, combo)) for combo in itertools.product(*(suite.grid[a] for a in axes))]
    configs = []
    for seed in suite.seeds:
        for task in suite.tasks:
            base = _merge(_merge(_merge({}, suite.params), budget), suite.task_settings.get(task, {}))
            for point in points:
                for activation in suite.activations:
                    config = _merge(base, point)
                    config.update(task=task, activation=activation, seed=seed)
                    configs.append(config)
    return configs
