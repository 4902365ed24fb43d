"""The synthetic landing generator: deterministic, valid without faults, exact about the faults it injects,
and clinically like the study it imitates (Oh et al., Pain Medicine 2021).

The checks of the contract below are written here on purpose, apart from both the generator and the
pipeline's schemas, so that the generator cannot pass by agreeing with itself.
"""

from __future__ import annotations

import json
import re
import time
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from schemas.identifiers import looks_like_identifier
from synthetic import GenerationSummary, generate_landing

TABLES = ("patients", "infusions", "assessments", "adverse_events", "dispositions")
HEADERS = {
    "patients": (
        "patient_id,sex,birth_year,weight_kg,cancer_type,metastatic,cnp_etiology,prior_neuropathy,cnp_diagnosis_date"
    ),
    "infusions": (
        "infusion_id,patient_id,start_time,end_time,initial_rate_mg_h,max_rate_mg_h,total_dose_mg,"
        "completed,stop_reason,relief_duration_days"
    ),
    "assessments": (
        "assessment_id,patient_id,infusion_id,assessed_at,timepoint,nprs,function_score,satisfaction,"
        "daily_mme,subjective_improvement"
    ),
    "adverse_events": ("ae_id,patient_id,infusion_id,onset_time,term,category,grade,serious,action_taken,outcome"),
    "dispositions": "patient_id,event_date,status,reason",
}
EXPORT_IDS = ("2026-10-01", "2026-11-01")
EARLIER, NEWEST = EXPORT_IDS
MANIFEST = ".generator-manifest.json"

SEXES = ("F", "M", "X", "U")
CANCER_TYPES = (
    "breast", "nerve_sheath_tumor", "lung", "colorectal", "prostate", "pancreatic", "hematologic",
    "head_and_neck", "gynecologic", "sarcoma", "other",
)  # fmt: skip
ETIOLOGIES = ("tumor_compression", "cipn", "surgery", "radiation", "other")
STOP_REASONS = ("adverse_event", "patient_request", "clinical_decision", "other")
TIMEPOINTS = ("baseline", "pre", "post", "follow_up")
TERM_CATEGORY = {
    **dict.fromkeys(("headache", "dizziness", "somnolence", "diplopia"), "neurological"),
    **dict.fromkeys(("hallucination", "dysphoria", "anxiety"), "psychiatric"),
    **dict.fromkeys(("nausea", "vomiting"), "gastrointestinal"),
    **dict.fromkeys(("hypertension", "tachycardia", "hypotension", "bradycardia"), "cardiovascular"),
    "desaturation": "respiratory",
    "other": "other",
}
CATEGORIES = ("neurological", "psychiatric", "gastrointestinal", "cardiovascular", "respiratory", "other")
ACTIONS = ("none", "rate_reduced", "infusion_stopped", "prn_medication")
OUTCOMES = ("resolved", "resolving", "not_resolved", "fatal", "unknown")
STATUSES = ("continuing", "discontinued", "interrupted", "resumed")
REASONS = (
    "unsatisfactory_relief", "adverse_event", "external_interruption", "patient_choice", "death",
    "lost_to_follow_up", "other",
)  # fmt: skip
BOOLEANS = ("true", "false")
PLAUSIBLE_RATE_MG_H = 150

# Every row fault the brief asks for, by file. Each name is also the rule the test's validator reports.
ROW_FAULT_KINDS = {
    "patients.csv": {
        "missing_id", "duplicate_id", "invalid_sex", "birth_year_out_of_range", "birth_year_not_a_number",
        "weight_out_of_range", "invalid_cancer_type", "invalid_cnp_etiology", "missing_prior_neuropathy",
        "prior_neuropathy_not_boolean", "date_in_future", "date_wrong_format",
    },
    "infusions.csv": {
        "duplicate_id", "unknown_patient", "end_before_start", "duration_over_12h", "rate_not_positive",
        "max_below_initial", "rate_above_plausible", "dose_above_max", "missing_completed",
        "invalid_stop_reason", "negative_relief_duration", "unparseable_datetime",
    },
    "assessments.csv": {
        "duplicate_id", "unknown_patient", "unknown_infusion", "missing_assessed_at", "invalid_timepoint",
        "nprs_out_of_range", "nprs_not_integer", "function_score_out_of_range", "satisfaction_out_of_range",
        "daily_mme_out_of_range", "invalid_subjective_improvement",
    },
    "adverse_events.csv": {
        "duplicate_id", "infusion_of_other_patient", "unknown_term", "category_contradicts_term",
        "grade_out_of_range", "missing_serious", "invalid_action_taken", "invalid_outcome",
    },
    "dispositions.csv": {"unknown_patient", "missing_event_date", "invalid_status", "invalid_reason"},
}  # fmt: skip
# Rules about references to another file: a row can break them because its parent row is faulty.
REFERENCE_RULES = {"unknown_patient", "unknown_infusion", "infusion_of_other_patient"}

