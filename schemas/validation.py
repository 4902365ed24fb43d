"""Validate one file's rows (of any number of exports at once) against its contract.

Three kinds of failure are gathered for every row, never just the first: cells whose text is not of
the column's type, Pandera checks (required, ranges, codes, row rules) and references to the parent
files of the same export. A row with any failure is quarantined with all of them; the rest is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandera.polars as pa
import polars as pl

from schemas.parsing import cleaned_text, concat_failures, parse_table
from schemas.protocol import Protocol
from schemas.rules import Reference
from schemas.tables import TableContract

EXPORT_KEY = ("site_id", "export_id")

REASON_TYPE = pl.List(pl.Struct({"column": pl.String, "rule": pl.String, "message": pl.String}))


@dataclass(frozen=True)
class ParentRows:
    """What the parent file of each export held: keys of accepted rows and ids of quarantined rows."""

    accepted: pl.DataFrame  # site_id, export_id and the key columns children refer to
    quarantined_ids: pl.DataFrame  # site_id, export_id, record_id


@dataclass(frozen=True)
class TableValidation:
    """The outcome for one file type: typed accepted rows and quarantined rows with their reasons."""

    accepted: pl.DataFrame
    quarantined: pl.DataFrame  # site_id, export_id, source_line, record_id, raw_values (JSON), reasons

    def parent_rows(self, record_id: str, key_columns: tuple[str, ...]) -> ParentRows:
        keys = sorted({record_id, *key_columns})
        return ParentRows(
            accepted=self.accepted.select(*EXPORT_KEY, *keys),
            quarantined_ids=self.quarantined.select(*EXPORT_KEY, "record_id"),
        )


_BOUND_WORDS = {
    "greater_than_or_equal_to": "at least",
    "less_than_or_equal_to": "at most",
    "greater_than": "greater than",
    "less_than": "less than",
}


def _check_message(
    table: TableContract, protocol: Protocol, column: str, check: str, value: str | None
) -> tuple[str, str]:
    """(rule, message) for one Pandera failure case, in a data manager's words."""
    if check == "not_nullable":
        return "required", f"{column} is required but empty"
    rule = table.row_rule(check)
    if rule is not None:
        return check, rule.message
    got = f" (got '{value}')"
    bound = re.fullmatch(r"(\w+)\((.*)\)", check)
    if bound and bound.group(1) in _BOUND_WORDS:
        return "range", f"{column} must be {_BOUND_WORDS[bound.group(1)]} {bound.group(2)}{got}"
    if bound and bound.group(1) == "isin":
        allowed = ", ".join(re.findall(r"'([^']*)'", bound.group(2)))
        return "code", f"{column} must be one of: {allowed}{got}"
    if check == "rate_within_plausibility_limit":
        return check, (
            f"{column} is above the protocol's plausibility limit of {protocol.plausible_max_rate_mg_h:g} mg/h"
            f"{got}: check the unit "
            "(mg/h expected, not µg/kg/min or mg/kg/h)"
        )
    if check in {"birth_year_not_in_future", "date_not_in_future"}:
        return check, f"{column} is in the future{got}"
    return check, f"{column} fails {check}{got}"


def _pandera_failures(
    raw: pl.DataFrame, typed: pl.DataFrame, table: TableContract, protocol: Protocol
) -> pl.DataFrame:
    try:
        table.schema(protocol).validate(typed, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return concat_failures([])
    unplaced = cases.filter(pl.col("index").is_null())
    if unplaced.height:
        # A failure without a row means the frame itself is wrong: a bug here, not bad site data.
        raise RuntimeError(f"{table.name}: schema-level failure {unplaced.row(0, named=True)}")
    # One message per failed cell, written per kind of failure (schema context, column, check) with polars
    # expressions rather than row by row in Python: a 1 % error rate is 100,000s of cells at scale.
    cases = cases.with_row_index("_order").with_columns(pl.col("index").cast(pl.Int64))
    frames = []
    for (context, column, check), group in cases.group_by(
        "schema_context", "column", "check", maintain_order=True
    ):
        rows = group["index"]
        row_rule = table.row_rule(check) if context == "DataFrameSchema" else None
        if row_rule is not None:
            # The cells as the site wrote them ("None" for an empty cell, as Python prints it).
            parts: list[pl.Expr] = [pl.lit(f"{row_rule.message} (")]
            for position, name in enumerate(row_rule.columns):
                separator = ", " if position else ""
                group = group.with_columns(_as_written(raw[name], rows).alias(f"_cell{position}"))
                parts += [pl.lit(f"{separator}{name} '"), pl.col(f"_cell{position}"), pl.lit("'")]
            parts.append(pl.lit(")"))
            failed_column, rule = ",".join(row_rule.columns), row_rule.name
        else:
            failed_column = column
            # Quote the cell as the site wrote it, not as it was parsed (700, not 700.0).
            rule, template = _check_message(table, protocol, column, check, _VALUE)
            before, value, after = template.partition(_VALUE)
            parts = [pl.lit(before)]
            if value:
                group = group.with_columns(_as_written(raw[column], rows).alias("_cell0"))
                parts += [pl.col("_cell0"), pl.lit(after)]
        frames.append(group.select(
            "_order",
            pl.col("index").alias("row"),
            pl.lit(failed_column, pl.String).alias("column"),
            pl.lit(rule, pl.String).alias("rule"),
            pl.concat_str(parts).alias("message"),
        ))
    return concat_failures([pl.concat(frames).sort("_order")] if frames else [])


# Stands for the cell's value while a message is written once per kind of failure; no site text holds it.
_VALUE = "\x00value\x00"


def _as_written(text: pl.Series, rows: pl.Series) -> pl.Series:
    """The cells of `rows` as the site wrote them, an empty cell as "None" (what an f-string makes of it)."""
    return text.gather(rows).fill_null("None")


def _reference_failures(
    typed: pl.DataFrame, table: TableContract, parents: dict[str, ParentRows]
) -> pl.DataFrame:
    frames: list[pl.DataFrame] = []
    failed_by: dict[tuple[str, ...], pl.Series] = {}
    indexed = typed.with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))
    for ref in table.references:
        parent = parents[ref.parent_table]
        candidates = indexed.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in ref.columns))
        # A composite reference is only judged where its single-column parts resolved.
        for columns, rows in failed_by.items():
            if set(columns) < set(ref.columns):
                candidates = candidates.filter(~pl.col("row").is_in(rows.implode()))
        # Accepted parent keys are unique within their export already (ids are unique in the file).
        parent_keys = parent.accepted.select(
            *EXPORT_KEY, *[pl.col(p).alias(c) for c, p in zip(ref.columns, ref.parent_columns, strict=True)]
        )
        broken = candidates.join(parent_keys, on=[*EXPORT_KEY, *ref.columns], how="anti")
        failed_by[ref.columns] = broken["row"]
        if not broken.height:
            continue
        frames.append(_describe_broken_reference(broken, ref, parent))
    return concat_failures(frames)


