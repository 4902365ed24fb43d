"""Where the files the package reads at run time live: `sql/`, `config/` and `vendor/` are packages of their
own (data only, no code), shipped in the wheel as package data and found through `importlib.resources` — the
same way from a checkout, an editable install and an installed wheel, whatever the working directory.

Counting parent folders from `__file__` (`parents[2] / "sql"`) finds them only in a checkout."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# The data packages (see pyproject.toml, [tool.setuptools.package-data]).
SQL_PACKAGE = "sql"
CONFIG_PACKAGE = "config"
VENDOR_PACKAGE = "vendor"


def package_folder(package: str) -> Path:
    """The folder of a data package. pip installs wheels unpacked, so the package is a real folder (SQL is handed
    to DuckDB as text and vendored assets are copied with `shutil`, both of which need paths)."""
    folder = files(package)
    if not isinstance(folder, Path):  # a zipped install (zipimport): not a layout pip produces
        raise RuntimeError(f"package data {package!r} is not on the file system ({folder}); install ketreg unpacked")
    return folder


def config_file(name: str) -> Path:
    """`config/<name>`: the registry's default settings files (protocol, limits, quality, privacy)."""
    return package_folder(CONFIG_PACKAGE) / name
