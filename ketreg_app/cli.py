"""`ketreg`: run the registry pipeline, pre-flight a site's export, and freeze releases.

Synthetic landings come from the dev tool `python -m synthetic generate` (synthetic/, not in this package).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ketreg import environment
from ketreg.errors import UsageError, existing_folder, writable_file_location

# `ketreg run`: 0 every export accepted and the registry published; 1 nothing published (the run failed or
# publishing was refused); 2 bad usage or configuration; 3 published, but some exports were rejected (listed).
EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_PUBLISHED_WITH_REJECTIONS = 0, 1, 2, 3


def _run(args: argparse.Namespace) -> int:
    from ketreg.landing.limits import LimitsError
    from ketreg.landing.retired import landing_is_empty
    from ketreg.registry.key_fingerprint import KeyMismatch
    from ketreg.registry.postgres_publish import PostgresPublishError, check_publish_url
    from ketreg.registry.pseudonym import MissingPseudonymKey
    from ketreg_app.run import run_pipeline
    from ketreg_app.summary import run_summary
    from schemas.protocol import ProtocolError, load_metric_settings, load_protocol

    landing, analyst_db = Path(args.landing), Path(args.db)
    if not landing.is_dir():
        print(f"ketreg run: landing folder {landing} does not exist", file=sys.stderr)
        return EXIT_USAGE
    if landing_is_empty(landing):
        print(f"ketreg run: landing folder {landing} is empty (an unmounted share or a wrong --landing?); "
              "nothing was run and the published registry is kept", file=sys.stderr)
        return EXIT_USAGE
    sites_dir = existing_folder(Path(args.sites_dir), "--sites-dir") if args.sites_dir else _env_sites_dir()
    writable_file_location(analyst_db, "--db")
    if args.work_db:
        writable_file_location(Path(args.work_db), "--work-db")
    try:
        # Both halves of the protocol file, checked before anything runs: a typo is a usage error, not a failed run.
        load_protocol(args.protocol)
        load_metric_settings(args.protocol)
        if args.publish:
            check_publish_url(args.publish)
        outcome = run_pipeline(
            landing, analyst_db, Path(args.work_db) if args.work_db else None,
            Path(args.protocol) if args.protocol else None, rebuild=args.rebuild, rekey=args.rekey,
            limits_file=Path(args.limits) if args.limits else None, retired_sites=args.retire_site,
            sites_dir=sites_dir, publish_url=args.publish or "", staging_workers=args.workers,
        )
    except (MissingPseudonymKey, ProtocolError, KeyMismatch, LimitsError, PostgresPublishError) as exc:
        print(f"ketreg run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from ketreg.landing.landing_notices import read_landing_notices
    from pipelines.connections import WorkingStore
    from pipelines.resources import RegistrySettings

    settings = RegistrySettings(landing_dir=str(landing), analyst_db=str(analyst_db))
    work_db = WorkingStore.beside(analyst_db, args.work_db or "").file
    # Entries of the landing folder that were not read: said on failure too (a misplaced export explains
    # a vanished site).
    landing_notes = [f"NOTICE landing folder: {note}" for note in read_landing_notices(work_db)]
    if not outcome.success:
        print(f"ketreg run: the run failed (Dagster run {outcome.run_id}); the analysts' database was not "
              "replaced.", file=sys.stderr)
        for failure in [*outcome.failures, *landing_notes]:
            print(f"  {failure}", file=sys.stderr)
        return EXIT_RUN_FAILED
    from ketreg.privacy.tiers import tier_locations

    if outcome.unchanged_since:
        print(f"Nothing changed since run {outcome.unchanged_since}; registry left as published "
              "(registry, metrics, quality and publish skipped; the registry's checks ran again).")
    print(run_summary(analyst_db, work_db))
    if outcome.rekeyed_from:
        print(f"  RE-KEYED on purpose (--rekey): every pseudonymous key changed, key fingerprint "
              f"{outcome.rekeyed_from} → {outcome.key_fingerprint}; data published before cannot be linked to it")
    for note in landing_notes:
        print(f"  {note}")
    dashboard = settings.reports_path / "index.html"
    if dashboard.exists():
        print(f"  quality dashboard: {dashboard}")
    print(tier_locations(settings.analyst_db_path, work_db, settings.reports_path, _releases_dir()))
    for warning in outcome.warnings:
        print(f"  WARNING {warning}")
    if rejected_exports(analyst_db):
        # Published, but a site's export was refused: whoever scheduled the run must see it.
        return EXIT_PUBLISHED_WITH_REJECTIONS
    return EXIT_OK


def rejected_exports(analyst_db: Path) -> int:
    """How many exports of the published registry were rejected."""
    import duckdb

    con = duckdb.connect(str(analyst_db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM exports WHERE status = 'rejected'").fetchall()[0][0]
    finally:
        con.close()


def _release(args: argparse.Namespace) -> int:
    from ketreg.registry.release import ReleaseError, make_release, verify_release

    releases_dir = Path(args.releases_dir)
    if args.verify:
        verification = verify_release(args.name, releases_dir)
        if verification.ok:
            print(f"release {args.name} verifies: every table and file matches its manifest")
            return EXIT_OK
        print(f"release {args.name} does NOT verify:", file=sys.stderr)
        for problem in verification.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_RUN_FAILED
    try:
        folder = make_release(args.name, Path(args.db), releases_dir)
    except ReleaseError as exc:
        print(f"ketreg release: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"release {args.name} frozen in {folder} (manifest: {folder / 'manifest.json'}; shareable figures, "
          f"small cells suppressed: {folder / 'aggregates'})")
    return EXIT_OK


def _check_export(args: argparse.Namespace) -> int:
    from ketreg.landing.limits import LimitsError, load_limits
    from ketreg_app.preflight import EXIT_UNUSABLE, check_export
    from schemas.protocol import ProtocolError, load_protocol

    path = Path(args.path)
    if not path.is_dir():
        print(f"ketreg check-export: {path} is not an export folder", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        protocol = load_protocol(args.protocol)
        limits = load_limits(args.limits)
    except (ProtocolError, LimitsError) as exc:
        print(f"ketreg check-export: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    sites_dir = existing_folder(Path(args.sites_dir), "--sites-dir") if args.sites_dir else _env_sites_dir()
    try:
        report = check_export(path, args.site, protocol, sites_dir, limits, all_rows=args.all)
    except Exception as exc:  # never a traceback for a site's files; the reader names what it could
        print(f"ketreg check-export: {path} could not be checked ({type(exc).__name__}); the registry would "
              "reject this export", file=sys.stderr)
        return EXIT_UNUSABLE
    print(report.as_json() if args.format == "json" else report.as_text())
    return report.exit_code


def _env_sites_dir() -> Path | None:
    """$KETREG_SITES_DIR when set (it must then be a folder), else None: the repository's `sites/`."""
    configured = environment.value(environment.SITES_DIR)
    return existing_folder(Path(configured), environment.SITES_DIR) if configured else None


