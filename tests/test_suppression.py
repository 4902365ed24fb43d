"""Small-cell suppression (ketreg/privacy/suppression.py) on hand-built tables of registry_metrics rows, where
every blanked cell is worked out by hand, and the privacy settings file."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from ketreg.privacy.settings import DEFAULT_SMALL_CELL_COUNT, PrivacySettingsError, load_privacy_settings
from ketreg.privacy.suppression import BLANKED, suppress_small_cells

COLUMNS = ["metric", "stratum_type", "stratum", "numerator", "denominator", "estimate", "ci_low", "ci_high", "unit"]


def metrics(*rows: tuple) -> pl.DataFrame:
    """registry_metrics rows from (metric, stratum_type, stratum, numerator, denominator); the estimate is
    numerator / denominator (the count for a count) with a made-up interval around it."""
    full = []
    for metric, stratum_type, stratum, numerator, denominator in rows:
        estimate = float(numerator) if denominator is None else (numerator / denominator if denominator else None)
        interval = (None, None) if estimate is None or denominator is None else (estimate / 2, min(1.0, estimate * 2))
        unit = "count" if denominator is None else "proportion"
        full.append((metric, stratum_type, stratum, numerator, denominator, estimate, *interval, unit))
    return pl.DataFrame(full, schema=dict.fromkeys(COLUMNS) | {
        "metric": pl.String, "stratum_type": pl.String, "stratum": pl.String, "numerator": pl.Int64,
        "denominator": pl.Int64, "estimate": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
        "unit": pl.String,
    }, orient="row")


def blanked(frame: pl.DataFrame) -> set[tuple[str, str, str]]:
    return {(m, t, s) for m, t, s in frame.filter(pl.col("suppressed")).select("metric", "stratum_type",
                                                                                "stratum").rows()}


def test_a_numerator_or_denominator_of_one_to_k_minus_one_is_blanked_and_zero_is_not() -> None:
    # Two small cells in each group, so no complementary suppression comes into play here.
    table = metrics(
        ("rate", "overall", "all", 10, 100),
        ("rate", "etiology", "cipn", 0, 20),      # zero events: not small
        ("rate", "etiology", "surgery", 4, 30),   # 4 < 5
        ("rate", "etiology", "radiation", 5, 5),  # 5 is not small
        ("rate", "etiology", "other", 1, 45),     # 1 < 5
        ("patients", "site", "a", 2, None),       # a count of 2 patients
        ("patients", "site", "b", 0, None),
        ("patients", "site", "c", 9, None),
        ("patients", "site", "d", 3, None),
        ("patients", "overall", "all", 14, None),
    )
    assert blanked(suppress_small_cells(table, 5)) == {
        ("rate", "etiology", "surgery"), ("rate", "etiology", "other"),
        ("patients", "site", "a"), ("patients", "site", "d"),
    }


def test_a_blanked_cell_loses_its_numerator_denominator_estimate_and_interval_and_keeps_its_place() -> None:
    table = metrics(("rate", "overall", "all", 3, 50), ("rate", "site", "a", 3, 50))
    out = suppress_small_cells(table, 5)

    assert out.columns == [*COLUMNS, "suppressed"]
    assert out.select("metric", "stratum_type", "stratum", "unit").rows() == table.select(
        "metric", "stratum_type", "stratum", "unit").rows()
    for row in out.iter_rows(named=True):
        assert row["suppressed"] and all(row[c] is None for c in BLANKED)


def test_a_lone_blanked_stratum_takes_the_next_smallest_with_it() -> None:
    # a is small (3/10); b and c are not. Shown with the overall, a = overall − b − c: c (12) goes too.
    table = metrics(
        ("rate", "overall", "all", 31, 52),
        ("rate", "site", "a", 3, 10),
        ("rate", "site", "b", 20, 30),
        ("rate", "site", "c", 8, 12),
    )
    out = suppress_small_cells(table, 5)

    assert blanked(out) == {("rate", "site", "a"), ("rate", "site", "c")}


def test_the_complement_is_never_an_empty_stratum() -> None:
    # b has nothing counted (0/0): blanking it would hide nothing, so c (the smallest non-empty) is blanked.
    table = metrics(
        ("rate", "overall", "all", 53, 103),
        ("rate", "site", "a", 3, 3),
        ("rate", "site", "b", 0, 0),
        ("rate", "site", "c", 50, 100),
    )
    assert blanked(suppress_small_cells(table, 5)) == {("rate", "site", "a"), ("rate", "site", "c")}


def test_two_blanked_strata_need_no_complement() -> None:
    table = metrics(
        ("rate", "overall", "all", 27, 70),
        ("rate", "site", "a", 2, 10),
        ("rate", "site", "b", 1, 20),
        ("rate", "site", "c", 24, 40),
    )
    assert blanked(suppress_small_cells(table, 5)) == {("rate", "site", "a"), ("rate", "site", "b")}


def test_complements_are_chosen_per_metric_and_stratum_type() -> None:
    table = metrics(
        ("rate", "overall", "all", 28, 70),
        ("rate", "site", "a", 2, 10),
        ("rate", "site", "b", 10, 20),
        ("rate", "site", "c", 16, 40),
        ("rate", "etiology", "cipn", 14, 35),     # no small cell among the etiologies: nothing blanked
        ("rate", "etiology", "surgery", 14, 35),
        ("other", "site", "a", 9, 10),
        ("other", "site", "b", 9, 20),
    )
    assert blanked(suppress_small_cells(table, 5)) == {("rate", "site", "a"), ("rate", "site", "b")}


def test_metrics_that_share_a_denominator_blank_the_same_complement() -> None:
    # Infusions per site (a count) and AEs per infusion by site share their denominators. If they blanked
    # different complements, the infusions of one would undo the other. Ties go by the stratum's name.
    table = metrics(
        ("cohort_infusions", "site", "a", 3, None),
        ("cohort_infusions", "site", "b", 40, None),
        ("cohort_infusions", "site", "c", 40, None),
        ("cohort_infusions", "site", "d", 90, None),
        ("ae_rate", "site", "a", 1, 3),
        ("ae_rate", "site", "b", 30, 40),
        ("ae_rate", "site", "c", 6, 40),
        ("ae_rate", "site", "d", 20, 90),
    )
    out = blanked(suppress_small_cells(table, 5))
    assert {s for m, _, s in out if m == "cohort_infusions"} == {s for m, _, s in out if m == "ae_rate"} == {"a", "b"}


def test_the_overall_row_is_blanked_only_when_it_is_small_itself() -> None:
    table = metrics(("rate", "overall", "all", 4, 9), ("rate", "site", "a", 4, 9))
    assert blanked(suppress_small_cells(table, 5)) == {("rate", "overall", "all"), ("rate", "site", "a")}
    bigger = metrics(("rate", "overall", "all", 40, 90), ("rate", "site", "a", 1, 9), ("rate", "site", "b", 39, 81))
    assert ("rate", "overall", "all") not in blanked(suppress_small_cells(bigger, 5))


def test_k_of_one_changes_nothing() -> None:
    table = metrics(("rate", "overall", "all", 1, 1), ("rate", "site", "a", 1, 1), ("n", "site", "a", 2, None))
    out = suppress_small_cells(table, 1)

    assert not out["suppressed"].any()
    assert out.drop("suppressed").equals(table)


def test_k_sets_the_threshold() -> None:
    table = metrics(("n", "site", "a", 9, None), ("n", "site", "b", 10, None), ("n", "site", "c", 50, None))
    assert blanked(suppress_small_cells(table, 11)) == {("n", "site", "a"), ("n", "site", "b")}
    assert blanked(suppress_small_cells(table, 10)) == {("n", "site", "a"), ("n", "site", "b")}  # b complements a
    assert blanked(suppress_small_cells(table, 9)) == set()


def test_a_k_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        suppress_small_cells(metrics(("n", "site", "a", 1, None)), 0)


def test_the_default_small_cell_count_is_five_from_the_config_file() -> None:
    assert DEFAULT_SMALL_CELL_COUNT == 5
    assert load_privacy_settings().small_cell_count == 5


@pytest.mark.parametrize("value", ["0", "-3", "five", "2.5", "true"])
def test_an_impossible_small_cell_count_is_refused(tmp_path: Path, value: str) -> None:
    config = tmp_path / "privacy.yaml"
    config.write_text(f"small_cell_count: {value}\n", encoding="utf-8")
    with pytest.raises(PrivacySettingsError, match="small_cell_count"):
        load_privacy_settings(config)


def test_any_other_figure_of_a_blanked_cell_is_blanked_too() -> None:
    # A column added to registry_metrics later (a median, a count of missing values) must not give it back.
    table = metrics(("rate", "overall", "all", 3, 50), ("rate", "site", "a", 3, 50)).with_columns(
        pl.lit(4.5).alias("median_days"), pl.lit("a definition").alias("definition")
    )
    out = suppress_small_cells(table, 5)

    assert out["median_days"].to_list() == [None, None]
    assert out["definition"].to_list() == ["a definition", "a definition"]
