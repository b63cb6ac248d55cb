"""`bitpruner report`: runs of one experiment, tag filters, tables and inline PNGs in HTML and Markdown."""

import base64
import re

import pytest

from bitpruner.cli import main
from helpers.mlflow_store import populate


@pytest.fixture
def store(tmp_path, mlflow_db):
    return f"sqlite:///{mlflow_db}", populate(mlflow_db, tmp_path / "work")


def test_report_has_every_run_table_and_image(store, tmp_path, capsys):
    uri, ids = store
    assert main(["report", "--tracking-uri", uri, "--experiment", "bitpruner", "--out", str(tmp_path / "r")]) == 0
    assert "report: 3 runs, 2 tables, 3 images" in capsys.readouterr().out
    page = (tmp_path / "r" / "report.html").read_text()
    assert "elsewhere" not in page  # the other experiment's run
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "<h3>comparison.csv</h3>" in page and "<h3>sweep_summary.csv</h3>" in page
    assert "src=\"http" not in page and "<link" not in page  # self-contained
    md = (tmp_path / "r" / "report.md").read_text()
    runs_md = md.split("## Runs (3)")[1].split("\n## ")[0]
    # Key metrics per run: the simulate run's headline variant; sparsity in %, speedups with x.
    assert re.search(r"\| simulate \| simulate \| stage \| FINISHED \| lenet5 \| mnist5k \|.*\| 94\.25 \| 80\.00% \|", runs_md)
    assert re.search(r"\| prune_bits \| prune_bits \| stage \| FINISHED \| lenet5 \| digits \| sweep prune_bits \|",
                     runs_md)
    assert "| stripes |" in md and "2.50x" in md


def test_report_filters_by_tag(store, tmp_path, capsys):
    uri, _ = store
    args = ["report", "--tracking-uri", uri, "--out", str(tmp_path / "r"), "--tag", "stage=prune_bits",
            "--tag", "bitpruner.kind=stage"]
    assert main(args) == 0
    assert "report: 1 runs, 0 tables, 1 images" in capsys.readouterr().out
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Runs (1)" in md and "simulate" not in md


def test_report_errors_are_one_line(store, tmp_path, capsys):
    uri, _ = store
    assert main(["report", "--tracking-uri", uri, "--experiment", "nope", "--out", str(tmp_path)]) == 1
    assert "MLflow experiment 'nope' not found (experiments: Default, bitpruner, other)" in capsys.readouterr().err
    assert main(["report", "--tracking-uri", uri, "--tag", "model", "--out", str(tmp_path)]) == 1
    assert "--tag 'model': expected key=value" in capsys.readouterr().err
