"""Everything of the quality step that touches Great Expectations: an ephemeral context with one suite per
registry table, validations of DataFrames, and the Data Docs. `expectations.run_suites` drives it (what to read
from DuckDB, which counts to cross-check).

Great Expectations is imported when a session opens: it takes about 3–5 s to import, and only the quality
step needs it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATASOURCE = "registry"
# Suite names without dots: Data Docs turn dots into folders, and then its pages' relative links miss by a level.

# One expectation: its Great Expectations class name, its arguments and its meta (shown in the Data Docs), as plain
# data: this module needs neither the rules' modules nor the contract's imports.
ExpectationSpec = tuple[str, dict[str, Any], dict[str, Any]]


def violating_rows(result: dict[str, Any]) -> int:
    """Rows a validation found violating its expectation (missing values are not counted as violating)."""
    return int(result.get("unexpected_count") or 0)


@contextmanager
def _collecting_new_objects_only() -> Iterator[None]:
    """Keep the cycle collector to the objects made inside the block. Each validated part's engine is freed by a
    full collection (`GxSession.validate`), which otherwise walks every object of the process — Dagster's,
    pandas', Great Expectations' modules — each time: 1 s of the demo's 3 s of validation. The objects alive
    before are only set aside, not leaked: they are collectable again after the block."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class GxSession:
    """One run's Great Expectations context: suites added with `add_suite`, DataFrames validated with `validate`,
    Data Docs (when a folder is given) written by `build_docs`."""

    def __init__(self, data_docs_dir: Path | None, run_name: str) -> None:
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        for site_name in list(self._context.get_site_names()):
            self._context.delete_data_docs_site(site_name)
        if data_docs_dir is not None:
            self._context.add_data_docs_site(
                "ketreg",
                {
                    "class_name": "SiteBuilder",
                    # Great Expectations refuses a relative folder (`make demo` passes relative paths).
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(data_docs_dir.resolve()),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        self._source = self._context.data_sources.add_pandas(DATASOURCE)
        self._run_id = RunIdentifier(run_name=run_name)
        self._suites: dict[str, Any] = {}

    def add_suite(self, table: str, expectations: list[ExpectationSpec]) -> None:
        """The table's suite, its expectations in the given order."""
        import great_expectations as gx
        import great_expectations.expectations as gxe

        # Filled before it is added to the context: an expectation added to a saved suite saves the whole suite
        # again (51 saves, each copying the suite, for the demo's rules; one save this way).
        suite = gx.ExpectationSuite(name=f"registry_{table}")
        for expectation, kwargs, meta in expectations:
            suite.add_expectation(getattr(gxe, expectation)(**kwargs, meta=meta))
        self._suites[table] = self._context.suites.add(suite)

    def validate(self, table: str, name: str, frame: Any) -> list[int]:
        """Validate `frame` (a pandas DataFrame of `table`'s rows) against the table's suite as validation `name`;
        the violating rows of each expectation, in the suite's order."""
        import great_expectations as gx

        suite = self._suites[table]
        batch = self._source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("current_exports")
        definition = self._context.validation_definitions.add(
            gx.ValidationDefinition(name=f"registry_{name}", data=batch, suite=suite)
        )
        with _collecting_new_objects_only():
            validation = definition.run(
                batch_parameters={"dataframe": frame}, run_id=self._run_id, result_format="SUMMARY"
            )
            # The data source's pandas engine lives as long as the source and caches every part it was given and
            # every metric it computed (whole boolean columns among them): 3.7 GB at 100 sites × 5,000 patients.
            # A part is validated once, so a fresh engine per part loses nothing; the old one sits in reference
            # cycles (engine ↔ batch manager), which only the cycle collector frees.
            self._source._execution_engine = None
            gc.collect()
        return [violating_rows(outcome.result) for outcome in validation.results]

    def build_docs(self) -> None:
        self._context.build_data_docs()
