"""The report page in headless Chromium: its tables render and every inline image decodes (naturalWidth > 0).

Chromium is a system package: `make setup` installs it; without it the test is skipped (fails under CI).
"""

import re
import shutil
import subprocess

import pytest

from bitpruner.cli import main
from helpers.browser import find_chromium
from helpers.mlflow_store import populate

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--virtual-time-budget=10000"]
# Counts what the browser made of the page into attributes of <body>, which --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var body = document.body;
  body.setAttribute("data-images", images.length);
  body.setAttribute("data-rendered", images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length);
  body.setAttribute("data-tables", document.querySelectorAll("table").length);
  body.setAttribute("data-rows", document.querySelectorAll("table tbody tr").length);
});
</script>"""

@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


@pytest.mark.parametrize(("ci", "outcome"), [(None, pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_missing_chromium_skips_locally_and_fails_under_ci(monkeypatch, ci, outcome):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="chromium is not on PATH: `make setup` installs it"):
        find_chromium()


def test_report_renders_in_chromium(chromium, tmp_path, mlflow_db):
    populate(mlflow_db, tmp_path / "work")
    out = tmp_path / "report"
    assert main(["report", "--tracking-uri", f"sqlite:///{mlflow_db}", "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    attrs, dom = _render(chromium, page, tmp_path)
    # 3 images (sweep frontier, per-layer bits, speedups); runs + comparison + sweep summary tables: 3 + 2 + 2 rows.
    assert attrs == {"images": "3", "rendered": "3", "tables": "3", "rows": "7"}
    assert '<td class="num">94.25</td>' in dom
    # The probe can fail: an image whose data is not a PNG does not decode.
    broken = re.sub(r"(data:image/png;base64,)[^\"]*", r"\1bm90IGEgcG5n", page, count=1)
    assert _render(chromium, broken, tmp_path)[0]["rendered"] == "2"


def _render(chromium: str, page: str, tmp_path) -> tuple[dict, str]:
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probed.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:2000]
    return dict(re.findall(r'data-(\w+)="(\d+)"', body.group(1))), dom
