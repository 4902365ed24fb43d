"""Benchmark `ketreg run` against a bare DuckDB load of the same files, in the same run.

For each size: generate a landing folder (not timed), then in fresh subprocesses measure wall time and peak
RSS of (1) a bare DuckDB `read_csv` load of every file into tables, (2) `ketreg run` on an empty registry,
(3) `ketreg run` again on the unchanged landing folder, (4) `ketreg run` after one site sent one new export
(a copy of its newest export under a later export id), each with seconds per Dagster step, and the ratios of
issue 13's targets. Prints a table and writes benchmarks/out/results.json.

    .venv/bin/python benchmarks/run_benchmark.py                 # demo size and 100 sites × 5,000 patients
    .venv/bin/python benchmarks/run_benchmark.py --sizes 4x60    # just one size
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
BIN = Path(sys.executable).parent
BENCH_KEY = "benchmark-key-synthetic-data-only"

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


def measured(command: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> dict[str, float]:
    """Wall seconds and peak RSS (MiB) of one child process; raises if it exits with a code not in `ok`."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stdout, stderr = process.stdout.read().decode(), process.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) not in ok:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stdout}\n{stderr}")
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def step_seconds(dagster_home: Path, index: int = 0) -> dict[str, float]:
    """Seconds per step of run number `index` (0 = the oldest) recorded in `dagster_home`, slowest first."""
    code = (
        "import json, dagster as dg\n"
        "instance = dg.DagsterInstance.get()\n"
        f"run = instance.get_runs()[::-1][{index}]\n"
        "stats = instance.get_run_step_stats(run.run_id)\n"
        "print(json.dumps({s.step_key: round(s.end_time - s.start_time, 2) for s in stats if s.end_time}))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True, text=True, check=True,
    ).stdout
    steps = json.loads(output.strip().splitlines()[-1])
    return dict(sorted(steps.items(), key=lambda item: -item[1]))


def landing_stats(landing: Path) -> dict[str, int]:
    files = list(landing.glob("*/*/*.csv"))
    rows = 0
    for path in files:
        with path.open("rb") as handle:
            rows += sum(1 for _ in handle) - 1
    return {"files": len(files), "rows": rows, "mib": round(sum(p.stat().st_size for p in files) / 2**20, 1)}


def bench_size(sites: int, patients: int, error_rate: float) -> dict:
    name = f"{sites}x{patients}"
    workdir = OUT / name
    landing = workdir / "landing"
    if not (landing / ".generator-manifest.json").exists():
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
    env = {**os.environ, "KETREG_PSEUDONYM_KEY": BENCH_KEY, "DAGSTER_HOME": str(dagster_home)}
    bare = measured([sys.executable, "-c", BARE_LOAD, str(landing), str(workdir / "bare.duckdb")])
    run = [str(BIN / "ketreg"), "run", "--landing", str(landing), "--db", str(workdir / "registry.duckdb")]
    # Exit 3 = published with some exports rejected: the generator rejects one on purpose when --error-rate > 0.
    full = measured(run, env, ok=(0, 3))
    steps = step_seconds(dagster_home, 0)
    rerun = measured(run, env, ok=(0, 3))
    rerun_steps = step_seconds(dagster_home, 1)
    added = add_export(landing)
    new_export = measured(run, env, ok=(0, 3))
    new_export_steps = step_seconds(dagster_home, 2)
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
        "steps_of_first_run_s": steps,
        "steps_of_rerun_unchanged_s": rerun_steps,
        "steps_of_rerun_new_export_s": new_export_steps,
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
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    results = []
    for size in args.sizes:
        sites, patients = (int(part) for part in size.split("x"))
        result = bench_size(sites, patients, args.error_rate)
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
