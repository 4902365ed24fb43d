"""The mutation check (`make mutation`, tests/mutation/) stays usable as the code changes: every curated mutation
still finds its text exactly once, changes it, and names tests that exist. Cheap; the mutation run itself is
slow and stays out of `make test`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "mutation"))

from mutations import ACCEPTED_SURVIVORS, MUTATIONS, Mutation  # noqa: E402


def test_mutation_names_are_unique_and_survivors_are_listed_mutations() -> None:
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names))
    assert set(ACCEPTED_SURVIVORS) <= set(names)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_still_finds_its_target_once_and_names_existing_tests(mutation: Mutation) -> None:
    text = (ROOT / mutation.path).read_text(encoding="utf-8")
    assert text.count(mutation.before) == 1, (
        f"{mutation.name}: update tests/mutation/mutations.py — its target text changed in {mutation.path}"
    )
    assert mutation.after != mutation.before
    for argument in mutation.tests:
        if argument.startswith("tests/"):
            assert (ROOT / argument).is_file(), argument
