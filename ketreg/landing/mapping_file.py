"""The shape of a site's mapping file (`sites/<site_id>.yaml`) as pydantic models, built from the contract.

Which tables and columns a mapping may name, and which units each column may be written in, come from
`schemas/tables.py` and `UNITS` below, so a new contract column is mappable without touching this module. The
rules that tie one key to another (a delimited export names its files, a workbook its sheets; `not_recorded`
cannot hold a required column) are the models' own validators; the format and the file name's site id reach
them as validation context. As with any pydantic model, the rules across a part's keys are checked once each of
its keys is valid on its own: every problem of each key is listed together, and a rule tying keys together
shows in the next check of the file. `describe` turns pydantic's errors into the messages a data manager reads: the key
path as written in the file, its line, and what to write instead. `ketreg.landing.mapping` reads the file and
turns the validated models into the checked mapping that `apply_mapping` uses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from ketreg.landing import messages
from schemas.tables import TABLES_BY_NAME, TableContract
from schemas.yaml_source import KeyPath

FORMATS = ("canonical", "delimited", "excel", "redcap")
DEFAULT_FORMAT = "delimited"
DEFAULT_DATE_FORMAT = "%Y-%m-%d"
DEFAULT_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
ENCODINGS = {
    "utf-8": "utf-8-sig", "utf8": "utf-8-sig", "utf-8-sig": "utf-8-sig",
    "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1",
    "windows-1252": "cp1252", "cp1252": "cp1252",
}
# Units a site may write a contract column in; the first is the contract's own unit (no conversion).
UNITS: dict[str, tuple[str, ...]] = {
    "initial_rate_mg_h": ("mg/h", "mg/kg/h", "ug/kg/min"),
    "max_rate_mg_h": ("mg/h", "mg/kg/h", "ug/kg/min"),
    "total_dose_mg": ("mg",),
    "weight_kg": ("kg", "lb"),
    "nprs": ("nprs", "vas_0_100"),
    "daily_mme": ("mme",),
}
PER_KG_UNITS = ("mg/kg/h", "ug/kg/min")
EXCEL_SERIAL = "excel_serial"
SOURCE_KEYS = ("from", "constant", "template", "any_checked")


class Problems(ValueError):
    """Several problems found by one validator, each under its own key path below the validated part."""

    def __init__(self, problems: list[tuple[KeyPath, str]]):
        super().__init__("; ".join(text for _, text in problems))
        self.problems = problems


def _raise_if(problems: list[tuple[KeyPath, str]]) -> None:
    if problems:
        raise Problems(problems)


# --- values as the site wrote them ---------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A scalar as text; YAML reads Y/N/yes/no unquoted as booleans, so they are taken back as the site wrote
    them (`true` / `false`)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise ValueError("expected a text, not a list or a mapping")
    return str(value)


def _text_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str | int | float):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("expected a list of texts")
    return tuple("" if v is None else str(v) for v in value)


def _file_name(value: Any) -> str | None:
    """A mapping names files inside the export folder only: a bare file name, no folder, no `..`."""
    text = _text(value)
    if text is None:
        return None
    if not text or text in (".", "..") or "/" in text or "\\" in text or text.startswith(".") or "\0" in text:
        raise ValueError(f"'{text[:64]}' must be the name of a file in the export folder (no folders, no '..')")
    return text


def _empty_as(default: Any) -> Callable[[Any], Any]:
    """`rows:` or `columns:` left empty (or written `[]`) means none, as an absent key does."""
    return lambda value: value if value else default


Text = Annotated[str | None, BeforeValidator(_text)]
TextList = Annotated[tuple[str, ...], BeforeValidator(_text_list)]
FileName = Annotated[str | None, BeforeValidator(_file_name)]


class _Part(BaseModel):
    # Unknown keys are errors: a misspelt key (`delimter`) would otherwise be ignored without a word.
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- one contract column --------------------------------------------------------------------------------------


class ColumnSource(_Part):
    """Where one contract column comes from (exactly one of from / constant / template / any_checked) and how
    the site's text becomes the contract's."""

    source: Text = Field(None, alias="from")
    constant: Text = None
    template: Text = None  # e.g. "{record_id}-I{redcap_repeat_instance}"
    any_checked: Text = None  # a REDCap checkbox field: true if any `<field>___<code>` is 1
    values: dict[str, str | None] | None = None
    unmapped: str = "reject"
    unit: Text = None
    format: Text = None
    round: int | None = None
    missing_codes: TextList = ()

    @model_validator(mode="before")
    @classmethod
    def _a_name_is_from(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"from": value}
        if not isinstance(value, dict):
            raise ValueError("expected a column name of the site's file or a mapping of keys")
        return value

    @field_validator("values", mode="before")
    @classmethod
    def _values_as_written(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError("expected site value: contract value pairs")
        return {_text(k): _text(v) for k, v in value.items()}

    @field_validator("unmapped", mode="before")
    @classmethod
    def _reject_or_keep(cls, value: Any) -> str:
        if value not in ("reject", "keep"):
            raise ValueError(f"expected reject or keep (got '{value}')")
        return str(value)

    @field_validator("round", mode="before")
    @classmethod
    def _decimals(cls, value: Any) -> Any:
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6):
            raise ValueError(f"expected a number of decimals 0 … 6 (got '{value}')")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ColumnSource:
        given = [key for key in SOURCE_KEYS if getattr(self, "source" if key == "from" else key) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(SOURCE_KEYS)} (got {given or 'none'})")
        return self


@cache
def column_model(table: str, column: str) -> type[ColumnSource]:
    """The model of one contract column: its units are the ones `UNITS` allows for it."""
    allowed = UNITS.get(column, ())

    def unit_of_this_column(cls: type, unit: str | None) -> str | None:
        if unit is not None and unit not in allowed:
            shown = ", ".join(allowed) or "none (this column has no unit to convert)"
            raise ValueError(f"'{unit}' is not a unit of {table}.{column} (allowed: {shown})")
        return unit

    return create_model(
        f"Column_{table}_{column}",
        __base__=ColumnSource,
        __validators__={"unit_of_this_column": field_validator("unit")(unit_of_this_column)},
    )


# --- one place of the export holding a table's rows -----------------------------------------------------------


class Rows(_Part):
    """Which rows of the place hold the table: REDCap's event / repeating instrument, and rows to skip."""

    event: TextList = ()
    instrument: Text = None  # "" = the non-repeating rows
    # true: every mapped column read from the site's data; or a list of contract columns.
    skip_if_empty: bool | tuple[str, ...] = False

    @field_validator("skip_if_empty", mode="before")
    @classmethod
    def _all_or_listed(cls, value: Any) -> bool | tuple[str, ...]:
        if value is None or value is False:
            return False
        return True if value is True else _text_list(value)

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("expected event, instrument and/or skip_if_empty")
        return value


