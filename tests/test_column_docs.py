"""Column docs (schemas/columns/*.yaml) cover every published table and column, reach the published DuckDB file
as comments, and become a Frictionless data dictionary whose constraints are the contract's and the protocol's
and hold on real data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import pytest
from support import RegistryRun, query_db

from ketreg.registry.data_dictionary import DATA_PACKAGE_FILE, data_package
from ketreg.registry.publish import PUBLISHED_SCHEMAS, data_package_path
from ketreg.registry.release import make_release, verify_release
from schemas.column_docs import ColumnDocsError, column_comment, load_table_docs, table_comment
from schemas.dictionary import ROOT, render_registry_tables
from schemas.protocol import load_protocol
from schemas.tables import TABLES

# What the Table Schema standard (https://datapackage.org/standard/table-schema/) allows a field to be.
FIELD_TYPES = {"string", "number", "integer", "boolean", "object", "array", "list", "date", "time", "datetime",
               "year", "yearmonth", "duration", "geopoint", "geojson", "any"}
CONSTRAINTS = {"required", "unique", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
               "exclusiveMaximum", "jsonSchema", "pattern", "enum"}
NAME = re.compile(r"^[a-z0-9._-]+$")


def _published_columns(path: Path) -> dict[str, list[str]]:
    rows = query_db(path, "SELECT schema_name, table_name, list(column_name ORDER BY column_index) FROM "
                          "duckdb_columns() WHERE database_name = current_database() AND NOT internal GROUP BY ALL")
    return {(table if schema == "main" else f"{schema}.{table}"): columns for schema, table, columns in rows}


def _docs_by_published_name() -> dict:
    return {doc.published_name: doc for doc in load_table_docs().values()}


def test_every_published_table_and_column_has_a_doc_and_no_doc_is_stale(faulty_registry: RegistryRun) -> None:
    published = _published_columns(faulty_registry.analyst_db)
    docs = _docs_by_published_name()
    assert sorted(set(published) - set(docs)) == [], "published tables without schemas/columns/<schema>.<table>.yaml"
    assert sorted(set(docs) - set(published)) == [], "column docs of tables that are not published"
    for table, columns in published.items():
        doc = docs[table]
        assert doc.description, f"{table} has no description (YAML or SQL header)"
        missing = [c for c in columns if c not in doc.columns]
        assert missing == [], f"{table}: columns without a doc in schemas/columns/{doc.key}.yaml: {missing}"
        stale = [c for c in doc.columns if c not in columns]
        assert stale == [], f"{table}: documented columns that are not published: {stale}"
        assert all(doc.columns[c].description for c in columns), f"{table}: a column has an empty description"


def test_published_names_follow_the_schemas_publish_maps() -> None:
    for doc in load_table_docs().values():
        target = PUBLISHED_SCHEMAS[doc.schema]
        assert doc.published_name == (doc.name if target == "main" else f"{target}.{doc.name}")


def test_the_published_file_carries_the_docs_as_comments(faulty_registry: RegistryRun) -> None:
    protocol = load_protocol()
    docs = _docs_by_published_name()
    tables = query_db(faulty_registry.analyst_db, "SELECT schema_name, table_name, comment FROM duckdb_tables() "
                                                  "WHERE database_name = current_database()")
    for schema, table, comment in tables:
        doc = docs[table if schema == "main" else f"{schema}.{table}"]
        assert comment == table_comment(doc)
    columns = query_db(faulty_registry.analyst_db, "SELECT schema_name, table_name, column_name, comment FROM "
                                                   "duckdb_columns() WHERE database_name = current_database() "
                                                   "AND NOT internal")
    assert len(columns) > 200
    for schema, table, column, comment in columns:
        doc = docs[table if schema == "main" else f"{schema}.{table}"]
        assert comment == column_comment(doc, column, protocol), f"{table}.{column}"
    rate = dict(((t, c), text) for _, t, c, text in columns)[("infusions", "max_rate_mg_h")]
    assert "Unit: mg/h." in rate and f"≤ {protocol.plausible_max_rate_mg_h:g}" in rate


def _package(faulty_registry: RegistryRun) -> dict:
    path = data_package_path(faulty_registry.analyst_db)
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_data_dictionary_beside_the_published_file_follows_the_table_schema_standard(
    faulty_registry: RegistryRun,
) -> None:
    package = _package(faulty_registry)
    assert NAME.match(package["name"]) and package["resources"]
    published = _published_columns(faulty_registry.analyst_db)
    assert {r["name"] for r in package["resources"]} == set(published)
    for resource in package["resources"]:
        assert NAME.match(resource["name"])
        assert (faulty_registry.analyst_db.parent / resource["path"]) == faulty_registry.analyst_db
        schema = resource["schema"]
        fields = schema["fields"]
        assert [f["name"] for f in fields] == published[resource["name"]]
        for field in fields:
            assert isinstance(field["name"], str) and field["type"] in FIELD_TYPES, field
            assert field["type"] != "any", f"{resource['name']}.{field['name']}: DuckDB type not mapped"
            assert set(field.get("constraints", {})) <= CONSTRAINTS, field
            if "enum" in field.get("constraints", {}):
                assert field["constraints"]["enum"], field
        assert set(schema.get("primaryKey", [])) <= {f["name"] for f in fields}


def test_the_published_data_meets_its_dictionary_keys_and_constraints(faulty_registry: RegistryRun) -> None:
    """Every required, unique, range, code and key claim of the dictionary holds on a real faulty run."""
    con = duckdb.connect(str(faulty_registry.analyst_db), read_only=True)
    checked = 0
    try:
        for resource in _package(faulty_registry)["resources"]:
            table = resource["dialect"]["table"]
            for field in resource["schema"]["fields"]:
                column, rules = field["name"], field.get("constraints", {})
                broken = []
                if rules.get("required"):
                    broken.append(f"{column} IS NULL")
                for key, op in (("minimum", "<"), ("maximum", ">"), ("exclusiveMinimum", "<="),
                                ("exclusiveMaximum", ">=")):
                    if key in rules:
                        broken.append(f"{column} {op} {rules[key]!r}")
                if "enum" in rules:
                    broken.append(f"NOT list_contains($codes, {column})")
                for predicate in broken:
                    params = {"codes": rules["enum"]} if "codes" in predicate else {}
                    bad = con.execute(f"SELECT count(*) FROM {table} WHERE {predicate}", params).fetchall()[0][0]
                    assert bad == 0, f"{table}: {bad} rows break {predicate}"
                    checked += 1
                if rules.get("unique"):
                    n, distinct = con.execute(f"SELECT count({column}), count(DISTINCT {column}) FROM {table}"
                                              ).fetchall()[0]
                    assert n == distinct, f"{table}.{column} is not unique"
            key = resource["schema"].get("primaryKey")
            if key:
                dupes = con.execute(f"SELECT count(*) FROM (SELECT {', '.join(key)} FROM {table} GROUP BY ALL "
                                    "HAVING count(*) > 1)").fetchall()[0][0]
                assert dupes == 0, f"{table}: primary key {key} repeats"
                checked += 1
    finally:
        con.close()
    assert checked > 100


def test_dictionary_constraints_are_the_pandera_and_protocol_ranges(faulty_registry: RegistryRun,
                                                                     tmp_path: Path) -> None:
    # The published file's protocol table is the source: change its limit and the dictionary follows.
    copy = tmp_path / "registry.duckdb"
    shutil.copyfile(faulty_registry.analyst_db, copy)
    con = duckdb.connect(str(copy))
    con.execute("UPDATE protocol SET plausible_max_rate_mg_h = 90")
    con.close()
    resources = {r["name"]: r for r in data_package(copy)["resources"]}
    protocol = load_protocol()
    for table in TABLES:
        fields = {f["name"]: f.get("constraints", {}) for f in resources[table.name]["schema"]["fields"]}
        for name, column in table.schema(protocol).columns.items():
            if name not in fields:
                continue  # a site id the registry replaces by a key
            stats = {check.name: check.statistics or {} for check in column.checks}
            got = fields[name]
            if "isin" in stats:
                assert got["enum"] == list(stats["isin"]["allowed_values"]), f"{table.name}.{name}"
            if "greater_than_or_equal_to" in stats:
                assert got["minimum"] == stats["greater_than_or_equal_to"]["min_value"], f"{table.name}.{name}"
            if "greater_than" in stats:
                assert got["exclusiveMinimum"] == stats["greater_than"]["min_value"], f"{table.name}.{name}"
            if "less_than_or_equal_to" in stats:
                assert got["maximum"] == stats["less_than_or_equal_to"]["max_value"], f"{table.name}.{name}"
            if "rate_within_plausibility_limit" in stats:
                assert got["maximum"] == 90, f"{table.name}.{name} does not follow the file's protocol"
            if not column.nullable:
                assert got.get("required") is True, f"{table.name}.{name}"


def test_a_release_carries_its_data_dictionary_and_verification_catches_a_changed_one(
    faulty_registry: RegistryRun, tmp_path: Path
) -> None:
    release = make_release("Dict-1", faulty_registry.analyst_db, tmp_path / "releases")
    manifest = json.loads((release / "manifest.json").read_text(encoding="utf-8"))
    package = json.loads((release / DATA_PACKAGE_FILE).read_text(encoding="utf-8"))
    assert manifest["data_dictionary"]["file"] == DATA_PACKAGE_FILE
    assert package["name"] == "ketreg-registry-dict-1"
    assert {r["path"] for r in package["resources"]} == {"registry.duckdb"}
    assert set(manifest["tables"]) == {r["name"] for r in package["resources"]}
    assert verify_release("Dict-1", tmp_path / "releases").ok

    path = release / DATA_PACKAGE_FILE
    path.chmod(0o644)
    path.write_text(path.read_text(encoding="utf-8").replace('"required": true', '"required": false', 1))
    problems = verify_release("Dict-1", tmp_path / "releases").problems
    assert any(DATA_PACKAGE_FILE in problem for problem in problems), problems


def _docs_root(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "schemas" / "columns", tmp_path / "schemas" / "columns")
    shutil.copytree(ROOT / "sql", tmp_path / "sql")
    return tmp_path


def test_a_range_typed_into_a_column_doc_is_refused(tmp_path: Path) -> None:
    root = _docs_root(tmp_path)
    path = root / "schemas" / "columns" / "registry.patients.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("    unit: kg\n", "    unit: kg\n    maximum: 300\n"))
    with pytest.raises(ColumnDocsError, match=r"weight_kg.*maximum"):
        load_table_docs(root)


def test_the_rendered_docs_follow_the_yaml_and_the_sql_header(tmp_path: Path) -> None:
    root = _docs_root(tmp_path)
    path = root / "schemas" / "columns" / "registry.infusions.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("Starting ketamine rate of the session.",
                                                             "A changed meaning of the rate."))
    sql = root / "sql" / "registry" / "patients.sql"
    sql.write_text("-- registry.patients: a changed table meaning.\n" + sql.read_text(encoding="utf-8"))
    rendered = render_registry_tables(root)
    assert "A changed meaning of the rate." in rendered
    assert "### `patients`\n\nA changed table meaning." in rendered
    assert rendered != render_registry_tables(ROOT)
