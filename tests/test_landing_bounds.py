"""The landing layer's bounds, one at a time and fast: mapping files that could reach outside the export
folder or expand without bound, message caps, limits that reject before parsing, and the sensor's signature
never following a link. (The whole hostile landing, run end to end, is in test_hostile_landing.py.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from support import EXPORT_ID, canonical_rows, write_export

from ketreg.landing.discovery import scan_export
from ketreg.landing.limits import LimitsError, load_limits
from ketreg.landing.mapping import MappingError, load_mapping
from ketreg.landing.messages import MAX_MESSAGE_CHARS, bounded, names
from ketreg.landing.signature import export_signatures
from ketreg_app import cli

TABLES = ("patients", "infusions", "assessments", "adverse_events", "dispositions")


def _mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site_m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_mapping_with_yaml_aliases_is_refused(tmp_path: Path):
    tables = "\n".join(f"  {t}: {{file: {t}.csv}}" for t in TABLES)
    text = f"format: canonical\nmissing_codes: &codes [a, b]\nignore: *codes\ntables:\n{tables}\n"

    with pytest.raises(MappingError, match="aliases"):
        load_mapping(_mapping(tmp_path, text), "site_m")


@pytest.mark.parametrize("name", ["../site_b/2026-11-01/patients.csv", "/etc/passwd", "sub/patients.csv", ".."])
def test_a_mapping_file_name_cannot_leave_the_export_folder(tmp_path: Path, name: str):
    tables = {t: {"file": f"{t}.csv"} for t in TABLES}
    tables["patients"]["file"] = name
    text = yaml.safe_dump({"format": "canonical", "tables": tables})

    with pytest.raises(MappingError, match="must be the name of a file in the export folder"):
        load_mapping(_mapping(tmp_path, text), "site_m")


def test_messages_quote_names_only_as_far_as_needed():
    listed = names(f"column_{i}" for i in range(1_000_000))
    assert listed.endswith("… and 999,980 more") and len(listed) < 400
    assert names(["x" * 500]) == "x" * 63 + "…"
    assert names(["a\nb"]) == "a b"  # a name never breaks a message's line
    assert len(bounded("y" * 10_000_000)) <= MAX_MESSAGE_CHARS


def test_a_file_above_a_limit_is_rejected_before_it_is_parsed_naming_the_limit(tmp_path: Path):
    folder = write_export(tmp_path / "landing", "site_a")
    limits = replace(load_limits(), max_rows=3)

    export = scan_export("site_a", folder, tmp_path / "no-sites", limits)

    assert export.rejection is not None
    assert "infusions.csv: the number of lines is above the registry's limit of 3 (max_rows" in export.rejection
    assert "assessments.csv" in export.rejection  # every file over the limit is named, so all are fixed at once


def test_duplicated_header_columns_are_found_in_a_wide_header(tmp_path: Path):
    rows = canonical_rows()
    for index, row in enumerate(rows["patients"]):
        row.update({f"extra_{i}": "" for i in range(1500)})
        row["extra_7"] = str(index)
    folder = write_export(tmp_path / "landing", "site_a", rows=rows)
    text = (folder / "patients.csv").read_text(encoding="utf-8")
    header, rest = text.split("\n", 1)
    (folder / "patients.csv").write_text(header + ",sex,sex\n" + rest, encoding="utf-8")

    export = scan_export("site_a", folder, tmp_path / "no-sites")

    assert "column sex appears more than once" in export.rejection


def test_a_broken_limits_file_is_a_usage_error(tmp_path: Path, pseudonym_key: str, capsys):
    write_export(tmp_path / "landing", "site_a")
    (tmp_path / "limits.yaml").write_text("max_rows: lots\n", encoding="utf-8")
    with pytest.raises(LimitsError):
        load_limits(tmp_path / "limits.yaml")

    code = cli.main(["run", "--landing", str(tmp_path / "landing"), "--db", str(tmp_path / "out" / "r.duckdb"),
                     "--limits", str(tmp_path / "limits.yaml")])

    assert code == 2
    assert "limits.yaml" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_sensor_signature_never_follows_a_linked_export_or_file(tmp_path: Path):
    landing = tmp_path / "landing"
    write_export(landing, "site_a")
    (landing / "site_b").mkdir()
    (landing / "site_b" / EXPORT_ID).symlink_to(landing / "site_a" / EXPORT_ID, target_is_directory=True)
    (landing / "site_a\n").mkdir()

    before = export_signatures(landing, 0, tmp_path / "no-sites")
    (landing / "site_a" / EXPORT_ID / "patients.csv").write_text("patient_id\nPT-9\n", encoding="utf-8")
    after = export_signatures(landing, 0, tmp_path / "no-sites")

    # The linked export is noticed (its run rejects it), but what lies behind the link is never looked at.
    assert set(before) == set(after) == {f"site_a/{EXPORT_ID}", f"site_b/{EXPORT_ID}"}
    assert before[f"site_a/{EXPORT_ID}"] != after[f"site_a/{EXPORT_ID}"]
    assert before[f"site_b/{EXPORT_ID}"] == after[f"site_b/{EXPORT_ID}"]


def test_an_export_folder_swapped_for_a_link_after_the_scan_is_not_followed(tmp_path: Path):
    from ketreg.landing.discovery import scan_landing
    from ketreg.landing.exports import read_export
    from ketreg.landing.reader import UnreadableFile

    landing = tmp_path / "landing"
    write_export(landing, "site_a")
    other = canonical_rows()
    other["patients"][0]["patient_id"] = "PT-OTHER-SITE"
    elsewhere = write_export(tmp_path / "elsewhere", "site_x", rows=other)
    (export,) = scan_landing(landing, tmp_path / "no-sites").exports
    assert export.rejection is None

    # The site replaces its export folder by a link between the scan and the read.
    folder = landing / "site_a" / EXPORT_ID
    folder.rename(tmp_path / "moved")
    folder.symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(UnreadableFile, match="symbolic link"):
        read_export(export)


def test_check_export_reads_a_folder_the_site_reaches_through_its_own_link(tmp_path: Path):
    real = write_export(tmp_path / "real", "site_a")
    (tmp_path / "outbox").symlink_to(real, target_is_directory=True)

    export = scan_export("site_a", tmp_path / "outbox", tmp_path / "no-sites")

    assert export.rejection is None  # only the files themselves must not be links


def test_a_hard_link_to_a_file_elsewhere_is_refused(tmp_path: Path):
    landing = tmp_path / "landing"
    folder = write_export(landing, "site_a")
    elsewhere = write_export(tmp_path / "elsewhere", "site_x")
    (folder / "patients.csv").unlink()
    (folder / "patients.csv").hardlink_to(elsewhere / "patients.csv")

    export = scan_export("site_a", folder, tmp_path / "no-sites")

    assert "patients.csv is a hard link" in export.rejection
