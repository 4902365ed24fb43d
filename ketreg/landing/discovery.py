"""Find the exports in a landing folder (`<landing>/<site_id>/<export_id>/<table>.csv`) and check that
each is usable before any row is read: required files present, headers carry the required columns."""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ketreg.landing.mapping import MappingError, SiteMapping, default_sites_dir, load_mapping, mapping_path
from ketreg.landing.retired import retired_sites
from schemas.identifiers import looks_like_identifier
from schemas.tables import TABLES, TABLES_BY_FILE

SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
EXPORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CONTRACT_DOC = "docs/site-export-contract.md"


@dataclass
class ExportFile:
    """One file of an export as found on disk."""

    table: str
    path: Path
    sha256: str
    size_bytes: int
    header: list[str] = field(default_factory=list)  # column names, surrounding blanks removed
    header_as_written: list[str] = field(default_factory=list)
    identifier_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    absent_optional_columns: list[str] = field(default_factory=list)


@dataclass
class LandingExport:
    """One export folder: its files, a fingerprint of their contents, and why it is unusable, if it is."""

    site_id: str
    export_id: str
    path: Path
    files: dict[str, ExportFile] = field(default_factory=dict)
    rejection: str | None = None
    notices: list[str] = field(default_factory=list)
    mapping: SiteMapping | None = None  # None: the site writes the canonical contract

    @property
    def label(self) -> str:
        return f"{self.site_id}/{self.export_id}"

    @property
    def content_sha256(self) -> str:
        digest = hashlib.sha256()
        for table in sorted(self.files):
            digest.update(f"{table}:{self.files[table].sha256};".encode())
        if self.mapping is not None:
            # A changed mapping changes what the same files mean: the export is read again.
            digest.update(f"mapping:{self.mapping.sha256};".encode())
        return digest.hexdigest()

    def reject(self, message: str) -> None:
        # The first problem is enough to reject; later ones are kept so the site can fix all at once.
        self.rejection = message if self.rejection is None else f"{self.rejection}; {message}"


