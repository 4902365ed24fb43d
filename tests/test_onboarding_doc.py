"""docs/onboarding-a-site.md, followed step by step: its files are written, its mapping edits applied and its
commands run, and every output line the page shows must appear, in order, with the exit code it states."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from ketreg_app.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "onboarding-a-site.md"
STEP = re.compile(r"<!-- walkthrough: (?P<kind>file|edit|run) ?(?P<args>[^>]*?) -->\n```[a-z]*\n(?P<body>.*?)```",
                  re.DOTALL)


def _entries(lines: list[str]) -> list[list[str]]:
    """YAML lines grouped into entries: a line and the more indented lines that follow it."""
    entries: list[list[str]] = []
    for line in lines:
        if entries and _indent(line) > _indent(entries[-1][0]):
            entries[-1].append(line)
        else:
            entries.append([line])
    return entries


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _key(line: str) -> str:
    return line.strip().split(":", 1)[0]


def apply_edit(text: str, edit: str) -> str:
    """Replace each entry of the edit's parts by name (searching forward), or insert it after the last one."""
    lines = text.splitlines()
    for part in edit.split("---\n"):
        cursor = 0
        for entry in _entries([line for line in part.splitlines() if line.strip()]):
            found = next(
                (i for i in range(cursor, len(lines))
                 if _indent(lines[i]) == _indent(entry[0]) and _key(lines[i]) == _key(entry[0])),
                None,
            )
            if found is None:
                lines[cursor:cursor] = entry
                cursor += len(entry)
                continue
            end = found + 1
            while end < len(lines) and _indent(lines[end]) > _indent(lines[found]):
                end += 1
            lines[found:end] = entry
            cursor = found + len(entry)
    return "\n".join(lines) + "\n"


def _steps() -> list[re.Match[str]]:
    return list(STEP.finditer(DOC.read_text(encoding="utf-8")))


def test_the_walkthrough_has_every_kind_of_step() -> None:
    kinds = [step["kind"] for step in _steps()]
    assert kinds.count("run") >= 5 and "edit" in kinds and "file" in kinds


def test_onboarding_walkthrough_works_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    # The page's mapping goes into the clone's sites/ folder; here a fresh one stands in for it.
    monkeypatch.setenv("KETREG_SITES_DIR", str(tmp_path / "sites"))
    (tmp_path / "sites").mkdir()  # as the clone's sites/ exists (a missing mapping folder is a usage error)
    for number, step in enumerate(_steps(), start=1):
        body, args = step["body"], dict(a.split("=", 1) if "=" in a else (a, "") for a in step["args"].split())
        if step["kind"] == "file":
            (path,) = [a for a, v in args.items() if not v]
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_bytes(body.encode(args.get("encoding", "utf-8")))
        elif step["kind"] == "edit":
            (path,) = list(args)
            target = tmp_path / path
            target.write_text(apply_edit(target.read_text(encoding="utf-8"), body), encoding="utf-8")
        else:
            command, *expected = body.splitlines()
            argv = shlex.split(command.removeprefix("$ "))
            assert argv[0].endswith("ketreg"), command
            code = main(argv[1:])
            output = capsys.readouterr().out.splitlines()
            assert code == int(args["exit"]), f"step {number}: {command} exited {code}\n" + "\n".join(output)
            position = 0
            for line in expected:
                matches = [i for i in range(position, len(output)) if line.strip() in output[i]]
                assert matches, f"step {number}: '{line}' not in the output (in order):\n" + "\n".join(output)
                position = matches[0] + 1
