"""The canonical site-export contract v1 as the generator writes it: files, column order, code lists.

The pipeline's schemas own the contract; this is the generator's own reading of it, kept apart on purpose so
that generated files test those schemas instead of echoing them.
"""

CONTRACT_VERSION = 1

# Column order of every file (the contract fixes it; a file is read by header, but people read it too).
COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": (
        "patient_id",
        "sex",
        "birth_year",
        "weight_kg",
        "cancer_type",
        "metastatic",
        "cnp_etiology",
        "prior_neuropathy",
        "cnp_diagnosis_date",
    ),
    "infusions": (
        "infusion_id",
        "patient_id",
        "start_time",
        "end_time",
        "initial_rate_mg_h",
        "max_rate_mg_h",
        "total_dose_mg",
        "completed",
        "stop_reason",
        "relief_duration_days",
    ),
    "assessments": (
        "assessment_id",
        "patient_id",
        "infusion_id",
        "assessed_at",
        "timepoint",
        "nprs",
        "function_score",
        "satisfaction",
        "daily_mme",
        "subjective_improvement",
    ),
    "adverse_events": (
        "ae_id",
        "patient_id",
        "infusion_id",
        "onset_time",
        "term",
        "category",
        "grade",
        "serious",
        "action_taken",
        "outcome",
    ),
    "dispositions": ("patient_id", "event_date", "status", "reason"),
}
TABLES: tuple[str, ...] = tuple(COLUMNS)

SEXES = ("F", "M", "X", "U")
CANCER_TYPES = (
    "breast",
    "nerve_sheath_tumor",
    "lung",
    "colorectal",
    "prostate",
    "pancreatic",
    "hematologic",
    "head_and_neck",
    "gynecologic",
    "sarcoma",
    "other",
)
CNP_ETIOLOGIES = ("tumor_compression", "cipn", "surgery", "radiation", "other")
STOP_REASONS = ("adverse_event", "patient_request", "clinical_decision", "other")
TIMEPOINTS = ("baseline", "pre", "post", "follow_up")
AE_CATEGORIES = ("neurological", "psychiatric", "gastrointestinal", "cardiovascular", "respiratory", "other")
# Every term belongs to one body-system category; a site may leave the category empty (it is derived).
AE_TERM_CATEGORY: dict[str, str] = {
    "headache": "neurological",
    "dizziness": "neurological",
    "somnolence": "neurological",
    "diplopia": "neurological",
    "hallucination": "psychiatric",
    "dysphoria": "psychiatric",
    "anxiety": "psychiatric",
    "nausea": "gastrointestinal",
    "vomiting": "gastrointestinal",
    "hypertension": "cardiovascular",
    "tachycardia": "cardiovascular",
    "hypotension": "cardiovascular",
    "bradycardia": "cardiovascular",
    "desaturation": "respiratory",
    "other": "other",
}
AE_TERMS: tuple[str, ...] = tuple(AE_TERM_CATEGORY)
AE_ACTIONS = ("none", "rate_reduced", "infusion_stopped", "prn_medication")
AE_OUTCOMES = ("resolved", "resolving", "not_resolved", "fatal", "unknown")
DISPOSITION_STATUSES = ("continuing", "discontinued", "interrupted", "resumed")
DISPOSITION_REASONS = (
    "unsatisfactory_relief",
    "adverse_event",
    "external_interruption",
    "patient_choice",
    "death",
    "lost_to_follow_up",
    "other",
)


def file_name(table: str) -> str:
    """The file a table is written to inside an export folder."""
    return f"{table}.csv"
