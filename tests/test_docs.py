"""The docs read the schemas: generated blocks are current, complete, follow the models and the protocol,
and what the prose promises (formats, identifier names, landing patterns, example SQL) holds in the code."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import duckdb
import pandera.polars as pa
import polars as pl
import pytest

from schemas import dictionary, enums
from schemas.dictionary import (
    IDENTIFIER_EXAMPLES,
    PROTOCOL_SETTINGS,
    ROOT,
    WRITING_EXAMPLES,
    DocsError,
    render_contract,
    render_registry_tables,
    update_docs,
)
from schemas.identifiers import looks_like_identifier
from schemas.parsing import parse_table
from schemas.protocol import load_protocol
from schemas.tables import CONTRACT_VERSION, TABLES, TableContract

CONTRACT_DOC = ROOT / "docs" / "site-export-contract.md"
REGISTRY_DOC = ROOT / "docs" / "registry-tables.md"
REGISTRY_SQL_FILES = sorted((ROOT / "sql" / "registry").glob("*.sql"))


def _all_codes() -> set[str]:
    codes: set[str] = set()
    for name, value in vars(enums).items():
        if name.isupper() and isinstance(value, tuple):
            codes.update(value)
    codes.update(enums.AE_TERM_CATEGORY, enums.AE_TERM_CATEGORY.values())
    return codes


def test_committed_docs_match_the_schemas() -> None:
    stale = update_docs(check=True)
    assert stale == [], f"{stale} are stale: run `.venv/bin/python -m schemas.dictionary` and commit the docs"


def test_every_contract_column_and_code_appears_in_the_rendered_contract() -> None:
    rendered = render_contract()
    for table in TABLES:
        assert f"### {table.file_name}" in rendered
        for column in table.columns:
            assert f"| `{column}` |" in rendered, f"{table.name}.{column} is not in the rendered contract"
    missing = sorted(code for code in _all_codes() if f"`{code}`" not in rendered)
    assert missing == [], f"codes missing from the rendered contract: {missing}"


def test_a_different_plausibility_limit_changes_the_rendered_contract() -> None:
    protocol = dataclasses.replace(load_protocol(), plausible_max_rate_mg_h=99)
    rendered = render_contract(protocol)
    assert "at most 99 mg/h, the protocol's plausibility limit" in rendered
    assert "| `plausibility.max_rate_mg_h` | 99 |" in rendered
    assert "at most 150 mg/h" not in rendered


def test_a_different_model_range_changes_the_rendered_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    assessments = next(table for table in TABLES if table.name == "assessments")
    wider = dataclasses.replace(assessments)
    # As if the model said Field(ge=0, le=100): the renderer reads the schema, whatever the model's source.
    wider.__dict__["base_schema"] = assessments.base_schema.update_column(
        "nprs", checks=[pa.Check.ge(0), pa.Check.le(100)], description="A 0–100 scale."
    )
    monkeypatch.setattr(dictionary, "TABLES", tuple(wider if t is assessments else t for t in TABLES))
    assert "| `nprs` | integer | no | 0 … 100. *A 0–100 scale.* |" in render_contract()


def test_every_registry_sql_file_is_documented() -> None:
    assert REGISTRY_SQL_FILES, "no sql/registry/*.sql files found"
    doc = REGISTRY_DOC.read_text(encoding="utf-8")
    for path in REGISTRY_SQL_FILES:
        header = dictionary.sql_header(path)
        assert header, f"{path.name} has no leading -- comment saying what the table means"
        assert f"Built by `sql/registry/{path.name}`." in doc, f"{path.name} is not documented in {REGISTRY_DOC.name}"


def test_registry_tables_render_from_any_root(tmp_path: Path) -> None:
    (tmp_path / "sql" / "registry").mkdir(parents=True)
    (tmp_path / "schemas" / "columns").mkdir(parents=True)
    sql = "-- registry.visits: one row per clinic visit.\n-- Second line.\nSELECT 1;"
    (tmp_path / "sql" / "registry" / "visits.sql").write_text(sql, encoding="utf-8")
    (tmp_path / "schemas" / "columns" / "registry.visits.yaml").write_text(
        "primary_key: [visit_key]\ncolumns:\n  visit_key:\n    description: The visit.\n", encoding="utf-8"
    )
    rendered = render_registry_tables(tmp_path)
    assert "### `visits`\n\nOne row per clinic visit. Second line." in rendered
    assert "| `visit_key` |  | required; unique | The visit. |" in rendered


def test_documented_type_formats_are_read_and_refused_by_the_parser() -> None:
    for dtype, (read, refused) in WRITING_EXAMPLES.items():
        table, column = next(
            (t, c) for t in TABLES for c in t.columns if dictionary._base_type(t.polars_type(c)) == dtype
        )
        for text, readable in [*((t, True) for t in read), *((t, False) for t in refused)]:
            assert _reads(table, column, text) is readable, f"{dtype}: the parser disagrees about '{text}'"


def _reads(table: TableContract, column: str, text: str) -> bool:
    raw = pl.DataFrame(
        {"site_id": ["s"], "export_id": ["e"], "source_line": [2]}
        | {c: [text if c == column else None] for c in table.columns},
        schema={"site_id": pl.String, "export_id": pl.String, "source_line": pl.Int64}
        | {c: pl.String for c in table.columns},
    )
    _, failures = parse_table(raw, table)
    return failures.filter(pl.col("column") == column).height == 0


def test_documented_identifier_names_are_never_read() -> None:
    assert [name for name in IDENTIFIER_EXAMPLES if not looks_like_identifier(name)] == []
    assert [c for t in TABLES for c in t.columns if looks_like_identifier(c)] == []


def test_documented_deviations_are_the_ones_the_sql_records() -> None:
    sql = (ROOT / "sql" / "registry" / "protocol_deviations.sql").read_text(encoding="utf-8")
    for setting in PROTOCOL_SETTINGS.values():
        for deviation in setting.deviations:
            assert f"'{deviation}'" in sql


def test_contract_doc_states_the_version_and_landing_patterns_of_the_code() -> None:
    from ketreg.landing.discovery import EXPORT_ID, SITE_ID

    doc = CONTRACT_DOC.read_text(encoding="utf-8")
    assert doc.startswith(f"# Site export contract v{CONTRACT_VERSION}\n")
    for pattern in (SITE_ID.pattern, EXPORT_ID.pattern):
        assert f"`{pattern.removeprefix('^').removesuffix('$')}`" in doc


def test_a_stale_block_is_reported_then_rewritten(tmp_path: Path) -> None:
    for doc in dictionary.DOC_BLOCKS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / doc, tmp_path / doc)
    shutil.copytree(ROOT / "sql", tmp_path / "sql")
    shutil.copytree(ROOT / "schemas" / "columns", tmp_path / "schemas" / "columns")
    sql = tmp_path / "sql" / "registry" / "patients.sql"
    sql.write_text("-- registry.patients: a changed meaning.\n" + sql.read_text(encoding="utf-8"))

    assert update_docs(check=True, root=tmp_path) == ["docs/registry-tables.md"]
    assert update_docs(root=tmp_path) == ["docs/registry-tables.md"]
    assert "A changed meaning." in (tmp_path / "docs" / "registry-tables.md").read_text(encoding="utf-8")
    assert update_docs(check=True, root=tmp_path) == []


def test_a_doc_without_its_markers_is_an_error(tmp_path: Path) -> None:
    for doc in dictionary.DOC_BLOCKS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / doc, tmp_path / doc)
    shutil.copytree(ROOT / "sql" / "registry", tmp_path / "sql" / "registry")
    doc = tmp_path / "docs" / "site-export-contract.md"
    doc.write_text(doc.read_text(encoding="utf-8").replace("<!-- END GENERATED: contract -->", ""))
    with pytest.raises(DocsError, match="contract"):
        update_docs(check=True, root=tmp_path)


@pytest.fixture(scope="module")
def empty_published_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The analysts' database as the pipeline publishes it, built from no exports: every table, no rows."""
    from ketreg.registry.build import REGISTRY_TABLES, build_table, prepare
    from ketreg.registry.publish import publish
    from ketreg.registry.site_private import SITE_PRIVATE_TABLES, build_site_private_table
    from ketreg.staging.tables import ensure_staging_tables

    root = tmp_path_factory.mktemp("docs-registry")
    con = duckdb.connect(str(root / "work.duckdb"))
    try:
        ensure_staging_tables(con)
        prepare(con, "docs-test-pseudonym-key-0123", load_protocol())
        for name in REGISTRY_TABLES:
            build_table(con, name, load_protocol())
            if name == "exports":  # the private tables follow exports; the counts-only quarantine reads them
                for private in SITE_PRIVATE_TABLES:
                    build_site_private_table(con, private)
        publish(con, root / "registry.duckdb")
    finally:
        con.close()
    return root / "registry.duckdb"


@pytest.mark.parametrize("doc", [CONTRACT_DOC, REGISTRY_DOC], ids=lambda p: p.name)
def test_example_queries_in_the_docs_run_on_the_published_registry(
    doc: Path,
    empty_published_registry: Path,
) -> None:
    queries = re.findall(r"```sql\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL)
    assert queries, f"{doc.name} has no SQL examples"
    con = duckdb.connect(str(empty_published_registry), read_only=True)
    try:
        for query in queries:
            con.execute(query).fetchall()
    finally:
        con.close()