def _releases_dir() -> str:
    """$KETREG_RELEASES, else ./releases: where `ketreg release` freezes releases."""
    return environment.value(environment.RELEASES_DIR, "releases")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ketreg", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ketreg {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="validate the landing folder and build the registry")
    run.add_argument("--landing", required=True, help="landing folder: <site_id>/<export_id>/<table>.csv")
    run.add_argument("--db", required=True, help="the analysts' DuckDB file to publish")
    run.add_argument("--work-db", help="the pipeline's private working database (default: next to --db)")
    run.add_argument("--protocol", help="protocol limits file (default: config/protocol.yaml)")
    run.add_argument(
        "--rebuild", action="store_true",
        help="start from an empty working database: every export is read and validated again",
    )
    run.add_argument(
        "--rekey", action="store_true",
        help="accept a pseudonym key other than the one the registry was built with, re-keying every patient "
             "(the summary and the next release's manifest say so)",
    )
    run.add_argument("--limits", help="bounds per export (default: $KETREG_LIMITS_FILE or config/limits.yaml)")
    run.add_argument("--sites-dir", help="folder of site mappings (default: $KETREG_SITES_DIR or sites/)")
    run.add_argument(
        "--retire-site", action="append", default=[], metavar="SITE",
        help="let SITE's data leave the published registry in this run (repeatable); without it a run that "
             "would drop a site refuses to publish. A file named RETIRED in landing/SITE/ does the same durably",
    )
    run.add_argument(
        "--publish", metavar="POSTGRESQL_URL",
        help="also publish to PostgreSQL: the analysts' tier and the site tier with row-level security "
             "(docs/deployment.md); the password goes in PGPASSWORD or ~/.pgpass, not the URL",
    )
    run.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="validate exports in N parallel processes (docs/deployment.md); default 1, in the run's own process",
    )
    run.set_defaults(handler=_run)

    check = commands.add_parser(
        "check-export", help="pre-flight one export folder as the registry would read it (touches no registry)",
        description="Exit code 0: every row would be accepted; 1: rows would be quarantined; 2: the export is "
                    "unusable.",
    )
    check.add_argument("path", help="the export folder, e.g. outbox/2026-11-01")
    check.add_argument("--site", required=True, help="the site id agreed with the registry, e.g. site-a")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("--all", action="store_true",
                       help="list every quarantined row (root causes first, the rows they took along beneath)")
    check.add_argument("--sites-dir", help="folder of site mappings (default: $KETREG_SITES_DIR or sites/)")
    check.add_argument("--protocol", help="protocol limits file (default: config/protocol.yaml)")
    check.add_argument("--limits", help="bounds per export (default: $KETREG_LIMITS_FILE or config/limits.yaml)")
    check.set_defaults(handler=_check_export)

    release = commands.add_parser("release", help="freeze the published registry, or verify a release")
    release.add_argument("name", help="release name, e.g. 2026-12-interim")
    release.add_argument("--verify", action="store_true", help="recompute the hashes of an existing release")
    release.add_argument("--db", default=environment.value(environment.ANALYST_DB, "demo/registry.duckdb"),
                         help="the published registry to freeze (default: $KETREG_DB or demo/registry.duckdb)")
    release.add_argument("--releases-dir", default=_releases_dir(),
                         help="where releases live (default: $KETREG_RELEASES or ./releases)")
    release.set_defaults(handler=_release)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ketreg")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        # The operator's to fix: one line, no traceback (exit codes: README, "The command line").
        print(f"ketreg {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