class TablePartBase(_Part):
    """One place of the site's export that holds rows of a contract table (a file, a sheet, or REDCap rows)."""

    file: FileName = None
    sheet: Text = None
    rows: Annotated[Rows, BeforeValidator(_empty_as({}))] = Rows()
    ignore: TextList = ()
    not_recorded: TextList = ()

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"expected keys {', '.join(sorted(cls.model_fields))}")
        return value

    def mapped_columns(self) -> dict[str, ColumnSource]:
        """The contract columns this part maps, by their contract name."""
        columns = getattr(self, "columns", None)
        if columns is None:
            return {}
        return {field.alias or name: getattr(columns, name) for name, field in type(columns).model_fields.items()
                if getattr(columns, name) is not None}


def skip_if_empty_columns(part: TablePartBase, contract: TableContract) -> tuple[str, ...]:
    """`true`: every mapped column read from the site's data except the ids and references (they are filled on
    every row of a REDCap record); else the listed contract columns."""
    chosen = part.rows.skip_if_empty
    if chosen is False:
        return ()
    if chosen is True:
        keys = {contract.record_id, *(c for ref in contract.references for c in ref.columns)}
        return tuple(name for name, spec in part.mapped_columns().items()
                     if name not in keys and (spec.source is not None or spec.any_checked is not None))
    return chosen


def _check_part(part: TablePartBase, contract: TableContract, info: ValidationInfo) -> TablePartBase:
    """The rules that tie the part's keys to each other, to the contract and to the mapping's format."""
    mapping_format = (info.context or {}).get("format", DEFAULT_FORMAT)
    table = contract.name
    problems: list[tuple[KeyPath, str]] = []
    if mapping_format in ("canonical", "delimited") and not part.file:
        problems.append(((), f"name the file that holds {table} (file: …)"))
    if mapping_format == "excel" and not part.sheet:
        problems.append(((), f"name the sheet that holds {table} (sheet: …)"))
    if mapping_format != "redcap" and (part.rows.event or part.rows.instrument is not None):
        problems.append((("rows",), f"event and instrument select REDCap rows; this mapping's format is "
                                    f"{mapping_format}"))
    mapped = part.mapped_columns()
    for column in part.not_recorded:
        if column not in contract.columns:
            problems.append((("not_recorded",), f"'{column}' is not a column of {contract.file_name}"))
        elif column in contract.required_columns:
            problems.append((("not_recorded",),
                             f"{column} is required by the contract; every site must send it"))
        elif column in mapped:
            problems.append((("not_recorded",), f"{column} is also mapped under columns; keep one"))
    skip = part.rows.skip_if_empty
    if skip is True and not skip_if_empty_columns(part, contract):
        problems.append((("rows", "skip_if_empty"), "no mapped column besides the ids to test; list the columns "
                                                    "instead"))
    elif not isinstance(skip, bool):
        for column in skip:
            if column not in contract.columns:
                problems.append((("rows", "skip_if_empty"), f"'{column}' is not a column of {contract.file_name}"))
    _raise_if(problems)
    return part


