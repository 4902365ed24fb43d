"""Serial staging vs staging in parallel work units on the multiprocess executor, on one landing folder.

For each size: generate a landing folder (not timed; or take a pre-generated one with `--landing`, only read),
then in fresh subprocesses time (1) the serial path, `stage_landing` into an empty working store, as the
`stage_exports` step runs it, and (2) `stage_in_parallel` (`staging_fanout_job`: one step per worker's share of
the exports, `--workers` at a time, as `ketreg run --workers N` runs it) into another empty working store; then
check that both staged the same rows (`table_fingerprints` of every staging table). Wall time, peak RSS (the
largest single process) and the 1-minute load average before and after each; prints a table and writes
benchmarks/out/staging_parallel.json.

    .venv/bin/python benchmarks/staging_parallel.py --sizes 20x1000
    .venv/bin/python benchmarks/staging_parallel.py --landing DIR   # a landing generated beforehand, only read
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from run_benchmark import OUT

SERIAL = """
import sys, duckdb
from pathlib import Path
from ketreg.landing.discovery import scan_landing
from ketreg.staging.stage import stage_landing
from ketreg.staging.tables import ensure_staging_tables
from schemas.protocol import load_protocol
con = duckdb.connect(sys.argv[2])
ensure_staging_tables(con)
stage_landing(con, scan_landing(Path(sys.argv[1])).exports, load_protocol())
con.close()
"""

PARALLEL = """
import sys, dagster as dg
from pipelines.connections import WorkingStore
from pipelines.resources import RegistrySettings
from pipelines.staging_fanout import stage_in_parallel
settings = RegistrySettings(landing_dir=sys.argv[1], analyst_db=sys.argv[2], staging_workers=int(sys.argv[3]))
with dg.DagsterInstance.get() as instance:
    print(stage_in_parallel(settings, WorkingStore.beside(sys.argv[2]), instance, tags={}).run_id)
"""

DIGESTS = """
import json, sys, duckdb
from ketreg.registry.release import table_fingerprints
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SET enable_progress_bar = false")  # it would print to stdout, before the JSON
print(json.dumps({k: v for k, v in table_fingerprints(con).items() if k.startswith("staging.")}))
"""


def _tree_rss_mib(root: int) -> tuple[float, float]:
    """RSS of a process and all its descendants, from /proc (Linux): (sum, largest single process), in MiB."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):  # a process that ended meanwhile
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])
            rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    sizes = [rss.get(pid, 0) for pid in tree]
    return sum(sizes) / 2**20, max(sizes) / 2**20


def measured(command: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    """Wall seconds, peak RSS (MiB: of the whole process tree, sampled every 0.2 s — the step processes are
    forked by Dagster's forkserver, which `wait4` of the child would not count — and of its largest single
    process) and the 1-minute load average before and after, of one child process, its output to `log`
    (Dagster's step log would fill a pipe nobody reads); raises if it fails."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    peak_tree = peak_single = 0.0
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        while process.poll() is None:
            tree, single = _tree_rss_mib(process.pid)
            peak_tree, peak_single = max(peak_tree, tree), max(peak_single, single)
            time.sleep(0.2)
        status = process.wait()
    wall = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed; see {log}")
    return {"wall_s": round(wall, 2), "peak_rss_tree_mib": round(peak_tree, 1),
            "peak_rss_single_mib": round(peak_single, 1),
            "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def generated_landing(sites: int, patients: int) -> tuple[str, Path]:
    """A landing folder generated under benchmarks/out (not timed), as in run_benchmark.py."""
    python = sys.executable
    root = OUT / f"staging_{sites}x{patients}"
    shutil.rmtree(root, ignore_errors=True)
    landing = root / "landing"
    root.mkdir(parents=True)
    # The generator is a dev tool in the checkout (synthetic/), not installed with ketreg.
    measured([python, "-m", "synthetic", "generate", "--out", str(landing), "--sites", str(sites),
              "--patients-per-site", str(patients), "--seed", "3", "--error-rate", "0.01"], root / "generate.log",
             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    return f"{sites}x{patients}", landing


def run_size(size: str, landing: Path, workers: int) -> dict[str, object]:
    """Both paths on `landing`, which is only read; everything written goes under benchmarks/out."""
    python = sys.executable
    root = OUT / f"staging_{size}" / "runs"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    serial_db = root / "serial" / "registry_work.duckdb"
    serial_db.parent.mkdir(parents=True)
    serial = measured([python, "-c", SERIAL, str(landing), str(serial_db)], root / "serial.log")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    parallel = measured([python, "-c", PARALLEL, str(landing), str(root / "parallel" / "registry.duckdb"),
                         str(workers)], root / "parallel.log", env=env)
    digests = [
        json.loads(subprocess.run([python, "-c", DIGESTS, str(db)], capture_output=True, text=True,
                                  check=True).stdout)
        for db in (serial_db, root / "parallel" / "registry_work.duckdb")
    ]
    exports = sum(1 for _ in landing.glob("*/*/"))
    return {"size": size, "landing": str(landing), "exports": exports, "workers": workers, "serial": serial,
            "parallel": parallel, "equal_digests": digests[0] == digests[1],
            "staged_rows": sum(int(v["rows"]) for v in digests[0].values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20x1000", help="comma-separated SITESxPATIENTS to generate")
    parser.add_argument("--landing", type=Path, help="a pre-generated landing folder instead of --sizes (only read)")
    parser.add_argument("--workers", type=int, default=2, help="parallel step processes (default 2)")
    args = parser.parse_args()
    landings = ([(args.landing.name, args.landing)] if args.landing else
                [generated_landing(*map(int, size.split("x"))) for size in args.sizes.split(",")])
    results = [run_size(size, landing, args.workers) for size, landing in landings]
    OUT.mkdir(exist_ok=True)
    (OUT / "staging_parallel.json").write_text(json.dumps(results, indent=2))
    print("| landing | exports | staged rows | serial s (peak tree MiB; load) | parallel s (peak tree MiB; load) "
          "| workers "
          "| equal |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        s, p = r["serial"], r["parallel"]
        print(f"| {r['size']} | {r['exports']} | {r['staged_rows']} | {s['wall_s']} ({s['peak_rss_tree_mib']}; "
              f"{s['load_1min']}) | {p['wall_s']} ({p['peak_rss_tree_mib']}; {p['load_1min']}) | {r['workers']} | "
              f"{r['equal_digests']} |")


if __name__ == "__main__":
    main()
