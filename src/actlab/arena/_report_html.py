# ruff: noqa: E501  (the inline CSS and script keep their long lines)
"""Inline CSS and the state script of the arena report page (no network, no external files)."""

from __future__ import annotations

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --better: #1a7f37; --worse: #c62828; --base: #0b57d0; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--fg); background: #fff; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 2px; }
h2 { font-size: 19px; margin: 30px 0 8px; padding-top: 10px; border-top: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 12px; font-size: 12.5px; overflow-wrap: anywhere; }
dl.overview { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0 12px; }
dl.overview dt { color: var(--muted); }
dl.overview dd { margin: 0; }
nav { margin: 6px 0 4px; } nav span { color: var(--muted); }
a { color: var(--base); }
.headline { font-size: 15.5px; font-weight: 600; padding: 8px 12px; border-radius: 6px; margin: 8px 0; }
.headline.none { background: #f1f3f5; border-left: 4px solid #8c959f; }
.headline.some { background: #eef6ff; border-left: 4px solid var(--base); }
.metric, .note { margin: 4px 0 10px; color: var(--muted); }
table.ranking { border-collapse: collapse; width: 100%; margin: 6px 0 14px; font-size: 13px; }
table.ranking th, table.ranking td { padding: 4px 6px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
table.ranking th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
table.ranking td.num, table.ranking th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.ranking td.name { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; white-space: nowrap; }
table.ranking td.nowrap { white-space: nowrap; }
tr.better td.verdict { color: var(--better); font-weight: 600; }
tr.worse td.verdict { color: var(--worse); font-weight: 600; }
tr.baseline td { background: #f3f7ff; }
tr.baseline td.name { font-weight: 700; }
figure { margin: 12px 0 18px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #eef0f2; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 3px; }
#method ul { padding-left: 20px; color: #333; }
"""

# Records what a headless browser needs to check the page: each figure decoded with its size,
# and any script error. It changes nothing a reader sees.
STATE_JS = """
(function () {
  var errors = [];
  window.addEventListener('error', function (ev) { errors.push(String(ev.message || ev)); });
  window.addEventListener('load', function () {
    var figures = Array.prototype.map.call(document.querySelectorAll('img.figure'), function (img) {
      var box = img.getBoundingClientRect();
      return { id: img.id, complete: img.complete, natural_width: img.naturalWidth, natural_height: img.naturalHeight,
               shown_width: Math.round(box.width), shown_height: Math.round(box.height) };
    });
    var rows = document.querySelectorAll('table.ranking tbody tr').length;
    document.getElementById('state').textContent = JSON.stringify({ ready: true, errors: errors, figures: figures, table_rows: rows });
  });
})();
"""