@cache
def table_part_model(table: str) -> type[TablePartBase]:
    """The model of a place holding `table`'s rows: its `columns` may name the contract's columns only."""
    contract = TABLES_BY_NAME[table]
    # Field names are prefixed (a contract column could be called `copy` or `json`); the file uses the alias.
    columns = create_model(  # type: ignore[call-overload]
        f"Columns_{table}",
        __base__=_Part,
        **{f"c_{c}": (column_model(table, c) | None, Field(None, alias=c)) for c in contract.columns},
    )

    def check(part: TablePartBase, info: ValidationInfo) -> TablePartBase:
        return _check_part(part, contract, info)

    validators: dict[str, Any] = {"check": model_validator(mode="after")(check)}
    return create_model(
        f"TablePart_{table}",
        __base__=TablePartBase,
        __validators__=validators,
        columns=(Annotated[columns, BeforeValidator(_columns_mapping)], columns()),
    )


def _columns_mapping(value: Any) -> Any:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ValueError("expected contract column: source pairs")
    return value


def _one_or_more_parts(value: Any) -> list[Any]:
    """A table's rows may sit in one place (`tables.x: {file: …}`) or several (`tables.x: [{…}, {…}]`)."""
    return value if isinstance(value, list) else [value]


@cache
def tables_model() -> type[BaseModel]:
    """`tables:`: one entry per contract table; the tables every export needs are required."""
    fields: dict[str, Any] = {}
    for name, contract in TABLES_BY_NAME.items():
        parts: Any = Annotated[tuple[table_part_model(name), ...], BeforeValidator(_one_or_more_parts)]  # type: ignore[misc]
        default = ... if contract.required_in_export else None
        fields[name] = (parts | None if default is None else parts, Field(default))
    return create_model("Tables", __base__=_Part, **fields)


def _tables_mapping(value: Any) -> Any:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ValueError("expected one entry per contract table")
    return value


Tables = tables_model()


# --- the whole file ------------------------------------------------------------------------------------------


