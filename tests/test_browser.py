"""The quality dashboard and the Great Expectations Data Docs opened in headless Chromium (Debian's `chromium`,
which `make test` installs) with the network cut off: only file:// and localhost may load. Screenshots are kept
in test-artifacts/ for a person to look at."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright
from quality_support import QualityRuns, shared_quality_runs

from ketreg.privacy.flow_suppression import suppress_flow
from ketreg.privacy.settings import load_privacy_settings

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# Flags that keep Chromium from reaching out on its own (updates, sync, safe browsing, QUIC probes).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
LOCAL = ("file://", "http://localhost", "http://127.0.0.1", "data:", "about:")


@dataclass
class PageLog:
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def quality_runs(tmp_path_factory: pytest.TempPathFactory) -> QualityRuns:
    return shared_quality_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package (apt-get install chromium)")
    with sync_playwright() as playwright:
        # Playwright starts Chromium with a fresh, empty profile of its own (it refuses --user-data-dir here).
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _open(browser: Browser, url: str) -> tuple[Page, PageLog]:
    log = PageLog()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})

    def route(route: Route) -> None:
        request_url = route.request.url
        if request_url.startswith(LOCAL):
            route.continue_()
        else:
            log.blocked.append(request_url)
            route.abort()

    page.route("**/*", route)
    page.on("requestfailed", lambda request: log.failed.append(f"{request.url}: {request.failure}"))
    page.on("console", lambda message: log.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: log.errors.append(str(error)))
    page.goto(url, wait_until="load")
    return page, log


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_dashboard_renders_offline_with_charts_and_tables(quality_runs: QualityRuns, browser: Browser) -> None:
    page, log = _open(browser, (quality_runs.reports / "index.html").as_uri())
    _screenshot(page, "dashboard.png")
    charts = page.evaluate(
        """() => Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
            kind: svg.dataset.chart,
            marks: svg.querySelectorAll('rect, line, polyline, circle').length,
            width: svg.getBoundingClientRect().width,
            height: svg.getBoundingClientRect().height}))"""
    )
    assert {c["kind"] for c in charts} >= {"stacked-bars", "heatmap", "trend", "forest"}
    assert all(c["marks"] > 0 and c["width"] > 100 and c["height"] > 20 for c in charts), charts
    for section in ("intake", "rejected", "deviations", "changes", "checks", "metrics"):
        rows = page.evaluate(
            f"() => document.querySelectorAll('#{section} ~ table tbody tr, #{section} table tbody tr').length"
        )
        assert rows > 0, f"no table rows in #{section}"
    # The filter hides passing checks, and the copy button selects the SQL.
    page.check("#f-failed")
    visible = page.evaluate(
        "() => Array.from(document.querySelectorAll('#check-table tbody tr')).filter(r => r.style.display !== 'none')"
        ".map(r => r.dataset.passed)"
    )
    assert visible and set(visible) == {"false"}
    page.locator("#check-table details.sql").first.click()
    page.locator("#check-table button.copy").first.click()
    assert "SELECT" in page.evaluate("() => window.getSelection().toString()")
    _screenshot(page, "dashboard-failed-checks.png")
    assert log.blocked == [] and log.failed == [] and log.errors == [], log
    page.close()


def test_data_docs_render_offline_with_local_styles_and_scripts(quality_runs: QualityRuns, browser: Browser) -> None:
    docs = quality_runs.reports / "data_docs"
    validation = next((docs / "validations").rglob("registry-assessments*.html"))
    for name, path in (("data-docs-index.png", docs / "index.html"), ("data-docs-validation.png", validation)):
        page, log = _open(browser, path.as_uri())
        _screenshot(page, name)
        loaded = page.evaluate(
            """() => ({
                jquery: typeof window.jQuery, vegaEmbed: typeof window.vegaEmbed,
                // Bootstrap 4's body font stack: only there if bootstrap.min.css loaded (rules of file:// sheets
                // cannot be read from scripts).
                bootstrapCss: getComputedStyle(document.body).fontFamily.startsWith('-apple-system'),
                fontAwesome: getComputedStyle(document.querySelector('.fa, .fas, .far') || document.body,
                                              '::before').fontFamily,
                rows: document.querySelectorAll('table tbody tr').length,
                backToDashboard: !!document.querySelector('.ketreg-nav a')})"""
        )
        assert loaded["jquery"] == "function" and loaded["vegaEmbed"] == "function", loaded
        assert loaded["bootstrapCss"] and loaded["rows"] > 0 and loaded["backToDashboard"], loaded
        assert log.blocked == [] and log.failed == [] and log.errors == [], (name, log)
        page.close()



def test_dashboard_links_each_site_to_its_own_what_to_fix_page(quality_runs: QualityRuns, browser: Browser) -> None:
    page, log = _open(browser, (quality_runs.reports / "index.html").as_uri())
    links = page.evaluate("() => Array.from(document.querySelectorAll('#sites a')).map(a => a.href)")
    assert links and all("/sites/" in link for link in links)
    page.locator("#sites a").first.click()
    page.wait_for_load_state("load")
    _screenshot(page, "site-page.png")
    site_page = page.evaluate(
        "() => ({title: document.title, sections: document.querySelectorAll('h2').length,"
        " rows: document.querySelectorAll('table tbody tr').length, url: location.href})"
    )
    assert site_page["title"].startswith("What to fix: ") and site_page["sections"] >= 5, site_page
    assert site_page["rows"] > 0 and site_page["url"] == links[0], site_page
    assert log.blocked == [] and log.failed == [] and log.errors == [], log
    page.close()


def test_dashboard_draws_the_patient_flow(quality_runs: QualityRuns, browser: Browser) -> None:
    page, log = _open(browser, (quality_runs.reports / "index.html").as_uri())
    page.locator("#patient-flow").scroll_into_view_if_needed()
    _screenshot(page, "dashboard-patient-flow.png")
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('#patient-flow svg[data-chart="patient-flow"] rect.flow-box'))
            .map(r => ({step: r.dataset.step, patients: r.dataset.patients,
                        width: r.getBoundingClientRect().width}))"""
    )
    drawn = {box["step"]: box["patients"] for box in boxes}
    # What the dashboard may show: the flow with small cells suppressed (an empty attribute), as in the metrics.
    columns = ["step_order", "step", "breakdown", "category", "site_id", "patients"]
    flow = [dict(zip(columns, row, strict=True)) for row in quality_runs.work(
        f"SELECT {', '.join(columns)} FROM metrics.patient_flow"
    )]
    shown = {
        r["step"]: "" if r["suppressed"] else str(r["patients"])
        for r in suppress_flow(flow, load_privacy_settings().small_cell_count)
        if r["site_id"] == "all" and r["breakdown"] == "total"
    }
    for step in ("received", "quarantined", "registered", "analysed", "completed_induction", "entered_maintenance"):
        assert drawn[step] == shown[step], step
    assert int(shown["received"]) > 0 and all(box["width"] > 100 for box in boxes), boxes
    table_rows = page.evaluate("() => document.querySelectorAll('#flow-table tbody tr').length")
    assert table_rows == quality_runs.work(
        "SELECT count(DISTINCT (step, breakdown, category)) FROM metrics.patient_flow"
    )[0][0]
    assert log.blocked == [] and log.failed == [] and log.errors == [], log
    page.close()
