"""Rows as a terminal table, JSON, CSV or Markdown: the one renderer every command's tables share.

It lives below :mod:`actlab.cli` so that subsystems (arena, diagnose, bench) use it without importing
the command line. A terminal table fits ``width`` columns (default: the terminal's, at most
:data:`MAX_WIDTH`): long text wraps, a number is never split across lines, and ``wide=True`` keeps
every column at its natural width. Every text is escaped: rich reads ``[...]`` as markup and would
drop ``[init=he]`` from an arm's label (or style the rest of the table).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["FORMATS", "MAX_WIDTH", "cell", "default_width", "json_default", "render"]

FORMATS = ("table", "json", "csv", "md")
#: Terminal tables fit this many columns unless the terminal is narrower (or ``wide=True``).
MAX_WIDTH = 100

# A number as the tables print it, with the brackets and punctuation around it ("[0.9216,", "25 %)"):
# such a token is never split, so a narrow column wraps between numbers, not inside one.
_NUMBER = re.compile(r"[(\[]?[-+−]?(\d[\d.,]*([eE][-+]?\d+)?|inf|nan|n/a)[)\],;%]*")
# A text column narrower than this folds its long words; narrower still would be unreadable.
_MIN_TEXT = 6
# Words up to this long are kept whole when the table has to narrow; longer ones (names) fold.
_MAX_WORD = 12
# Cells and headers up to this long are not wrapped at all while the table can be narrowed otherwise.
_SHORT = 10


def render(
    rows: list[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    title: str = "",
    headers: dict[str, str] | None = None,
    width: int | None = None,
    wide: bool = False,
) -> str:
    """Rows as a rich table, JSON, CSV or Markdown; ``headers`` renames columns for people;
    ``width`` fixes the table's width (default :func:`default_width`); ``wide`` lets the table
    take its natural width instead."""
    label = {c: (headers or {}).get(c, c) for c in columns}
    if fmt == "json":
        return json.dumps(rows, indent=2, default=json_default)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: cell(r.get(c)) for c in columns})
        return buf.getvalue().rstrip("\n")
    if fmt == "md":
        lines = [f"**{title}**", ""] if title else []
        lines += ["| " + " | ".join(label[c].replace("|", "\\|") for c in columns) + " |", "|" + "---|" * len(columns)]
        for r in rows:
            lines.append("| " + " | ".join(cell(r.get(c)).replace("|", "\\|") for c in columns) + " |")
        return "\n".join(lines)
    if fmt != "table":
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    texts = [[cell(r.get(c)) for c in columns] for r in rows]
    return _table([label[c] for c in columns], texts, title, width=width, wide=wide)


def default_width() -> int:
    """The terminal's width, at most :data:`MAX_WIDTH`; :data:`MAX_WIDTH` when output is not a terminal."""
    try:
        if sys.stdout is not None and sys.stdout.isatty():
            return max(20, min(MAX_WIDTH, os.get_terminal_size(sys.stdout.fileno()).columns))
    except (OSError, ValueError, AttributeError):
        pass
    return MAX_WIDTH


