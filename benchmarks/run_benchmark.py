"""Benchmark `ketreg run` against a bare DuckDB load of the same files, in the same run.

For each size: generate a landing folder (not timed), then in fresh subprocesses measure wall time and peak
RSS of (1) a bare DuckDB `read_csv` load of every file into tables, (2) `ketreg run` on an empty registry,
(3) `ketreg run` again on the unchanged landing folder, (4) `ketreg run` after one site sent one new export
(a copy of its newest export under a later export id), each with seconds per Dagster step, and the ratios of
issue 13's targets. Prints a table and writes benchmarks/out/results.json.

    .venv/bin/python benchmarks/run_benchmark.py                 # demo size and 100 sites × 5,000 patients
    .venv/bin/python benchmarks/run_benchmark.py --sizes 4x60    # just one size
    .venv/bin/python benchmarks/run_benchmark.py --sizes 100x5000 --landing /path/to/generated/landing
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
BIN = Path(sys.executable).parent
BENCH_KEY = "benchmark-key-synthetic-data-only"
SAMPLE_SECONDS = 0.5

# The floor: what DuckDB alone needs to read every CSV of the landing folder into tables.
BARE_LOAD = """
import sys, duckdb
from pathlib import Path
landing, db = Path(sys.argv[1]), sys.argv[2]
con = duckdb.connect(db)
for table in ("patients", "infusions", "assessments", "adverse_events", "dispositions"):
    files = sorted(str(p) for p in landing.glob(f"*/*/{table}.csv"))
    con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_csv({files!r}, union_by_name = true, filename = true)")
con.close()
"""


def _rss_mib(pid: int) -> float | None:
    """Resident set size of a running process, from /proc (None once it has gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def measured(command: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> dict:
    """Wall seconds and peak RSS (MiB) of one child process, and its RSS sampled every half second (epoch
    seconds, MiB) to line up with the steps; raises if it exits with a code not in `ok`. Its output goes to
    files, not pipes: a child that writes more than a pipe holds would block while nobody reads it."""
    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            rss = _rss_mib(process.pid)
            if rss is not None:
                samples.append((round(time.time(), 2), round(rss, 1)))
            time.sleep(SAMPLE_SECONDS)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        stdout.seek(0)
        stderr.seek(0)
        if process.returncode not in ok:
            raise RuntimeError(f"{' '.join(command)} failed:\n{stdout.read().decode()}\n{stderr.read().decode()}")
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "rss_samples": samples}


def step_times(dagster_home: Path, index: int = 0) -> dict[str, tuple[float, float]]:
    """(start, end) epoch seconds of each finished step of run number `index` (0 = the oldest) in `dagster_home`."""
    code = (
        "import json, dagster as dg\n"
        "instance = dg.DagsterInstance.get()\n"
        f"run = instance.get_runs()[::-1][{index}]\n"
        "stats = instance.get_run_step_stats(run.run_id)\n"
        "print(json.dumps({s.step_key: [s.start_time, s.end_time] for s in stats if s.end_time}))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True, text=True, check=True,
    ).stdout
    return {step: (start, end) for step, (start, end) in json.loads(output.strip().splitlines()[-1]).items()}


def per_step(times: dict[str, tuple[float, float]], samples: list[tuple[float, float]]) -> dict[str, dict]:
    """Seconds and the highest RSS sampled (MiB) while each step ran, slowest first. The process's RSS rarely
    falls back after a step (freed memory stays with the allocator), so the step whose maximum first reaches
    the run's peak is the one responsible for it."""
    steps = {}
    for step, (start, end) in times.items():
        during = [rss for at, rss in samples if start <= at <= end]
        steps[step] = {"s": round(end - start, 2), "rss_mib_max": max(during, default=None)}
    return dict(sorted(steps.items(), key=lambda item: -item[1]["s"]))


def landing_stats(landing: Path) -> dict[str, int]:
    files = list(landing.glob("*/*/*.csv"))
    rows = 0
    for path in files:
        with path.open("rb") as handle:
            rows += sum(1 for _ in handle) - 1
    return {"files": len(files), "rows": rows, "mib": round(sum(p.stat().st_size for p in files) / 2**20, 1)}


def bench_size(sites: int, patients: int, error_rate: float, given_landing: Path | None = None) -> dict:
    name = f"{sites}x{patients}"
    workdir = OUT / name
    landing = workdir / "landing"
    if given_landing is not None:
        # A landing generated once (e.g. shared with other benchmarks) is copied, not used in place: the
        # one-new-export run adds an export to it, and the given folder must stay as it was.
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.copytree(given_landing, landing)
    elif not (landing / ".generator-manifest.json").exists():
        shutil.rmtree(workdir, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "synthetic", "generate", "--out", str(landing), "--sites", str(sites),
             "--patients-per-site", str(patients), "--seed", "11", "--error-rate", str(error_rate)],
            check=True, stdout=subprocess.DEVNULL, cwd=ROOT,  # the generator is a dev tool in the checkout
        )
    for stale in workdir.glob("*.duckdb*"):
        stale.unlink()
    dagster_home = workdir / "dagster_home"
    shutil.rmtree(dagster_home, ignore_errors=True)
    dagster_home.mkdir()
    # A Dagster instance of its own, so the run's step timings can be read back afterwards.
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "KETREG_PSEUDONYM_KEY": BENCH_KEY, "DAGSTER_HOME": str(dagster_home)}
    progress = OUT / f"{name}-progress.json"  # each figure as soon as it is measured (a long size can be cut short)
    figures: dict = {"size": name, "load_average_at_start": os.getloadavg()}

    def record(label: str, command: list[str], run_index: int | None) -> dict:
        outcome = measured(command, env, ok=(0, 3))
        samples = outcome.pop("rss_samples")
        figures[label] = {**outcome, "load_average_after": os.getloadavg()}
        if run_index is not None:
            figures[f"steps_of_{label}"] = per_step(step_times(dagster_home, run_index), samples)
        progress.write_text(json.dumps(figures, indent=2))
        return outcome

    bare = record("bare_duckdb_load", [sys.executable, "-c", BARE_LOAD, str(landing), str(workdir / "bare.duckdb")],
                  None)
    run = [str(BIN / "ketreg"), "run", "--landing", str(landing), "--db", str(workdir / "registry.duckdb")]
    # Exit 3 = published with some exports rejected: the generator rejects one on purpose when --error-rate > 0.
    full = record("ketreg_run", run, 0)
    rerun = record("ketreg_rerun_unchanged", run, 1)
    added = add_export(landing)
    new_export = record("ketreg_rerun_one_new_export", run, 2)
    shutil.rmtree(added)  # the generated landing stays as generated for the next invocation
    return {
        "size": name,
        "landing": landing_stats(landing),
        "bare_duckdb_load": bare,
        "ketreg_run": full,
        "ketreg_rerun_unchanged": rerun,
        "ketreg_rerun_one_new_export": new_export,
        "new_export": str(added.relative_to(landing)),
        "ratio_run_to_bare": round(full["wall_s"] / bare["wall_s"], 2),
        "ratio_rerun_unchanged_to_run": round(rerun["wall_s"] / full["wall_s"], 3),
        "ratio_rerun_new_export_to_run": round(new_export["wall_s"] / full["wall_s"], 3),
        "peak_rss_mib_any_run": max(r["peak_rss_mib"] for r in (full, rerun, new_export)),
        "load_average_1_5_15": os.getloadavg(),
        **{key: value for key, value in figures.items() if key.startswith(("steps_of_", "load_average_at"))},
    }