class MappingFile(_Part):
    """A site's mapping file as written (docs/site-mappings.md documents every key)."""

    site: Any = None
    format: str = DEFAULT_FORMAT
    encoding: str = "utf-8"
    delimiter: str = ","
    quote: str = '"'
    decimal_comma: bool = False
    date_format: str = DEFAULT_DATE_FORMAT
    datetime_format: str = DEFAULT_DATETIME_FORMAT
    timezone: Text = None
    source_timezone: Text = None
    missing_codes: TextList = ()
    file: FileName = None  # REDCap: the one file of the export; Excel: the workbook
    # Typed by the contract's tables (built above); absent or empty, the required tables are reported missing.
    tables: Annotated[Tables, BeforeValidator(_tables_mapping)] = Field(  # type: ignore[valid-type]
        default_factory=dict, validate_default=True
    )
    ignore: TextList = ()

    @field_validator("site")
    @classmethod
    def _site_of_the_file_name(cls, value: Any, info: ValidationInfo) -> Any:
        site_id = (info.context or {}).get("site_id")
        if value is not None and value != site_id:
            raise ValueError(f"'{value}' does not match the file name's site id '{site_id}'")
        return value

    @field_validator("format", mode="before")
    @classmethod
    def _known_format(cls, value: Any) -> str:
        if value not in FORMATS:
            raise ValueError(f"'{value}' is not one of {', '.join(FORMATS)}")
        return str(value)

    @field_validator("encoding", mode="before")
    @classmethod
    def _known_encoding(cls, value: Any) -> str:
        name = str(value).lower()
        if name not in ENCODINGS:
            raise ValueError(f"'{name}' is not one of utf-8, latin-1, windows-1252")
        return name

    @field_validator("delimiter", "quote", mode="before")
    @classmethod
    def _one_character(cls, value: Any) -> str:
        text = str(value)
        if len(text) != 1:
            raise ValueError(f"must be one character (got {len(text)})")
        return text

    @field_validator("decimal_comma", mode="before")
    @classmethod
    def _truthy(cls, value: Any) -> bool:
        return bool(value)

    @field_validator("date_format", "datetime_format", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> str:
        return str(value)

    @field_validator("timezone", "source_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"'{value}' is not a time zone name such as Europe/Berlin or UTC") from None
        return value

    @model_validator(mode="after")
    def _one_file_for_redcap_and_excel(self) -> MappingFile:
        if self.format in ("redcap", "excel") and not self.file:
            kind = "REDCap export" if self.format == "redcap" else "workbook"
            raise Problems([(("file",), f"name the {kind} file (file: …)")])
        return self


# --- errors as a data manager reads them ---------------------------------------------------------------------


def validate_mapping(data: Any, site_id: str) -> MappingFile:
    """The file's data validated; raises pydantic's ValidationError (`describe` words it)."""
    mapping_format = data.get("format", DEFAULT_FORMAT) if isinstance(data, dict) else DEFAULT_FORMAT
    return MappingFile.model_validate(data, context={"site_id": site_id, "format": mapping_format})


def _aliases(model: type[BaseModel]) -> list[str]:
    return sorted(field.alias or name for name, field in model.model_fields.items())


def _unknown_key(parent: KeyPath, written: str) -> tuple[KeyPath, str]:
    """Where an unknown key sits and what may be written there instead."""
    key = messages.name(written)
    if not parent:
        return (), f"unknown key '{key}' (known: {', '.join(_aliases(MappingFile))})"
    if parent == ("tables",):
        return parent, f"'{key}' is not a contract table (tables: {', '.join(TABLES_BY_NAME)})"
    if parent[-1] == "columns":
        contract = TABLES_BY_NAME[str(parent[1])]
        return parent, f"'{key}' is not a column of {contract.file_name} (its columns: {', '.join(contract.columns)})"
    if parent[-1] == "rows":
        return parent, f"unknown key '{key}' (known: {', '.join(_aliases(Rows))})"
    if len(parent) >= 2 and parent[-2] == "columns":
        return parent, f"unknown key '{key}' (known: {', '.join(_aliases(ColumnSource))})"
    return parent, f"unknown key '{key}' (known: {', '.join(_aliases(table_part_model(str(parent[1]))))})"


def _explained(error: Any) -> list[tuple[KeyPath, str, KeyPath]]:
    """(the key path the message is under, what is wrong, the key path whose line is given)."""
    loc: KeyPath = tuple(error["loc"])
    reason = (error.get("ctx") or {}).get("error")
    if isinstance(reason, Problems):
        return [((*loc, *below), text, (*loc, *below)) for below, text in reason.problems]
    if error["type"] == "extra_forbidden":
        return [(*_unknown_key(loc[:-1], str(loc[-1])), loc)]
    if error["type"] == "missing":
        return [(loc[:-1], f"{loc[-1]} is missing; every export needs it", loc[:-1])]
    if error["type"] == "value_error":
        return [(loc, str(reason), loc)]
    found = f" (got {error['input']!r:.60})" if "input" in error else ""
    return [(loc, error["msg"][:1].lower() + error["msg"][1:] + found, loc)]


def _as_written(loc: KeyPath, data: Any) -> KeyPath:
    """`loc` as the file spells it: a table written as one place (no list) has no `[0]`."""
    written: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            if not isinstance(node, list):
                continue  # the models wrapped a single place into a list of one
            written.append(part)
            node = node[part] if part < len(node) else None
        else:
            written.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return tuple(written)


def _dotted(path: KeyPath) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{messages.name(part)}" for part in path
                   ).removeprefix(".")


# A file of thousands of wrong keys still gives a message a person can read (the settings files show ten; a
# mapping, edited part by part, a few more so one pass of fixes covers a typical file).
MOST_PROBLEMS_SHOWN = 12


def describe(exc: ValidationError, data: Any, line_of: Callable[[KeyPath], int | None]) -> list[str]:
    """Every problem as `line N: key.path: what is wrong`, the key path as written in the file (keys capped in
    length); after the first MOST_PROBLEMS_SHOWN, how many more there are."""
    described = []
    for error in exc.errors(include_url=False):
        for loc, text, line_loc in _explained(error):
            path = _as_written(loc, data)
            line = line_of(_as_written(line_loc, data))
            where = f"{_dotted(path)}: " if path else ""
            described.append((f"line {line}: " if line is not None else "") + where + text)
    if len(described) > MOST_PROBLEMS_SHOWN:
        described[MOST_PROBLEMS_SHOWN:] = [f"and {len(described) - MOST_PROBLEMS_SHOWN:,} more"]
    return described
