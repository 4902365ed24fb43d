"""The three privacy tiers, end to end on a real two-site run (docs/privacy.md).

Every site id of the two generated sites carries a canary prefix of its own (`CANARY01x…`, `CANARY02x…`) in every
file, quarantined rows included, and each site also sends site text that carries its canary (an unknown column,
a duplicated header name that rejects an export). Then:
- the analysts' file and a release database hold no canary in any cell of any table;
- each site's data-manager folder holds its own canary and never the other site's;
- the release's aggregates show no count of 1–4 and no lone suppressed stratum, and k = 1 gives back the
  unsuppressed figures.
"""

from __future__ import annotations

import csv
import json
import re
import stat
from pathlib import Path

import polars as pl
import pytest
from openpyxl import load_workbook
from support import RegistryRun, query_db, run_registry, table_names, text_cells

from ketreg.registry.aggregates import AGGREGATES_FOLDER, METRICS_FILE, write_aggregates
from ketreg.registry.release import DATABASE_FILE, make_release, verify_release
from ketreg.reports.site_folders import SITES_FOLDER
from synthetic import generate_landing

CANARIES = {"site_01": b"CANARY01x", "site_02": b"CANARY02x"}
K = 5


def _plant_canaries(landing: Path) -> None:
    """Prefix every generated record id (K0001, K0001-I3, K0001-A2, K0001-E1) with the site's canary, byte for
    byte, so the generator's faults (bad encodings, ragged rows) stay exactly as they were."""
    for site_id, canary in CANARIES.items():
        for path in (landing / site_id).rglob("*.csv"):
            path.write_bytes(re.sub(rb"(?<![A-Za-z0-9])K(\d{4})", canary + rb"K\1", path.read_bytes()))


def _add_columns(path: Path, names: list[str]) -> None:
    """Append columns to a CSV file's header and an empty cell for each to every data line."""
    header, *lines = path.read_bytes().split(b"\n")
    header += b"".join(b"," + n.encode() for n in names)
    lines = [line + b"," * len(names) if line.strip() else line for line in lines]
    path.write_bytes(b"\n".join([header, *lines]))


@pytest.fixture(scope="module")
def tiers(tmp_path_factory: pytest.TempPathFactory) -> RegistryRun:
    root = tmp_path_factory.mktemp("privacy")
    landing = root / "landing"
    generate_landing(landing, sites=2, patients_per_site=15, seed=23, error_rate=0.08)
    _plant_canaries(landing)
    # Site text that carries the canary: a column name (a file sent without its header row looks like this),
    # and a duplicated header name that rejects site_02's older export with a message quoting it.
    _add_columns(landing / "site_01" / "2026-11-01" / "dispositions.csv", ["CANARY01xK9999"])
    _add_columns(landing / "site_02" / "2026-10-01" / "patients.csv", ["CANARY02xK9998", "CANARY02xK9998"])
    run = run_registry(landing, root / "out")
    assert run.success, run.failures
    return run


def _canaries_in(text: str) -> set[str]:
    return {site for site, canary in CANARIES.items() if canary.decode() in text}


def _database_canaries(path: Path) -> list[tuple[str, str]]:
    found = []
    for schema, table in table_names(path):
        for cell in text_cells(path, schema, table):
            if _canaries_in(cell):
                found.append((f"{schema}.{table}", cell[:80]))
    return found


def test_the_planted_ids_reach_the_working_store_quarantine_at_both_sites(tiers: RegistryRun) -> None:
    # Otherwise the scans below would prove nothing.
    quarantined = dict(tiers.query_work(
        "SELECT site_id, count(*) FILTER (record_id LIKE 'CANARY%') FROM site_private.quarantine GROUP BY ALL"
    ))
    assert quarantined.get("site_01", 0) > 0 and quarantined.get("site_02", 0) > 0
    rejections = tiers.query_work(
        "SELECT rejection_reason FROM site_private.exports WHERE site_id = 'site_02' AND status = 'rejected'"
    )
    assert any("CANARY02xK9998" in reason for (reason,) in rejections)
    assert tiers.query_work(
        "SELECT ignored_columns FROM site_private.file_columns WHERE site_id = 'site_01' "
        "AND file_name = 'dispositions.csv' AND export_id = '2026-11-01'"
    ) == [(["CANARY01xK9999"],)]


def test_no_site_id_or_site_text_is_in_any_cell_of_the_analysts_file(tiers: RegistryRun) -> None:
    assert len(table_names(tiers.analyst_db)) > 10
    assert _database_canaries(tiers.analyst_db) == []


