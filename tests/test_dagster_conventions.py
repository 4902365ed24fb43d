"""Dagster conventions: Great Expectations results as asset checks with their severity, SQL header comments as
asset descriptions, standard row-count and column-schema metadata, owners, layer tags, code references and
absolute paths. A real run of the job on a small landing folder."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from support import TEST_KEY, write_export

from pipelines.connections import PostgresTarget, WorkingStore
from pipelines.definitions import build_definitions, defs
from pipelines.resources import RegistrySettings, default_resources, registry_resources


def test_registry_assets_are_described_by_their_sql_header_and_carry_owners_tags_and_code_references() -> None:
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    patients = specs["registry/patients"]
    sql_file = Path(__file__).parents[1] / "sql" / "registry" / "patients.sql"
    header = sql_file.read_text(encoding="utf-8").splitlines()[0].removeprefix("-- ")
    assert patients.description.startswith(header)
    assert "built by" not in (specs["metrics/patient_outcomes"].description or "")
    for key, spec in specs.items():
        assert spec.owners, key
        assert spec.tags.get("layer") == key.split("/")[0], key
        references = spec.metadata["dagster/code_references"].code_references
        assert all(Path(ref.file_path).is_absolute() and Path(ref.file_path).is_file() for ref in references), key
    sql_references = [ref.file_path for ref in patients.metadata["dagster/code_references"].code_references]
    assert any(path.endswith("sql/registry/patients.sql") for path in sql_references)


def test_the_settings_hold_no_connection_and_each_connection_lives_in_one_resource() -> None:
    resources = default_resources()
    # Only the working store opens a DuckDB connection; the settings are paths and thresholds.
    assert [key for key, resource in resources.items() if hasattr(resource, "connect")] == ["working_store"]
    connection_fields = set(WorkingStore.model_fields) | set(PostgresTarget.model_fields)
    assert not set(RegistrySettings.model_fields) & connection_fields
    # The fields the settings held before issue 15 split them off.
    assert not set(RegistrySettings.model_fields) & {
        "work_db", "duckdb_memory_limit", "duckdb_threads", "publish_url", "publish_site_role_prefix"
    }
    # Every step that writes the working store asks for that resource; only the PostgreSQL publish asks for
    # the target.
    steps = list(defs.assets or [])
    assert len(steps) > 10  # the registry's steps, not an empty list
    for assets in steps:
        assert isinstance(assets, dg.AssetsDefinition)
        keys = {key.to_user_string() for key in assets.keys}
        assert "working_store" in assets.required_resource_keys, keys
        assert ("postgres_target" in assets.required_resource_keys) == (keys == {"publish/postgres_registry"}), keys
    for checks in defs.asset_checks or []:
        assert "working_store" in checks.required_resource_keys


@pytest.mark.slow
def test_great_expectations_failures_are_failed_asset_checks_and_tables_carry_standard_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY", TEST_KEY)  # the resource reads the key when a step needs it
    landing = tmp_path / "landing"
    write_export(landing, "site_a")  # 1 of 4 assessments records satisfaction: below config/quality.yaml's 50 %
    resources = registry_resources(
        RegistrySettings(landing_dir=str(landing), analyst_db=str(tmp_path / "out" / "registry.duckdb"))
    )
    result = build_definitions(resources).resolve_job_def("registry_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert result.success
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}

    completeness = evaluations[("registry/assessments", "gx_completeness")]
    assert not completeness.passed
    assert completeness.severity == dg.AssetCheckSeverity.WARN
    assert "satisfaction" in completeness.description and "site_a" in completeness.description
    assert evaluations[("registry/patients", "gx_conformance")].passed
    assert {name for (_, name) in evaluations} >= {"gx_conformance", "gx_completeness", "gx_plausibility"}

    materialized = {m.asset_key.to_user_string(): m.metadata for m in result.get_asset_materialization_events()
                    for m in [m.event_specific_data.materialization]}
    patients = materialized["registry/patients"]
    assert patients["dagster/row_count"].value == 2
    assert "rows" not in patients
    columns = {column.name for column in patients["dagster/column_schema"].schema.columns}
    assert {"patient_key", "site_id", "birth_year"} <= columns
    assert materialized["staging/patients"]["dagster/row_count"].value == 2
    assert Path(materialized["publish/analyst_registry"]["path"].value).is_absolute()
    assert Path(materialized["quality/dashboard"]["path"].value).is_absolute()
