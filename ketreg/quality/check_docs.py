"""docs/checks.md, generated from the check catalogue (config/check_catalogue.yaml): the check types and every
check instance, as Dagster, `quality.check_results` and the Great Expectations Data Docs name them. The Great
Expectations rules are listed for the columns each registry table keeps (schemas/columns/registry.*.yaml).
Regenerate with `python -m ketreg.quality.check_docs`; tests/test_check_catalogue.py fails when the committed
file differs."""

from __future__ import annotations

import sys
from pathlib import Path

from ketreg.quality.catalogue import (
    CatalogueCheck,
    catalogue,
    gx_suite_checks,
    registry_checks,
    site_export_checks,
)
from ketreg.quality.rules import QualityRule, registry_rules
from ketreg.quality.settings import load_quality_settings
from schemas.column_docs import load_table_docs
from schemas.protocol import load_protocol

DOCS_FILE = Path("docs") / "checks.md"

_HEADER = """# The registry's data-quality checks

<!-- Generated from config/check_catalogue.yaml by `python -m ketreg.quality.check_docs`; do not edit here. -->

Every check is an instance of one check type of the catalogue (`config/check_catalogue.yaml`), as in OHDSI's
DataQualityDashboard: its Kahn category and subcategory, severity, threshold, description and the SQL template
(`sql/…`) that lists its violating rows. Ranges, codes and required columns come from the contract (`schemas/`),
the protocol (`config/protocol.yaml`) and `config/quality.yaml`; the catalogue names the check types. The same
names are the Dagster asset checks, the `check_name` of `quality.check_results` and the expectations' `rule` in
the Great Expectations Data Docs (docs/quality-dashboard.md tells how to read them).
"""


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _types_table() -> list[str]:
    lines = ["## Check types", "",
             "| type | engine | category | subcategory | severity | threshold | name | description | SQL template "
             "| violated when | instances |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in catalogue().values():
        sql = f"`sql/{t.sql}`" if t.sql else ""
        source = "listed in the catalogue" if t.instances is not None else f"generated from {t.generated_from}"
        condition = f"`{_cell(t.violated_when)}`" if t.violated_when else ""
        lines.append(f"| `{t.type}` | {t.engine} | {t.category} | {t.subcategory} | {t.severity} | {t.threshold:g} "
                     f"| `{_cell(t.name)}` | {_cell(t.description)} | {sql} | {condition} | {_cell(source)} |")
    return lines


def _checks_table(title: str, checks: list[CatalogueCheck], where: str) -> list[str]:
    lines = [f"## {title}", "", where, "",
             "| table | check | type | category | subcategory | severity | threshold | description |",
             "|---|---|---|---|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c.table} | `{c.name}` | {c.check_type.type} | {c.category} | {c.subcategory} "
                     f"| {c.check_type.severity} | {c.threshold:g} | {_cell(c.description)} |")
    return lines


def _rules_table(rules: dict[str, list[QualityRule]]) -> list[str]:
    lines = ["## Great Expectations rules (`source = 'great_expectations'`, per site and for the registry)", "",
             "Suites `registry_<table>` in the Data Docs; each rule's threshold is the share of checked rows "
             "allowed to violate it.", "",
             "| table | check | type | category | subcategory | threshold | expectation | description |",
             "|---|---|---|---|---|---|---|---|"]
    for table_rules in rules.values():
        for r in table_rules:
            lines.append(f"| {r.table} | `{r.name}` | {r.meta['check_type']} | {r.category} "
                         f"| {r.meta['kahn_subcategory']} | {r.threshold:g} | {r.expectation} "
                         f"| {_cell(r.description)} |")
    return lines


def documented_rules() -> dict[str, list[QualityRule]]:
    """The Great Expectations rules of the registry tables as their column docs list their columns."""
    docs = load_table_docs()
    columns = {key.removeprefix("registry."): list(doc.columns) for key, doc in docs.items()
               if key.startswith("registry.")}
    return registry_rules(columns, load_protocol(), load_quality_settings())


def render() -> str:
    """The text of docs/checks.md."""
    parts = [
        _HEADER.strip(), "",
        *_types_table(), "",
        *_checks_table("Registry checks (Dagster asset checks; `source = 'registry_check'`)", registry_checks(),
                       "One per registry table and check, for the whole registry (`site_id = 'all'`); a blocking "
                       "check that fails stops metrics and publishing in that run."),
        "",
        *_checks_table("Great Expectations suite checks (Dagster asset checks)", gx_suite_checks(),
                       "One per registry table and Kahn category: fails when any of its rules below fails for the "
                       "registry or a site."),
        "",
        *_rules_table(documented_rules()), "",
        *_checks_table("Site-export checks (`source = 'site_export'`, per site)", site_export_checks(),
                       "Read from the quarantine of each site's current export; `{export_id}` is the site's export."),
    ]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/checks.md (or the path given) from the catalogue."""
    target = Path((argv or sys.argv[1:] or [str(DOCS_FILE)])[0])
    target.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
