"""The dashboard's Jinja2 environment, shared by dashboard.py and the sections built in their own modules
(sites, landing, planning): templates in templates/, autoescaping on, every printed value escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


def n(value: Any) -> str:
    """A count with thousands separators; empty for a missing value."""
    return "" if value is None else f"{value:,}"


def share(numerator: int, denominator: int) -> str:
    """numerator / denominator as a percentage, or "–" without a denominator."""
    return f"{numerator / denominator:.1%}" if denominator else "–"


def _escaped(value: Any) -> Markup:
    # Every value the templates print is escaped by html.escape, as the sections built in Python were, so the page
    # is byte for byte what it was before the templates (MarkupSafe would write ' as &#39; instead of &#x27;).
    return value if isinstance(value, Markup) else Markup(escape(str(value)))


TEMPLATES = Environment(
    loader=PackageLoader("ketreg.quality", "templates"), autoescape=True, undefined=StrictUndefined,
    finalize=_escaped,
)
TEMPLATES.filters["n"] = n
TEMPLATES.globals["share"] = share
# A template's macros become attributes of its module when Jinja loads it, so no type can name them; a missing
# macro fails the dashboard tests (tests/test_dashboard_templates.py).
SECTIONS: Any = TEMPLATES.get_template("sections.html.j2").module
PLANNING: Any = TEMPLATES.get_template("planning.html.j2").module