def test_the_analysts_quarantine_is_counts_by_rule_and_column(tiers: RegistryRun) -> None:
    columns = [c for (c,) in tiers.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'quarantine' ORDER BY ordinal_position"
    )]
    assert columns == ["site_id", "export_id", "file_name", "rule", "column_name", "quarantined_rows",
                       "source_lines", "is_current_export"]
    # The counts agree with the detail kept in the working store, rule by rule.
    detail = sorted(tiers.query_work(
        """SELECT site_id, export_id, file_name, r.rule, r."column", count(DISTINCT source_line)
           FROM site_private.quarantine, unnest(reasons) AS u (r) GROUP BY ALL"""
    ))
    counts = sorted(tiers.query(
        "SELECT site_id, export_id, file_name, rule, column_name, quarantined_rows FROM quarantine"
    ))
    assert counts == detail and counts


def test_no_site_id_is_in_a_release_database(tiers: RegistryRun, tmp_path: Path) -> None:
    release = make_release("r-privacy", tiers.analyst_db, tmp_path / "releases")
    assert _database_canaries(release / DATABASE_FILE) == []


def _folder_texts(folder: Path) -> dict[str, str]:
    texts = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".xlsx":
            book = load_workbook(path, read_only=True)
            texts[path.name] = "\n".join(
                str(cell) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for cell in row
            )
        else:
            texts[path.name] = path.read_text(encoding="utf-8-sig")
    return texts


