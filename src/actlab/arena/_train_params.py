"""Declared parameters of tasks and models: defaults, types, ranges, and one checker for all."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Param", "check_params", "close_matches", "describe"]


@dataclass(frozen=True)
class Param:
    """One parameter: ``kind`` is "int", "float", "str" or "bool"; ``low``/``high`` are inclusive
    bounds unless ``open_low``/``open_high``; ``choices`` restricts strings; ``nullable`` allows None."""

    name: str
    default: Any
    kind: str
    doc: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False
    open_low: bool = False
    open_high: bool = False
    required: bool = False

    def allowed(self) -> str:
        """The allowed values in words, for error messages and docs."""
        if self.choices:
            text = "one of " + ", ".join(map(repr, self.choices))
        elif self.kind in ("int", "float"):
            num = (lambda v: str(int(v))) if self.kind == "int" else (lambda v: f"{v:g}")
            lo = "" if self.low is None else f"{num(self.low)} {'<' if self.open_low else '<='} "
            hi = "" if self.high is None else f" {'<' if self.open_high else '<='} {num(self.high)}"
            text = f"{'an integer' if self.kind == 'int' else 'a number'}" + (f" with {lo}x{hi}" if lo or hi else "")
        elif self.kind == "bool":
            text = "true or false"
        else:
            text = "a string"
        return text + (" or null" if self.nullable else "")

    def problem(self, value: Any, where: str) -> str | None:
        """Why ``value`` is not allowed (None when it is)."""
        bad = f"{where}: {value!r} is not allowed; expected {self.allowed()}"
        if value is None:
            return None if self.nullable else bad
        if self.kind == "bool":
            return None if isinstance(value, bool) else bad
        if self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return bad
            if self.kind == "int" and not (isinstance(value, int) or float(value).is_integer()):
                return bad
            if not math.isfinite(value):
                return bad
            if self.low is not None and (value <= self.low if self.open_low else value < self.low):
                return bad
            if self.high is not None and (value >= self.high if self.open_high else value > self.high):
                return bad
            return None
        if not isinstance(value, str):
            return bad
        if self.choices and value not in self.choices:
            return bad + _hint(value, self.choices)
        return None

    def canonical(self, value: Any) -> Any:
        """The JSON form of a valid value: ints as int, floats as float."""
        if value is None:
            return None
        if self.kind == "int":
            return int(value)
        if self.kind == "float":
            return float(value)
        return value


def close_matches(word: str, options: Any, n: int = 3) -> list[str]:
    return difflib.get_close_matches(str(word), list(options), n=n, cutoff=0.6)


def _hint(word: Any, options: Any) -> str:
    close = close_matches(str(word), options)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


def check_params(given: Any, declared: tuple[Param, ...], where: str) -> tuple[dict[str, Any], list[str]]:
    """Fill defaults into ``given``; return (canonical dict, problems). Unknown keys are problems."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        return {}, [f"{where}: expected a mapping (dict / TOML table), got {type(given).__name__}"]
    by_name = {p.name: p for p in declared}
    problems = []
    for key in given:
        if key not in by_name:
            known = ", ".join(by_name) or "none"
            problems.append(f"{where}.{key}: unknown parameter (known: {known}){_hint(key, by_name)}")
    out = {}
    for p in declared:
        if p.name not in given:
            if p.required:
                problems.append(f"{where}.{p.name}: required ({p.doc or p.allowed()})")
                continue
            out[p.name] = p.default
            continue
        issue = p.problem(given[p.name], f"{where}.{p.name}")
        if issue:
            problems.append(issue)
        else:
            out[p.name] = p.canonical(given[p.name])
    return out, problems


def describe(declared: tuple[Param, ...]) -> list[dict[str, Any]]:
    """Rows (name, default, allowed, doc) for listings."""
    return [{"name": p.name, "default": p.default, "allowed": p.allowed(), "doc": p.doc} for p in declared]
