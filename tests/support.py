"""Helpers for the tests: canonical export rows a test can change one cell of, CSV folders written from
them, validation of rows the way staging does it, real pipeline runs, and reading their DuckDB files.

Every pipeline run here is a real Dagster run (`run_pipeline`) into real DuckDB files under pytest's tmp
folders; nothing of ketreg is mocked.
"""

from __future__ import annotations

import copy
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from ketreg_app.run import run_pipeline
from schemas.protocol import Protocol, load_protocol
from schemas.tables import TABLES, TABLES_BY_NAME
from schemas.validation import ParentRows, TableValidation, validate_table

TEST_KEY = "test-pseudonym-key-0123456789abcdef"
OTHER_KEY = "another-pseudonym-key-9876543210"
EXPORT_ID = "2026-11-01"

Rows = dict[str, list[dict[str, str]]]

# A minimal valid export: two patients, three infusions, four assessments, two adverse events and two
# dispositions. Nothing in it deviates from the protocol (infusion 1 ≤ 25 mg/h, later ones ≤ 70 mg/h,
# 4-hour sessions), so a test that changes one cell knows that cell caused what it sees.
# Ids carry a distinctive prefix so that a search for them in the registry cannot hit by chance.
CANONICAL_CSV = {
    "patients": """
patient_id,sex,birth_year,weight_kg,cancer_type,metastatic,cnp_etiology,prior_neuropathy,cnp_diagnosis_date
PT-0001,F,1960,70,breast,false,cipn,false,2024-01-10
PT-0002,M,1955,,lung,true,tumor_compression,false,
""",
    "infusions": """
infusion_id,patient_id,start_time,end_time,initial_rate_mg_h,max_rate_mg_h,total_dose_mg,completed,stop_reason,relief_duration_days
INF-0001,PT-0001,2025-01-06T09:00,2025-01-06T13:00,10,25,70,true,,7
INF-0002,PT-0001,2025-01-13T09:00,2025-01-13T13:00,10,40,120,true,,10
INF-0003,PT-0002,2025-01-07T09:00,2025-01-07T13:00,10,20,60,false,patient_request,
""",
    "assessments": """
assessment_id,patient_id,infusion_id,assessed_at,timepoint,nprs,function_score,satisfaction,daily_mme,subjective_improvement
ASM-0001,PT-0001,,2025-01-02T10:00,baseline,8,6,,60,
ASM-0002,PT-0001,INF-0001,2025-01-06T08:45,pre,8,,,,
ASM-0003,PT-0001,INF-0001,2025-01-06T13:15,post,3,2,8,60,true
ASM-0004,PT-0002,INF-0003,2025-01-07T08:45,pre,7,5,,120.5,
""",
    "adverse_events": """
ae_id,patient_id,infusion_id,onset_time,term,category,grade,serious,action_taken,outcome
AE-0001,PT-0001,INF-0001,2025-01-06T10:30,nausea,,1,false,none,resolved
AE-0002,PT-0002,INF-0003,,dizziness,neurological,2,false,rate_reduced,resolved
""",
    "dispositions": """
patient_id,event_date,status,reason
PT-0001,2025-02-01,continuing,
PT-0002,2025-02-15,discontinued,unsatisfactory_relief
""",
}
CANONICAL_ROWS: Rows = {
    table: list(csv.DictReader(io.StringIO(text.strip()))) for table, text in CANONICAL_CSV.items()
}
CANONICAL_PATIENT_IDS = tuple(row["patient_id"] for row in CANONICAL_ROWS["patients"])


def canonical_rows() -> Rows:
    """A fresh, deep copy of the canonical export's rows (every cell is text, as in a CSV)."""
    return copy.deepcopy(CANONICAL_ROWS)


