"""Find the exports in a landing folder (`<landing>/<site_id>/<export_id>/<table>.csv`) and check that
each is usable before any row is read: required files present, headers carry the required columns."""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ketreg.landing import messages
from ketreg.landing.limits import LandingLimits, LimitExceeded, load_limits
from ketreg.landing.mapping import MappingError, SiteMapping, default_sites_dir, load_mapping, mapping_path
from ketreg.landing.retired import retired_sites
from ketreg.landing.safe_files import (
    NotARegularEntry,
    entry_problem,
    link_free_levels,
    list_dir,
    open_landing_file,
)
from ketreg.landing.text_scan import scan_text
from schemas.identifiers import looks_like_identifier
from schemas.tables import TABLES, TABLES_BY_FILE

# Matched whole (`fullmatch`): `$` would let a trailing line break through and make a second "site_01".
SITE_ID = re.compile(r"[a-z0-9][a-z0-9_-]*")
EXPORT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
CONTRACT_DOC = "docs/site-export-contract.md"
# Column names kept per file in `file_counts` (ignored / identifier-like columns), each capped in length.
MAX_COLUMNS_LISTED = 50


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
    limits: LandingLimits | None = None  # None: config/limits.yaml
    # Trailing path components the site controls, opened without following links: 3 in the landing folder
    # (site, export, file); 1 for `ketreg check-export` on a folder of the site's own choosing.
    link_free_levels: int = 1

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
        # A file rejected before hashing (a link, above a limit) still changes the fingerprint when it is
        # fixed, and raising a limit reads the export again.
        digest.update(f"rejection:{self.rejection};limits:{self.limits};".encode())
        return digest.hexdigest()

    def reject(self, message: str) -> None:
        # The first problem is enough to reject; later ones are kept so the site can fix all at once.
        message = messages.bounded(message)
        combined = message if self.rejection is None else f"{self.rejection}; {message}"
        self.rejection = messages.bounded(combined)

    def notice(self, message: str) -> None:
        self.notices.append(messages.bounded(message))

    def read_limits(self) -> LandingLimits:
        if self.limits is None:
            self.limits = load_limits()
        return self.limits


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


def _capped_names(columns: list[str]) -> list[str]:
    shown = [messages.name(c) for c in columns[:MAX_COLUMNS_LISTED]]
    if len(columns) > MAX_COLUMNS_LISTED:
        shown.append(f"… and {len(columns) - MAX_COLUMNS_LISTED:,} more")
    return shown


def _inspect_header(export: LandingExport, export_file: ExportFile, first_line: bytes) -> None:
    """Check the header line (already bounded by max_line_bytes) without ever quoting what it holds
    beyond capped column names of a real header."""
    where = f"{export.label}/{export_file.path.name}"
    limits = export.read_limits()
    if export_file.size_bytes == 0:
        export.reject(f"{where}: the file is empty; export it again with its header row ({CONTRACT_DOC})")
        return
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        export.reject(f"{where}: not UTF-8 text (near the start of the file, byte {exc.start}); save it as UTF-8 CSV")
        return
    if text.count(",") >= limits.max_header_columns:
        export.reject(str(limits.exceeded(where, "the number of header columns", text.count(",") + 1,
                                          "max_header_columns")))
        return
    try:
        as_written = next(csv.reader([text]), [])
    except csv.Error:
        as_written = []
    header = [column.strip() for column in as_written]
    contract = TABLES_BY_FILE[export_file.path.name]
    if not any(column in contract.columns for column in header):
        # Line 1 may be a data row (a headerless export): it is never quoted back.
        export.reject(
            f"{where}: no recognisable header row (line 1 names none of the columns of {contract.file_name}, "
            f"e.g. {', '.join(contract.required_columns[:3])}); the first line must be the header ({CONTRACT_DOC})"
        )
        return
    export_file.header, export_file.header_as_written = header, as_written
    counts = Counter(header)
    duplicated = sorted(c for c, n in counts.items() if n > 1)
    if duplicated:
        export.reject(f"{where}: column {messages.names(duplicated)} appears more than once in the header; keep one")
    missing = [c for c in contract.required_columns if c not in counts]
    for column in missing:
        export.reject(
            f"{where}: required column '{column}' is missing from the header; add it (see {CONTRACT_DOC})"
        )
    export_file.absent_optional_columns = [
        c for c in contract.columns if c not in counts and c not in contract.required_columns
    ]
    identifiers: list[str] = []
    ignored: list[str] = []
    for column in header:
        if column in contract.columns:
            continue
        (identifiers if looks_like_identifier(column) else ignored).append(column)
    export_file.identifier_columns = _capped_names(identifiers)
    export_file.ignored_columns = _capped_names(ignored)
    if identifiers:
        export.notice(
            f"{where}: column(s) {messages.names(identifiers)} look like direct patient identifiers;"
            " they were not read — please remove them from the export"
        )
    if ignored:
        export.notice(f"{where}: column(s) {messages.names(ignored)} are not in the contract and were not read")
    if export_file.absent_optional_columns:
        export.notice(f"{where}: optional column(s) {', '.join(export_file.absent_optional_columns)} "
                      "are absent and read as empty")


