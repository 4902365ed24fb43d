"""`make mutation`: apply each curated mutation (tests/mutation/mutations.py) to a temporary copy of the
repository — never to the working tree — run the tests that must catch it, and report killed or survived with
a score. A crash or Ctrl-C leaves the repository untouched; only the copy was ever mutated.

    python tests/mutation/run.py                 # every mutation
    python tests/mutation/run.py --only in_place_publish --only weakened_conservation
    python tests/mutation/run.py --list

Exit status: 0 when every mutation was killed or is an accepted survivor, 1 otherwise, 2 when the unmutated
copy fails its own tests (then no score means anything)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutations import ACCEPTED_SURVIVORS, MUTATIONS, Mutation  # noqa: E402

# pytest exit codes: 1 = some test failed (the mutation is killed); 0 = all passed (it survived); anything
# else (interrupted, internal error, usage error, nothing collected) says the run itself went wrong.
KILLED, SURVIVED = 1, 0
TIMEOUT_SECONDS = 900


def copy_repository(destination: Path) -> None:
    """The tracked and untracked-but-not-ignored files of the repository (no .venv, demo or caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The copy's packages come before the editable install of the repository on the import path.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
    env.pop("DAGSTER_HOME", None)
    return env


def check_imports_come_from(copy: Path) -> None:
    probe = ("import ketreg, ketreg_app, pipelines, schemas; "
             "print(ketreg.__file__, ketreg_app.__file__, pipelines.__file__, schemas.__file__)")
    found = subprocess.run([sys.executable, "-c", probe], cwd=copy, env=_environment(copy), capture_output=True,
                           text=True, check=True).stdout.split()
    outside = [path for path in found if not Path(path).resolve().is_relative_to(copy.resolve())]
    if outside:
        raise SystemExit(f"the copy imports code from outside itself ({outside}); a mutation would not be tested")


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int, float, str]:
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
            cwd=copy, env=_environment(copy), capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return -1, time.monotonic() - started, "timed out"
    summary = next((line for line in reversed(done.stdout.splitlines()) if line.strip()), "")
    return done.returncode, time.monotonic() - started, summary


def apply(copy: Path, mutation: Mutation) -> str:
    """Mutate the copy's file; returns its original text for restoring."""
    path = copy / mutation.path
    original = path.read_text(encoding="utf-8")
    if original.count(mutation.before) != 1:
        raise SystemExit(f"{mutation.name}: the text to mutate is not found exactly once in {mutation.path}")
    path.write_text(original.replace(mutation.before, mutation.after), encoding="utf-8")
    return original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="run only this mutation (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--skip-baseline", action="store_true", help="do not first run the tests unmutated")
    args = parser.parse_args(argv)
    selected = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list or not selected:
        for mutation in MUTATIONS:
            print(f"{mutation.name:32} {mutation.path}: {mutation.net}")
        return 0 if args.list else 2

    with tempfile.TemporaryDirectory(prefix="ketreg-mutation-") as temporary:
        copy = Path(temporary) / "repo"
        copy_repository(copy)
        check_imports_come_from(copy)
        if not args.skip_baseline:
            tests = sorted({t for m in selected for t in m.tests if t.startswith("tests/")})
            code, seconds, summary = run_tests(copy, tuple(tests))
            print(f"baseline (unmutated) {' '.join(tests)}: {summary} [{seconds:.0f} s]", flush=True)
            if code != 0:
                print("the unmutated copy fails its tests: fix them before scoring mutations", file=sys.stderr)
                return 2
        results: list[tuple[Mutation, str]] = []
        for mutation in selected:
            original = apply(copy, mutation)
            try:
                code, seconds, summary = run_tests(copy, mutation.tests)
            finally:
                (copy / mutation.path).write_text(original, encoding="utf-8")
            outcome = {KILLED: "killed", SURVIVED: "survived", -1: "killed (timeout)"}.get(code, f"error ({code})")
            if code == KILLED and " failed" not in summary:
                outcome = "killed (error)"  # a fixture broke: e.g. the mutated pipeline no longer runs clean data
            results.append((mutation, outcome))
            print(f"{outcome:16} {mutation.name:32} {summary} [{seconds:.0f} s]", flush=True)

    killed = sum(outcome.startswith("killed") for _, outcome in results)
    print(f"\nmutation score: {killed}/{len(results)} killed ({killed / len(results):.0%})")
    unexplained = []
    for mutation, outcome in results:
        if outcome.startswith("killed"):
            continue
        reason = ACCEPTED_SURVIVORS.get(mutation.name)
        print(f"  {outcome}: {mutation.name} ({mutation.path}) — {reason or 'NO ACCEPTED REASON: add a test'}")
        if reason is None or not outcome.startswith("survived"):
            unexplained.append(mutation.name)
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
