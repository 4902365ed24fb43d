"""The site folders step alone (`write_site_folders`) on a copy of a built working store: wall and CPU seconds,
peak RSS, load average; optionally a cProfile.

    .venv/bin/python benchmarks/site_folders_step.py --work-db out/registry_work.duckdb --out out/site_folders_after
    .venv/bin/python benchmarks/site_folders_step.py ... --profile
    # another checkout's code, e.g. before a change (run from outside this folder):
    PYTHONPATH=<a checkout of the base commit> .venv/bin/python benchmarks/site_folders_step.py ...

The copy is made beside --out and removed afterwards; the working store itself is not opened."""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import time
from pathlib import Path

from ketreg.reports import site_folders
from ketreg.warehouse.connection import connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-db", type=Path, required=True, help="a built registry_work.duckdb (copied)")
    parser.add_argument("--out", type=Path, required=True, help="reports folder to write (replaced)")
    parser.add_argument("--memory-limit", default="512MB", help="DuckDB memory limit, as the pipeline's default")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of this process")
    args = parser.parse_args()

    copy = args.out.parent / f"{args.out.name}.work.duckdb"
    shutil.copy(args.work_db, copy)
    shutil.rmtree(args.out, ignore_errors=True)
    profile = cProfile.Profile() if args.profile else None
    try:
        with connect(copy, args.memory_limit, 0) as con:
            load_before = os.getloadavg()
            wall, cpu = time.perf_counter(), time.process_time()
            if profile:
                profile.enable()
            folders = site_folders.write_site_folders(con, args.out)
            if profile:
                profile.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        copy.unlink(missing_ok=True)
    print(f"{len(folders)} sites: wall {wall:.2f} s, CPU {cpu:.2f} s, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB, load average (1 min) "
          f"{load_before[0]:.1f} → {os.getloadavg()[0]:.1f}")
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