def _present(export: LandingExport, file_path: Path) -> bool:
    """Whether the export has an entry of that name; one that is not a regular file rejects the export."""
    if not os.path.lexists(file_path):
        return False
    problem = entry_problem(file_path, want_dir=False)
    if problem is not None:
        export.reject(f"{export.label}/{messages.name(file_path.name)} {problem}")
        return False
    return True


def _stray_names(export: LandingExport, read: set[str], why: str) -> None:
    names = sorted(entry.name for entry in list_dir(export.path) if not entry.name.startswith("."))
    stray = [n for n in names if n not in read]
    if stray:
        export.notice(f"{export.label}: {messages.names(stray, quote=chr(39))} {why}; not read")


def _scan_canonical(export: LandingExport) -> None:
    limits = export.read_limits()
    _stray_names(export, set(TABLES_BY_FILE), "not a file of the contract")
    for table in TABLES:
        file_path = export.path / table.file_name
        if not _present(export, file_path):
            if table.required_in_export and not os.path.lexists(file_path):
                export.reject(f"{export.label}: {table.file_name} is missing; every export needs it ({CONTRACT_DOC})")
            continue
        where = f"{export.label}/{table.file_name}"
        try:
            with open_landing_file(file_path, where, limits) as handle:
                scanned = scan_text(handle, where, limits, utf8=True)
        except (NotARegularEntry, LimitExceeded) as exc:
            export.reject(str(exc))
            continue
        export_file = ExportFile(table=table.name, path=file_path, sha256=scanned.sha256,
                                 size_bytes=scanned.size_bytes)
        export.files[table.name] = export_file
        if scanned.not_utf8_at is not None:
            byte, line = scanned.not_utf8_at
            export.reject(
                f"{where}: not UTF-8 text (line {line:,}, byte {byte:,}); save it as UTF-8 CSV ({CONTRACT_DOC})"
            )
            continue
        _inspect_header(export, export_file, scanned.first_line)


def _scan_mapped(export: LandingExport) -> None:
    """An export read through the site's mapping: the files it names must be there; their columns are
    checked when they are read (a workbook has to be opened for that)."""
    mapping = export.mapping
    assert mapping is not None
    limits = export.read_limits()
    _stray_names(export, set(mapping.source_files()), f"not a file {mapping.label} reads")
    for table in TABLES:
        parts = mapping.tables.get(table.name, ())
        named = [mapping.file] if mapping.format in ("excel", "redcap") else [p.file for p in parts]
        files = [f for f in named if f]
        if not files:
            continue
        file_path = export.path / files[0]
        if not _present(export, file_path):
            if not os.path.lexists(file_path) and (table.required_in_export or mapping.format in ("excel", "redcap")):
                export.reject(f"{export.label}: {files[0]} is missing; {mapping.label} reads {table.name} from it")
            continue
        where = f"{export.label}/{files[0]}"
        try:
            with open_landing_file(file_path, where, limits) as handle:
                digest = hashlib.sha256()
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                size = handle.tell()
        except (NotARegularEntry, LimitExceeded) as exc:
            export.reject(str(exc))
            continue
        export.files[table.name] = ExportFile(table=table.name, path=file_path, sha256=digest.hexdigest(),
                                              size_bytes=size)


def _scan_one(export: LandingExport) -> LandingExport:
    """Scan one export; whatever goes wrong rejects that export alone."""
    try:
        with link_free_levels(export.link_free_levels):
            _scan_mapped(export) if export.mapping is not None else _scan_canonical(export)
    except Exception as exc:  # a site's files must never stop the scan of the other sites
        export.reject(f"{export.label}: the export could not be inspected ({type(exc).__name__}); check its files")
    return export


