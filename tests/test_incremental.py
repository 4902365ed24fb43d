"""Incremental runs (issue 13): a run where nothing changed leaves the registry as published and says so;
anything that changed (an export, the published file) rebuilds. Real Dagster runs on real DuckDB files."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import psycopg
import pytest
from postgres_support import fresh_database
from support import TEST_KEY, write_export

from ketreg.incremental.ledger import unchanged_since
from ketreg.registry.release import table_fingerprints
from ketreg_app.run import RunOutcome, run_pipeline
from pipelines.connections import PostgresTarget, WorkingStore
from pipelines.definitions import build_definitions
from pipelines.resources import RegistrySettings, registry_resources
from pipelines.skipping import _NOT_INPUTS, CONNECTION_FIELDS_NOT_INPUTS
from synthetic import generate_landing

# Assets downstream of staging: each is rebuilt, or reported skipped, in every run. The PostgreSQL target
# (off without a postgres_target url) decides from what the server holds (tests/test_postgres_publish.py).
_STAGING_AND_BEFORE = ("landing/", "staging/", "publish/postgres_registry")


def _run(landing: Path, out: Path) -> RunOutcome:
    return run_pipeline(landing, out / "registry.duckdb", out / "registry_work.duckdb")


def _materializations(run_id: str) -> dict[str, dict[str, object]]:
    """asset key → metadata of its materialization in run `run_id`, from the Dagster instance's event log."""
    instance = dg.DagsterInstance.get()
    found = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = record.dagster_event.step_materialization_data.materialization
        found[materialization.asset_key.to_user_string()] = {
            name: value.value for name, value in materialization.metadata.items()
        }
    return found