def cell(value: Any) -> str:
    """A value as a table cell: 3 significant digits for floats, "n/a" for NaN, lists joined."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(cell, value))
    return str(value)


def json_default(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return str(value)


# ----------------------------------------------------------------------------- terminal tables
def _words(text: str) -> list[str]:
    return text.split()


def _longest(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(w) for w in _words(text)), default=0)


def _natural(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.splitlines()), default=0)


def _minimum(header: str, cells: list[str]) -> tuple[int, int, int]:
    """(soft, firm, hard) narrowest widths of a column. Hard: its longest number, and for text at least
    :data:`_MIN_TEXT`. Firm: also its short cells whole and its longer cells' longest word up to
    :data:`_MAX_WORD`, so that text wraps between words (a longer word, a long name, folds). Soft: also
    its header, whole if short, else its longest word (below that the header is abbreviated)."""
    from rich.cells import cell_len

    numbers = [cell_len(w) for c in cells for w in _words(c) if _NUMBER.fullmatch(w)]
    natural = max([_natural(c) for c in cells] + [_natural(header)], default=1)
    hard = max([min(natural, _MIN_TEXT), *numbers, 1])
    # A short cell ("16 (25 %)") or header ("pre < 0") stays on one line; longer ones wrap between words.
    firm = max([hard, *(_natural(c) if _natural(c) <= _SHORT else min(_longest(c), _MAX_WORD) for c in cells)])
    soft = max([firm, _natural(header) if _natural(header) <= _SHORT else _longest(header)])
    return soft, firm, hard


def _abbreviate(header: str, width: int) -> str:
    """A header whose words fit ``width``: a longer word becomes its first letters and "." ("diverged" ->
    "div."), at most four letters, as abbreviations are usually written ("activation" -> "act.", not
    "activati.")."""
    return " ".join(w if len(w) <= width else w[: max(1, min(width - 1, 3))] + "." for w in header.split(" "))


def _fit(natural: list[int], floors: list[list[int]], room: int) -> list[int] | None:
    """Column widths summing to at most ``room``: the widest column gives up space first, down to its
    first floor, then (only when those do not fit) down to the next; None when even the last floors do
    not fit."""
    if sum(floors[-1]) > room:
        return None
    widths = list(natural)
    excess = sum(widths) - room
    for floor in floors:
        while excess > 0:
            shrinkable = [i for i, w in enumerate(widths) if w > floor[i]]
            if not shrinkable:
                break
            top = max(widths[i] for i in shrinkable)
            for i in shrinkable:
                if widths[i] == top and excess > 0:
                    widths[i] -= 1
                    excess -= 1
    return widths


def _table(header: list[str], rows: list[list[str]], title: str, *, width: int | None, wide: bool) -> str:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    n = len(header)
    if not n:
        return escape(title)
    natural = [max([_natural(header[j])] + [_natural(r[j]) for r in rows]) for j in range(n)]
    soft, firm, hard = (list(f) for f in zip(*(_minimum(header[j], [r[j] for r in rows]) for j in range(n))))
    if wide:
        width = sum(natural) + 3 * n + 1
    width = width or default_width()
    # The usual boxed table (3 columns of padding and rule per column, plus the left edge) when its words
    # fit whole, else a compact one (no edges, 2 spaces between columns). Narrowing goes in steps, each
    # only when the one before did not fit: text columns wrap between words; columns of numbers ("0.9467
    # [0.9216, 0.9718]") abbreviate their header ("diverged" -> "div."), then wrap between numbers; long
    # words (names) fold; a number is never split.
    numeric = [all(_NUMBER.fullmatch(w) for r in rows for w in _words(r[j])) for j in range(n)]
    cells = [max([_natural(r[j]) for r in rows], default=1) for j in range(n)]
    text_first = [natural[j] if numeric[j] else soft[j] for j in range(n)]
    short_head = [max(cells[j], min(5, _longest(header[j]))) if numeric[j] else soft[j] for j in range(n)]
    # Compact with every cell on one line (headers wrap between words, or abbreviate) reads better
    # than boxed with wrapped cells.
    unwrapped = [max(cells[j], min(5, _longest(header[j])) if numeric[j] else _longest(header[j])) for j in range(n)]
    widths = _fit(natural, [natural], width - (3 * n + 1))
    if widths is None and sum(unwrapped) + 2 * (n - 1) <= width:
        widths = _fit(natural, [unwrapped], width - 2 * (n - 1))
        header = [_abbreviate(h, w) for h, w in zip(header, widths)]
        is_compact = True
    else:
        widths = widths or _fit(natural, [text_first, soft], width - (3 * n + 1))
        is_compact = widths is None
    if is_compact and widths is None:
        room = width - 2 * (n - 1)
        widths = _fit(natural, [text_first, short_head, soft, firm, hard], room) or hard  # else rich folds
        header = [_abbreviate(h, w) for h, w in zip(header, widths)]
    if is_compact:
        table = Table(
            title=escape(title) if title else None,
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            padding=(0, 1, 0, 0),
            collapse_padding=True,
        )
    else:
        table = Table(title=escape(title) if title else None)
    for j in range(n):
        table.add_column(escape(header[j]), width=widths[j], overflow="fold")
    for r in rows:
        table.add_row(*(escape(c) for c in r))
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None, highlight=False)
    console.print(table)
    return "\n".join(line.rstrip() for line in console.file.getvalue().rstrip("\n").splitlines())
