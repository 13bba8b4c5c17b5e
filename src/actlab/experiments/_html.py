"""One self-contained HTML page of every record (``actlab reproduce --all``), in the arena report's look."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actlab.experiments._base import _write_atomic

__all__ = ["write_index"]


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _figure(path: str, name: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return '<p class="note">figure missing</p>'
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img class="figure" id="fig-{html.escape(name)}" alt="{html.escape(name)} figure" '
        f'src="data:image/png;base64,{encoded}"></figure>'
    )


def write_index(records: Sequence[dict[str, Any]], out_dir: str | Path) -> Path:
    """Write ``OUT/index.html``: the verdict table, then each claim with its checks and figure."""
    from actlab.arena._report_html import CSS

    e = html.escape
    rows = "".join(
        f'<tr><td class="name"><a href="#{e(r["name"])}">{e(r["name"])}</a></td><td class="verdict">{e(r["verdict"])}'
        f'</td><td class="num">{_num(r["measured"])}</td><td class="num">[{_num(r["interval"][0])}, '
        f"{_num(r['interval'][1])}]</td><td>{e(str(r['published']))}</td>"
        f'<td class="num">{r["runtime_s"]:.1f} s</td></tr>'
        for r in records
    )
    sections = []
    for r in records:
        checks = "".join(
            f'<tr><td class="name">{e(c["key"])}</td><td>{e(c["quantity"])}</td><td class="num">{_num(c["measured"])}'
            f'</td><td class="num">[{_num(c["interval"][0])}, {_num(c["interval"][1])}]</td>'
            f'<td class="num">{c["n"]}</td><td>{e(str(c["published"]))}</td><td class="verdict">{e(c["verdict"])}</td>'
            f"<td>{e(c['rule'])}</td></tr>"
            for c in r["checks"]
        )
        scale = r["config"].get("scale")
        seeds = len(r["config"].get("seeds", []))
        sections.append(
            f'<h2 id="{e(r["name"])}">{e(r["name"])}: {e(r["verdict"])}</h2>'
            f'<p class="sub">{e(r["source"])} · scale {e(str(scale))}, {seeds} seed(s), {r["runtime_s"]:.1f} s</p>'
            f'<p>{e(r["claim"])}</p><p class="metric">published: {e(str(r["published"]))}</p>'
            '<table class="ranking"><thead><tr><th>check</th><th>quantity</th><th class="num">measured</th>'
            '<th class="num">95% interval</th><th class="num">n</th><th>published</th><th>verdict</th><th>rule</th>'
            f"</tr></thead><tbody>{checks}</tbody></table>"
            + (f'<p class="note">{e(r["notes"])}</p>' if r.get("notes") else "")
            + _figure(r["figure"], r["name"])
        )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>actlab reproduce</title>'
        f"<style>{CSS}</style></head><body><main><h1>actlab reproduce</h1>"
        '<p class="sub">the classic claims about activation functions, re-run with seeds, 95% intervals and a verdict '
        "decided by a rule fixed before the run</p>"
        '<table class="ranking"><thead><tr><th>experiment</th><th>verdict</th><th class="num">measured</th>'
        '<th class="num">95% interval</th><th>published</th><th class="num">runtime</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>{''.join(sections)}</main></body></html>\n"
    )
    path = Path(out_dir) / "index.html"
    _write_atomic(path, page.encode("utf-8"))
    return path