def _gx_checks(run_id: str) -> dict[str, str]:
    """check name → description of every Great Expectations asset check evaluated in run `run_id`."""
    found = {}
    for record in dg.DagsterInstance.get().all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data
        if evaluation.check_name.startswith("gx_"):
            found[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = evaluation.description
    return found


def _working_store_digests(work_db: Path) -> dict[str, dict[str, object]]:
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        # The ledger itself records every run, and the asset checks (which run in every run) refresh their
        # snapshot of the published file and record their evaluations; every other table must be left
        # exactly as it was.
        written_every_run = ("incremental.", "publish_guard.", "quality.registry_check_evaluations")
        return {name: digest for name, digest in table_fingerprints(con).items()
                if not name.startswith(written_every_run)}
    finally:
        con.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY", TEST_KEY)
    return home


def test_nothing_changed_skips_the_rebuild_and_a_change_rebuilds(tmp_path: Path, dagster_home: Path) -> None:
    landing, out = tmp_path / "landing", tmp_path / "out"
    generate_landing(landing, sites=2, patients_per_site=10, seed=3)
    analyst_db, work_db = out / "registry.duckdb", out / "registry_work.duckdb"

    first = _run(landing, out)
    assert first.success, first.failures
    assert first.unchanged_since is None
    built = _materializations(first.run_id)
    downstream = sorted(key for key in built if not key.startswith(_STAGING_AND_BEFORE))
    assert "publish/analyst_registry" in downstream and "quality/check_results" in downstream
    assert not any(built[key].get("skipped") for key in built)
    published, store = _sha256(analyst_db), _working_store_digests(work_db)

    second = _run(landing, out)
    assert second.success, second.failures
    assert second.unchanged_since == first.run_id
    events = _materializations(second.run_id)
    # Every asset after staging still reports, as skipped, with the run whose result stands.
    assert sorted(key for key in events if not key.startswith(_STAGING_AND_BEFORE)) == downstream
    for key in downstream:
        assert events[key]["skipped"] is True, key
        assert events[key]["origin_run"] == first.run_id, key
    assert _sha256(analyst_db) == published  # not even rewritten
    assert _working_store_digests(work_db) == store
    # The Great Expectations checks read the carried-forward results (not an empty set of this run): the
    # same outcome and the same counts as in the run that made them.
    assert _gx_checks(second.run_id) == _gx_checks(first.run_id)
    assert any("results pass" in description for description in _gx_checks(first.run_id).values())

    # The published file replaced behind the pipeline's back: it is no longer what the last run published.
    con = duckdb.connect(str(analyst_db))
    con.execute("CREATE TABLE scribble AS SELECT 1 AS x")
    con.close()
    third = _run(landing, out)
    assert third.success, third.failures
    assert third.unchanged_since is None
    assert not any(meta.get("skipped") for meta in _materializations(third.run_id).values())
    con = duckdb.connect(str(analyst_db), read_only=True)
    assert "scribble" not in table_fingerprints(con)
    con.close()

    # A new export rebuilds too, and the registry then holds it.
    write_export(landing, "site_new", export_id="2026-11-20")
    fourth = _run(landing, out)
    assert fourth.success, fourth.failures
    assert fourth.unchanged_since is None
    assert _materializations(fourth.run_id)["registry/patients"].get("skipped") is None
    con = duckdb.connect(str(analyst_db), read_only=True)
    assert con.execute("SELECT count(*) FROM exports WHERE site_id = 'site_new'").fetchall()[0][0] == 1
    con.close()


def test_every_field_of_the_connections_is_declared_not_an_input_and_the_settings_exclusions_exist() -> None:
    # A field added to a connection resource must be classified (pipelines/skipping.py) before this passes.
    declared = {"working_store": set(WorkingStore.model_fields), "postgres_target": set(PostgresTarget.model_fields)}
    assert declared == CONNECTION_FIELDS_NOT_INPUTS
    # An exclusion naming no field of the settings would exclude nothing, silently.
    assert _NOT_INPUTS.issubset(RegistrySettings.model_fields)


def _run_job(resources: dict[str, dg.ConfigurableResource]) -> str:
    """One run of the registry job with these resources, on the instance of DAGSTER_HOME; its run id."""
    result = build_definitions(resources).resolve_job_def("registry_job").execute_in_process(
        instance=dg.DagsterInstance.get(), raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    assert result.success, [event.message for event in result.get_step_failure_events()]
    return result.run_id


def test_a_new_memory_budget_store_location_or_publish_target_rebuilds_nothing(
    tmp_path: Path, dagster_home: Path
) -> None:
    """The connections say where and how a run works, not what it builds: changing them keeps the inputs
    fingerprint, so the registry is left as published (and the new PostgreSQL target still gets it)."""
    landing = tmp_path / "landing"
    generate_landing(landing, sites=2, patients_per_site=10, seed=3)
    settings = RegistrySettings(landing_dir=str(landing), analyst_db=str(tmp_path / "out" / "registry.duckdb"))
    store = WorkingStore.beside(settings.analyst_db, memory_limit="256MB", threads=1)
    first = _run_job(registry_resources(settings, store))
    built = _materializations(first)
    downstream = sorted(key for key in built if not key.startswith(_STAGING_AND_BEFORE))
    published = _sha256(settings.analyst_db_path)

    # The working store moved to another folder, with another memory budget and thread count.
    moved = WorkingStore(path=str(tmp_path / "elsewhere" / "registry_work.duckdb"), memory_limit="1GB", threads=2)
    moved.file.parent.mkdir()
    shutil.copy(store.file, moved.file)
    second = _run_job(registry_resources(settings, moved))
    assert unchanged_since(moved.file, second) == first
    events = _materializations(second)
    assert sorted(key for key in events if not key.startswith(_STAGING_AND_BEFORE)) == downstream
    assert all(events[key]["skipped"] is True for key in downstream)
    assert _sha256(settings.analyst_db_path) == published

    # A PostgreSQL target appears (skips the rest of the test where no server answers).
    prefix = f"t{uuid.uuid4().hex[:8]}_site_"  # site roles are global to the server: this test's own
    with contextmanager(fresh_database)() as database:
        try:
            third = _run_job(registry_resources(settings, moved, PostgresTarget(url=database.url,
                                                                                site_role_prefix=prefix)))
            assert unchanged_since(moved.file, third) == first
            events = _materializations(third)
            assert all(events[key]["skipped"] is True for key in downstream)
            assert events["publish/postgres_registry"]["published"] is True  # the server held nothing yet
            with psycopg.connect(database.url) as pg:
                on_server = pg.execute("SELECT count(*) FROM registry.patients").fetchone()[0]
            analysts = duckdb.connect(str(settings.analyst_db_path), read_only=True)
            in_file = analysts.execute("SELECT count(*) FROM patients").fetchall()[0][0]
            analysts.close()
            assert on_server == in_file > 0
        finally:
            with psycopg.connect(database.url, autocommit=True) as pg:
                roles = [r for (r,) in pg.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)",
                                                  [prefix])]
                for role in roles:
                    pg.execute(f'DROP OWNED BY "{role}"')
                    pg.execute(f'DROP ROLE "{role}"')
    assert _sha256(settings.analyst_db_path) == published


