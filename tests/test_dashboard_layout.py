"""Dashboard polish: at 1280 px nothing is wider than the window, every chart label (site names included) is
drawn whole, and the Dagster UI link follows the registry's setting (none when there is no UI)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Browser
from quality_support import QualityRuns
from test_browser import _open, _screenshot, browser, quality_runs  # noqa: F401 - fixtures shared with it

from ketreg.quality import svg
from ketreg.quality.dashboard import render_dashboard
from ketreg.quality.settings import load_quality_settings


def test_at_1280_px_tables_fit_and_no_chart_label_is_cut(
    quality_runs: QualityRuns, browser: Browser  # noqa: F811
) -> None:
    page, log = _open(browser, (quality_runs.reports / "index.html").as_uri())
    page.set_viewport_size({"width": 1280, "height": 900})
    _screenshot(page, "dashboard-1280.png")
    layout = page.evaluate(
        """() => ({
            window: document.documentElement.clientWidth,
            page: document.documentElement.scrollWidth,
            tables: Array.from(document.querySelectorAll('table'))
                .map(t => Math.round(t.getBoundingClientRect().right)),
            // On screen, after rotation and scaling: a label outside its chart's box is cut off.
            cut: Array.from(document.querySelectorAll('svg.chart text')).filter(t => {
                const box = t.getBoundingClientRect(), chart = t.ownerSVGElement.getBoundingClientRect();
                return box.left < chart.left - 1 || box.right > chart.right + 1;
            }).map(t => t.textContent)})"""
    )
    assert layout["page"] <= layout["window"] == 1280, layout["page"]
    assert layout["tables"] and max(layout["tables"]) <= 1280, layout["tables"]
    assert layout["cut"] == []
    assert log.errors == []
    page.close()


def test_a_long_site_label_widens_the_label_column_instead_of_being_cut() -> None:
    label = "site_02_semicolon 2026-11-01 (current)"
    chart = svg.stacked_bars([svg.StackedBar(label, (("accepted", 10, svg.ACCEPTED),))], "t", label_width=120)
    x = float(chart.split('<text x="')[1].split('"')[0])  # the label's right edge (text-anchor end)
    assert x >= svg.text_width(label)
    heat = svg.heatmap(["site_02_semicolon"], ["assessments.nprs"], {("site_02_semicolon", "assessments.nprs"):
                                                                      (0.9, 0.9)}, "t")
    assert f'x="{svg.text_width("site_02_semicolon") + 12 - 8}"' in heat


def test_the_dagster_link_follows_the_setting_and_disappears_without_a_ui(
    quality_runs: QualityRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("KETREG_DAGSTER_URL", "https://dagster.registry.example/")
    assert load_quality_settings().dagster_url == "https://dagster.registry.example"
    con = duckdb.connect(str(quality_runs.second.work_db), read_only=True)
    try:
        linked = render_dashboard(con, tmp_path / "linked", "https://dagster.registry.example").read_text()
        bare = render_dashboard(con, tmp_path / "bare", "").read_text()
    finally:
        con.close()
    assert 'href="https://dagster.registry.example/assets/registry/' in linked
    assert "localhost:3000" not in linked
    assert "/assets/" not in bare and "Dagster asset quality/check_results" in bare
