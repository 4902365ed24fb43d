"""Nothing in the landing folder is ignored silently: entries that are not `<site>/<export>/<file>` are listed
in the run's summary, in `landing.notices` of the working database and on the quality dashboard."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import query_db, write_export

from ketreg.landing.discovery import scan_landing
from ketreg_app.cli import main as ketreg_main


def _messy_landing(landing: Path) -> Path:
    write_export(landing, "site_a")
    (landing / "README.txt").write_text("where to put exports", encoding="utf-8")  # a stray top-level file
    misplaced = landing / "site_06"
    misplaced.mkdir()
    (misplaced / "patients.csv").write_text("patient_id\n", encoding="utf-8")  # a CSV without an export folder
    (landing / "site_07").mkdir()  # an empty site folder
    (landing / "Site 8").mkdir()  # not a site id
    return landing


def test_every_entry_that_is_not_an_export_is_named_with_why(tmp_path: Path) -> None:
    scan = scan_landing(_messy_landing(tmp_path / "landing"))
    notices = {entry.split(": ", 1)[0]: entry.split(": ", 1)[1] for entry in scan.ignored_entries}
    assert set(notices) == {"README.txt", "site_06", "site_06/patients.csv", "site_07", "Site 8"}
    assert notices["README.txt"].startswith("a file directly in the landing folder")
    assert notices["site_06/patients.csv"].startswith("a file directly in the site folder (exports go in site_06/")
    assert "without export folders" in notices["site_07"]
    assert [e.label for e in scan.exports] == ["site_a/2026-11-01"]


@pytest.mark.slow
def test_stray_entries_are_listed_in_the_run_summary_the_notices_table_and_the_dashboard(
    tmp_path: Path, pseudonym_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = _messy_landing(tmp_path / "landing")
    db = tmp_path / "out" / "registry.duckdb"
    assert ketreg_main(["run", "--landing", str(landing), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "NOTICE landing folder: README.txt: a file directly in the landing folder" in out
    assert "NOTICE landing folder: site_06/patients.csv: a file directly in the site folder" in out

    entries = [entry for (entry,) in query_db(tmp_path / "out" / "registry_work.duckdb",
                                              "SELECT entry FROM landing.notices ORDER BY entry")]
    assert entries == ["README.txt", "Site 8", "site_06", "site_06/patients.csv", "site_07"]
    # Not published: analysts get the registry, not the state of the landing folder.
    assert query_db(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'notices'") == [(0,)]

    dashboard = (tmp_path / "out" / "reports" / "index.html").read_text(encoding="utf-8")
    section = dashboard.split('<section id="landing">')[1].split("</section>")[0]
    for entry in entries:
        assert f"<code>{entry}</code>" in section
