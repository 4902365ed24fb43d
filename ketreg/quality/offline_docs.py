"""Make Great Expectations' Data Docs render with no network: its pages load Bootstrap, jQuery, Vega and Font
Awesome from public CDNs (and its logo from S3), which closed hospital networks cannot reach. The files ship in
`vendor/data-docs/` (fetched once from the npm registry, see its README); each build copies them beside the
Data Docs and points every page at the copies."""

from __future__ import annotations

import functools
import os
import re
import shutil
from pathlib import Path

from ketreg.package_data import VENDOR_PACKAGE, package_folder

VENDOR_DIR = package_folder(VENDOR_PACKAGE) / "data-docs"
VENDOR_FOLDER = "vendor"  # inside the Data Docs folder

# The CDN addresses in Great Expectations 1.24's page templates → the shipped copy.
CDN_FILES = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark/bootstrap-prefers-dark.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/vega-embed.min.js",
}
_LOGO = re.compile(r"https://great-expectations-web-assets\.s3[^\"']*/logo-long\.png[^\"']*")
_STATIC = re.compile(r"\b(href|src)=\"(?:\.\./)*static/([^\"]+)\"")
_SRI = re.compile(r"\s+(integrity|crossorigin)=\"[^\"]*\"")
# Anything a page would still fetch from the network: scripts, stylesheets and images with absolute addresses.
_REMOTE_LOAD = re.compile(r"<(?:script|img)[^>]*\ssrc=\"https?://[^\"]*\"|<link[^>]*\shref=\"https?://[^\"]*\"")


class OfflineDocsError(RuntimeError):
    """A Data Docs page still loads something from the network (a Great Expectations upgrade added a CDN)."""


def _relative(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def _static_reference(match: re.Match[str], static: Path, page: Path) -> str:
    """`attribute="…static/<file>"` with the path from `page` to the real static folder."""
    return f'{match.group(1)}="{_relative(static / match.group(2), page)}"'


def make_offline(data_docs_dir: Path, dashboard: Path | None = None) -> int:
    """Copy the vendored files into `data_docs_dir/vendor`, rewrite every page to load them, and add a link to
    the quality dashboard on each page. Returns the number of pages rewritten; raises OfflineDocsError if a page
    would still load anything from the network."""
    vendor = data_docs_dir / VENDOR_FOLDER
    shutil.rmtree(vendor, ignore_errors=True)
    shutil.copytree(VENDOR_DIR, vendor, ignore=shutil.ignore_patterns("README.md"))
    pages = sorted(data_docs_dir.rglob("*.html"))
    leftovers: list[str] = []
    for page in pages:
        html = page.read_text(encoding="utf-8")
        for url, local in CDN_FILES.items():
            html = html.replace(f'"{url}"', f'"{_relative(vendor / local, page)}"')
        html = _LOGO.sub(_relative(data_docs_dir / "static" / "images" / "logo-long.png", page), html)
        html = re.sub(r"<(script|link)\b[^>]*>", lambda m: _SRI.sub("", m.group(0)), html)
        # Great Expectations 1.24 links validation pages to static/ one folder too high (the favicon): point
        # every static/ reference at the real folder.
        html = _STATIC.sub(functools.partial(_static_reference, static=data_docs_dir / "static", page=page), html)
        if dashboard is not None:
            link = (
                '<div class="ketreg-nav" style="padding:4px 12px;background:#f3f5f8;font-size:14px">'
                f'<a href="{_relative(dashboard, page)}">← Registry quality dashboard</a></div>'
            )
            body = re.search(r"<body[^>]*>", html)
            if body is not None:
                html = html[: body.end()] + link + html[body.end() :]
        leftovers += [f"{page.relative_to(data_docs_dir)}: {m.group(0)}" for m in _REMOTE_LOAD.finditer(html)]
        page.write_text(html, encoding="utf-8")
    if leftovers:
        raise OfflineDocsError(
            "Data Docs pages still load from the network (add the file to vendor/data-docs and CDN_FILES): "
            + "; ".join(leftovers[:5])
        )
    return len(pages)
