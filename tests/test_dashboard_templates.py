"""The dashboard's Jinja2 templates escape every value they print (site ids, check texts, SQL), in text and in
attributes, and the sections still built in Python reach the page unescaped exactly once."""

from __future__ import annotations

from ketreg.quality import dashboard

HOSTILE = "<script>alert('x')</script>\" onmouseover=\"x"


def _check(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "check_id": "c1", "category": "plausibility", "site_id": "site_a", "table_name": "infusions",
        "check_name": "rate_in_range", "description": "rates within range", "numerator": 3, "denominator": 40,
        "threshold": 0.05, "passed": False, "asset_key": "registry/infusions", "data_docs_page": "",
        "violations_sql": "SELECT * FROM registry.infusions WHERE max_rate_mg_h > 150",
    }
    return {**row, **changes}


def test_check_rows_escape_hostile_text_in_cells_and_attributes() -> None:
    checks = [_check(site_id=HOSTILE, description=HOSTILE, violations_sql=f"SELECT '{HOSTILE}'")]
    html = dashboard._TEMPLATES.get_template("checks_section.html.j2").render(
        dagster_url="", changes={"c1": HOSTILE}, **dashboard._checks_context(checks)
    )
    assert "<script>" not in html and "onmouseover=\"x" not in html
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot; onmouseover=&quot;x"
    assert html.count(escaped) == 7  # the site 4 times (filter option, row attribute, cell), description, change, SQL
    assert '<td class=num>7.5%</td><td class=num>≤ 5%</td><td><span class="fail">FAIL</span></td>' in html


def test_section_macros_escape_values_but_keep_the_charts_they_are_given() -> None:
    exports = [{"site_id": HOSTILE, "export_id": "2026-11-01", "status": "rejected", "is_current": False,
                "rows_read": 0, "rows_accepted": 0, "rows_quarantined": 0}]
    html = str(dashboard._SECTIONS.intake(exports, dashboard.Markup("<svg class=chart></svg>"), ""))
    assert "<svg class=chart></svg>" in html and "<script>" not in html
    assert 'href="sites/&lt;script&gt;' in html and '<span class="fail">rejected</span>' in html
    assert '<p class="empty">no exports in the landing folder</p>' in str(dashboard._SECTIONS.intake([], "", ""))


def test_sites_landing_and_planning_macros_escape_the_sites_text() -> None:
    from ketreg.quality.templating import PLANNING

    sites = str(dashboard._SECTIONS.sites([(HOSTILE, None, 1, 2345, 0, 3)], "sites"))
    assert "<script>" not in sites and 'onmouseover="x' not in sites
    assert '<a href="sites/&lt;script&gt;alert(&#x27;x&#x27;)' in sites  # the link's attribute too
    assert "<td>–</td><td class=num>2,345</td><td class=num>1</td>" in sites  # no current export; counts
    assert '<p class="empty">no sites on record</p>' in str(dashboard._SECTIONS.sites([], "sites"))
    landing = str(dashboard._SECTIONS.landing([(HOSTILE, HOSTILE)]))
    assert "<script>" not in landing and landing.count("&lt;script&gt;") == 2
    cell = str(PLANNING.inputs_cell(HOSTILE, "n from <registry>"))
    assert "<script>" not in cell and cell.endswith("</details>n from &lt;registry&gt;")
    table = str(PLANNING.table(["p"], [["< 5", dashboard.Markup("<i>kept</i>")]], "none"))
    assert "<td>&lt; 5</td><td><i>kept</i></td>" in table