def _describe_broken_reference(broken: pl.DataFrame, ref: Reference, parent: ParentRows) -> pl.DataFrame:
    column = ",".join(ref.columns)
    if len(ref.columns) == 1:
        quarantined = parent.quarantined_ids.rename({"record_id": ref.columns[0]}).unique().with_columns(
            pl.lit(True).alias("_parent_quarantined")
        )
        broken = broken.join(quarantined, on=[*EXPORT_KEY, ref.columns[0]], how="left")
        was_quarantined = pl.col("_parent_quarantined").fill_null(False)
    else:
        was_quarantined = pl.lit(False)
    values = pl.concat_str([pl.col(c) for c in ref.columns], separator="', '")
    return broken.select(
        "row",
        pl.lit(column).alias("column"),
        pl.when(was_quarantined).then(pl.lit("parent_quarantined")).otherwise(pl.lit(ref.name)).alias("rule"),
        pl.when(was_quarantined)
        .then(pl.concat_str([pl.lit(f"{column} '"), values, pl.lit(f"' was quarantined in {ref.parent_table}.csv")]))
        .otherwise(pl.concat_str([pl.lit(f"{ref.message} (got '"), values, pl.lit("')")]))
        .alias("message"),
    )


def validate_table(
    raw: pl.DataFrame,
    table: TableContract,
    protocol: Protocol,
    parents: dict[str, ParentRows] | None = None,
    extra_failures: pl.DataFrame | None = None,
) -> TableValidation:
    """Split `raw` (text cells, lineage columns `site_id`, `export_id`, `source_line`) into accepted and
    quarantined rows. `parents` holds the already validated parent files that references point to.

    `extra_failures` (row, column, rule, message; row = position in `raw`) are failures found before the
    text reached the contract, such as a site's value that could not be converted to the contract's unit.
    They quarantine their rows like any other failure and stand in for what the parser or Pandera would
    say about the same cell."""
    typed, parse_failures = parse_table(raw, table)
    schema_failures = _pandera_failures(raw, typed, table, protocol)
    # A cell that could not be read is also empty to Pandera: say "unreadable" once, not "required" too.
    schema_failures = schema_failures.join(parse_failures.select("row", "column"), on=["row", "column"], how="anti")
    failures = [parse_failures, schema_failures]
    if extra_failures is not None and extra_failures.height:
        extra = concat_failures([extra_failures])
        # Drop what the parser and Pandera said about those cells, including row rules that read them: the
        # cell holds the site's unconverted text, so any judgement of its value would mislead.
        covered = extra.select("row", "column").unique()

        def without_covered(failure: pl.DataFrame) -> pl.DataFrame:
            hidden = (
                failure.with_columns(pl.col("column").str.split(",").alias("_cells"))
                .explode("_cells")
                .join(covered, left_on=["row", "_cells"], right_on=["row", "column"], how="semi")
                .select("row", "column", "rule")
                .unique()
            )
            return failure.join(hidden, on=["row", "column", "rule"], how="anti")

        failures = [without_covered(f) for f in failures]
        failures.append(extra)
    if table.references:
        failures.append(_reference_failures(typed, table, parents or {}))
    all_failures = concat_failures(failures)

    reasons = (
        all_failures.sort("row", "column", "rule")
        .group_by("row", maintain_order=True)
        .agg(pl.struct("column", "rule", "message").alias("reasons"))
    )
    indexed = typed.with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))
    accepted = indexed.join(reasons.select("row"), on="row", how="anti").drop("row")
    raw_indexed = raw.with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))
    received = [c for c in raw.columns if c not in ("site_id", "export_id", "source_line")]
    quarantined = raw_indexed.join(reasons, on="row", how="inner").select(
        "site_id",
        "export_id",
        pl.lit(table.file_name).alias("file_name"),
        "source_line",
        (pl.col(table.record_id) if table.record_id else pl.lit(None, pl.String)).alias("record_id"),
        pl.struct(received).struct.json_encode().alias("raw_values"),
        pl.col("reasons").cast(REASON_TYPE),
    )
    # The site's id as the parser reads it (blanks trimmed, empty = missing), for matching children to it.
    quarantined = quarantined.with_columns(cleaned_text(quarantined["record_id"]))
    return TableValidation(accepted=accepted, quarantined=quarantined)