INTEGER = r"^-?[0-9]+$"
DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"
DATETIME = "%Y-%m-%dT%H:%M:%S"


# --- an independent reading of the contract ------------------------------------------------------------


def read_export(folder: Path) -> dict[str, pl.DataFrame]:
    """Every file of an export as text; an empty cell reads as null."""
    return {table: pl.read_csv(folder / f"{table}.csv", infer_schema=False) for table in TABLES}


def _int(column: str) -> pl.Expr:
    return pl.when(pl.col(column).str.contains(INTEGER)).then(pl.col(column).cast(pl.Int64, strict=False))


def _dec(column: str) -> pl.Expr:
    return pl.when(pl.col(column).str.contains(DECIMAL)).then(pl.col(column).cast(pl.Float64, strict=False))


def _datetime(column: str) -> pl.Expr:
    return pl.col(column).str.strptime(pl.Datetime, DATETIME, strict=False)


def _outside(column: str, codes: tuple[str, ...]) -> pl.Expr:
    return pl.col(column).is_not_null() & ~pl.col(column).is_in(codes)


def _required_code(column: str, codes: tuple[str, ...]) -> pl.Expr:
    return pl.col(column).is_null() | ~pl.col(column).is_in(codes)


def _repeated(column: str) -> pl.Expr:
    return pl.col(column).is_not_null() & ~pl.col(column).is_first_distinct()


def _not_number(column: str, pattern: str) -> pl.Expr:
    return pl.col(column).is_not_null() & ~pl.col(column).str.contains(pattern)


def _score_rules(column: str) -> dict[str, pl.Expr]:
    return {
        f"{column}_out_of_range": (_int(column) < 0) | (_int(column) > 10),
        f"{column}_not_integer": _not_number(column, INTEGER),
    }