def row_by_id(rows: Rows, table: str, record_id: str) -> dict[str, str]:
    """The row of `table` whose record id is `record_id` (for dispositions: the first of that patient)."""
    id_column = TABLES_BY_NAME[table].record_id or "patient_id"
    return next(row for row in rows[table] if row[id_column] == record_id)


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    """A canonical CSV: UTF-8, a header, one line per row. The header is the union of the rows' keys in
    first-seen order, so a test adds a column by adding a key and drops one by deleting it."""
    if header is None:
        header = []
        for row in rows:
            header.extend(key for key in row if key not in header)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_export(landing: Path, site_id: str, export_id: str = EXPORT_ID, rows: Rows | None = None) -> Path:
    """Write `<landing>/<site_id>/<export_id>/<table>.csv` for every table in `rows` (canonical rows by
    default; leave a table out of `rows` to leave its file out). Returns the export folder."""
    folder = landing / site_id / export_id
    folder.mkdir(parents=True, exist_ok=True)
    for table, table_rows in (canonical_rows() if rows is None else rows).items():
        header = list(TABLES_BY_NAME[table].columns) if not table_rows else None
        write_csv(folder / f"{table}.csv", table_rows, header)
    return folder


def raw_frame(table: str, rows: list[dict[str, str]], site_id: str = "site_a",
              export_id: str = EXPORT_ID) -> pl.DataFrame:
    """`rows` as the staging layer hands them to `validate_table`: every contract column as text (absent
    keys as empty cells), plus lineage; the first data row is line 2 of the file, after the header."""
    contract = TABLES_BY_NAME[table]
    data = {column: [row.get(column, "") for row in rows] for column in contract.columns}
    frame = pl.DataFrame(data, schema={column: pl.String for column in contract.columns})
    return frame.select(
        pl.lit(site_id, pl.String).alias("site_id"),
        pl.lit(export_id, pl.String).alias("export_id"),
        pl.int_range(2, len(rows) + 2, dtype=pl.Int64).alias("source_line"),
        *contract.columns,
    )


def _referenced_columns(parent: str) -> tuple[str, ...]:
    return tuple(sorted({
        column
        for child in TABLES
        for ref in child.references
        if ref.parent_table == parent
        for column in ref.parent_columns
    }))


def validate_rows(rows: Rows, protocol: Protocol | None = None, upto: str | None = None,
                  frames: dict[str, pl.DataFrame] | None = None) -> dict[str, TableValidation]:
    """Validate the tables of `rows` in reference order, each child against its validated parents, the way
    staging does for one export. Stops after `upto` when given. `frames` overrides a table's raw frame
    (e.g. rows of several exports at once)."""
    protocol = protocol or load_protocol()
    parents: dict[str, ParentRows] = {}
    results: dict[str, TableValidation] = {}
    frames = frames or {}
    for table in TABLES:
        if table.name in rows or table.name in frames:
            raw = frames.get(table.name)
            raw = raw_frame(table.name, rows[table.name]) if raw is None else raw
            results[table.name] = validate_table(raw, table, protocol, parents)
            referenced = _referenced_columns(table.name)
            if referenced and table.record_id:
                parents[table.name] = results[table.name].parent_rows(table.record_id, referenced)
        if table.name == upto:
            break
    return results


def quarantine_reasons(result: TableValidation, record_id: str | None = None,
                       source_line: int | None = None) -> list[dict[str, str]]:
    """The reasons a quarantined row was given, found by record id or source line ([] if it was accepted)."""
    quarantined = result.quarantined
    if record_id is not None:
        quarantined = quarantined.filter(pl.col("record_id") == record_id)
    if source_line is not None:
        quarantined = quarantined.filter(pl.col("source_line") == source_line)
    return [reason for reasons in quarantined["reasons"].to_list() for reason in reasons]


# ---------------------------------------------------------------------------------------------------------
# Pipeline runs and reading their databases.


