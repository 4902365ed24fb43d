"""Bounded messages about a site's files: names quoted only as far as needed, never file content.

Every rejection and notice the landing layer writes goes through here. They reach the analysts' file
(`exports.rejection_reason`, `exports.notices`), Dagster's event log and the command line, so a hostile or
broken file (a 10 MB header line, a data row where the header should be) must not be able to make them
large or copy its content into them.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_NAME_CHARS = 64
MAX_MESSAGE_CHARS = 2048
MAX_NAMES_SHOWN = 20
_CONTROL = {i: " " for i in range(32)} | {127: " "}


def name(text: object, cap: int = MAX_NAME_CHARS) -> str:
    """One file, folder or column name, on one line and at most `cap` characters."""
    shown = str(text).translate(_CONTROL)
    return shown if len(shown) <= cap else shown[: cap - 1] + "…"


def names(items: Iterable[object], shown: int = MAX_NAMES_SHOWN, quote: str = "") -> str:
    """`a, b, c … and 999,980 more`: the first `shown` names, each capped, then how many were left out.
    Linear in the number of items (a header may have a million)."""
    head: list[str] = []
    total = 0
    for total, item in enumerate(items, start=1):
        if total <= shown:
            head.append(f"{quote}{name(item)}{quote}")
    text = ", ".join(head)
    return text + (f" … and {total - shown:,} more" if total > shown else "")


def bounded(message: str, cap: int = MAX_MESSAGE_CHARS) -> str:
    """The message cut at `cap` characters (a site fixes the first problems, then checks again)."""
    message = message.replace("\r", " ").replace("\n", " ")
    if len(message) <= cap:
        return message
    return message[: cap - 40].rstrip() + f" … (message cut at {cap:,} characters)"