def _published_digests(analyst_db: Path) -> dict[str, dict[str, object]]:
    con = duckdb.connect(str(analyst_db), read_only=True)
    try:
        return table_fingerprints(con)
    finally:
        con.close()


def test_registry_rebuilt_for_changed_sites_only_equals_a_full_rebuild(tmp_path: Path, dagster_home: Path) -> None:
    landing = tmp_path / "landing"
    generate_landing(landing, sites=3, patients_per_site=10, seed=5)
    added_site, changed_site, removed_site = sorted(p.name for p in landing.iterdir() if p.is_dir())
    incremental = tmp_path / "incremental"
    first = _run(landing, incremental)
    assert first.success, first.failures
    assert _materializations(first.run_id)["registry/patients"]["sites_rebuilt"] == "all"

    # One site sends a new export, one site's current export changes (its last assessment removed), and one
    # site's newest export leaves the landing folder (its earlier export becomes current again).
    newest = sorted(p for p in (landing / added_site).iterdir() if p.is_dir())[-1]
    shutil.copytree(newest, landing / added_site / "2099-12-31")
    changed = sorted(p for p in (landing / changed_site).iterdir() if p.is_dir())[-1] / "assessments.csv"
    lines = changed.read_text().splitlines(keepends=True)
    changed.write_text("".join(lines[:-1]))
    removed_exports = sorted(p for p in (landing / removed_site).iterdir() if p.is_dir())
    assert len(removed_exports) > 1, "the site must keep an export"
    shutil.rmtree(removed_exports[-1])

    second = _run(landing, incremental)
    assert second.success, second.failures
    events = _materializations(second.run_id)
    expected = sorted([added_site, changed_site, removed_site])
    for table in ("patients", "infusions", "assessments", "adverse_events", "dispositions", "protocol_deviations",
                  "quarantine", "export_changes"):
        assert events[f"registry/{table}"]["sites_rebuilt"] == expected, table
    # The analysts' file is the last one with those sites' rows replaced, not written afresh.
    assert events["publish/analyst_registry"]["sites_replaced"] == expected

    # Only one site changes now: only its rows are rebuilt.
    shutil.rmtree(landing / added_site / "2099-12-31")
    third = _run(landing, incremental)
    assert third.success, third.failures
    assert _materializations(third.run_id)["registry/assessments"]["sites_rebuilt"] == [added_site]
    assert _materializations(third.run_id)["registry/export_changes"]["sites_rebuilt"] == [added_site]
    assert _materializations(third.run_id)["publish/analyst_registry"]["sites_replaced"] == [added_site]

    full = tmp_path / "full"
    rebuilt = _run(landing, full)
    assert rebuilt.success, rebuilt.failures
    assert _materializations(rebuilt.run_id)["registry/assessments"]["sites_rebuilt"] == "all"
    assert _materializations(rebuilt.run_id)["publish/analyst_registry"]["sites_replaced"] == "all"
    incremental_tables = _published_digests(incremental / "registry.duckdb")
    assert incremental_tables == _published_digests(full / "registry.duckdb")
    assert incremental_tables["assessments"]["rows"] > 0
    assert incremental_tables["export_changes"]["rows"] > 0


