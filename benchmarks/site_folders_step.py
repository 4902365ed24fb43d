"""The site folders step alone (`write_site_folders`) on a copy of a built working store: wall and CPU seconds
(this process and its worker processes), peak RSS, load average; optionally a cProfile of this process.

    .venv/bin/python benchmarks/site_folders_step.py --work-db /tmp/sf/registry_work.duckdb --out /tmp/sf/after
    .venv/bin/python benchmarks/site_folders_step.py ... --workers 1          # everything in this process
    .venv/bin/python benchmarks/site_folders_step.py ... --workers 1 --profile

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
    # getattr: the script also times code from before the workers (PYTHONPATH=<an older checkout>).
    workers = getattr(site_folders, "WORKERS", 1)
    parser.add_argument("--workers", type=int, default=workers, help="worker processes (1: none)")
    parser.add_argument("--memory-limit", default="512MB", help="DuckDB memory limit, as the pipeline's default")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of this process")
    args = parser.parse_args()

    if hasattr(site_folders, "WORKERS"):
        site_folders.WORKERS = args.workers
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
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"sites {len(folders)}, workers {args.workers}: wall {wall:.2f} s, CPU {cpu:.2f} s here + "
          f"{children.ru_utime + children.ru_stime:.2f} s in workers; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB here, "
          f"{children.ru_maxrss / 1024:.0f} MiB the largest worker; load average {load_before[0]:.1f} → "
          f"{os.getloadavg()[0]:.1f}")
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":  # the workers are spawned: they import this file without running it
    main()
