"""A European EHR's export: Latin-1, semicolons, German column names, dd.mm.yyyy, decimal commas, J/N,
infusion rates in mg/kg/h and pain on a 0–100 mm visual analogue scale (mapping: sites/site_NN_semicolon.yaml)."""

from pathlib import Path

import numpy as np
import polars as pl

from .text import decimal_comma, recode, respell_date, with_present

FILES = {
    "patients": "patienten.csv",
    "infusions": "infusionen.csv",
    "assessments": "schmerzerfassung.csv",
    "adverse_events": "nebenwirkungen.csv",
    "dispositions": "verlauf.csv",
}
COLUMNS = {
    "patients": {
        "patient_id": "PatNr", "sex": "Geschlecht", "birth_year": "Geburtsjahr", "weight_kg": "Gewicht_kg",
        "cancer_type": "Tumorart", "metastatic": "Metastasen", "cnp_etiology": "Ursache",
        "prior_neuropathy": "Vorbestehende_Neuropathie", "cnp_diagnosis_date": "Diagnosedatum",
    },
    "infusions": {
        "infusion_id": "InfNr", "patient_id": "PatNr", "start_time": "Beginn", "end_time": "Ende",
        "initial_rate_mg_h": "Startrate_mg_kg_h", "max_rate_mg_h": "Maxrate_mg_kg_h", "total_dose_mg": "Gesamtdosis_mg",
        "completed": "Abgeschlossen", "stop_reason": "Abbruchgrund", "relief_duration_days": "Linderung_Tage",
    },
    "assessments": {
        "assessment_id": "ErfNr", "patient_id": "PatNr", "infusion_id": "InfNr", "assessed_at": "Erfasst_am",
        "timepoint": "Zeitpunkt", "nprs": "VAS_mm", "function_score": "Funktion", "satisfaction": "Zufriedenheit",
        "daily_mme": "MME_Tag", "subjective_improvement": "Besserung",
    },
    "adverse_events": {
        "ae_id": "NwNr", "patient_id": "PatNr", "infusion_id": "InfNr", "onset_time": "Beginn", "term": "Ereignis",
        "category": "Kategorie", "grade": "Grad", "serious": "Schwerwiegend", "action_taken": "Massnahme",
        "outcome": "Ausgang",
    },
    "dispositions": {"patient_id": "PatNr", "event_date": "Datum", "status": "Status", "reason": "Grund"},
}
YES_NO = {"true": "J", "false": "N"}
SEX = {"F": "w", "M": "m", "X": "d", "U": "u"}
TIMEPOINT = {"baseline": "Ausgang", "pre": "vor", "post": "nach", "follow_up": "Nachsorge"}
TERMS = {
    "headache": "Kopfschmerzen", "dizziness": "Schwindel", "somnolence": "Somnolenz", "diplopia": "Doppelbilder",
    "hallucination": "Halluzinationen", "dysphoria": "Dysphorie", "anxiety": "Angst", "nausea": "Übelkeit",
    "vomiting": "Erbrechen", "hypertension": "Hypertonie", "tachycardia": "Tachykardie", "hypotension": "Hypotonie",
    "bradycardia": "Bradykardie", "desaturation": "Sauerstoffsättigung erniedrigt", "other": "Sonstiges",
}
DATE, DATETIME = "%d.%m.%Y", "%d.%m.%Y %H:%M"
WEIGHT_MISSING, VAS_MISSING = "-99", "n/a"
# The rate of a patient without a weight cannot be written per kg; the generator writes it for a nominal
# 70 kg and lists the row as a fault the pipeline must quarantine.
NOMINAL_KG = 70.0
PER_KG_DECIMALS = 4


def _weights(patients: pl.DataFrame) -> pl.DataFrame:
    return (
        patients.select("patient_id", pl.col("weight_kg").cast(pl.Float64, strict=False))
        .filter(pl.col("patient_id").is_not_null() & pl.col("weight_kg").is_not_null())
        .unique("patient_id", keep="first", maintain_order=True)
    )


def _per_kg(column: str) -> pl.Expr:
    rate = pl.col(column).cast(pl.Float64, strict=False)
    per_kg = (rate / pl.col("_kg").fill_null(NOMINAL_KG)).round(PER_KG_DECIMALS)
    return pl.coalesce(per_kg.cast(pl.String), pl.col(column)).str.replace(".", ",", literal=True).alias(column)


def _vas(frame: pl.DataFrame) -> pl.Series:
    # NPRS n becomes n × 10 mm, give or take 4 mm (still n when rounded back); a value that is not a whole
    # number of points is written as the approximation a nurse might type.
    nprs = frame["nprs"]
    whole = nprs.cast(pl.Int64, strict=False)
    jitter = pl.Series((np.arange(frame.height) % 9) - 4)
    vas = (whole * 10 + jitter).clip(0, 100)
    vas = pl.select(pl.when((whole >= 0) & (whole <= 10)).then(vas).otherwise(whole * 10)).to_series()
    return pl.select(
        pl.when(nprs.is_null()).then(pl.lit(VAS_MISSING))
        .when(whole.is_null()).then(pl.concat_str([pl.lit("ca. "), nprs]))
        .otherwise(vas.cast(pl.String))
    ).to_series().alias("nprs")


def write(folder: Path, tables: dict[str, pl.DataFrame]) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Write the export; return the file of each table and the rows whose rate had no weight to divide by."""
    weights = _weights(tables["patients"])
    no_weight: dict[str, np.ndarray] = {}
    for table, frame in tables.items():
        if table == "patients":
            frame = with_present(
                frame,
                recode("sex", SEX), recode("metastatic", YES_NO), recode("prior_neuropathy", YES_NO),
                respell_date("cnp_diagnosis_date", DATE), decimal_comma("weight_kg").fill_null(WEIGHT_MISSING),
            )
        elif table == "infusions":
            frame = frame.join(weights.rename({"weight_kg": "_kg"}), on="patient_id", how="left",
                               maintain_order="left")
            no_weight[table] = np.flatnonzero(frame["_kg"].is_null().to_numpy())
            frame = with_present(
                frame,
                respell_date("start_time", DATETIME, True), respell_date("end_time", DATETIME, True),
                _per_kg("initial_rate_mg_h"), _per_kg("max_rate_mg_h"), decimal_comma("total_dose_mg"),
                recode("completed", YES_NO),
            ).drop("_kg")
        elif table == "assessments":
            frame = with_present(
                frame,
                respell_date("assessed_at", DATETIME, True), recode("timepoint", TIMEPOINT), _vas(frame),
                decimal_comma("daily_mme"), recode("subjective_improvement", YES_NO),
            )
        elif table == "adverse_events":
            frame = with_present(
                frame,
                respell_date("onset_time", DATETIME, True), recode("term", TERMS), recode("serious", YES_NO),
            )
        elif table == "dispositions":
            frame = frame.with_columns(respell_date("event_date", DATE))
        frame = frame.rename({c: COLUMNS[table][c] for c in frame.columns if c in COLUMNS[table]})
        if table == "patients":
            frame = frame.with_columns(pl.lit("Onkologie 3").alias("Station"))
        data = frame.write_csv(separator=";", line_terminator="\r\n", null_value="", quote_style="necessary")
        (folder / FILES[table]).write_bytes(data.encode("latin-1"))
    return FILES, no_weight
