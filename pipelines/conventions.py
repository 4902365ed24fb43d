"""Dagster conventions applied to every asset in one place: an owner, a `layer` tag (the group), code
references to the Python that builds the asset and to the SQL file it runs, and descriptions taken from the
SQL header comments where an asset only said which file builds it.

Code references are local files (`with_source_code_references`): the repository has no public remote, so
`link_code_references_to_git` (GitHub/GitLab URLs) is left to a deployment that has one."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import cast

import dagster as dg

from ketreg.warehouse.sql_docs import sql_header
from ketreg.warehouse.sql_files import sql_path

OWNERS = ["team:ketreg-registry"]
# "metrics.patient_outcomes, built by sql/metrics/patient_outcomes.sql": the file says more than that.
_BUILT_BY = re.compile(r"^[\w.]+, built by sql/(?P<file>[\w/]+\.sql)$")
_SQL_NAMED = re.compile(r"\(sql/(?P<file>[\w/]+\.sql)\)$|built by sql/(?P<built>[\w/]+\.sql)")


def _sql_file(description: str | None) -> str | None:
    found = _SQL_NAMED.search(description or "")
    return (found["file"] or found["built"]) if found else None


def _apply(spec: dg.AssetSpec) -> dg.AssetSpec:
    description = spec.description
    boilerplate = _BUILT_BY.match(description or "")
    if boilerplate and sql_path(boilerplate["file"]).is_file():
        description = f"{sql_header(boilerplate['file'])} (sql/{boilerplate['file']})"
    metadata = dict(spec.metadata)
    sql_file = _sql_file(description)
    if sql_file and sql_path(sql_file).is_file():
        existing = metadata.get("dagster/code_references")
        references = list(existing.code_references) if existing is not None else []
        references.append(dg.LocalFileCodeReference(file_path=str(sql_path(sql_file).resolve()), line_number=1,
                                                     label=f"sql/{sql_file}"))
        metadata["dagster/code_references"] = dg.CodeReferencesMetadataValue(code_references=references)
    return spec.replace_attributes(
        description=description,
        owners=spec.owners or OWNERS,
        tags={**spec.tags, "layer": spec.group_name or "default"},
        metadata=metadata,
    )


def with_conventions(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """`assets` with owners, layer tags, code references and SQL-header descriptions."""
    with warnings.catch_warnings():
        # Code references are marked beta in Dagster 1.13; every process loading the code location would say so.
        warnings.simplefilter("ignore", dg.BetaWarning)
        # It returns the kinds it is given (typed as any asset kind): assets definitions in, assets definitions out.
        referenced = cast(list[dg.AssetsDefinition], dg.with_source_code_references(assets))
        return list(dg.map_asset_specs(_apply, referenced))
