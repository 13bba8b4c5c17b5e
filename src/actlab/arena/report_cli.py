"""``actlab report RUN_DIR``: the arena report (HTML, Markdown, JSON, CSV) of a run directory.

``add_arguments`` imports nothing heavy; ``run`` reads the store, prints the ranking table and
where the files are.
"""

from __future__ import annotations

import argparse
import sys

_FORMATS = ("html", "md", "json", "csv")


def _formats(text: str) -> list[str]:
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in (*_FORMATS, "all")]
    if bad or not parts:
        raise argparse.ArgumentTypeError(
            f"unknown format {', '.join(map(repr, bad)) or repr(text)}; allowed: {', '.join(_FORMATS)}, all "
            "(several separated by commas)"
        )
    return list(_FORMATS) if "all" in parts else list(dict.fromkeys(parts))


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``actlab report``'s arguments; imports nothing heavy."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="an arena run directory (holds arena.sqlite)")
    parser.add_argument(
        "--format",
        type=_formats,
        default=list(_FORMATS),
        metavar="FMT",
        help="html, md, json, csv or all (default), several separated by commas",
    )
    parser.add_argument(
        "--baseline", default="relu", help="activation every arm is tested against (default relu; 'none': no tests)"
    )
    parser.add_argument("--alpha", type=_alpha, default=0.05, help="family-wise error rate per task (default 0.05)")
    parser.add_argument("-o", "--output", metavar="DIR", help="folder for the report (default RUN_DIR/report)")
    parser.add_argument(
        "--table",
        choices=("table", "md", "json", "csv", "none"),
        default="table",
        help="ranking printed (default table)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        print(f"actlab report: RUN_DIR {str(run_dir)!r} is not a directory", file=sys.stderr)
        return 2
    from actlab.arena.report import (
        RANKING_COLUMNS,
        RANKING_HEADERS,
        ranking_rows,
        run_title,
        stored_suite,
        write_report,
    )
    from actlab.arena.stats import summarize
    from actlab.arena.store import StoreError, read_records
    from actlab.render import render as _render

    baseline = None if str(args.baseline).lower() == "none" else args.baseline
    try:
        records = read_records(run_dir)
        if not records:
            print(f"actlab report: no finished trials in {str(run_dir)!r}: nothing to report", file=sys.stderr)
            return 2
        suite = stored_suite(run_dir)
        paths = write_report(
            run_dir,
            formats=args.format,
            baseline=baseline,
            alpha=args.alpha,
            out_dir=args.output,
            records=records,
            suite=suite,
        )
    except (StoreError, OSError, ValueError) as err:  # a missing, foreign or newer store; a bad argument
        print(f"actlab report: {err}", file=sys.stderr)
        return 2
    if args.table != "none":
        summary = summarize(records, baseline=baseline, alpha=args.alpha)
        what = run_title(suite, run_dir.resolve().name)
        title = (
            f"{what}: ranking ({len(records)} trials; baseline {baseline or 'none'}, α = {args.alpha:g}, Holm per task)"
        )
        print(_render(ranking_rows(summary), RANKING_COLUMNS, args.table, title=title, headers=RANKING_HEADERS))
        if args.table == "table":
            for task in summary.tasks:
                print(f"{task.task}: {task.headline}")
    for fmt, path in paths.items():
        print(f"{fmt}: {path}", file=sys.stderr if args.table in ("json", "csv") else sys.stdout)
    return 0