@pytest.mark.parametrize("site_id", sorted(CANARIES))
def test_each_site_folder_holds_its_own_ids_and_none_of_the_other_sites(tiers: RegistryRun, site_id: str) -> None:
    folder = tiers.analyst_db.parent / "reports" / SITES_FOLDER / site_id
    texts = _folder_texts(folder)

    assert {"index.html", "quarantine.csv", "rejected_exports.csv", "deviations.csv", "what_to_fix.xlsx"} <= set(texts)
    leaks = {name: _canaries_in(text) - {site_id} for name, text in texts.items()}
    assert {name: sites for name, sites in leaks.items() if sites} == {}
    for name in ("quarantine.csv", "what_to_fix.xlsx", "index.html"):
        assert site_id in _canaries_in(texts[name]), name
    # Every quarantined row of the site is in its CSV, with its own record id and every reason.
    expected = tiers.query_work(
        "SELECT count(*) FROM site_private.quarantine, unnest(reasons) WHERE site_id = ?", [site_id]
    )[0][0]
    with (folder / "quarantine.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == expected
    # No pseudonymous key: a site's folder cannot be joined with the analysts' file.
    keys = {key for (key,) in query_db(tiers.analyst_db, "SELECT patient_key FROM patients")}
    assert not any(key in text for key in keys for text in texts.values())


def test_site_folders_are_private_to_the_owner_and_group(tiers: RegistryRun) -> None:
    sites = tiers.analyst_db.parent / "reports" / SITES_FOLDER
    assert stat.S_IMODE(sites.stat().st_mode) == 0o750
    for site_id in CANARIES:
        assert stat.S_IMODE((sites / site_id).stat().st_mode) == 0o750
        for path in (sites / site_id).iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_site_text_is_on_the_sites_page_and_not_on_the_cross_site_dashboard(tiers: RegistryRun) -> None:
    reports = tiers.analyst_db.parent / "reports"
    dashboard = (reports / "index.html").read_text(encoding="utf-8")
    assert _canaries_in(dashboard) == set()
    for site_id in CANARIES:
        assert f'href="sites/{site_id}/index.html"' in dashboard
    page = (reports / SITES_FOLDER / "site_02" / "index.html").read_text(encoding="utf-8")
    assert "CANARY02xK9998" in page  # why its export was rejected, in the site's own words
    assert "CANARY01xK9999" in (reports / SITES_FOLDER / "site_01" / "columns_not_read.csv").read_text()


# ---------------------------------------------------------------------------------------------------------
# Shareable aggregates.


def _aggregates(folder: Path) -> pl.DataFrame:
    return pl.read_csv(folder / METRICS_FILE, infer_schema_length=None)


def test_release_aggregates_have_no_small_cell_and_no_lone_suppressed_stratum(
    tiers: RegistryRun, tmp_path: Path
) -> None:
    release = make_release("r-shared", tiers.analyst_db, tmp_path / "releases", small_cell_count=K)
    shared = _aggregates(release / AGGREGATES_FOLDER)
    original = pl.DataFrame(
        query_db(tiers.analyst_db, "SELECT metric, stratum_type, stratum, numerator, denominator "
                 "FROM metrics.registry_metrics"),
        schema=["metric", "stratum_type", "stratum", "numerator", "denominator"], orient="row",
    )

    assert shared.columns[-1] == "suppressed" and shared.height == original.height
    shown = shared.filter(~pl.col("suppressed"))
    small = shown.filter(pl.col("numerator").is_between(1, K - 1) | pl.col("denominator").is_between(1, K - 1))
    assert small.height == 0
    blanked = shared.filter(pl.col("suppressed"))
    assert blanked.height > 0, "a two-site run of 30 patients has small cells: the test would prove nothing"
    assert blanked.select(pl.col("numerator", "denominator", "estimate", "ci_low", "ci_high").null_count().min())[
        0, 0] == blanked.height
    lone = (
        shared.filter(pl.col("stratum_type") != "overall")
        .group_by("metric", "stratum_type")
        .agg(pl.len().alias("strata"), pl.col("suppressed").sum().alias("blanked"))
        .filter((pl.col("blanked") == 1) & (pl.col("strata") > 1))
    )
    assert lone.height == 0, lone
    # Every small cell of the registry is among the blanked ones.
    was_small = original.filter(
        pl.col("numerator").is_between(1, K - 1) | pl.col("denominator").is_between(1, K - 1)
    ).select("metric", "stratum_type", "stratum")
    assert was_small.join(blanked, on=["metric", "stratum_type", "stratum"], how="anti").height == 0
    manifest = json.loads((release / "manifest.json").read_text(encoding="utf-8"))
    assert manifest[AGGREGATES_FOLDER]["small_cell_count"] == K
    assert verify_release("r-shared", tmp_path / "releases").ok


def test_small_cell_count_of_one_reproduces_the_unsuppressed_figures(tiers: RegistryRun, tmp_path: Path) -> None:
    write_aggregates(tiers.analyst_db, tmp_path / "k1", 1, "k = 1")
    shared = _aggregates(tmp_path / "k1")
    columns = ["metric", "stratum_type", "stratum", "numerator", "denominator", "estimate", "ci_low", "ci_high", "unit"]
    original = query_db(tiers.analyst_db, f"SELECT {', '.join(columns)} FROM metrics.registry_metrics")

    assert not shared["suppressed"].any()
    # The CSV keeps every digit: the figures come back exactly, not approximately.
    assert shared.select(columns).rows() == original


def test_a_changed_aggregates_file_fails_verification(tiers: RegistryRun, tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    release = make_release("r-tamper", tiers.analyst_db, releases)
    shared = release / AGGREGATES_FOLDER / METRICS_FILE
    shared.chmod(0o644)
    shared.write_text(shared.read_text(encoding="utf-8").replace("true", "false"), encoding="utf-8")

    problems = verify_release("r-tamper", releases).problems
    assert any(METRICS_FILE in p for p in problems), problems


def test_dashboard_forest_plot_shows_no_small_count(tiers: RegistryRun) -> None:
    html = (tiers.analyst_db.parent / "reports" / "index.html").read_text(encoding="utf-8")
    forest = html[html.index('id="metrics"'):]
    assert not re.search(rf"\b[1-{K - 1}]/\d+\b", forest)
    assert not re.search(rf"\b\d+/[1-{K - 1}]\b", forest)


def test_the_check_on_the_quarantine_counts_catches_a_count_that_disagrees(tiers: RegistryRun, tmp_path: Path) -> None:
    import shutil

    import duckdb

    from ketreg.quality.evaluator import evaluate
    from pipelines.checks import CHECKS, check_inputs
    from pipelines.resources import RegistrySettings

    (check,) = [c for c in CHECKS if c.name == "quarantine_counts_match_file_counts"]
    assert check.blocking
    copy = tmp_path / "work.duckdb"
    shutil.copyfile(tiers.work_db, copy)
    settings = RegistrySettings(landing_dir=str(tiers.landing), analyst_db=str(tiers.analyst_db))
    con = duckdb.connect(str(copy))
    try:
        evaluation = evaluate(con, check, check_inputs(settings))
        assert evaluation.violations == 0
        assert evaluation.checked > 0
        # One quarantined line left out of every count of its file: the check names that file.
        ((site_id, export_id, file_name, line),) = con.execute(
            "SELECT site_id, export_id, file_name, source_lines[1] FROM registry.quarantine ORDER BY ALL LIMIT 1"
        ).fetchall()
        con.execute(
            "UPDATE registry.quarantine SET source_lines = list_filter(source_lines, lambda l: l <> ?) "
            "WHERE site_id = ? AND export_id = ? AND file_name = ?",
            [line, site_id, export_id, file_name],
        )
        violations_sql = evaluate(con, check, check_inputs(settings)).violations_sql
        assert con.execute(
            f"SELECT site_id, export_id, file_name FROM ({violations_sql})"
        ).fetchall() == [(site_id, export_id, file_name)]
    finally:
        con.close()