def violations(tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """For every file, one boolean column per rule: true where the row breaks it."""
    today = date.today()
    patients, infusions = tables["patients"], tables["infusions"]
    patient_ids = patients["patient_id"].drop_nulls().to_list()
    infusion_ids = infusions["infusion_id"].drop_nulls().to_list()
    owners = infusions.filter(pl.col("infusion_id").is_first_distinct() & pl.col("infusion_id").is_not_null())
    owner = pl.col("infusion_id").replace_strict(owners["infusion_id"], owners["patient_id"], default=None)
    unknown_patient = pl.col("patient_id").is_null() | ~pl.col("patient_id").is_in(patient_ids)
    diagnosis = pl.col("cnp_diagnosis_date").str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    start, end = _datetime("start_time"), _datetime("end_time")
    hours = (end - start).dt.total_seconds() / 3600
    initial, peak, dose = _dec("initial_rate_mg_h"), _dec("max_rate_mg_h"), _dec("total_dose_mg")
    mme = _dec("daily_mme")
    rules: dict[str, dict[str, pl.Expr]] = {
        "patients": {
            "missing_id": pl.col("patient_id").is_null(),
            "duplicate_id": _repeated("patient_id"),
            "invalid_sex": _outside("sex", SEXES),
            "birth_year_not_a_number": _not_number("birth_year", INTEGER) | pl.col("birth_year").is_null(),
            "birth_year_out_of_range": (_int("birth_year") < 1900) | (_int("birth_year") > today.year),
            "weight_out_of_range": _not_number("weight_kg", DECIMAL)
            | (_dec("weight_kg") < 25)
            | (_dec("weight_kg") > 300),
            "invalid_cancer_type": _required_code("cancer_type", CANCER_TYPES),
            "invalid_cnp_etiology": _required_code("cnp_etiology", ETIOLOGIES),
            "missing_prior_neuropathy": pl.col("prior_neuropathy").is_null(),
            "prior_neuropathy_not_boolean": _outside("prior_neuropathy", BOOLEANS),
            "metastatic_not_boolean": _outside("metastatic", BOOLEANS),
            "date_wrong_format": pl.col("cnp_diagnosis_date").is_not_null() & diagnosis.is_null(),
            "date_in_future": diagnosis > today,
        },
        "infusions": {
            "missing_id": pl.col("infusion_id").is_null(),
            "duplicate_id": _repeated("infusion_id"),
            "unknown_patient": unknown_patient,
            "missing_datetime": pl.col("start_time").is_null() | pl.col("end_time").is_null(),
            "unparseable_datetime": (pl.col("start_time").is_not_null() & start.is_null())
            | (pl.col("end_time").is_not_null() & end.is_null()),
            "end_before_start": end <= start,
            "duration_over_12h": hours > 12,
            "rate_not_a_number": _not_number("initial_rate_mg_h", DECIMAL)
            | _not_number("max_rate_mg_h", DECIMAL)
            | pl.col("initial_rate_mg_h").is_null()
            | pl.col("max_rate_mg_h").is_null(),
            "rate_not_positive": (initial <= 0) | (peak <= 0),
            "max_below_initial": peak < initial,
            "rate_above_plausible": (initial > PLAUSIBLE_RATE_MG_H) | (peak > PLAUSIBLE_RATE_MG_H),
            "dose_above_max": _not_number("total_dose_mg", DECIMAL) | (dose < 0) | (dose > peak * hours + 1e-6),
            "missing_completed": pl.col("completed").is_null(),
            "completed_not_boolean": _outside("completed", BOOLEANS),
            "invalid_stop_reason": _outside("stop_reason", STOP_REASONS),
            "negative_relief_duration": _int("relief_duration_days") < 0,
            "relief_not_integer": _not_number("relief_duration_days", INTEGER),
        },
        "assessments": {
            "missing_id": pl.col("assessment_id").is_null(),
            "duplicate_id": _repeated("assessment_id"),
            "unknown_patient": unknown_patient,
            "unknown_infusion": pl.col("infusion_id").is_not_null() & ~pl.col("infusion_id").is_in(infusion_ids),
            "infusion_of_other_patient": pl.col("infusion_id").is_not_null() & (owner != pl.col("patient_id")),
            "missing_assessed_at": pl.col("assessed_at").is_null(),
            "unparseable_datetime": pl.col("assessed_at").is_not_null() & _datetime("assessed_at").is_null(),
            "invalid_timepoint": _required_code("timepoint", TIMEPOINTS),
            **_score_rules("nprs"),
            **_score_rules("function_score"),
            **_score_rules("satisfaction"),
            "daily_mme_out_of_range": _not_number("daily_mme", DECIMAL) | (mme < 0) | (mme > 2000),
            "invalid_subjective_improvement": _outside("subjective_improvement", BOOLEANS),
        },
        "adverse_events": {
            "missing_id": pl.col("ae_id").is_null(),
            "duplicate_id": _repeated("ae_id"),
            "unknown_patient": unknown_patient,
            "unknown_infusion": pl.col("infusion_id").is_null() | ~pl.col("infusion_id").is_in(infusion_ids),
            "infusion_of_other_patient": owner != pl.col("patient_id"),
            "unparseable_datetime": pl.col("onset_time").is_not_null() & _datetime("onset_time").is_null(),
            "unknown_term": _required_code("term", tuple(TERM_CATEGORY)),
            "invalid_category": _outside("category", CATEGORIES),
            "category_contradicts_term": pl.col("category").is_not_null()
            & (pl.col("term") != "other")
            & (pl.col("category") != pl.col("term").replace_strict(TERM_CATEGORY, default=None)),
            "grade_out_of_range": (_int("grade") < 1) | (_int("grade") > 5) | _not_number("grade", INTEGER),
            "missing_serious": pl.col("serious").is_null(),
            "serious_not_boolean": _outside("serious", BOOLEANS),
            "invalid_action_taken": _required_code("action_taken", ACTIONS),
            "invalid_outcome": _required_code("outcome", OUTCOMES),
        },
        "dispositions": {
            "unknown_patient": unknown_patient,
            "missing_event_date": pl.col("event_date").is_null(),
            "unparseable_date": pl.col("event_date").is_not_null()
            & pl.col("event_date").str.strptime(pl.Date, "%Y-%m-%d", strict=False).is_null(),
            "invalid_status": _required_code("status", STATUSES),
            "invalid_reason": _outside("reason", REASONS),
        },
    }
    return {
        table: tables[table].select(expr.fill_null(False).alias(rule) for rule, expr in table_rules.items())
        for table, table_rules in rules.items()
    }


def broken_rules(checked: pl.DataFrame, row: int) -> set[str]:
    return {rule for rule, broken in checked.row(row, named=True).items() if broken}


def read_manifest(landing: Path) -> dict[str, Any]:
    return json.loads((landing / MANIFEST).read_text(encoding="utf-8"))


def exports(summary: GenerationSummary) -> list[Path]:
    return [summary.out_dir / site / export for site, export in summary.exports]


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> GenerationSummary:
    return generate_landing(tmp_path_factory.mktemp("clean") / "landing")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> GenerationSummary:
    return generate_landing(tmp_path_factory.mktemp("faulty") / "landing", error_rate=0.05)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    """The newest exports of a larger error-free run, stacked over sites, with a `site` column."""
    summary = generate_landing(tmp_path_factory.mktemp("cohort") / "landing", sites=6, patients_per_site=500, seed=2024)
    stacked: dict[str, list[pl.DataFrame]] = {table: [] for table in TABLES}
    for site, export in summary.exports:
        if export == NEWEST:
            for table, frame in read_export(summary.out_dir / site / export).items():
                stacked[table].append(frame.with_columns(pl.lit(site).alias("site")))
    return {table: pl.concat(frames) for table, frames in stacked.items()}


# --- determinism and layout ---------------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_arguments_give_byte_identical_files(faulty: GenerationSummary, tmp_path: Path) -> None:
    again = generate_landing(tmp_path / "landing", error_rate=0.05)
    assert _files(again.out_dir) == _files(faulty.out_dir)


def test_another_seed_gives_other_data(clean: GenerationSummary, tmp_path: Path) -> None:
    other = generate_landing(tmp_path / "landing", seed=8)
    first, second = _files(clean.out_dir), _files(other.out_dir)
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] for name in first if name.endswith(".csv"))


