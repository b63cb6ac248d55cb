"""DVC's views of the default pipeline: `dvc metrics show` warns about nothing and `dvc plots show` writes a page
whose every declared plot renders offline (headless Chromium, no name resolves, network log checked).

The fixture repository (`dvc init --no-scm`) holds this repository's dvc.yaml files, params, plot templates,
DVC config and committed outputs: what a user has after a clone, without running the pipeline.
Chromium is a system package: `make setup` installs it; without it the browser tests skip (fail under CI).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.browser import FLAGS, TIMEOUT_S, find_chromium
from helpers.dvc_stages import expanded
from helpers.paths import REPO_ROOT

# The sweep grid comes with its .dvc/config: a DVC project of its own, which the root's views do not read.
COPIED = ["dvc.yaml", "params.yaml", ".dvc/config", "pipelines/sweep/dvc.yaml", "pipelines/sweep/params.yaml",
          "pipelines/sweep/.dvc/config"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg"}
FAILED_TO_LOAD = "DVC failed to load"
# No host name resolves: a request that leaves the page fails (and is in the network log).
OFFLINE_FLAGS = ["--virtual-time-budget=15000", "--host-resolver-rules=MAP * ~NOTFOUND"]
# Counts what the browser made of the page into attributes of <body> (printed by --dump-dom). Vega-Embed
# draws asynchronously: the count waits a (virtual) moment after load.
PROBE = """<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var images = Array.prototype.slice.call(document.images);
    var embeds = Array.prototype.slice.call(document.querySelectorAll(".vega-embed"));
    var body = document.body;
    body.setAttribute("data-images", images.length);
    body.setAttribute("data-decoded", images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length);
    body.setAttribute("data-charts", embeds.filter(function (e) {
      var drawn = e.querySelector("canvas, svg.marks");
      return drawn && drawn.getBoundingClientRect().width > 0;
    }).length);
  }, 2000);
});
</script>"""


def _dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def _path(entry) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


def declared(dvc_yaml: Path) -> tuple[list[str], list[str]]:
    """(metrics files, plot files) of a dvc.yaml: its stages' (each seed's, for a foreach stage) and its top-level
    ones."""
    doc = yaml.safe_load(dvc_yaml.read_text())
    params_file = dvc_yaml.with_name("params.yaml")
    params = yaml.safe_load(params_file.read_text()) if params_file.is_file() else {}
    stages = expanded(doc.get("stages", {}), params).values()
    metrics = [_path(m) for stage in stages for m in stage.get("metrics", [])]
    plots = [_path(p) for stage in stages for p in stage.get("plots", [])]
    metrics += [_path(m) for m in doc.get("metrics", [])]
    plots += [_path(p) for p in doc.get("plots", [])]
    return metrics, plots


@pytest.fixture(scope="module")
def views_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("views") / "repo"
    repo.mkdir()
    assert _dvc(["init", "--no-scm", "-q"], repo).returncode == 0
    for name in COPIED:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, repo / name)
    shutil.copytree(REPO_ROOT / "pipelines" / "plots", repo / "pipelines" / "plots")
    metrics, plots = declared(REPO_ROOT / "dvc.yaml")
    for name in metrics + plots:
        source = REPO_ROOT / name
        assert source.is_file(), f"{name} is declared in dvc.yaml but not committed"
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, repo / name)
    return repo


def test_metrics_show_prints_every_metric_and_no_warning(views_repo):
    proc = _dvc(["metrics", "show"], views_repo)
    assert proc.returncode == 0, proc.stderr
    assert FAILED_TO_LOAD not in proc.stdout + proc.stderr and proc.stderr.strip() == ""
    metrics, _ = declared(REPO_ROOT / "dvc.yaml")
    assert metrics and all(name in proc.stdout for name in metrics)


def test_an_absent_declared_metric_warns(views_repo, tmp_path):
    """The check above can fail: a metrics file declared but absent (as the sweep's were) makes DVC warn."""
    repo = shutil.copytree(views_repo, tmp_path / "repo")
    extra = {"stages": {"absent": {"cmd": "true", "metrics": [{"absent/metrics.json": {"cache": False}}]}}}
    (repo / "extra").mkdir()
    (repo / "extra" / "dvc.yaml").write_text(yaml.safe_dump(extra))
    proc = _dvc(["metrics", "show"], repo)
    assert FAILED_TO_LOAD in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def pages(views_repo, tmp_path_factory) -> dict[str, Path]:
    """`dvc plots show` pages: `offline` with the repository's config, `cdn` with DVC's default template."""
    from dvc_render.html import PAGE_HTML

    out = tmp_path_factory.mktemp("pages")
    proc = _dvc(["plots", "show", "-o", str(out / "offline")], views_repo)
    assert proc.returncode == 0 and FAILED_TO_LOAD not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    (out / "default.html").write_text(PAGE_HTML)
    proc = _dvc(["plots", "show", "-o", str(out / "cdn"), "--html-template", str(out / "default.html")], views_repo)
    assert proc.returncode == 0, proc.stderr
    return {"offline": out / "offline" / "index.html", "cdn": out / "cdn" / "index.html"}


def test_the_page_references_nothing_remote(pages):
    page = pages["offline"].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "cdn.jsdelivr.net" in pages["cdn"].read_text()  # DVC's own page would load Vega from the CDN


def _render(page: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    """Open `page` (probed copy beside it) in Chromium: (probe counts, http(s) URLs the page requested)."""
    text = page.read_text()
    end = text.rindex("</body>")  # the last one: the inlined scripts hold the string too
    probed = page.with_name("probed.html")
    probed.write_text(text[:end] + PROBE + text[end:])
    net_log = tmp_path / f"{page.parent.name}-net.json"
    cmd = [find_chromium(), *FLAGS, *OFFLINE_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--log-net-log={net_log}",
           "--dump-dom", probed.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S).stdout
    body = re.findall(r"<body([^>]*)>", dom)
    assert body, dom[:2000]
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # The page's own requests carry its (file://) network isolation key; the browser's background ones do not.
    requested = [e["params"]["url"] for e in log["events"]
                 if e["type"] == start and str(e["params"].get("network_isolation_key", "")).startswith("file:")
                 and re.match(r"https?:", e["params"].get("url", ""))]
    return dict(re.findall(r'data-(\w+)="(\d+)"', body[-1])), requested


def test_every_declared_plot_renders_offline_in_chromium(pages, tmp_path):
    _, plots = declared(REPO_ROOT / "dvc.yaml")
    images = sum(Path(p).suffix in IMAGE_SUFFIXES for p in plots)
    assert images and len(plots) > images  # both kinds are declared
    counts, requested = _render(pages["offline"], tmp_path)
    assert requested == []
    assert counts == {"images": str(images), "decoded": str(images), "charts": str(len(plots) - images)}
    # The probe can fail: DVC's default page asks the CDN for Vega, which offline draws no chart.
    counts, requested = _render(pages["cdn"], tmp_path)
    assert counts["charts"] == "0" and counts["decoded"] == str(images)
    assert any("cdn.jsdelivr.net" in url for url in requested)


def test_the_template_inlines_the_vega_versions_dvc_asks_for():
    """pipelines/plots/offline.html carries the Vega versions of DVC's renderer (regenerate it when they change)."""
    from dvc_render.vega import VegaRenderer

    wanted = re.findall(r"npm/([\w-]+@[\d.]+)", VegaRenderer.SCRIPTS)
    template = (REPO_ROOT / "pipelines" / "plots" / "offline.html").read_text()
    inlined = re.findall(r"<script>/\* ([\w-]+@[\d.]+)\n", template)
    assert wanted and inlined == wanted, "run `python pipelines/plots/build_offline_template.py`"
    assert "{plot_divs}" in template and "{scripts}" not in template  # no CDN script tags get in
