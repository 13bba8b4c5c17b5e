"""``actlab reproduce NAME... | --all``: run the classic-claim experiments and print their verdicts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

_SCALES = ("tiny", "default", "large")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="experiments to run (see --list)")
    parser.add_argument("--all", action="store_true", help="run every experiment")
    parser.add_argument("--list", action="store_true", help="list the experiments and their claims")
    parser.add_argument(
        "--scale", choices=_SCALES, default="default", help="tiny (seconds), default (<= 5 min each here), large"
    )
    parser.add_argument("--seeds", type=int, default=None, metavar="N", help="seeds (default: the scale's)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local", help="arena backend for training")
    parser.add_argument(
        "-o", "--out", default="reproduce-runs", metavar="DIR", help="records, figures and arena stores (resumable)"
    )
    parser.add_argument("--format", choices=("table", "json", "md"), default="table", help="output format")
    parser.add_argument("--rerun", action="store_true", help="run again even where a finished record exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars on stderr")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _interval(record: dict[str, Any]) -> str:
    low, high = record["interval"]
    return f"[{_fmt(low)}, {_fmt(high)}]"


def render(records: Sequence[dict[str, Any]], fmt: str) -> str:
    """The records as ``table`` (terminal text), ``md`` (Markdown) or ``json``."""
    if fmt == "json":
        return json.dumps(list(records), indent=2)
    if fmt == "md":
        lines = [
            "| experiment | verdict | measured | 95% interval | published | runtime |",
            "|---|---|---|---|---|---|",
        ]
        for r in records:
            lines.append(
                f"| `{r['name']}` | {r['verdict']} | {_fmt(r['measured'])} | {_interval(r)} | "
                f"{_md(r['checks'][0]['published'])} | {r['runtime_s']:.1f} s |"
            )
        for r in records:
            lines += ["", f"**{r['name']}** ({_md(r['source'])}): {_md(r['claim'])}", ""]
            for c in r["checks"]:
                lines.append(
                    f"- {_md(c['key'])} = {_md(c['quantity'])}: {_fmt(c['measured'])} {_fmt_iv(c['interval'])}, "
                    f"n={c['n']} → **{c['verdict']}** (rule: {_md(c['rule'])})"
                )
        return "\n".join(lines)
    return _table(records)


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fmt_iv(iv: Sequence[Any]) -> str:
    return f"[{_fmt(iv[0])}, {_fmt(iv[1])}]"


def _table(records: Sequence[dict[str, Any]]) -> str:
    import io

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    buf = io.StringIO()
    console = Console(file=buf, width=100, force_terminal=False, color_system=None)
    for r in records:
        console.print(f"[bold]{escape(r['name'])}[/bold]: {escape(r['verdict'].upper())}  ({r['runtime_s']:.1f} s)")
        console.print(f"  claim:  {escape(r['claim'])}")
        console.print(f"  source: {escape(r['source'])}")
        for c in r["checks"]:
            console.print(
                f"  - {escape(c['key'])}: {_fmt(c['measured'])} {_fmt_iv(c['interval'])} (n={c['n']}) -> "
                f"{escape(c['verdict'])}; published: {escape(str(c['published']))}"
            )
            console.print(f"    rule: {escape(c['rule'])}")
        console.print(f"  figure: {escape(str(r['figure']))}")
        console.print()
    table = Table(title="actlab reproduce", title_justify="left")
    for col in ("experiment", "verdict", "measured", "95% interval", "runtime"):
        table.add_column(col)
    for r in records:
        table.add_row(
            escape(r["name"]), escape(r["verdict"]), _fmt(r["measured"]), _interval(r), f"{r['runtime_s']:.1f} s"
        )
    console.print(table)
    return buf.getvalue().rstrip("\n")


def run(args: argparse.Namespace) -> int:
    from actlab.experiments import UnknownExperimentError, experiments, get_experiment

    if args.list:
        for name, exp in experiments().items():
            print(f"{name:15s} {exp.claim} [{exp.source}]")
        return 0
    if args.all and args.names:
        print("actlab reproduce: give experiment names or --all, not both", file=sys.stderr)
        return 2
    if not args.all and not args.names:
        print("actlab reproduce: name one or more experiments, or --all (--list shows them)", file=sys.stderr)
        return 2
    if args.seeds is not None and args.seeds < 1:
        print(f"actlab reproduce: --seeds must be at least 1, got {args.seeds}", file=sys.stderr)
        return 2
    try:
        chosen = list(experiments().values()) if args.all else [get_experiment(n) for n in args.names]
    except UnknownExperimentError as err:
        print(f"actlab reproduce: {err}", file=sys.stderr)
        return 2
    from actlab.experiments import _base

    records = []
    for exp in {e.name: e for e in chosen}.values():  # a name given twice runs once
        if not args.quiet:
            print(f"reproduce: {exp.name} ({args.scale})", file=sys.stderr)
        try:
            records.append(
                _base.run_experiment(
                    exp,
                    scale=args.scale,
                    seeds=args.seeds,
                    out_dir=args.out,
                    backend=args.backend,
                    quiet=args.quiet,
                    reuse=not args.rerun,
                )
            )
        except (RuntimeError, ValueError, OSError) as err:  # unfinished trials, a foreign store, a full disk
            done = f"; finished before it: {', '.join(r['name'] for r in records)}" if records else ""
            print(f"actlab reproduce: {exp.name}: {err}{done}", file=sys.stderr)
            return 1
    if args.all:
        from actlab.experiments._html import write_index

        page = write_index(records, args.out)
        if not args.quiet:
            print(f"reproduce: every claim, figure and verdict on one page: {page}", file=sys.stderr)
    print(render(records, args.format))
    return 0