def test_each_site_has_an_earlier_and_a_newest_export_with_the_contract_headers(
    clean: GenerationSummary,
) -> None:
    assert clean.sites == ["site_01", "site_02", "site_03", "site_04"]
    assert clean.exports == [(site, export) for site in clean.sites for export in EXPORT_IDS]
    assert sorted(EXPORT_IDS) == list(EXPORT_IDS)
    for site in clean.sites:
        assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", site)
        assert sorted(p.name for p in (clean.out_dir / site).iterdir()) == list(EXPORT_IDS)
    for folder in exports(clean):
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t}.csv" for t in TABLES)
        for table in TABLES:
            text = (folder / f"{table}.csv").read_text(encoding="utf-8")
            assert text.split("\n", 1)[0] == HEADERS[table]
            assert "\r" not in text and text.endswith("\n")
    assert sorted(p.name for p in clean.out_dir.iterdir()) == [MANIFEST, *clean.sites]


def test_summary_and_manifest_count_the_rows_written(clean: GenerationSummary) -> None:
    counted = dict.fromkeys(TABLES, 0)
    for folder in exports(clean):
        for table in TABLES:
            counted[table] += (folder / f"{table}.csv").read_text(encoding="utf-8").count("\n") - 1
    assert clean.rows_written == counted
    manifest = read_manifest(clean.out_dir)
    assert manifest["arguments"] == {"sites": 4, "patients_per_site": 60, "seed": 7, "error_rate": 0.0}
    assert manifest["rows_written"] == counted
    assert manifest["faults"] == [] and clean.faults_injected == 0
    assert clean.manifest_path == clean.out_dir / MANIFEST


