"""The five files of a site export, in the order their references require them to be validated."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pandera.polars as pa
import polars as pl
from pandera.polars import DataFrameModel

from schemas import adverse_events, assessments, dispositions, infusions, patients
from schemas.protocol import Protocol
from schemas.rules import Reference, RowRule

CONTRACT_VERSION = "1"


@dataclass(frozen=True)
class TableContract:
    """One file of the canonical export: its Pandera model, its key and its references to other files."""

    name: str
    model: type[DataFrameModel]
    record_id: str | None
    row_rules: tuple[RowRule, ...]
    references: tuple[Reference, ...]
    required_in_export: bool = True

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    @cached_property
    def base_schema(self) -> pa.DataFrameSchema:
        return self.model.to_schema()

    @property
    def columns(self) -> tuple[str, ...]:
        """The contract's columns, in the order sites should write them."""
        return tuple(self.base_schema.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns whose values are required: a file without them is unusable."""
        return tuple(
            name
            for name, col in self.base_schema.columns.items()
            if not col.nullable and "when_missing" not in (col.metadata or {})
        )

    def polars_type(self, column: str) -> pl.DataType:
        return self.base_schema.columns[column].dtype.type

    def schema(self, protocol: Protocol) -> pa.DataFrameSchema:
        """The Pandera schema with the protocol's limits added (the contract's own ranges are in the model)."""
        if self.name != "infusions":
            return self.base_schema
        limit = protocol.plausible_max_rate_mg_h
        schema = self.base_schema
        for rate in ("initial_rate_mg_h", "max_rate_mg_h"):
            within_limit = pa.Check(
                lambda data, limit=limit: data.lazyframe.select(pl.col(data.key) <= limit),
                name="rate_within_plausibility_limit",
                statistics={"max_value": limit},
            )
            schema = schema.update_column(rate, checks=[*schema.columns[rate].checks, within_limit])
        return schema

    def row_rule(self, name: str) -> RowRule | None:
        return next((rule for rule in self.row_rules if rule.name == name), None)


TABLES: tuple[TableContract, ...] = (
    TableContract("patients", patients.PatientContract, "patient_id", patients.ROW_RULES, ()),
    TableContract(
        "infusions", infusions.InfusionContract, "infusion_id", infusions.ROW_RULES, infusions.REFERENCES
    ),
    TableContract(
        "assessments", assessments.AssessmentContract, "assessment_id", assessments.ROW_RULES, assessments.REFERENCES
    ),
    TableContract(
        "adverse_events", adverse_events.AdverseEventContract, "ae_id",
        adverse_events.ROW_RULES, adverse_events.REFERENCES,
    ),
    TableContract(
        "dispositions", dispositions.DispositionContract, None, dispositions.ROW_RULES, dispositions.REFERENCES,
        required_in_export=False,
    ),
)
TABLES_BY_NAME = {table.name: table for table in TABLES}
TABLES_BY_FILE = {table.file_name: table for table in TABLES}
