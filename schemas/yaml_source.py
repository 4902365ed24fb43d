"""Settings files read with the line of every key, and checked by pydantic models whose errors name the file,
the line and the key path (`protocol file config/protocol.yaml: line 31: metrics.primary_assessment.
pre_infusion_number must be ≥ 2 (got 1)`): a data manager editing YAML fixes the line the message names.

PyYAML's composer keeps a mark (line, column) on every node; the safe constructor then builds the plain data,
and `lines` maps each key path — the same tuples pydantic reports as an error's `loc` — to its line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

KeyPath = tuple[str | int, ...]
Model = TypeVar("Model", bound=BaseModel)


class YamlSourceError(ValueError):
    """The file is missing, unreadable or not YAML; the message names the file (and line, for syntax)."""


@dataclass(frozen=True)
class YamlSource:
    """A parsed YAML file and the line (1-based) of each key path in it."""

    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, loc: KeyPath) -> int | None:
        """The line of `loc`, else of its nearest ancestor present in the file (a missing key's section)."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None


def _record_lines(node: yaml.Node, at: KeyPath, lines: dict[KeyPath, int]) -> None:
    # A key written twice keeps its first line (PyYAML keeps the last value; either way the key is named).
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*at, key.value)
            lines.setdefault(path, key.start_mark.line + 1)
            _record_lines(value, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*at, index), item.start_mark.line + 1)
            _record_lines(item, (*at, index), lines)


def key_lines(node: yaml.Node | None) -> dict[KeyPath, int]:
    """The line (1-based) of every key path under a composed YAML node (`yaml.compose(text)`)."""
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return lines


def read_yaml(path: Path, what: str, error: type[ValueError] = YamlSourceError) -> YamlSource:
    """Parse `path` keeping each key's line. `what` names the file in messages ("protocol file"); failures raise
    `error` with the file and, for YAML syntax, the line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise error(f"{what} {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} cannot be read: {type(exc).__name__}") from exc
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise error(f"{what} {path}{where}: {problem}; fix the YAML syntax") from exc
    return YamlSource(path=path, data=data, lines=key_lines(node))


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_CONSTRAINTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "greater_than_equal": lambda c: f"must be ≥ {_number(c['ge'])}",
    "greater_than": lambda c: f"must be > {_number(c['gt'])}",
    "less_than_equal": lambda c: f"must be ≤ {_number(c['le'])}",
    "less_than": lambda c: f"must be < {_number(c['lt'])}",
}


def _problem(error: Any) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "is missing"
    if kind == "extra_forbidden":
        return "is not a known setting"
    if kind in _CONSTRAINTS:
        return _CONSTRAINTS[kind](context)
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    return error["msg"][:1].lower() + error["msg"][1:]


_MOST_PROBLEMS_SHOWN = 10  # a file of thousands of unknown keys still gives a message a person can read


def describe_errors(exc: ValidationError, source: YamlSource, prefix: KeyPath = ()) -> list[str]:
    """One entry per pydantic error: line, key path, what is wrong and the value found. `prefix` is the key path
    of the validated section inside the file (e.g. `("metrics",)`)."""
    described = []
    for error in exc.errors():
        loc = (*prefix, *error["loc"])
        line = source.line_of(loc)
        key = ".".join(str(part) for part in loc) or "the file"
        found = "" if error["type"] == "missing" or "input" not in error else f" (got {error['input']!r:.60})"
        described.append((f"line {line}: " if line is not None else "") + f"{key} {_problem(error)}{found}")
    if len(described) > _MOST_PROBLEMS_SHOWN:
        described[_MOST_PROBLEMS_SHOWN:] = [f"and {len(described) - _MOST_PROBLEMS_SHOWN} more"]
    return described


def validate(model: type[Model], source: YamlSource, what: str, error: type[ValueError], data: Any = None,
             prefix: KeyPath = (), hint: str = "") -> Model:
    """`model` validated from `data` (the whole file by default); errors raise `error` naming the file once and
    then every problem with its line and key path."""
    try:
        return model.model_validate(source.data if data is None else data)
    except ValidationError as exc:
        problems = describe_errors(exc, source, prefix)
        raise error(f"{what} {source.path}: " + "; ".join(problems) + (f"; {hint}" if hint else "")) from exc
