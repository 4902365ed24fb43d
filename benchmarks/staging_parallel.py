"""Serial staging vs per-export work units on the multiprocess executor (2 processes), on one landing folder.

For each size: generate a landing folder (not timed), then in fresh subprocesses time (1) the serial path,
`stage_landing` into an empty working store, as the `stage_exports` step runs it, and (2) `staging_fanout_job`
(one step per export, 2 at a time) into another empty working store; then check that both staged the same rows
(`table_fingerprints` of every staging table). Prints a table and writes benchmarks/out/staging_parallel.json.

    .venv/bin/python benchmarks/staging_parallel.py --sizes 20x1000
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
from pipelines.staging_fanout import staging_fanout_job_from_environment
with dg.DagsterInstance.get() as instance:
    result = dg.execute_job(dg.reconstructable(staging_fanout_job_from_environment), instance=instance)
assert result.success
"""

DIGESTS = """
import json, sys, duckdb
from ketreg.registry.release import table_fingerprints
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SET enable_progress_bar = false")  # it would print to stdout, before the JSON
print(json.dumps({k: v for k, v in table_fingerprints(con).items() if k.startswith("staging.")}))
"""


def measured(command: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall seconds and peak RSS (MiB, the largest single process of the tree) of one child process, its output
    to `log` (Dagster's step log would fill a pipe nobody reads); raises if it fails."""
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed; see {log}")
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def run_size(sites: int, patients: int) -> dict[str, object]:
    python = sys.executable
    root = OUT / f"staging_{sites}x{patients}"
    shutil.rmtree(root, ignore_errors=True)
    landing = root / "landing"
    root.mkdir(parents=True)
    measured([str(Path(python).parent / "ketreg"), "generate", "--out", str(landing), "--sites", str(sites),
              "--patients-per-site", str(patients), "--seed", "3", "--error-rate", "0.01"], root / "generate.log")
    serial_db = root / "serial" / "registry_work.duckdb"
    serial_db.parent.mkdir(parents=True)
    serial = measured([python, "-c", SERIAL, str(landing), str(serial_db)], root / "serial.log")
    home = root / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "KETREG_LANDING": str(landing),
           "KETREG_DB": str(root / "parallel" / "registry.duckdb"), "KETREG_PSEUDONYM_KEY": "unused-by-staging"}
    parallel = measured([python, "-c", PARALLEL], root / "parallel.log", env=env)
    digests = [
        json.loads(subprocess.run([python, "-c", DIGESTS, str(db)], capture_output=True, text=True,
                                  check=True).stdout)
        for db in (serial_db, root / "parallel" / "registry_work.duckdb")
    ]
    exports = sum(1 for _ in landing.glob("*/*/"))
    return {"size": f"{sites}x{patients}", "exports": exports, "serial": serial, "parallel_2_processes": parallel,
            "equal_digests": digests[0] == digests[1],
            "staged_rows": sum(int(v["rows"]) for v in digests[0].values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20x1000", help="comma-separated SITESxPATIENTS")
    args = parser.parse_args()
    results = [run_size(*map(int, size.split("x"))) for size in args.sizes.split(",")]
    OUT.mkdir(exist_ok=True)
    (OUT / "staging_parallel.json").write_text(json.dumps(results, indent=2))
    print("| landing | exports | staged rows | serial s (peak MiB) | parallel, 2 processes s (peak MiB) | equal |")
    print("|---|---|---|---|---|---|")
    for r in results:
        s, p = r["serial"], r["parallel_2_processes"]
        print(f"| {r['size']} | {r['exports']} | {r['staged_rows']} | {s['wall_s']} ({s['peak_rss_mib']}) | "
              f"{p['wall_s']} ({p['peak_rss_mib']}) | {r['equal_digests']} |")


if __name__ == "__main__":
    main()
