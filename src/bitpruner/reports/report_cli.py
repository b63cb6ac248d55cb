"""`bitpruner report`: one self-contained HTML page (and Markdown) of the runs of an MLflow experiment."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write report.html (tables + inline PNGs) and report.md from the runs of an MLflow experiment",
        description="Collect the runs of an MLflow experiment (optionally filtered by tags) into one "
                    "self-contained HTML page and the same tables as Markdown.",
    )
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)")
    parser.add_argument("--experiment", default="bitpruner", help="MLflow experiment name (default: bitpruner)")
    parser.add_argument("--tag", action="append", metavar="KEY=VALUE",
                        help="keep runs with this tag (repeatable), e.g. --tag model=lenet5 --tag bitpruner.kind=sweep")
    parser.add_argument("--out", metavar="DIR", required=True, help="folder for report.html and report.md")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    from bitpruner.reports.html import render_html, render_markdown
    from bitpruner.reports.mlflow_runs import parse_tags, run_reports, runs_table, search_runs
    from bitpruner.tracking.context import tracking_uri
    from bitpruner.tracking.preflight import check_tracking_uri
    from bitpruner.utils.atomic import write_text

    tags = parse_tags(args.tag)
    uri = tracking_uri(args.tracking_uri, Path.cwd())
    check_tracking_uri(uri, write=False)
    client = MlflowClient(tracking_uri=uri)
    runs = search_runs(client, args.experiment, tags)
    table = runs_table(runs)
    reports = run_reports(client, runs)
    title = f"bitpruner report: {args.experiment}"
    where = ", ".join(f"{k}={v}" for k, v in tags.items())
    subtitle = f"{len(runs)} runs from {uri}" + (f" with tags {where}" if where else "")
    out = Path(args.out)
    html_path = write_text(out / "report.html", render_html(title, subtitle, table, reports))
    md_path = write_text(out / "report.md", render_markdown(title, subtitle, table, reports))
    images = sum(len(r.images) for r in reports)
    print(f"report: {len(runs)} runs, {sum(len(r.tables) for r in reports)} tables, {images} images -> "
          f"{html_path}, {md_path}")
    return 0