def scan_export(site_id: str, path: Path, sites_dir: Path | None = None,
                limits: LandingLimits | None = None) -> LandingExport:
    """One export folder of `site_id`, read through the site's mapping if `sites_dir` holds one (the same
    checks `scan_landing` makes; `ketreg check-export` uses it on a folder outside the landing area)."""
    limits = limits or load_limits()
    export = LandingExport(site_id=site_id, export_id=path.name, path=path, limits=limits)
    found = mapping_path(default_sites_dir() if sites_dir is None else sites_dir, site_id)
    if found is not None:
        try:
            export.mapping = load_mapping(found, site_id, limits.max_mapping_bytes)
        except MappingError as exc:
            export.reject(f"{export.label}: the site's mapping cannot be used: {exc}")
            return export
    return _scan_one(export)


def scan_landing(
    landing: Path,
    sites_dir: Path | None = None,
    limits: LandingLimits | None = None,
    retired: list[str] | tuple[str, ...] = (),
) -> LandingScan:
    """Every export under `landing`, sorted by site then export id (time order). A site with a mapping file
    in `sites_dir` (default: `default_sites_dir()`) is read through it; a broken mapping rejects the site's
    exports, naming the problem. Only real folders and files are read: a link, device or FIFO at any level
    is reported and never opened. A retired site's exports (a `RETIRED` file in its folder, or named in
    `retired`) are not read. Every entry that is not `<site>/<export>/<file>` is listed in `ignored_entries`."""
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist")
    sites_dir = default_sites_dir() if sites_dir is None else sites_dir
    limits = limits or load_limits()
    exports: list[LandingExport] = []
    ignored: list[str] = []
    retired_now = retired_sites(landing, retired)
    for site_dir in sorted(landing.iterdir()):
        if site_dir.name.startswith("."):
            continue
        shown = messages.name(site_dir.name)
        problem = entry_problem(site_dir, want_dir=True)
        if problem == "is a file, not a folder":
            ignored.append(f"{shown}: a file directly in the landing folder (exports go in "
                           "<site_id>/<export_id>/); not read")
            continue
        if problem is not None or not SITE_ID.fullmatch(site_dir.name):
            why = problem or f"is not a site folder (site ids match {SITE_ID.pattern})"
            ignored.append(f"{shown}: {why}; not read")
            continue
        if site_dir.name in retired_now:
            ignored.append(f"{shown}: site retired (RETIRED file or --retire-site); its exports are not read")
            continue
        site_entries = list_dir(site_dir)
        if not any(entry_problem(e, want_dir=True) is None and not e.name.startswith(".") for e in site_entries):
            ignored.append(f"{shown}: a site folder without export folders (<site>/<export>/<file>)")
        mapping: SiteMapping | None = None
        mapping_problem: str | None = None
        found = mapping_path(sites_dir, site_dir.name)
        if found is not None:
            try:
                mapping = load_mapping(found, site_dir.name, limits.max_mapping_bytes)
            except MappingError as exc:
                mapping_problem = str(exc)
        for export_dir in site_entries:
            if export_dir.name.startswith("."):
                continue
            problem = entry_problem(export_dir, want_dir=True)
            if problem == "is a file, not a folder":
                ignored.append(f"{shown}/{messages.name(export_dir.name)}: a file directly in the site folder "
                               f"(exports go in {shown}/<export_id>/); not read")
                continue
            if not EXPORT_ID.fullmatch(export_dir.name):
                ignored.append(f"{shown}/{messages.name(export_dir.name)}: not an export folder; not read")
                continue
            export = LandingExport(site_id=site_dir.name, export_id=export_dir.name, path=export_dir,
                                   mapping=mapping, limits=limits, link_free_levels=3)
            if problem is not None:
                # A linked or special export folder is a rejected export the site is told about.
                export.reject(f"{export.label} {problem}")
                exports.append(export)
                continue
            if mapping_problem is not None:
                export.reject(f"{export.label}: the site's mapping cannot be used: {mapping_problem}")
                exports.append(export)
                continue
            exports.append(_scan_one(export))
    if len(ignored) > messages.MAX_NAMES_SHOWN:
        ignored = [*ignored[: messages.MAX_NAMES_SHOWN], f"… and {len(ignored) - messages.MAX_NAMES_SHOWN:,} more"]
    return LandingScan(exports=exports, ignored_entries=ignored, retired_sites=retired_now)
