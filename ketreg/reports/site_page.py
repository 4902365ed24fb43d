"""The "what to fix" page of one site's data-manager folder: one self-contained HTML file (no script, no
network) that a site's data manager reads top to bottom: rejected exports first, then the quarantined rows of
the current export grouped by rule, the columns to remove, and the protocol deviations to review."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ketreg.staging.fix_list import CASCADE_RULE

# The page lists this many quarantined rows; the CSV and the workbook hold them all.
MAX_ROWS_ON_PAGE = 1000
_LINES_SHOWN = 20

Table = tuple[Sequence[str], Sequence[Sequence[Any]]]

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0 24px 40px;color:#1a202c;max-width:1200px}"
    "h1{margin-top:18px}table{border-collapse:collapse;font-size:13px;margin:8px 0}"
    "th,td{border:1px solid #cbd5e0;padding:3px 6px;text-align:left;vertical-align:top}th{background:#f7fafc}"
    ".fail{color:#c53030;font-weight:700}.pass{color:#276749;font-weight:600}.empty{color:#4a5568;font-style:italic}"
    "code{background:#f7fafc}"
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rejected(rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return '<p class="pass">No export was rejected.</p>'
    items = []
    for export_id, reason in rows:
        problems = "".join(f"<li>{escape(p)}</li>" for p in str(reason or "").split("; ") if p)
        items.append(f"<li><b>{escape(export_id)}</b><ul>{problems}</ul></li>")
    return (
        "<p>These exports were not read at all. Fix every problem listed, then send the export again "
        "(<code>ketreg check-export</code> shows the same problems before you send).</p><ul>" + "".join(items)
        + "</ul>"
    )


def _quarantine(rows: Sequence[Sequence[Any]]) -> str:
    current = [r for r in rows if r[1]]
    if not current:
        return '<p class="pass">Nothing in the current export was quarantined.</p>'
    groups: dict[tuple[str, str, str], list[Sequence[Any]]] = defaultdict(list)
    for row in current:
        groups[(row[2], row[5] or "", row[6])].append(row)
    summary = []
    # Faults before the parent_quarantined rows they caused (fixing the fault brings those back).
    for (file_name, column, rule), members in sorted(groups.items(),
                                                     key=lambda g: (g[0][2] == CASCADE_RULE, -len(g[1]), g[0])):
        lines = sorted({m[3] for m in members})
        shown = ", ".join(map(str, lines[:_LINES_SHOWN])) + (" …" if len(lines) > _LINES_SHOWN else "")
        summary.append([file_name, column, rule, len(lines), shown, members[0][7]])
    listed = [[r[2], r[3], r[4], r[5], r[6], r[7]] for r in current[:MAX_ROWS_ON_PAGE]]
    more = (
        f"<p>The first {MAX_ROWS_ON_PAGE:,} of {len(current):,} reasons; <code>quarantine.csv</code> lists all.</p>"
        if len(current) > MAX_ROWS_ON_PAGE else ""
    )
    return (
        f"<p>{len({(r[2], r[3]) for r in current}):,} rows of the current export were kept out of the registry. "
        "Correct them in your system at the lines below and send the next export; a row whose parent was "
        "quarantined (<code>parent_quarantined</code>) is fixed by fixing the parent.</p>"
        + _table(["file", "column", "rule", "rows", "lines", "for example"], summary, "")
        + "<h3>Every quarantined row and reason</h3>" + more
        + _table(["file", "line", "your record id", "column", "rule", "what is wrong"], listed, "")
    )


def render_site_page(site_id: str, data: Mapping[str, Table], generated: str) -> str:
    """The HTML of `sites/<site_id>/index.html` from the site's own tables (see site_folders.TABLES)."""
    exports_header, exports = data["exports"]
    earlier = sum(1 for r in data["quarantine"][1] if not r[1])
    downloads = " · ".join(
        f'<a href="{name}.csv">{name}.csv</a>' for name in data
    ) + ' · <a href="what_to_fix.xlsx">what_to_fix.xlsx</a> (every table, one sheet each)'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>What to fix: {escape(site_id)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>What to fix: site {escape(site_id)}</h1>"
        f"<p>Generated {escape(generated)} by the registry pipeline. This folder holds <b>your site's records "
        "only</b> (your own ids and values, as you sent them): keep it within your site's data team.</p>"
        f"<p>Downloads: {downloads}</p>"
        "<h2>Your exports</h2>" + _table(exports_header, exports, "no exports on record")
        + "<h2>1. Rejected exports</h2>" + _rejected(data["rejected_exports"][1])
        + "<h2>2. Quarantined rows of the current export</h2>" + _quarantine(data["quarantine"][1])
        + (f"<p>{earlier:,} quarantine reasons of earlier exports are kept on record in "
           "<code>quarantine.csv</code> (<code>is_current_export</code> = false).</p>" if earlier else "")
        + "<h2>3. Columns not read and other notices</h2>"
        + _table(*data["columns_not_read"], "every column of your files was read")
        + _table(*data["notices"], "no notices")
        + "<h2>4. Protocol deviations to review</h2>"
        "<p>Valid infusions that departed from the protocol: they are in the registry; check they are right.</p>"
        + _table(*data["deviations"], "no protocol deviations")
        + "</body></html>"
    )
