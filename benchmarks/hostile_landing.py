"""Time and memory of `ketreg run` on each hostile export, at the sizes of the review that found them.

For each case of `synthetic.hostile` (1,000,000-column header, 10 MB line, 20 MB file with an
unbalanced quote, a workbook unpacking to a 200 MB shared string, links, a FIFO, …): a landing folder with the
good site and that case only, one `ketreg run` in a fresh subprocess with its own DAGSTER_HOME, wall seconds
and the child's peak RSS (`os.wait4`). The baseline is the good site alone. Prints a table and writes
benchmarks/out/hostile.json.

    .venv/bin/python benchmarks/hostile_landing.py
    .venv/bin/python benchmarks/hostile_landing.py --cases wide,xlsx_bomb
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

# The generator is a dev tool in the checkout (synthetic/), not installed with ketreg.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthetic.hostile import BENCHMARK_SIZES, GOOD_SITE, write_hostile_landing

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
KETREG = Path(sys.executable).parent / "ketreg"
CASES = ("link_outside", "link_environ", "link_export", "fifo", "headerless", "quote", "wide", "long_line",
         "xlsx_bomb", "free_text")


def _landing_with(case: str | None, workdir: Path) -> Path:
    """The good site plus `case` only (None: the good site alone)."""
    landing = workdir / "landing"
    write_hostile_landing(landing, workdir / "sites", workdir / "outside", BENCHMARK_SIZES)
    for entry in landing.iterdir():
        if entry.name in (GOOD_SITE, case, ".generator-manifest.json"):
            continue
        if entry.is_symlink() or entry.is_file():
            entry.unlink()
        else:
            shutil.rmtree(entry)
    return landing


def measure(case: str | None) -> dict[str, object]:
    workdir = OUT / "hostile" / (case or "baseline")
    shutil.rmtree(workdir, ignore_errors=True)
    landing = _landing_with(case, workdir)
    size = sum(p.lstat().st_size for p in landing.rglob("*") if p.is_file() and not p.is_symlink())
    dagster_home = workdir / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    env = {**os.environ, "KETREG_PSEUDONYM_KEY": secrets.token_hex(32), "DAGSTER_HOME": str(dagster_home),
           "KETREG_SITES_DIR": str(workdir / "sites")}
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(KETREG), "run", "--landing", str(landing), "--db", str(workdir / "out" / "registry.duckdb")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    output = process.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    rejected = [line.strip()[:160] for line in output.splitlines() if line.strip().startswith("REJECTED")]
    steps = step_seconds(dagster_home)
    return {
        "case": case or "baseline (good site alone)",
        "landing_mib": round(size / 2**20, 1),
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "landing_step_s": steps.get("landing__exports"),
        "staging_step_s": steps.get("stage_exports"),
        "rejected": rejected,
    }


def step_seconds(dagster_home: Path) -> dict[str, float]:
    """Seconds per step of the run recorded in `dagster_home`."""
    code = (
        "import json, dagster as dg\n"
        "instance = dg.DagsterInstance.get()\n"
        "stats = instance.get_run_step_stats(instance.get_runs()[-1].run_id)\n"
        "print(json.dumps({s.step_key: round(s.end_time - s.start_time, 2) for s in stats if s.end_time}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
                            capture_output=True, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1]) if result.returncode == 0 and lines else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases (default: all)")
    args = parser.parse_args()
    results = [measure(None), *(measure(c) for c in args.cases.split(",") if c)]
    OUT.mkdir(exist_ok=True)
    (OUT / "hostile.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"{'case':<28}{'landing MiB':>12}{'exit':>6}{'wall s':>8}{'peak RSS MiB':>14}{'landing s':>11}"
          f"{'staging s':>11}")
    for r in results:
        print(f"{r['case']:<28}{r['landing_mib']:>12}{r['exit_code']:>6}{r['wall_s']:>8}{r['peak_rss_mib']:>14}"
              f"{r['landing_step_s'] or '':>11}{r['staging_step_s'] or '':>11}")
        for line in r["rejected"]:
            print(f"    {line}")


if __name__ == "__main__":
    main()
