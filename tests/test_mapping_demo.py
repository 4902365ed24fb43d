"""The demo's sites: `python -m synthetic generate --shapes canonical,semicolon,excel,redcap` writes exports that the
committed mappings in `sites/` read, and its fault manifest stays exact, by the site's own lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ketreg.landing.discovery import scan_landing
from ketreg.landing.exports import read_export
from ketreg.landing.mapping import load_mapping
from ketreg.landing.reader import UnreadableFile
from ketreg.staging.stage import validate_tables
from schemas.protocol import load_protocol
from synthetic import generate_landing

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ("canonical", "semicolon", "excel", "redcap")
REFERENCE_RULES = {"patient_exists", "infusion_exists", "infusion_belongs_to_patient", "parent_quarantined"}


@pytest.mark.parametrize("path", sorted((ROOT / "sites").glob("*.yaml")), ids=lambda p: p.name)
def test_committed_mappings_load(path: Path) -> None:
    assert load_mapping(path, path.stem).site_id == path.stem


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], dict]:
    landing = tmp_path_factory.mktemp("demo") / "landing"
    generate_landing(landing, sites=4, patients_per_site=30, seed=7, error_rate=0.05, shapes=SHAPES)
    faults = json.loads((landing / ".generator-manifest.json").read_text(encoding="utf-8"))["faults"]
    quarantined: dict = {}
    rejected: dict = {}
    for export in scan_landing(landing, ROOT / "sites").exports:
        try:
            assert export.rejection is None, export.rejection
            read = read_export(export)
        except (AssertionError, UnreadableFile) as exc:
            rejected[(export.site_id, export.export_id)] = str(exc)
            continue
        raw = {name: [frame] for name, frame in read.frames.items()}
        extra = {name: [f] for name, f in read.failures.items()}
        for table, _, result in validate_tables(raw, extra, load_protocol(None)):
            for row in result.quarantined.iter_rows(named=True):
                key = (row["site_id"], row["export_id"], table.file_name, row["source_line"])
                quarantined[key] = row["reasons"]
    return landing, faults, {"quarantined": quarantined, "rejected": rejected}


def test_demo_has_a_site_of_every_shape(demo) -> None:
    landing, _, _ = demo
    assert sorted(p.name for p in landing.iterdir() if p.is_dir()) == [
        "site_01", "site_02_semicolon", "site_03_excel", "site_04_redcap",
    ]
    assert (landing / "site_03_excel" / "2026-11-01" / "registry.xlsx").is_file()


def test_only_the_export_with_a_dropped_column_is_rejected(demo) -> None:
    _, faults, outcome = demo
    whole = {(f["site_id"], f["export_id"]) for f in faults if f["kind"] == "missing_required_column"}
    assert set(outcome["rejected"]) == whole == {("site_04_redcap", "2026-10-01")}
    assert "column 'inf_rate_max'" in outcome["rejected"][("site_04_redcap", "2026-10-01")]


def test_every_listed_fault_is_quarantined_at_the_sites_own_line_naming_its_column(demo) -> None:
    _, faults, outcome = demo
    row_faults = [
        f for f in faults if f["source_line"] > 1 and (f["site_id"], f["export_id"]) not in outcome["rejected"]
    ]
    assert {f["site_id"] for f in row_faults} == {"site_01", "site_02_semicolon", "site_03_excel", "site_04_redcap"}
    for fault in row_faults:
        key = (fault["site_id"], fault["export_id"], fault["file"], fault["source_line"])
        assert key in outcome["quarantined"], fault
        named = {c for r in outcome["quarantined"][key] for c in r["column"].split(",")}
        assert fault["column"] in named, (fault, outcome["quarantined"][key])


def test_nothing_else_is_quarantined_for_a_reason_of_its_own(demo) -> None:
    _, faults, outcome = demo
    listed = {(f["site_id"], f["export_id"], f["file"], f["source_line"]) for f in faults}
    listed |= {
        (f["site_id"], f["export_id"], f["file"], f["duplicates_line"]) for f in faults if "duplicates_line" in f
    }
    unexplained = {
        key: reasons for key, reasons in outcome["quarantined"].items()
        if key not in listed and not {r["rule"] for r in reasons} <= REFERENCE_RULES
    }
    assert unexplained == {}


def test_cli_generate_hands_the_shapes_to_the_sites_in_turn(tmp_path: Path, capsys) -> None:
    from synthetic.cli import main

    code = main(["generate", "--out", str(tmp_path), "--sites", "3", "--patients-per-site", "5",
                 "--shapes", "excel,redcap"])
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["site_01_excel", "site_02_redcap",
                                                                        "site_03_excel"]
    with pytest.raises(ValueError, match="shapes must be some of canonical, semicolon, excel, redcap"):
        generate_landing(tmp_path / "other", sites=1, patients_per_site=5, shapes=("xml",))
