"""Mapping files v2: `skip_if_empty` on a `rows:` selection (REDCap scores kept as fields of other instruments),
`not_recorded`, YAML errors with file, line, column and key path, and `ketreg run --sites-dir`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support import EXPORT_ID, query_db
from test_mapping import SITE, stage_folder

from ketreg.landing.discovery import scan_export
from ketreg.landing.exports import read_export
from ketreg.landing.mapping import MappingError, load_mapping
from ketreg_app.cli import main

# A REDCap project without a pain-assessment instrument: the baseline NPRS is a field of the baseline event's
# demographics row, the pre and post NPRS are fields of each infusion's row. P2 has no baseline score yet.
REDCAP_CSV = """\
record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,birth_year,cancer,cause,prior_np,\
bl_date,bl_nprs,inf_start,inf_end,rate_start,rate_max,done,pre_nprs,post_nprs,ae_term,ae_grade,ae_sae
P1,baseline_arm_1,,,1960,1,2,0,2025-01-02,8,,,,,,,,,,
P1,treatment_arm_1,infusion,1,,,,,,,2025-01-06 09:00,2025-01-06 13:00,10,25,1,8,3,,,
P1,treatment_arm_1,adverse_event,1,,,,,,,,,,,,,,nausea,1,0
P2,baseline_arm_1,,,1955,3,1,0,,,,,,,,,,,,
P2,treatment_arm_1,infusion,1,,,,,,,2025-01-07 09:00,2025-01-07 13:00,10,20,1,7,,,,
"""


def _mapping(skip: bool = True) -> dict[str, Any]:
    baseline_rows: dict[str, Any] = {"event": "baseline_arm_1", "instrument": ""}
    if skip:
        baseline_rows["skip_if_empty"] = True
    infusion_ids = {"patient_id": "record_id", "infusion_id": {"template": "{record_id}-I{redcap_repeat_instance}"}}
    return {
        "format": "redcap", "file": "export.csv", "datetime_format": "%Y-%m-%d %H:%M",
        "tables": {
            "patients": {
                "rows": {"event": "baseline_arm_1", "instrument": ""},
                "columns": {
                    "patient_id": "record_id", "birth_year": "birth_year",
                    "cancer_type": {"from": "cancer", "values": {"1": "breast", "3": "lung"}},
                    "cnp_etiology": {"from": "cause", "values": {"1": "tumor_compression", "2": "cipn"}},
                    "prior_neuropathy": {"from": "prior_np", "values": {"0": "false", "1": "true"}},
                },
                "not_recorded": ["sex", "weight_kg", "metastatic", "cnp_diagnosis_date"],
            },
            "infusions": {
                "rows": {"instrument": "infusion"},
                "columns": {**infusion_ids, "start_time": "inf_start", "end_time": "inf_end",
                            "initial_rate_mg_h": "rate_start", "max_rate_mg_h": "rate_max",
                            "completed": {"from": "done", "values": {"1": "true", "0": "false"}}},
            },
            "assessments": [
                {"rows": baseline_rows,
                 "columns": {"assessment_id": {"template": "{record_id}-BL"}, "patient_id": "record_id",
                             "assessed_at": {"from": "bl_date", "format": "%Y-%m-%d"},
                             "timepoint": {"constant": "baseline"}, "nprs": "bl_nprs"}},
                {"rows": {"instrument": "infusion", "skip_if_empty": ["nprs"]},
                 "columns": {**infusion_ids, "assessment_id": {"template": "{record_id}-I{redcap_repeat_instance}-PRE"},
                             "assessed_at": "inf_start", "timepoint": {"constant": "pre"}, "nprs": "pre_nprs"}},
                {"rows": {"instrument": "infusion", "skip_if_empty": ["nprs"]},
                 "columns": {**infusion_ids,
                             "assessment_id": {"template": "{record_id}-I{redcap_repeat_instance}-POST"},
                             "assessed_at": "inf_end", "timepoint": {"constant": "post"}, "nprs": "post_nprs"}},
            ],
            "adverse_events": {
                "rows": {"instrument": "adverse_event"},
                "columns": {"patient_id": "record_id", "ae_id": {"template": "{record_id}-E{redcap_repeat_instance}"},
                            "infusion_id": {"template": "{record_id}-I1"}, "term": "ae_term", "grade": "ae_grade",
                            "serious": {"from": "ae_sae", "values": {"0": "false", "1": "true"}},
                            "action_taken": {"constant": "none"}, "outcome": {"constant": "resolved"}},
            },
        },
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a shared dict out in full each time: mapping files refuse YAML aliases (docs/security.md)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _site(tmp_path: Path, mapping: dict[str, Any] | str) -> tuple[Path, Path]:
    folder = tmp_path / "landing" / SITE / EXPORT_ID
    folder.mkdir(parents=True)
    (folder / "export.csv").write_text(REDCAP_CSV, encoding="utf-8")
    sites = tmp_path / "sites"
    sites.mkdir()
    text = mapping if isinstance(mapping, str) else yaml.dump(mapping, Dumper=_NoAliasDumper, sort_keys=False)
    (sites / f"{SITE}.yaml").write_text(text, encoding="utf-8")
    return folder, sites


def test_skip_if_empty_skips_a_row_without_a_score_and_says_so(tmp_path: Path) -> None:
    folder, sites = _site(tmp_path, _mapping(skip=True))
    read = read_export(scan_export(SITE, folder, sites))
    assessments = read.frames["assessments"]
    assert sorted(assessments["assessment_id"].to_list()) == ["P1-BL", "P1-I1-POST", "P1-I1-PRE", "P2-I1-PRE"]
    # Lines stay the site's own (P1's infusion row is line 3 of the file).
    assert dict(zip(assessments["assessment_id"], assessments["source_line"], strict=True))["P1-I1-POST"] == 3
    skipped = [n for n in read.notices if "skip_if_empty" in n]
    assert len(skipped) == 2  # P2's baseline row, and P2's infusion row for the post score
    assert "1 row(s) selected for assessments.csv (tables.assessments[0].rows) had assessed_at, nprs all empty" \
        in skipped[0]
    results = stage_folder(folder, sites)
    assert sum(r.quarantined.height for r in results.values()) == 0
    assert results["assessments"].accepted.height == 4


def test_without_skip_if_empty_the_empty_baseline_row_is_quarantined(tmp_path: Path) -> None:
    folder, sites = _site(tmp_path, _mapping(skip=False))
    results = stage_folder(folder, sites)
    quarantined = results["assessments"].quarantined
    assert quarantined["record_id"].to_list() == ["P2-BL"]


def test_not_recorded_silences_the_absent_optional_notice_and_is_checked(tmp_path: Path) -> None:
    folder, sites = _site(tmp_path, _mapping())
    read = read_export(scan_export(SITE, folder, sites))
    patients_notices = [n for n in read.notices if "patients.csv have no source" in n]
    assert patients_notices == []
    infusions_notice = next(n for n in read.notices if "of infusions.csv have no source" in n)
    assert "total_dose_mg" in infusions_notice  # not declared: still said

    broken = _mapping()
    broken["tables"]["patients"]["not_recorded"] = ["birth_year", "shoe_size"]
    (sites / f"{SITE}.yaml").write_text(yaml.dump(broken, Dumper=_NoAliasDumper, sort_keys=False), encoding="utf-8")
    with pytest.raises(MappingError) as error:
        load_mapping(sites / f"{SITE}.yaml", SITE)
    message = str(error.value)
    assert "not_recorded: birth_year is required by the contract" in message
    assert "'shoe_size' is not a column of patients.csv" in message


def test_a_yaml_syntax_error_names_file_line_column_and_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = yaml.dump(_mapping(), Dumper=_NoAliasDumper, sort_keys=False)
    # An unquoted column name with ": " in it, as a site's REDCap label might have.
    text = text.replace("      birth_year: birth_year\n", "      birth_year: Year of birth: yyyy\n")
    folder, sites = _site(tmp_path, text)
    line = text.splitlines().index("      birth_year: Year of birth: yyyy") + 1
    code = main(["check-export", str(folder), "--site", SITE, "--sites-dir", str(sites)])
    out = capsys.readouterr().out
    assert code == 2
    assert "Mapping file sites/site_m.yaml cannot be used" in out
    assert "Read as the canonical contract" not in out
    assert f"sites/site_m.yaml: not valid YAML at line {line}, column 32 (under tables.patients.columns)" in out
    assert "must be quoted" in out


def test_a_problem_in_a_valid_yaml_file_names_its_line(tmp_path: Path) -> None:
    mapping = _mapping()
    mapping["tables"]["patients"]["columns"]["sex"] = {"from": "sex", "unit": "kg"}
    _, sites = _site(tmp_path, mapping)
    text = (sites / f"{SITE}.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    line = lines.index("        unit: kg", lines.index("      sex:")) + 1  # the deepest key the problem names
    with pytest.raises(MappingError, match=rf"line {line}: tables\.patients\.columns\.sex\.unit: 'kg'"):
        load_mapping(sites / f"{SITE}.yaml", SITE)


@pytest.mark.slow
def test_run_reads_mappings_from_sites_dir(tmp_path: Path, pseudonym_key: str) -> None:
    _, sites = _site(tmp_path, _mapping())
    db = tmp_path / "out" / "registry.duckdb"
    assert main(["run", "--landing", str(tmp_path / "landing"), "--db", str(db), "--sites-dir", str(sites)]) == 0
    assert query_db(db, "SELECT count(*) FROM assessments") == [(4,)]
    assert query_db(db, "SELECT status FROM exports") == [("accepted",)]