def _folder_bytes(folder: Path) -> dict[str, str]:
    """relative path → SHA-256 of every file of a folder (empty when it does not exist)."""
    return {p.relative_to(folder).as_posix(): _sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _gx_results(work_db: Path, run_id: str) -> list[tuple]:
    """Great Expectations results recorded for run `run_id`, each with its run of origin last."""
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        return con.execute(
            "SELECT check_id, site_id, numerator, denominator, threshold, passed, violations_sql, origin_run_id "
            "FROM quality.check_results WHERE run_id = ? AND source = 'great_expectations' ORDER BY check_id",
            [run_id],
        ).fetchall()
    finally:
        con.close()


def _origins_by_site(results: list[tuple]) -> dict[str, set[str]]:
    origins: dict[str, set[str]] = {}
    for row in results:
        origins.setdefault(row[1], set()).add(row[-1])
    return origins


@pytest.mark.slow  # five whole-pipeline runs
def test_one_new_export_rewrites_revalidates_and_recomputes_that_site_only(
    tmp_path: Path, dagster_home: Path
) -> None:
    landing = tmp_path / "landing"
    generate_landing(landing, sites=3, patients_per_site=10, seed=7)
    changed, kept, retired = sorted(p.name for p in landing.iterdir() if p.is_dir())
    out = tmp_path / "incremental"
    sites_folder = out / "reports" / "sites"
    first = _run(landing, out)
    assert first.success, first.failures
    events = _materializations(first.run_id)
    assert events["reports/site_folders"]["sites_rewritten"] == "all"
    assert events["metrics/patient_outcomes"]["sites_rebuilt"] == "all"
    assert events["quality/check_results"]["sites_validated"] == "all"
    before = {site: _folder_bytes(sites_folder / site) for site in (changed, kept, retired)}
    assert all(before.values())

    newest = sorted(p for p in (landing / changed).iterdir() if p.is_dir())[-1]
    shutil.copytree(newest, landing / changed / "2099-12-31")
    second = _run(landing, out)
    assert second.success, second.failures
    events = _materializations(second.run_id)
    assert events["reports/site_folders"]["sites_rewritten"] == [changed]
    assert events["metrics/patient_outcomes"]["sites_rebuilt"] == [changed]
    assert events["quality/check_results"]["sites_validated"] == [changed]
    # The other sites' folders are left byte for byte; the changed site's lists its new export.
    assert _folder_bytes(sites_folder / kept) == before[kept]
    assert _folder_bytes(sites_folder / retired) == before[retired]
    assert _folder_bytes(sites_folder / changed) != before[changed]
    assert "2099-12-31" in (sites_folder / changed / "exports.csv").read_text()
    # Only the changed site's Great Expectations results (and the registry-wide ones) come from this run.
    origins = _origins_by_site(_gx_results(out / "registry_work.duckdb", second.run_id))
    assert origins == {changed: {second.run_id}, kept: {first.run_id}, retired: {first.run_id},
                       "all": {second.run_id}}
    dashboard = (out / "reports" / "index.html").read_text()
    assert f"validated in run {first.run_id[:8]}" in dashboard

    # A site retired: its folder goes, the others stay as they were.
    (landing / retired / "RETIRED").write_text("site closed\n")
    third = _run(landing, out)
    assert third.success, third.failures
    events = _materializations(third.run_id)
    assert events["reports/site_folders"]["sites_rewritten"] == [retired]
    assert not (sites_folder / retired).exists()
    assert _folder_bytes(sites_folder / kept) == before[kept]
    origins = _origins_by_site(_gx_results(out / "registry_work.duckdb", third.run_id))
    assert origins == {changed: {second.run_id}, kept: {first.run_id}, "all": {third.run_id}}

    # Everything equals a full rebuild of the same landing folder: published tables (metrics included),
    # folders' contents (but the page's time stamp), and every Great Expectations result but its run.
    full = tmp_path / "full"
    rebuilt = _run(landing, full)
    assert rebuilt.success, rebuilt.failures
    assert _materializations(rebuilt.run_id)["metrics/patient_outcomes"]["sites_rebuilt"] == "all"
    published = _published_digests(out / "registry.duckdb")
    assert published == _published_digests(full / "registry.duckdb")
    assert published["metrics.patient_outcomes"]["rows"] > 0
    assert sorted(p.name for p in sites_folder.iterdir()) == sorted(
        p.name for p in (full / "reports" / "sites").iterdir())
    for site in (changed, kept):
        for name in ("quarantine.csv", "exports.csv", "deviations.csv", "notices.csv"):
            assert (sites_folder / site / name).read_bytes() == (full / "reports" / "sites" / site / name).read_bytes()
    assert [r[:-1] for r in _gx_results(out / "registry_work.duckdb", third.run_id)] == [
        r[:-1] for r in _gx_results(full / "registry_work.duckdb", rebuilt.run_id)]