def test_a_new_run_removes_the_exports_an_earlier_run_wrote_and_nothing_else(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generate_landing(landing, sites=3, patients_per_site=5)
    (landing / "notes.txt").write_text("kept", encoding="utf-8")
    (landing / "site_03" / "kept.txt").write_text("kept", encoding="utf-8")
    generate_landing(landing, sites=2, patients_per_site=5)
    assert sorted(p.name for p in landing.iterdir()) == [MANIFEST, "notes.txt", "site_01", "site_02", "site_03"]
    assert [p.name for p in (landing / "site_03").iterdir()] == ["kept.txt"]
    generate_landing(landing, sites=1, patients_per_site=5)
    assert not (landing / "site_02").exists()


def test_default_run_takes_well_under_two_seconds(tmp_path: Path) -> None:
    started = time.perf_counter()
    generate_landing(tmp_path / "landing", error_rate=0.05)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    "arguments",
    [{"sites": 0}, {"patients_per_site": 0}, {"error_rate": -0.1}, {"error_rate": 1.5}, {"seed": -1}],
)
def test_impossible_arguments_are_refused(arguments: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_landing(tmp_path / "landing", **arguments)


# --- validity without faults -----------------------------------------------------------------------------


def test_without_faults_every_row_of_every_export_is_valid(clean: GenerationSummary) -> None:
    for folder in exports(clean):
        for table, checked in violations(read_export(folder)).items():
            broken = {rule: n for rule, n in checked.sum().row(0, named=True).items() if n}
            assert not broken, f"{folder}/{table}.csv breaks {broken}"


def test_the_earlier_export_holds_only_what_happened_before_its_cutoff(clean: GenerationSummary) -> None:
    for site in clean.sites:
        earlier = read_export(clean.out_dir / site / EARLIER)
        newest = read_export(clean.out_dir / site / NEWEST)
        assert (earlier["infusions"]["start_time"] < EARLIER).all()
        assert (earlier["dispositions"]["event_date"] < EARLIER).all()
        assert (newest["infusions"]["start_time"] < NEWEST).all()
        assert (newest["assessments"]["assessed_at"] < NEWEST).all()
        assert newest["infusions"]["start_time"].max() >= EARLIER  # the newest export has more to say
        for table, key in (
            ("infusions", "infusion_id"),
            ("assessments", "assessment_id"),
            ("adverse_events", "ae_id"),
        ):
            assert set(earlier[table][key]) <= set(newest[table][key])
        assert earlier["patients"].height <= newest["patients"].height


def test_first_infusions_fall_in_the_calendar_window(clean: GenerationSummary) -> None:
    for site in clean.sites:
        infusions = read_export(clean.out_dir / site / NEWEST)["infusions"]
        first = infusions.group_by("patient_id").agg(pl.col("start_time").min())["start_time"]
        assert first.min() >= "2024-01-01" and first.max() < "2026-10-01"


# --- faults ----------------------------------------------------------------------------------------------


def _row_faults(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [fault for fault in manifest["faults"] if fault["source_line"] > 1]


def test_with_five_percent_errors_every_fault_kind_appears(faulty: GenerationSummary) -> None:
    faults = read_manifest(faulty.out_dir)["faults"]
    seen: dict[str, set[str]] = {}
    for fault in faults:
        seen.setdefault(fault["file"], set()).add(fault["kind"])
    for file, kinds in ROW_FAULT_KINDS.items():
        assert kinds <= seen.get(file, set()), f"{file}: missing {kinds - seen.get(file, set())}"
    assert faulty.faults_injected == len(faults)


def test_with_enough_rows_every_fault_kind_appears_in_both_exports(tmp_path: Path) -> None:
    summary = generate_landing(tmp_path / "landing", sites=2, patients_per_site=400, seed=3, error_rate=0.05)
    for export in EXPORT_IDS:
        seen = {(f["file"], f["kind"]) for f in read_manifest(summary.out_dir)["faults"] if f["export_id"] == export}
        expected = {(file, kind) for file, kinds in ROW_FAULT_KINDS.items() for kind in kinds}
        assert expected <= seen, f"{export}: missing {expected - seen}"


def test_faults_change_exactly_the_rows_the_manifest_lists(clean: GenerationSummary, faulty: GenerationSummary) -> None:
    listed: dict[tuple[str, str, str], set[int]] = {}
    for fault in _row_faults(read_manifest(faulty.out_dir)):
        listed.setdefault((fault["site_id"], fault["export_id"], fault["file"]), set()).add(fault["source_line"])
    for site, export in faulty.exports:
        before = read_export(clean.out_dir / site / export)
        after = read_export(faulty.out_dir / site / export)
        for table in TABLES:
            columns = [c for c in before[table].columns if c in after[table].columns]
            assert after[table].height == before[table].height
            same = pl.DataFrame({c: before[table][c].eq_missing(after[table][c]) for c in columns}).select(
                pl.all_horizontal(pl.all())
            )
            changed = {line for line, unchanged in enumerate(same.to_series(), start=2) if not unchanged}
            assert changed == listed.get((site, export, f"{table}.csv"), set()), f"{site}/{export}/{table}.csv"


def test_every_listed_row_breaks_its_stated_rule_and_no_other(faulty: GenerationSummary) -> None:
    faults = _row_faults(read_manifest(faulty.out_dir))
    by_export: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for fault in faults:
        by_export.setdefault((fault["site_id"], fault["export_id"]), []).append(fault)
    for (site, export), export_faults in by_export.items():
        tables = read_export(faulty.out_dir / site / export)
        checked = violations(tables)
        for fault in export_faults:
            table = fault["file"].removesuffix(".csv")
            assert fault["column"] in tables[table].columns
            broken = broken_rules(checked[table], fault["source_line"] - 2)
            assert fault["kind"] in broken, f"{fault} breaks {broken}"
            # Only a reference to a faulty parent row may break a second rule (the pipeline quarantines
            # such children as a consequence, not as a fault of their own).
            assert broken - {fault["kind"]} <= REFERENCE_RULES, f"{fault} also breaks {broken}"
            if fault["kind"] == "infusion_of_other_patient":
                assert "unknown_infusion" not in broken
            if fault["kind"] == "duplicate_id":
                original = fault["duplicates_line"]
                key = tables[table].columns[0]
                assert original < fault["source_line"]
                assert tables[table][key][original - 2] == tables[table][key][fault["source_line"] - 2]


def test_the_rejected_export_is_the_only_whole_file_fault_and_no_export_carries_identifiers(
    faulty: GenerationSummary,
) -> None:
    manifest = read_manifest(faulty.out_dir)
    whole_file = [f for f in manifest["faults"] if f["source_line"] == 1]
    last = faulty.sites[-1]
    assert whole_file == [
        {"site_id": last, "export_id": EARLIER, "file": "infusions.csv", "source_line": 1,
         "kind": "missing_required_column", "column": "max_rate_mg_h"},
    ]  # fmt: skip
    rejected = read_export(faulty.out_dir / last / EARLIER)
    assert "max_rate_mg_h" not in rejected["infusions"].columns
    # A rejected export is rejected whole: none of its rows is listed as a fault of its own.
    assert not [f for f in _row_faults(manifest) if (f["site_id"], f["export_id"]) == (last, EARLIER)]
    # A site's pre-flight refuses identifier-like columns, so the generator never writes one (the demo
    # must not teach sites to send names).
    for site in faulty.sites:
        for export in (EARLIER, NEWEST):
            for table, frame in read_export(faulty.out_dir / site / export).items():
                assert not [c for c in frame.columns if looks_like_identifier(c)], (site, export, table)


def test_error_rate_is_roughly_the_share_of_faulty_rows(faulty: GenerationSummary) -> None:
    share = len(_row_faults(read_manifest(faulty.out_dir))) / sum(faulty.rows_written.values())
    assert 0.035 < share < 0.055


# --- clinical realism ------------------------------------------------------------------------------------


def _infusion_numbers(infusions: pl.DataFrame) -> pl.DataFrame:
    return infusions.with_columns(
        pl.col("start_time").rank("ordinal").over("site", "patient_id").alias("number"),
        ((_datetime("end_time") - _datetime("start_time")).dt.total_minutes()).alias("minutes"),
        _dec("initial_rate_mg_h").alias("initial"),
        _dec("max_rate_mg_h").alias("peak"),
    )


def _responders(cohort: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Analysis-cohort patients with a `responder` flag: a post assessment of infusions 1–3 shows a drop of
    at least 30 % from baseline pain, or the patient reports improvement."""
    patients = cohort["patients"].filter(pl.col("prior_neuropathy") == "false").select("site", "patient_id")
    assessments = cohort["assessments"].with_columns(_int("nprs").alias("pain"))
    baseline = assessments.filter(pl.col("timepoint") == "baseline").select("site", "patient_id", baseline="pain")
    induction = _infusion_numbers(cohort["infusions"]).filter(pl.col("number") <= 3).select("site", "infusion_id")
    posts = (
        assessments.filter(pl.col("timepoint") == "post")
        .join(induction, on=["site", "infusion_id"])
        .join(baseline, on=["site", "patient_id"], how="left")
        .group_by("site", "patient_id")
        .agg(
            ((pl.col("pain") <= 0.7 * pl.col("baseline")) | (pl.col("subjective_improvement") == "true"))
            .fill_null(False)
            .any()
            .alias("responder")
        )
    )
    return patients.join(posts, on=["site", "patient_id"], how="left").with_columns(
        pl.col("responder").fill_null(False)
    )


def test_about_three_in_four_patients_respond(cohort: dict[str, pl.DataFrame]) -> None:
    assert 0.6 < _responders(cohort)["responder"].mean() < 0.9


def test_cohort_mix_follows_the_study(cohort: dict[str, pl.DataFrame]) -> None:
    patients = cohort["patients"]

    def share(column: str, value: str) -> float:
        return (patients[column] == value).mean()

    assert 0.35 < share("cnp_etiology", "cipn") < 0.52
    assert 0.15 < share("cnp_etiology", "tumor_compression") < 0.3
    assert 0.15 < share("cnp_etiology", "surgery") < 0.3
    assert 0.06 < share("cnp_etiology", "radiation") < 0.15
    assert 0.0 < share("cnp_etiology", "other") < 0.06
    top_two = patients["cancer_type"].value_counts(sort=True)["cancer_type"].head(2).to_list()
    assert top_two == ["breast", "nerve_sheath_tumor"]
    assert 0.09 < patients.filter(pl.col("metastatic").is_not_null())["metastatic"].eq("true").mean() < 0.2
    assert 0.02 < share("prior_neuropathy", "true") < 0.09
    assert not patients["patient_id"].str.contains(r"[a-z ]").any()  # codes, never names


def test_infusions_follow_the_titration_protocol_with_a_few_natural_deviations(
    cohort: dict[str, pl.DataFrame],
) -> None:
    infusions = _infusion_numbers(cohort["infusions"])
    first = infusions.filter(pl.col("number") == 1)
    assert (first["initial"] == 10).all()
    assert 0.9 < (first["peak"] <= 25).mean() < 1.0  # a few first infusions above 25 mg/h: deviations
    maintenance = infusions.filter(pl.col("number") > 3)
    assert 0.95 < (maintenance["peak"] <= 70).mean() < 1.0  # a few between 70 and 150 mg/h
    assert infusions["peak"].max() <= PLAUSIBLE_RATE_MG_H
    assert 230 <= infusions["minutes"].median() <= 250
    assert (infusions["minutes"] < 150).any() and (infusions["minutes"] > 400).any()  # 2-h and 7-h sessions
    per_patient = infusions.group_by("site", "patient_id").agg(pl.len(), pl.col("start_time").sort().alias("starts"))
    assert per_patient["len"].min() >= 1 and per_patient["len"].max() > 6
    # Doses agree with the rates: positive and below max rate × duration.
    dose = infusions.select(_dec("total_dose_mg"), pl.col("peak") * pl.col("minutes") / 60).drop_nulls()
    assert (dose["total_dose_mg"] > 0).all() and (dose["total_dose_mg"] < dose["peak"]).all()


def test_induction_is_weekly_and_maintenance_about_monthly(cohort: dict[str, pl.DataFrame]) -> None:
    infusions = _infusion_numbers(cohort["infusions"]).with_columns(
        _datetime("start_time").dt.date().diff().over("site", "patient_id").dt.total_days().alias("gap")
    )
    induction = infusions.filter(pl.col("number").is_in([2, 3]))["gap"]
    assert 5 <= induction.median() <= 9
    maintenance = infusions.filter(pl.col("number") > 4)["gap"]
    assert 24 <= maintenance.median() <= 34


def test_adverse_events_per_infusion_match_the_study(cohort: dict[str, pl.DataFrame]) -> None:
    events = cohort["adverse_events"].with_columns(pl.col("term").replace_strict(TERM_CATEGORY).alias("system"))
    infusions = cohort["infusions"].height

    def per_infusion(system: str) -> float:
        return (events["system"] == system).sum() / infusions

    assert 0.06 < per_infusion("neurological") < 0.10
    assert 0.025 < per_infusion("gastrointestinal") < 0.05
    assert 0.012 < per_infusion("cardiovascular") < 0.032
    assert 0 < per_infusion("psychiatric") < 0.02
    assert 0.55 < (events["action_taken"] == "none").mean() < 0.75
    assert 0.3 < events["category"].is_null().mean() < 0.7
    grades = events.select(_int("grade")).to_series()
    assert (grades <= 2).mean() > 0.95 and grades.max() <= 3
    assert (events["serious"] == "true").mean() < 0.01


def test_an_infusion_stopped_for_an_adverse_event_is_incomplete(cohort: dict[str, pl.DataFrame]) -> None:
    stopped = cohort["adverse_events"].filter(pl.col("action_taken") == "infusion_stopped")
    assert stopped.height > 0
    infusions = stopped.join(cohort["infusions"], on=["site", "infusion_id"])
    assert infusions.height == stopped.height
    assert (infusions["completed"] == "false").all()
    assert (infusions["stop_reason"] == "adverse_event").all()


def test_dispositions_follow_the_study(cohort: dict[str, pl.DataFrame]) -> None:
    responders = _responders(cohort).filter("responder")
    dispositions = cohort["dispositions"]
    stopped = (
        dispositions.filter(
            (pl.col("status") == "discontinued") & pl.col("reason").is_in(["unsatisfactory_relief", "adverse_event"])
        )
        .select("site", "patient_id")
        .unique()
    )
    assert 0.15 < responders.join(stopped, on=["site", "patient_id"]).height / responders.height < 0.4

    patients = cohort["patients"].height
    interrupted = dispositions.filter(pl.col("status") == "interrupted")
    assert (interrupted["reason"] == "external_interruption").all()
    assert 0.15 < interrupted.height / patients < 0.35
    assert dispositions.filter(pl.col("status") == "resumed").height > 0
    assert dispositions.filter(pl.col("status") == "continuing").height > 0


def test_nearly_everyone_interrupted_returns_to_baseline_pain(cohort: dict[str, pl.DataFrame]) -> None:
    assessments = cohort["assessments"].with_columns(_int("nprs").alias("pain"), _datetime("assessed_at").alias("at"))
    baseline = assessments.filter(pl.col("timepoint") == "baseline").select("site", "patient_id", baseline="pain")
    interrupted = (
        cohort["dispositions"]
        .filter(pl.col("status") == "interrupted")
        .select("site", "patient_id", on=pl.col("event_date").str.to_date())
    )
    later = (
        assessments.filter(pl.col("timepoint") == "follow_up")
        .join(interrupted, on=["site", "patient_id"])
        .filter((pl.col("at").dt.date() - pl.col("on")).dt.total_days() >= 14)
        .join(baseline, on=["site", "patient_id"])
        .group_by("site", "patient_id")
        .agg(((pl.col("pain") >= pl.col("baseline") - 1).first()).alias("back"))
    )
    assert later.height > 0.6 * interrupted.height
    assert later["back"].mean() > 0.85


def test_most_responders_report_relief_beyond_three_weeks(cohort: dict[str, pl.DataFrame]) -> None:
    relief = (
        cohort["infusions"]
        .with_columns(_int("relief_duration_days").alias("days"))
        .group_by("site", "patient_id")
        .agg(pl.col("days").max())
        .drop_nulls()
    )
    responders = _responders(cohort).filter("responder").join(relief, on=["site", "patient_id"])
    assert 0.55 < (responders["days"] > 21).mean() < 0.9


def test_recording_completeness_differs_between_sites(cohort: dict[str, pl.DataFrame]) -> None:
    recorded = (
        cohort["assessments"]
        .group_by("site")
        .agg(pl.col("function_score").is_not_null().mean(), pl.col("satisfaction").is_not_null().mean())
    )
    spread = recorded.select(pl.all().exclude("site").max() - pl.all().exclude("site").min()).row(0)
    assert max(spread) > 0.3
    assert cohort["assessments"]["nprs"].is_null().any()


def test_the_earlier_export_lacks_some_values_a_later_one_fills_in(tmp_path: Path) -> None:
    summary = generate_landing(tmp_path / "landing", sites=1, patients_per_site=400, seed=5)
    earlier = read_export(summary.out_dir / "site_01" / EARLIER)["patients"]
    newest = read_export(summary.out_dir / "site_01" / NEWEST)["patients"]
    assert earlier["patient_id"].equals(newest["patient_id"])
    assert (earlier["weight_kg"].is_null() & newest["weight_kg"].is_not_null()).any()
    infusions = read_export(summary.out_dir / "site_01" / EARLIER)["infusions"]
    later = read_export(summary.out_dir / "site_01" / NEWEST)["infusions"].join(
        infusions, on="infusion_id", suffix="_then"
    )
    assert (later["relief_duration_days_then"].is_null() & later["relief_duration_days"].is_not_null()).any()
