"""Sites' folders read a batch of sites per query (ketreg/reports/site_folders.py, SITES_PER_QUERY) and split
the rows per site: each folder is the one a query per site gives — the same files, CSVs and workbook sheets byte
for byte, pages equal but for the time they were generated, files 0640 and folders 0750 — whether a batch holds
one site, some or all, and when only some folders are rewritten, in any order."""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from ketreg.reports import site_folders
from ketreg.reports.private_files import FILE_MODE, FOLDER_MODE
from ketreg.reports.site_folders import SITES_FOLDER, rewrite_site_folders, write_site_folders
from tests.support import RegistryRun

_GENERATED = re.compile(rb"Generated [^<]* by the registry pipeline")
_FILES_PER_FOLDER = 8  # six CSVs, the workbook, the page


def _contents(path: Path) -> bytes | dict[str, bytes]:
    if path.suffix == ".xlsx":  # docProps/core.xml holds the time the workbook was written
        with zipfile.ZipFile(path) as package:
            return {name: package.read(name) for name in package.namelist() if name != "docProps/core.xml"}
    return _GENERATED.sub(b"", path.read_bytes())


def _folders(reports: Path) -> dict[str, bytes | dict[str, bytes]]:
    sites = reports / SITES_FOLDER
    assert stat.S_IMODE(sites.stat().st_mode) == FOLDER_MODE
    found: dict[str, bytes | dict[str, bytes]] = {}
    for path in sorted(sites.rglob("*")):
        assert stat.S_IMODE(path.stat().st_mode) == (FOLDER_MODE if path.is_dir() else FILE_MODE), path
        if path.is_file():
            found[str(path.relative_to(sites))] = _contents(path)
    return found


def _site_of(name: str) -> str:
    return name.split("/")[0]


@pytest.fixture
def work(faulty_registry: RegistryRun, tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    copy = tmp_path / "work.duckdb"
    shutil.copy(faulty_registry.work_db, copy)
    con = duckdb.connect(str(copy), read_only=True)
    yield con
    con.close()


def test_a_batch_of_sites_per_query_gives_each_site_the_folder_of_its_own_query(
    work: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(site_folders, "SITES_PER_QUERY", 1)
    one_per_query = write_site_folders(work, tmp_path / "one")
    expected = _folders(tmp_path / "one")
    sites = sorted({_site_of(name) for name in expected})
    assert len(sites) == 3 and len(expected) == 3 * _FILES_PER_FOLDER
    # Every site has quarantined rows, so a row given to the wrong site would show.
    assert all(len(expected[f"{site}/quarantine.csv"]) > 200 for site in sites)

    for per_query in (2, 3):  # a batch of two and a last one of one; all three at once
        monkeypatch.setattr(site_folders, "SITES_PER_QUERY", per_query)
        reports = tmp_path / f"batch{per_query}"
        folders = write_site_folders(work, reports)
        assert [(f.site_id, f.quarantined_rows, f.rejected_exports, f.deviations) for f in folders] == [
            (f.site_id, f.quarantined_rows, f.rejected_exports, f.deviations) for f in one_per_query
        ]
        assert _folders(reports) == expected

    # After new exports only some folders are rewritten, in the order given, a batch at a time.
    monkeypatch.setattr(site_folders, "SITES_PER_QUERY", 2)
    reports = tmp_path / "batch2"
    (reports / SITES_FOLDER / sites[0] / "quarantine.csv").write_bytes(b"stale")
    (reports / SITES_FOLDER / sites[2] / "quarantine.csv").write_bytes(b"stale")
    rewrite_site_folders(work, reports, [sites[2], sites[0]])
    assert _folders(reports) == expected
