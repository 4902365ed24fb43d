"""The app layer: the `ketreg` command (`cli`), one whole run through Dagster (`run`), the summary it prints
(`summary`) and a site's pre-flight (`preflight`).

It sits above `pipelines/` (orchestration), which sits above `ketreg/` (the library): this package may import
both, and nothing in `ketreg/` imports `pipelines/` or this package (tests/test_layout.py). A top-level package of
its own, not `ketreg.app`, so that the rule "nothing under ketreg/ reaches up" holds by path."""
