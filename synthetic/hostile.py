"""Hostile exports, beside one good site: what a careless or malicious site could drop into the landing
folder (links out of it, a FIFO, a headerless file, a header with an unbalanced quote, a very wide header,
a 10 MB line, a workbook that unpacks to a huge shared string, free text where a coded value belongs).

Used by tests/test_hostile_landing.py (small sizes) and benchmarks/hostile_landing.py (the sizes of the
issue that found these), so both build exactly the same cases.
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from synthetic import generate_landing

GOOD_SITE = "site_01"
EXCEL_MAPPING = Path(__file__).resolve().parents[1] / "sites" / "site_03_excel.yaml"


@dataclass(frozen=True)
class Canaries:
    """Strings that must never leave the hostile files: not into any table, log, report or output."""

    outside: str = "CANARY-OUTSIDE-FILE-7f3a"
    headerless: str = "Ada Lovelace CANARY-HEADERLESS-91c2"
    free_text: str = "Grace Hopper CANARY-FREE-TEXT-5d8e"


@dataclass(frozen=True)
class HostileSizes:
    wide_header_columns: int = 50_000
    long_line_bytes: int = 10 * 2**20
    quote_file_bytes: int = 256 * 2**10
    workbook_string_bytes: int = 20 * 2**20


# The sizes the adversarial review used (a 1,000,000-column header; a 200 MB shared string).
BENCHMARK_SIZES = HostileSizes(
    wide_header_columns=1_000_000, long_line_bytes=10 * 2**20, quote_file_bytes=20 * 2**20,
    workbook_string_bytes=200 * 2**20,
)


def _copy_good(landing: Path, site: str, export_id: str) -> Path:
    folder = landing / site / export_id
    shutil.copytree(landing / GOOD_SITE / export_id, folder)
    return folder


def _workbook_bomb(path: Path, string_bytes: int) -> None:
    """A real workbook in the Excel site's layout whose Patients rows all point at one shared string of
    `string_bytes` characters: a few hundred kB on disk, gigabytes once parsed into cells."""
    from openpyxl import Workbook

    from synthetic.shapes.excel import COLUMNS, SHEETS

    workbook = Workbook()
    workbook.remove(workbook.active)
    for table, sheet_name in SHEETS.items():
        sheet = workbook.create_sheet(sheet_name)
        sheet.append(list(COLUMNS[table].values()))
        if table == "patients":
            for _ in range(100):
                sheet.append(["BOMB-PLACEHOLDER", "Female", 1960])
    buffer = io.BytesIO()
    workbook.save(buffer)
    buffer.seek(0)
    # openpyxl writes inline strings: point the cells at one shared string instead, as Excel would.
    shared = b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            data = data.replace(b't="inlineStr"><is><t>BOMB-PLACEHOLDER</t></is>', b't="s"><v>0</v>')
            if item.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            if item.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Id="rIdSharedStrings" Type="http://schemas.'
                                    b'openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
                                    b'Target="sharedStrings.xml"/></Relationships>')
            target.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        with target.open("xl/sharedStrings.xml", "w") as member:
            member.write(shared + b"<si><t>")
            chunk = b"A" * (1 << 20)
            for start in range(0, string_bytes, len(chunk)):
                member.write(chunk[: string_bytes - start])
            member.write(b"</t></si></sst>")


def write_hostile_landing(
    landing: Path, sites_dir: Path, outside_dir: Path, sizes: HostileSizes = HostileSizes(),
    canaries: Canaries = Canaries(),
) -> dict[str, str]:
    """Write the good site (`site_01`, canonical) and every hostile case beside it. Returns, per hostile
    export (`site/export`), a phrase its rejection must contain. Site-level cases (a linked site folder, a
    site name ending in a line break) are not exports and are listed in the landing's ignored entries."""
    summary = generate_landing(landing, sites=1, patients_per_site=10, seed=3, shapes=("canonical",))
    export_id = sorted(e.name for e in (landing / GOOD_SITE).iterdir())[-1]
    del summary
    sites_dir.mkdir(parents=True, exist_ok=True)
    outside_dir.mkdir(parents=True, exist_ok=True)
    good_patients = (landing / GOOD_SITE / export_id / "patients.csv").read_text(encoding="utf-8")
    header, first_row = good_patients.splitlines()[:2]
    expected: dict[str, str] = {}

    # A link to a file outside the landing folder (a valid CSV, so it would be read if followed).
    outside = outside_dir / "other_registry_patients.csv"
    outside.write_text(f"{header}\n{canaries.outside},F,1960,70,breast,false,cipn,false,2024-01-10\n",
                       encoding="utf-8")
    folder = _copy_good(landing, "link_outside", export_id)
    (folder / "patients.csv").unlink()
    (folder / "patients.csv").symlink_to(outside)
    expected[f"link_outside/{export_id}"] = "symbolic link"

    # A link to the pipeline's own environment (the key is in it).
    folder = _copy_good(landing, "link_environ", export_id)
    (folder / "patients.csv").unlink()
    (folder / "patients.csv").symlink_to("/proc/self/environ")
    expected[f"link_environ/{export_id}"] = "symbolic link"

    # An export folder that is a link to another site's export (the same patients under new pseudonyms).
    (landing / "link_export").mkdir()
    (landing / "link_export" / export_id).symlink_to(landing / GOOD_SITE / export_id, target_is_directory=True)
    expected[f"link_export/{export_id}"] = "symbolic link"

    # A site folder that is a link, and a site folder whose name ends in a line break.
    (landing / "link_site").symlink_to(landing / GOOD_SITE, target_is_directory=True)
    shutil.copytree(landing / GOOD_SITE, landing / f"{GOOD_SITE}\n")

    # A FIFO where a file belongs: opening it would block the run forever.
    folder = _copy_good(landing, "fifo", export_id)
    (folder / "patients.csv").unlink()
    os.mkfifo(folder / "patients.csv")
    expected[f"fifo/{export_id}"] = "FIFO"

    # A headerless file: its first data row (a patient's name) must never be taken for column names.
    folder = _copy_good(landing, "headerless", export_id)
    rows = good_patients.splitlines()[1:]
    rows[0] = first_row.replace(first_row.split(",")[0], canaries.headerless, 1)
    (folder / "patients.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    expected[f"headerless/{export_id}"] = "no recognisable header row"

    # A header opening with an unbalanced quote, in a file larger than the csv module's field limit.
    folder = _copy_good(landing, "quote", export_id)
    body = "\n".join(good_patients.splitlines()[1:]) + "\n"
    repeats = sizes.quote_file_bytes // len(body) + 1
    (folder / "patients.csv").write_text('"' + header + "\n" + body * repeats, encoding="utf-8")
    expected[f"quote/{export_id}"] = "no recognisable header row"

    # A very wide header (the contract's columns, then thousands more).
    folder = _copy_good(landing, "wide", export_id)
    extra = ",".join(f"x{i}" for i in range(sizes.wide_header_columns))
    (folder / "patients.csv").write_text(f"{header},{extra}\n{first_row}\n", encoding="utf-8")
    expected[f"wide/{export_id}"] = "max_header_columns" if len(extra) < 2**20 else "max_line_bytes"

    # One 10 MB line without a delimiter.
    folder = _copy_good(landing, "long_line", export_id)
    with (folder / "patients.csv").open("w", encoding="utf-8") as handle:
        handle.write(f"{header}\n{first_row}\n")
        handle.write("x" * sizes.long_line_bytes + "\n")
    expected[f"long_line/{export_id}"] = "max_line_bytes"

    # A workbook bomb, read through the Excel site's mapping.
    mapping = yaml.safe_load(EXCEL_MAPPING.read_text(encoding="utf-8"))
    mapping["site"] = "xlsx_bomb"
    (sites_dir / "xlsx_bomb.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    (landing / "xlsx_bomb" / export_id).mkdir(parents=True)
    _workbook_bomb(landing / "xlsx_bomb" / export_id / mapping["file"], sizes.workbook_string_bytes)
    expected[f"xlsx_bomb/{export_id}"] = "max_workbook_compression_ratio"

    # Free text (a name) where the site's mapping expects a coded value.
    tables = {t: {"file": f"{t}.csv"} for t in ("patients", "infusions", "assessments", "adverse_events",
                                                  "dispositions")}
    tables["patients"]["columns"] = {"sex": {"from": "sex", "values": {"F": "F", "M": "M", "X": "X", "U": "U"}}}
    (sites_dir / "free_text.yaml").write_text(
        yaml.safe_dump({"site": "free_text", "format": "canonical", "tables": tables}, sort_keys=False),
        encoding="utf-8",
    )
    folder = _copy_good(landing, "free_text", export_id)
    lines = good_patients.splitlines()
    cells = lines[1].split(",")
    cells[header.split(",").index("sex")] = canaries.free_text
    lines[1] = ",".join(cells)
    (folder / "patients.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected[f"free_text/{export_id}"] = "the mapping does not cover"
    return expected
