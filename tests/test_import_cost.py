"""Loading the pipeline imports none of the libraries that only some steps need: each costs seconds to import
(Great Expectations 3–5 s, statsmodels 1.4 s), which a run that skips those steps — an unchanged rerun, a
`dagster dev` start, `ketreg check-export` — should not pay."""

from __future__ import annotations

import subprocess
import sys


def test_loading_the_pipeline_imports_none_of_the_libraries_only_some_steps_need():
    step_only = ["great_expectations", "statsmodels", "scipy", "lifelines", "firthmodels", "sklearn", "altair",
                 "jinja2", "playwright"]
    code = (
        "import sys, ketreg_app.cli, ketreg_app.run, ketreg_app.summary, pipelines.definitions; "
        f"print([m for m in {step_only!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.strip() == "[]"