@dataclass
class LandingScan:
    exports: list[LandingExport]
    ignored_entries: list[str]
    retired_sites: list[str] = field(default_factory=list)  # their exports are not read (ketreg.landing.retired)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_header(path: Path) -> list[str]:
    """The header row, as the CSV reader will see it (a UTF-8 byte-order mark is tolerated)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def _inspect_file(export: LandingExport, export_file: ExportFile) -> None:
    where = f"{export.label}/{export_file.path.name}"
    if export_file.size_bytes == 0:
        export.reject(f"{where}: the file is empty; export it again with its header row ({CONTRACT_DOC})")
        return
    try:
        as_written = read_header(export_file.path)
    except UnicodeDecodeError as exc:
        export.reject(f"{where}: not UTF-8 text (near the start of the file, byte {exc.start}); save it as UTF-8 CSV")
        return
    header = [column.strip() for column in as_written]
    export_file.header, export_file.header_as_written = header, as_written
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        export.reject(f"{where}: column {', '.join(duplicated)} appears more than once in the header; keep one")
    contract = TABLES_BY_FILE[export_file.path.name]
    missing = [c for c in contract.required_columns if c not in header]
    for column in missing:
        export.reject(
            f"{where}: required column '{column}' is missing from the header; add it (see {CONTRACT_DOC})"
        )
    export_file.absent_optional_columns = [
        c for c in contract.columns if c not in header and c not in contract.required_columns
    ]
    for column in header:
        if column in contract.columns:
            continue
        if looks_like_identifier(column):
            export_file.identifier_columns.append(column)
        else:
            export_file.ignored_columns.append(column)
    if export_file.identifier_columns:
        export.notices.append(
            f"{where}: column(s) {', '.join(export_file.identifier_columns)} look like direct patient identifiers;"
            " they were not read — please remove them from the export"
        )
    if export_file.ignored_columns:
        export.notices.append(f"{where}: column(s) {', '.join(export_file.ignored_columns)} are not in the "
                              "contract and were not read")
    if export_file.absent_optional_columns:
        export.notices.append(f"{where}: optional column(s) {', '.join(export_file.absent_optional_columns)} "
                              "are absent and read as empty")


def _scan_export(site_id: str, path: Path) -> LandingExport:
    export = LandingExport(site_id=site_id, export_id=path.name, path=path)
    names = {entry.name for entry in path.iterdir() if not entry.name.startswith(".")}
    for name in sorted(names - set(TABLES_BY_FILE)):
        export.notices.append(f"{export.label}/{name}: not a file of the contract; not read")
    for table in TABLES:
        file_path = path / table.file_name
        if not file_path.is_file():
            if table.required_in_export:
                export.reject(f"{export.label}: {table.file_name} is missing; every export needs it ({CONTRACT_DOC})")
            continue
        export_file = ExportFile(
            table=table.name, path=file_path, sha256=file_sha256(file_path), size_bytes=file_path.stat().st_size
        )
        export.files[table.name] = export_file
        _inspect_file(export, export_file)
    return export


def _scan_mapped_export(site_id: str, path: Path, mapping: SiteMapping) -> LandingExport:
    """An export read through the site's mapping: the files it names must be there; their columns are
    checked when they are read (a workbook has to be opened for that)."""
    export = LandingExport(site_id=site_id, export_id=path.name, path=path, mapping=mapping)
    names = {entry.name for entry in path.iterdir() if not entry.name.startswith(".")}
    read = set(mapping.source_files())
    for name in sorted(names - read):
        export.notices.append(f"{export.label}/{name}: not a file {mapping.label} reads; not read")
    for table in TABLES:
        parts = mapping.tables.get(table.name, ())
        files = [mapping.file] if mapping.format in ("excel", "redcap") else [p.file for p in parts]
        files = [f for f in files if f]
        if not files:
            continue
        file_path = path / files[0]
        if not file_path.is_file():
            if table.required_in_export or mapping.format in ("excel", "redcap"):
                export.reject(f"{export.label}: {files[0]} is missing; {mapping.label} reads {table.name} from it")
            continue
        export.files[table.name] = ExportFile(
            table=table.name, path=file_path, sha256=file_sha256(file_path), size_bytes=file_path.stat().st_size
        )
    return export


def scan_export(site_id: str, path: Path, sites_dir: Path | None = None) -> LandingExport:
    """One export folder of `site_id`, read through the site's mapping if `sites_dir` holds one (the same
    checks `scan_landing` makes; `ketreg check-export` uses it on a folder outside the landing area)."""
    found = mapping_path(default_sites_dir() if sites_dir is None else sites_dir, site_id)
    if found is None:
        return _scan_export(site_id, path)
    try:
        mapping = load_mapping(found, site_id)
    except MappingError as exc:
        export = LandingExport(site_id=site_id, export_id=path.name, path=path)
        export.reject(f"{export.label}: the site's mapping cannot be used: {exc}")
        return export
    return _scan_mapped_export(site_id, path, mapping)


def scan_landing(
    landing: Path, sites_dir: Path | None = None, retired: list[str] | tuple[str, ...] = ()
) -> LandingScan:
    """Every export under `landing`, sorted by site then export id (time order). A site with a mapping file
    in `sites_dir` (default: `default_sites_dir()`) is read through it; a broken mapping rejects the site's
    exports, naming the problem. A retired site's exports (a `RETIRED` file in its folder, or named in
    `retired`) are not read."""
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist")
    sites_dir = default_sites_dir() if sites_dir is None else sites_dir
    exports: list[LandingExport] = []
    ignored: list[str] = []
    retired_now = retired_sites(landing, retired)
    for site_dir in sorted(landing.iterdir()):
        if site_dir.name.startswith("."):
            continue
        if site_dir.is_file():
            ignored.append(f"{site_dir.name}: a file directly in the landing folder (exports go in "
                           "<site_id>/<export_id>/); not read")
            continue
        if not site_dir.is_dir() or not SITE_ID.match(site_dir.name):
            ignored.append(f"{site_dir.name}: not a site folder (site ids match {SITE_ID.pattern}); not read")
            continue
        if site_dir.name in retired_now:
            ignored.append(f"{site_dir.name}: site retired (RETIRED file or --retire-site); its exports are not read")
            continue
        if not any(entry.is_dir() and not entry.name.startswith(".") for entry in site_dir.iterdir()):
            ignored.append(f"{site_dir.name}: a site folder without export folders (<site>/<export>/<file>)")
        mapping: SiteMapping | None = None
        mapping_problem: str | None = None
        found = mapping_path(sites_dir, site_dir.name)
        if found is not None:
            try:
                mapping = load_mapping(found, site_dir.name)
            except MappingError as exc:
                mapping_problem = str(exc)
        for export_dir in sorted(site_dir.iterdir()):
            if export_dir.name.startswith("."):
                continue
            if not export_dir.is_dir() or not EXPORT_ID.match(export_dir.name):
                kind = "a file directly in the site folder" if export_dir.is_file() else "not an export folder"
                ignored.append(f"{site_dir.name}/{export_dir.name}: {kind} (exports go in "
                               f"{site_dir.name}/<export_id>/); not read")
                continue
            if mapping_problem is not None:
                export = LandingExport(site_id=site_dir.name, export_id=export_dir.name, path=export_dir)
                export.reject(f"{export.label}: the site's mapping cannot be used: {mapping_problem}")
                exports.append(export)
            elif mapping is not None:
                exports.append(_scan_mapped_export(site_dir.name, export_dir, mapping))
            else:
                exports.append(_scan_export(site_dir.name, export_dir))
    return LandingScan(exports=exports, ignored_entries=ignored, retired_sites=retired_now)
