"""A site's fix list: every quarantined row, root causes first, each with the rows quarantined only because
of it (`parent_quarantined`) grouped beneath it. A data manager fixes the patient row, and its infusions,
assessments and adverse events come back with it; listing the cascade first hides the one line to fix.

One function orders the list for every reader: `ketreg check-export --all`, the site's own fix list and the
quality dashboard. It reads only what the quarantine holds (file, line, record id, reasons), so it works on
the working store's `quarantine` and on a pre-flight's validation alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from schemas.tables import TABLES

if TYPE_CHECKING:
    import duckdb

CASCADE_RULE = "parent_quarantined"
# "patient_id 'PT-0002' was quarantined in patients.csv" (schemas/validation.py writes it; the value is the
# parent row's record id, the one the reference matched).
_CASCADE_MESSAGE = re.compile(r"^(?P<column>[\w,]+) '(?P<value>.*)' was quarantined in (?P<file>[\w.-]+)$")
_FILE_ORDER = {table.file_name: index for index, table in enumerate(TABLES)}


@dataclass
class FixItem:
    """One quarantined row and the rows quarantined because of it."""

    file_name: str
    source_line: int
    record_id: str | None
    reasons: list[dict[str, Any]]  # rule, column, message
    caused: list[FixItem] = field(default_factory=list)
    site_id: str | None = None
    export_id: str | None = None

    @property
    def is_root_cause(self) -> bool:
        """True when the row has a fault of its own (not only a quarantined parent)."""
        return any(reason["rule"] != CASCADE_RULE for reason in self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file_name": self.file_name, "source_line": self.source_line, "record_id": self.record_id,
            "reasons": self.reasons, "caused": [child.as_dict() for child in self.caused],
        }

    def rows(self) -> int:
        """This row and every row it caused to be quarantined."""
        return 1 + sum(child.rows() for child in self.caused)


def _parent_keys(item: FixItem) -> list[tuple[str, str]]:
    """(parent file, parent record id) of each quarantined parent of the row, the nearest first: an
    assessment whose infusion and patient were both quarantined belongs under the infusion."""
    found = [match for reason in item.reasons if reason["rule"] == CASCADE_RULE
             and (match := _CASCADE_MESSAGE.match(reason.get("message") or ""))]
    keys = [(match["file"], match["value"]) for match in found]
    return sorted(keys, key=lambda key: -_FILE_ORDER.get(key[0], -1))


def _order(item: FixItem) -> tuple[int, int]:
    return _FILE_ORDER.get(item.file_name, len(_FILE_ORDER)), item.source_line


def fix_list(rows: Iterable[Mapping[str, Any]]) -> list[FixItem]:
    """The quarantined `rows` (each with file_name, source_line, record_id, reasons; site_id and export_id
    optional) as a forest: root causes in file order (patients, infusions, …) then by line, each followed by
    the rows it caused, nested as deep as the cascade goes. Rows of different exports never link. A cascaded
    row whose parent is not among `rows` stays at the top level, after the root causes."""
    items = [
        FixItem(
            file_name=row["file_name"], source_line=int(row["source_line"]), record_id=row.get("record_id"),
            reasons=[dict(reason) for reason in row["reasons"]],
            site_id=row.get("site_id"), export_id=row.get("export_id"),
        )
        for row in rows
    ]
    by_record = {
        (item.site_id, item.export_id, item.file_name, item.record_id): item
        for item in sorted(items, key=_order, reverse=True)  # the first row of a repeated id wins
        if item.record_id is not None
    }
    top: list[FixItem] = []
    for item in sorted(items, key=_order):
        candidates = [] if item.is_root_cause else _parent_keys(item)
        parent = next((found for file_name, record in candidates
                       if (found := by_record.get((item.site_id, item.export_id, file_name, record))) is not None),
                      None)
        if parent is not None and parent is not item:
            parent.caused.append(item)
        else:
            top.append(item)
    return sorted(top, key=lambda item: (not item.is_root_cause, *_order(item)))


def flatten(items: list[FixItem], depth: int = 0) -> list[tuple[int, FixItem]]:
    """(depth, item) in reading order: each root cause, then what it caused, indented one level deeper."""
    lines: list[tuple[int, FixItem]] = []
    for item in items:
        lines.append((depth, item))
        lines += flatten(item.caused, depth + 1)
    return lines


def staged_fix_list(con: duckdb.DuckDBPyConnection, site_id: str, export_id: str | None = None) -> list[FixItem]:
    """The fix list of one export of a site (its newest accepted export by default) from the working store's
    `staging.quarantine`, where the site's own ids are kept: for the site's own data-manager report."""
    if export_id is None:
        newest = con.execute(
            "SELECT max(export_id) FROM staging.exports WHERE site_id = ? AND status = 'accepted'", [site_id]
        ).fetchall()
        export_id = newest[0][0] if newest else None
        if export_id is None:
            return []
    result = con.execute(
        "SELECT site_id, export_id, file_name, source_line, record_id, reasons FROM staging.quarantine "
        "WHERE site_id = ? AND export_id = ?",
        [site_id, export_id],
    )
    names = [d[0] for d in result.description]
    return fix_list(dict(zip(names, row, strict=True)) for row in result.fetchall())


def in_fixing_order(rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> list[Sequence[Any]]:
    """Rows of one reason each (named by `columns`: export_id, file_name, source_line, record_id, column, rule,
    message; others are carried along) in the order a data manager fixes them: exports as given, and within an
    export each root cause followed by the rows it caused, as `fix_list` nests them. Nothing is added or lost."""
    at = {name: columns.index(name) for name in ("export_id", "file_name", "source_line", "record_id", "column",
                                                  "rule", "message")}
    grouped: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    export_order: dict[Any, int] = {}
    for row in rows:
        export_order.setdefault(row[at["export_id"]], len(export_order))
        key = (row[at["export_id"]], row[at["file_name"]], row[at["source_line"]])
        item = grouped.setdefault(key, {
            "export_id": key[0], "file_name": key[1], "source_line": key[2], "record_id": row[at["record_id"]],
            "reasons": [],
        })
        item["reasons"].append({"column": row[at["column"]], "rule": row[at["rule"]], "message": row[at["message"]]})
    rank = {
        (item.export_id, item.file_name, item.source_line): position
        for position, (_, item) in enumerate(flatten(fix_list(grouped.values())))
    }
    return sorted(rows, key=lambda row: (export_order[row[at["export_id"]]],
                                         rank[(row[at["export_id"]], row[at["file_name"]], row[at["source_line"]])]))
