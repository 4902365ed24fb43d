"""Sites' folders written by worker processes (ketreg/reports/site_folders.py, used from four sites on) are the
folders written in the step's own process: the same files, CSVs and workbook sheets byte for byte, pages equal
but for the time they were generated, and private (files 0640, folders 0750)."""

from __future__ import annotations

import re
import resource
import shutil
import stat
import zipfile
from pathlib import Path

import duckdb
import pytest

from ketreg.reports import site_folders
from ketreg.reports.private_files import FILE_MODE, FOLDER_MODE
from ketreg.reports.site_folders import SITES_FOLDER, rewrite_site_folders, write_site_folders
from tests.support import RegistryRun

_GENERATED = re.compile(rb"Generated [^<]* by the registry pipeline")


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
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (FOLDER_MODE if path.is_dir() else FILE_MODE), path
        if path.is_file():
            found[str(path.relative_to(sites))] = _contents(path)
    return found


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_folders_written_by_workers_equal_those_written_in_process(
    faulty_registry: RegistryRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work.duckdb"
    shutil.copy(faulty_registry.work_db, work)
    con = duckdb.connect(str(work), read_only=True)
    try:
        monkeypatch.setattr(site_folders, "WORKERS", 1)
        in_process = write_site_folders(con, tmp_path / "in_process")
        expected = _folders(tmp_path / "in_process")
        sites = sorted({name.split("/")[0] for name in expected})
        assert len(sites) == 3 and len(expected) == 3 * 8

        monkeypatch.setattr(site_folders, "WORKERS", 2)
        monkeypatch.setattr(site_folders, "_PARALLEL_FROM_SITES", 2)
        before = _children_cpu()
        assert write_site_folders(con, tmp_path / "workers") == [
            site_folders.SiteFolder(f.site_id, tmp_path / "workers" / SITES_FOLDER / f.site_id, f.quarantined_rows,
                                    f.rejected_exports, f.deviations) for f in in_process
        ]
        assert _children_cpu() > before  # the files were written by worker processes
        assert _folders(tmp_path / "workers") == expected

        # After new exports, some folders are rewritten, built aside by the workers and swapped in.
        rewrite_site_folders(con, tmp_path / "workers", sites[:2])
        assert _folders(tmp_path / "workers") == expected
    finally:
        con.close()
