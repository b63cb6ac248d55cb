"""The cross-run report as one self-contained HTML page (PNG images inline, base64) and as Markdown."""

from __future__ import annotations

import base64
import html

import pandas as pd

from bitpruner.reports.mlflow_runs import RunReport, format_cell

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 560px; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
.meta { color: #555; }
"""


def _is_number(value) -> bool:
    import numbers

    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def html_table(table: pd.DataFrame, css_class: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = []
    for row in table.itertuples(index=False):
        cells = []
        for column, value in zip(table.columns, row, strict=True):
            attr = ' class="num"' if _is_number(value) else ""
            cells.append(f"<td{attr}>{html.escape(format_cell(value, str(column)))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def markdown_table(table: pd.DataFrame) -> str:
    def cell(value, column) -> str:
        return format_cell(value, str(column)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(str(c) for c in table.columns) + " |",
             "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(table[c]) else "---" for c in table.columns) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v, c) for c, v in zip(table.columns, row, strict=True)) + " |")
    return "\n".join(lines)


def _image(name: str, png: bytes, run: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    alt = html.escape(f"{name} of {run}")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>")


def render_html(title: str, subtitle: str, runs: pd.DataFrame, reports: list[RunReport]) -> str:
    parts = [f"<h1>{html.escape(title)}</h1>", f'<p class="meta">{html.escape(subtitle)}</p>',
             f"<h2>Runs ({len(runs)})</h2>", html_table(runs, "runs")]
    for report in reports:
        parts.append(f'<h2 id="run-{report.run_id}">{html.escape(report.name)} '
                     f'<span class="meta">({html.escape(report.stage or "run")}, {report.run_id[:8]})</span></h2>')
        for name, table in report.tables.items():
            parts.append(f"<h3>{html.escape(name)}</h3>")
            parts.append(html_table(table, "artifact"))
        if report.images:
            parts.append("<div>" + "".join(_image(n, png, report.name) for n, png in report.images.items()) + "</div>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def render_markdown(title: str, subtitle: str, runs: pd.DataFrame, reports: list[RunReport]) -> str:
    parts = [f"# {title}", "", subtitle, "", f"## Runs ({len(runs)})", "", markdown_table(runs), ""]
    for report in reports:
        parts += [f"## {report.name} ({report.stage or 'run'}, {report.run_id[:8]})", ""]
        for name, table in report.tables.items():
            parts += [f"### {name}", "", markdown_table(table), ""]
        if report.images:
            parts += ["Images (in report.html): " + ", ".join(report.images), ""]
    return "\n".join(parts)
