"""Coded values of the canonical contract. Every other layer reads the codes from here."""

SEX = ("F", "M", "X", "U")

CANCER_TYPES = (
    "breast", "nerve_sheath_tumor", "lung", "colorectal", "prostate", "pancreatic",
    "hematologic", "head_and_neck", "gynecologic", "sarcoma", "other",
)

CNP_ETIOLOGIES = ("tumor_compression", "cipn", "surgery", "radiation", "other")

STOP_REASONS = ("adverse_event", "patient_request", "clinical_decision", "other")

TIMEPOINTS = ("baseline", "pre", "post", "follow_up")

AE_CATEGORIES = ("neurological", "psychiatric", "gastrointestinal", "cardiovascular", "respiratory", "other")

# Term → body-system category, as the source study grouped them. `other` may carry any category.
AE_TERM_CATEGORY = {
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
AE_TERMS = tuple(AE_TERM_CATEGORY)

# CDISC AEACN in the registry's words: what was done about the event.
AE_ACTIONS = ("none", "rate_reduced", "infusion_stopped", "prn_medication")

AE_OUTCOMES = ("resolved", "resolving", "not_resolved", "fatal", "unknown")

DISPOSITION_STATUSES = ("continuing", "discontinued", "interrupted", "resumed")

DISPOSITION_REASONS = (
    "unsatisfactory_relief", "adverse_event", "external_interruption", "patient_choice",
    "death", "lost_to_follow_up", "other",
)
