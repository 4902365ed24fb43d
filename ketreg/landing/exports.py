"""Read one export into canonical text frames, through the site's mapping when it has one."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from ketreg.landing import messages
from ketreg.landing.apply_mapping import read_mapped_export
from ketreg.landing.discovery import LandingExport
from ketreg.landing.formats import UnreadableSource
from ketreg.landing.limits import LimitExceeded
from ketreg.landing.reader import UnreadableFile, read_export_file
from ketreg.landing.safe_files import NotARegularEntry, link_free_levels


@dataclass
class ExportRead:
    """An export's rows in canonical form: per table the text frame and the rows' conversion failures."""

    frames: dict[str, pl.DataFrame]
    failures: dict[str, pl.DataFrame] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # table → the site's file or sheet
    notices: list[str] = field(default_factory=list)


def read_export(export: LandingExport) -> ExportRead:
    """Raises UnreadableFile with the reason (bounded, never the file's content) when the export cannot be
    used, whatever went wrong reading it: one bad export must never stop the others."""
    try:
        with link_free_levels(export.link_free_levels):
            return _read_export(export)
    except UnreadableFile as exc:
        raise UnreadableFile(messages.bounded(str(exc)), getattr(exc, "site_detail", None)) from exc
    except (UnreadableSource, LimitExceeded, NotARegularEntry) as exc:
        raise UnreadableFile(messages.bounded(str(exc)), getattr(exc, "site_detail", None)) from exc
    except Exception as exc:  # csv, encoding, zip, XML, memory …: the export's own problem, said without content
        raise UnreadableFile(
            f"{export.label}: the export could not be read ({type(exc).__name__}); check that its files are the "
            "CSV or Excel files the registry expects, then run `ketreg check-export` on it"
        ) from exc


def _read_export(export: LandingExport) -> ExportRead:
    if export.mapping is None:
        return ExportRead(
            {name: read_export_file(export, f) for name, f in export.files.items()},
            sources={name: f.path.name for name, f in export.files.items()},
        )
    try:
        mapped = read_mapped_export(export.path, export.site_id, export.export_id, export.mapping,
                                    export.read_limits())
    except UnreadableSource as exc:
        raise UnreadableFile(str(exc), exc.site_detail) from exc
    for name, export_file in export.files.items():
        source = mapped.sources.get(name)
        if source is not None:
            export_file.identifier_columns = mapped.identifier_columns.get(source, [])
            export_file.ignored_columns = mapped.unused_columns.get(source, [])
    return ExportRead(mapped.frames, mapped.failures, mapped.sources, mapped.notices)