@dataclass
class RegistryRun:
    """One real pipeline run: where its inputs and databases are, and how it ended."""

    landing: Path
    analyst_db: Path
    work_db: Path
    key: str
    success: bool
    failures: list[str]
    manifest: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # failed checks that do not block publishing

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        """Rows of a query on the published analysts' database (read-only)."""
        return query_db(self.analyst_db, sql, params)

    def query_work(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        """Rows of a query on the pipeline's private working store (read-only): `site_private.*` holds what
        only the sending site may see (quarantined rows with their ids, rejection reasons, column names)."""
        return query_db(self.work_db, sql, params)


def query_db(path: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def run_registry(landing: Path, out_dir: Path, key: str = TEST_KEY, protocol_file: Path | None = None,
                 manifest: list[dict[str, Any]] | None = None) -> RegistryRun:
    """Run the whole pipeline through Dagster on `landing`, publishing `out_dir/registry.duckdb` (the working
    database beside it). The key is set for this run only; a throw-away Dagster instance records it."""
    analyst_db = out_dir / "registry.duckdb"
    work_db = out_dir / "registry_work.duckdb"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KETREG_PSEUDONYM_KEY", key)
        patch.delenv("DAGSTER_HOME", raising=False)
        outcome = run_pipeline(landing, analyst_db, work_db, protocol_file)
    return RegistryRun(
        landing, analyst_db, work_db, key, outcome.success, outcome.failures, manifest or [], outcome.warnings
    )


def table_names(path: Path) -> list[tuple[str, str]]:
    """(schema, table) of every table of a DuckDB file."""
    return [
        (schema, table)
        for schema, table in query_db(
            path,
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() ORDER BY ALL",
        )
    ]


def table_contents(path: Path, schema: str, table: str) -> list[tuple]:
    """Every row of a table, in a stable order (ORDER BY ALL), for comparing runs."""
    return query_db(path, f'SELECT * FROM "{schema}"."{table}" ORDER BY ALL')


def text_cells(path: Path, schema: str, table: str) -> list[str]:
    """Every cell of a table, whatever its type, as text (lists and structs rendered whole)."""
    columns = [
        name for (name,) in query_db(
            path,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "AND table_catalog = current_database()",
            [schema, table],
        )
    ]
    if not columns:
        return []
    select = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in columns)
    rows = query_db(path, f'SELECT {select} FROM "{schema}"."{table}"')
    return [cell for row in rows for cell in row if cell]


SCENARIO_IDENTIFIERS = {
    "patients.csv": {"patient_name": ("Ada Lovelace", "Alan Turing"), "mrn": ("MRN-55501", "MRN-55502")},
    "assessments.csv": {"email": ("ada.lovelace@example.org",)},
}

# The `deviating` site's infusions.csv, in file order (line 2 first). Infusion numbers follow start times,
# not lines: INF-0005 is PT-0001's fourth infusion although it is the first line.
DEVIATING_INFUSIONS_CSV = """
infusion_id,patient_id,start_time,end_time,initial_rate_mg_h,max_rate_mg_h,total_dose_mg,completed,stop_reason,relief_duration_days
INF-0005,PT-0001,2025-02-17T09:00,2025-02-17T13:00,10,50,150,true,,
INF-0001,PT-0001,2025-01-06T09:00,2025-01-06T13:00,10,30,100,true,,7
INF-0002,PT-0001,2025-01-13T09:00,2025-01-13T11:00,10,40,60,false,clinical_decision,
INF-0003,PT-0002,2025-01-07T09:00,2025-01-07T13:00,10,20,60,false,patient_request,
INF-0004,PT-0001,2025-01-20T09:00,2025-01-20T15:30,10,100,400,true,,
"""


def write_scenario_landing(landing: Path) -> Path:
    """Hand-made sites, one per situation the pipeline must handle, in one landing folder:

    - `steady`: one good export (its PT-0002 had neuropathy before the cancer: outside the analysis cohort).
    - `renewed`: two good exports; the newer drops PT-0002, adds PT-0003 and changes PT-0001's weight.
    - `stalled`: a good export, then a newer one whose infusions.csv lacks `max_rate_mg_h`.
    - `broken-*`: a single export rejected for one reason each (missing file, missing column, empty file,
      non-UTF-8 bytes in a data row, a row with more cells than the header, a row with fewer cells).
    - `identified`: extra identifier-like columns (`patient_name`, `mrn` in patients.csv, `email` in
      assessments.csv) holding values; its PT-0002 weighs 20 kg, so that row lands in the quarantine.
    - `deviating`: valid infusions that depart from the protocol (DEVIATING_INFUSIONS_CSV): infusion 1 at
      30 mg/h, a 2-hour session, a 100 mg/h session of 6.5 hours, and a conforming 4th infusion.
    - `faulty`: PT-0002's birth year is unreadable; their infusion, assessment, adverse event and
      disposition follow them into the quarantine.
    - `tolerant`: valid files as spreadsheet programs write them: a UTF-8 byte-order mark, CRLF line ends,
      a blank after each comma of the header and a quoted first cell.
    """
    steady = canonical_rows()
    row_by_id(steady, "patients", "PT-0002")["prior_neuropathy"] = "true"
    write_export(landing, "steady", rows=steady)

    write_export(landing, "renewed", "2026-10-01")
    newer = canonical_rows()
    for table_rows in newer.values():
        for row in table_rows:
            if row.get("patient_id") == "PT-0002":
                row["patient_id"] = "PT-0003"
    row_by_id(newer, "patients", "PT-0001")["weight_kg"] = "72"
    write_export(landing, "renewed", "2026-11-01", newer)

    write_export(landing, "stalled", "2026-10-01")
    stalled = canonical_rows()
    for row in stalled["infusions"]:
        del row["max_rate_mg_h"]
    write_export(landing, "stalled", "2026-11-01", stalled)

    missing_file = canonical_rows()
    del missing_file["adverse_events"]
    write_export(landing, "broken-missing-file", rows=missing_file)

    missing_column = canonical_rows()
    for row in missing_column["patients"]:
        del row["prior_neuropathy"]
    write_export(landing, "broken-missing-column", rows=missing_column)

    folder = write_export(landing, "broken-empty-file")
    (folder / "infusions.csv").write_bytes(b"")

    folder = write_export(landing, "broken-encoding")
    text = (folder / "assessments.csv").read_text(encoding="utf-8")
    (folder / "assessments.csv").write_bytes(text.replace("ASM-0003", "ASM-0003-é").encode("latin-1"))

    folder = write_export(landing, "broken-ragged-long")
    lines = (folder / "adverse_events.csv").read_text(encoding="utf-8").splitlines()
    lines[1] += ",an extra cell"
    (folder / "adverse_events.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    folder = write_export(landing, "broken-ragged-short")
    lines = (folder / "dispositions.csv").read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0]  # the last cell (reason, optional) and its comma are gone
    (folder / "dispositions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    identified = canonical_rows()
    for file_name, columns in SCENARIO_IDENTIFIERS.items():
        table_rows = identified[file_name.removesuffix(".csv")]
        for column, values in columns.items():
            for index, row in enumerate(table_rows):
                row[column] = values[index % len(values)]
    row_by_id(identified, "patients", "PT-0002")["weight_kg"] = "20"
    write_export(landing, "identified", rows=identified)

    deviating = canonical_rows()
    deviating["infusions"] = list(csv.DictReader(io.StringIO(DEVIATING_INFUSIONS_CSV.strip())))
    write_export(landing, "deviating", rows=deviating)

    faulty = canonical_rows()
    row_by_id(faulty, "patients", "PT-0002")["birth_year"] = "nineteen fifty-five"
    write_export(landing, "faulty", rows=faulty)

    folder = write_export(landing, "tolerant")
    for path in folder.glob("*.csv"):
        header, *lines = path.read_text(encoding="utf-8").splitlines()
        header = ", ".join(header.split(","))  # a blank after each comma of the header
        lines = [f'"{lines[0].split(",")[0]}",' + lines[0].split(",", 1)[1], *lines[1:]]  # a quoted cell
        path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([header, *lines, ""]).encode("utf-8"))  # BOM, CRLF
    return landing
