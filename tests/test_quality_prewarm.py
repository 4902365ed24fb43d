"""Great Expectations imported in a process beside the run (ketreg/quality/gx_prewarm.py, what `ketreg run` does
for a rebuild or a first run): the quality step's results and Data Docs are those of a validation in the step's
own process; a failure there fails the step with its traceback; and loading the pipeline imports none of the
libraries that only some steps need (each of them costs a run that skips those steps seconds to import)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import astuple
from pathlib import Path

import duckdb
import pytest
from check_support import clean_two_site_run
from support import RegistryRun

from ketreg.quality.expectations import run_suites
from ketreg.quality.rules import registry_rules
from ketreg.quality.settings import load_quality_settings
from schemas.protocol import load_protocol
from schemas.tables import TABLES

RUN_NAME = "prewarm-test"

# Run in a fresh interpreter, which has not imported Great Expectations: validate through the prewarmed process,
# then show that this interpreter still has not imported it, and that a failure there is raised here.
_PREWARMED = """
import json, sys
from dataclasses import astuple
from pathlib import Path
import duckdb
from ketreg.quality.expectations import run_suites
from ketreg.quality.gx_prewarm import open_session, prewarmed_great_expectations
from ketreg.quality.rules import registry_rules
from ketreg.quality.settings import load_quality_settings
from schemas.protocol import load_protocol
from schemas.tables import TABLES

con = duckdb.connect(sys.argv[1], read_only=True)
columns = {t.name: [r[0] for r in con.execute(f"DESCRIBE registry.{t.name}").fetchall()] for t in TABLES}
rules = registry_rules(columns, load_protocol(), load_quality_settings())
with prewarmed_great_expectations():
    run = run_suites(con, rules, sys.argv[3], Path(sys.argv[2]))
failure = ""
with prewarmed_great_expectations():
    try:
        with open_session(None, "failing") as session:
            session.validate("no_such_table", "no_such_table", None)
    except RuntimeError as exc:
        failure = str(exc)
print(json.dumps({"results": [astuple(r) for r in run.results], "failure": failure,
                  "imported_here": "great_expectations" in sys.modules}))
"""

# What differs between any two renderings of the same validation: its run time, and the random ids Great
# Expectations gives the collapsible blocks of a page.
_TIMESTAMP = re.compile(
    r"\d{8}T\d{6}\.\d+Z|\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?( UTC|\+00:00|Z)?|_run_time_sort': [\d.]+"
)
_RANDOM_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _normalised(text: str) -> str:
    return _RANDOM_ID.sub("<id>", _TIMESTAMP.sub("<time>", text))


def _docs(folder: Path) -> dict[str, str]:
    """Every Data Docs file by its path, run times blanked (each validation's page is filed under its run time)."""
    return {
        _normalised(path.relative_to(folder).as_posix()): _normalised(path.read_bytes().decode("utf-8", "replace"))
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> RegistryRun:
    return clean_two_site_run(tmp_path_factory)


def test_prewarmed_process_validates_as_the_quality_step_itself_would(clean_run: RegistryRun, tmp_path: Path):
    work_db = tmp_path / "registry_work.duckdb"
    shutil.copy(clean_run.work_db, work_db)
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        columns = {t.name: [r[0] for r in con.execute(f"DESCRIBE registry.{t.name}").fetchall()] for t in TABLES}
        rules = registry_rules(columns, load_protocol(), load_quality_settings())
        here = run_suites(con, rules, RUN_NAME, tmp_path / "here" / "data_docs")
    finally:
        con.close()

    done = subprocess.run(
        [sys.executable, "-c", _PREWARMED, str(work_db), str(tmp_path / "prewarmed" / "data_docs"), RUN_NAME],
        capture_output=True, text=True, check=True, timeout=600,
    )
    there = json.loads(done.stdout)

    assert not there["imported_here"], "the validation ran in the caller's process, not in the prewarmed one"
    assert len(here.results) > 0
    assert [_normalised(json.dumps(astuple(r))) for r in here.results] == [
        _normalised(json.dumps(r)) for r in there["results"]
    ]
    assert _docs(tmp_path / "here" / "data_docs") == _docs(tmp_path / "prewarmed" / "data_docs")
    assert "KeyError: 'no_such_table'" in there["failure"]  # the process's own traceback, raised in the step


def test_loading_the_pipeline_imports_none_of_the_libraries_only_some_steps_need():
    step_only = ["great_expectations", "statsmodels", "scipy", "lifelines", "firthmodels", "sklearn", "altair",
                 "jinja2", "playwright"]
    code = (
        "import sys, ketreg_app.cli, ketreg_app.run, ketreg_app.summary, pipelines.definitions; "
        f"print([m for m in {step_only!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.strip() == "[]"
