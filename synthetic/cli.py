"""`python -m synthetic generate`: write synthetic site exports in the landing layout (a dev tool, not the product).

Run from the repository root (the package is not in the ketreg wheel): `make demo`, the tests and the benchmarks
use it to make landing folders; a registry never needs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synthetic.generate import generate_landing


def _generate(args: argparse.Namespace) -> int:
    summary = generate_landing(
        Path(args.out), sites=args.sites, patients_per_site=args.patients_per_site, seed=args.seed,
        error_rate=args.error_rate, shapes=tuple(s.strip() for s in args.shapes.split(",") if s.strip()),
    )
    rows = ", ".join(f"{table} {n}" for table, n in summary.rows_written.items())
    print(f"Wrote {len(summary.exports)} exports of {len(summary.sites)} synthetic sites to {args.out}: {rows}")
    print(f"Injected faults: {summary.faults_injected} (listed in {summary.manifest_path})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m synthetic", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write synthetic site exports in the landing layout")
    generate.add_argument("--out", required=True, help="landing folder to write")
    generate.add_argument("--sites", type=int, default=4)
    generate.add_argument("--patients-per-site", type=int, default=60)
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--error-rate", type=float, default=0.0, help="share of rows given a fault (0 … 1)")
    generate.add_argument(
        "--shapes", default="canonical",
        help="export shapes handed to the sites in turn, comma-separated: canonical, semicolon, excel, redcap "
             "(a non-canonical site is named site_NN_<shape> and read through sites/site_NN_<shape>.yaml)",
    )
    generate.set_defaults(handler=_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