def add_export(landing: Path) -> Path:
    """One new export of the first site: its newest export copied under a later export id."""
    site = sorted(p for p in landing.iterdir() if p.is_dir())[0]
    newest = sorted(p for p in site.iterdir() if p.is_dir())[-1]
    target = site / "2099-12-31"
    shutil.copytree(newest, target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["4x60", "100x5000"], help="SITESxPATIENTS_PER_SITE")
    parser.add_argument("--error-rate", type=float, default=0.01)
    parser.add_argument(
        "--landing", type=Path,
        help="a landing folder generated beforehand (as this script would: --seed 11, canonical shape) for the "
        "one size given; it is copied, never changed",
    )
    args = parser.parse_args()
    if args.landing is not None and len(args.sizes) != 1:
        parser.error("--landing goes with exactly one --sizes entry (the size it was generated at)")
    OUT.mkdir(exist_ok=True)
    results = []
    for size in args.sizes:
        sites, patients = (int(part) for part in size.split("x"))
        result = bench_size(sites, patients, args.error_rate, args.landing)
        results.append(result)
        print(json.dumps(result), flush=True)
    print()
    print("| size | files | rows | MiB | bare load s | bare MiB RSS | ketreg run s | run MiB RSS | run / bare "
          "| unchanged re-run s (÷ run) | one new export s (÷ run) | peak RSS MiB, any run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['size']} | {r['landing']['files']} | {r['landing']['rows']:,} | {r['landing']['mib']} "
            f"| {r['bare_duckdb_load']['wall_s']} | {r['bare_duckdb_load']['peak_rss_mib']} "
            f"| {r['ketreg_run']['wall_s']} | {r['ketreg_run']['peak_rss_mib']} | {r['ratio_run_to_bare']} "
            f"| {r['ketreg_rerun_unchanged']['wall_s']} ({r['ratio_rerun_unchanged_to_run']:.0%}) "
            f"| {r['ketreg_rerun_one_new_export']['wall_s']} ({r['ratio_rerun_new_export_to_run']:.0%}) "
            f"| {r['peak_rss_mib_any_run']} |"
        )
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
