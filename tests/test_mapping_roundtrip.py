"""The same synthetic patients exported in every site shape (canonical CSV, Latin-1 semicolon CSV with
mg/kg/h and VAS, Excel workbook, REDCap flat CSV) give the same rows, through the committed demo mappings.

The staged rows are compared shape by shape; one real pipeline run compares the registry's rows too, apart
from lineage (site, export, file, line) and the pseudonymous keys, which depend on the site id."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl
import pytest
from support import run_registry
from test_mapping import stage_folder

from synthetic.shapes import SHAPES, write_shape
from synthetic.site import simulate_site
from synthetic.snapshot import snapshot
from synthetic.timeline import EXPORTS

ROOT = Path(__file__).resolve().parents[1]
DEMO_MAPPINGS = {"semicolon": "site_02_semicolon", "excel": "site_03_excel", "redcap": "site_04_redcap"}
EXPORT_ID = EXPORTS[-1].export_id
LINEAGE = ("site_id", "export_id", "source_file", "source_line")


@pytest.fixture(scope="module")
def site_tables() -> dict[str, pl.DataFrame]:
    # A site that weighs every patient, so every rate can be written per kg; the newest export.
    return snapshot(simulate_site(5, 2, 25, weighs_everyone=True), EXPORTS[-1].cutoff)


def _write_site(landing: Path, sites: Path, site_id: str, shape: str, tables: dict[str, pl.DataFrame]) -> Path:
    folder = landing / site_id / EXPORT_ID
    write_shape(shape, folder, tables, site_id)
    sites.mkdir(parents=True, exist_ok=True)
    if shape in DEMO_MAPPINGS:
        text = (ROOT / "sites" / f"{DEMO_MAPPINGS[shape]}.yaml").read_text(encoding="utf-8")
        (sites / f"{site_id}.yaml").write_text(re.sub(r"(?m)^site: .*$", f"site: {site_id}", text), encoding="utf-8")
    return folder


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "canonical"])
def test_each_shape_stages_exactly_the_rows_of_the_canonical_export(
    shape: str, site_tables: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    staged = {}
    for kind in ("canonical", shape):
        folder = _write_site(tmp_path / kind / "landing", tmp_path / kind / "sites", "site_rt", kind, site_tables)
        results = stage_folder(folder, tmp_path / kind / "sites", "site_rt")
        assert all(r.quarantined.height == 0 for r in results.values()), kind
        staged[kind] = {name: r.accepted.drop("source_line").sort(pl.all()) for name, r in results.items()}
    for table, canonical in staged["canonical"].items():
        assert canonical.height == site_tables[table].height
        assert staged[shape][table].equals(canonical), f"{shape}: {table} differs from the canonical export"


def test_source_lines_point_at_the_sites_own_file(site_tables: dict[str, pl.DataFrame], tmp_path: Path) -> None:
    folder = _write_site(tmp_path / "landing", tmp_path / "sites", "site_rt", "redcap", site_tables)
    results = stage_folder(folder, tmp_path / "sites", "site_rt")
    lines = (folder / "ketamine_registry_export.csv").read_text(encoding="utf-8").splitlines()
    for row in results["infusions"].accepted.head(5).iter_rows(named=True):
        line = lines[row["source_line"] - 1]
        assert line.startswith(f"{row['patient_id']},treatment_arm_1,infusion,") and row["infusion_id"] in line


def test_every_shape_gives_the_same_registry_rows_apart_from_lineage(
    site_tables: dict[str, pl.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, sites = tmp_path / "landing", tmp_path / "sites"
    for shape in SHAPES:
        _write_site(landing, sites, f"rt-{shape}", shape, site_tables)
    monkeypatch.setenv("KETREG_SITES_DIR", str(sites))
    run = run_registry(landing, tmp_path / "out")
    assert run.success, run.failures
    for table in ("patients", "infusions", "assessments", "adverse_events", "dispositions", "protocol_deviations"):
        con = duckdb.connect(str(run.analyst_db), read_only=True)
        try:
            rows = con.sql(f"FROM {table}").pl()
        finally:
            con.close()
        compared = [c for c in rows.columns if c not in LINEAGE and not c.endswith("_key")]
        by_site = {
            site: group.select(compared).sort(pl.all()) for (site,), group in rows.group_by("site_id")
        }
        assert set(by_site) == {f"rt-{s}" for s in SHAPES}, table
        for shape in SHAPES[1:]:
            assert by_site[f"rt-{shape}"].equals(by_site["rt-canonical"]), f"{table}: {shape} differs"
