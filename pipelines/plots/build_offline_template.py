"""Write `pipelines/plots/offline.html`: DVC's plots page with Vega, Vega-Lite and Vega-Embed inlined.

`dvc plots show` fills an HTML template; DVC's own loads these three scripts from a CDN, so offline the
Vega plots stay blank. `.dvc/config` points `plots.html_template` at the page written here, which carries
the scripts inline and leaves out DVC's `{scripts}` placeholder (the CDN tags): the page needs no network.
The versions are the ones DVC's renderer (dvc-render) asks the CDN for, so the plots look the same.

Regenerate (only when dvc-render changes those versions; needs npm and its registry):
    python pipelines/plots/build_offline_template.py            # runs `npm pack` in a temporary folder
    python pipelines/plots/build_offline_template.py --from DIR # DIR holds the three packed .tgz files
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# (npm package, version, the UMD bundle inside its tarball); the order is the load order.
PACKAGES = (("vega", "5.20.2", "package/build/vega.min.js"),
            ("vega-lite", "5.2.0", "package/build/vega-lite.min.js"),
            ("vega-embed", "6.18.2", "package/build/vega-embed.min.js"))
LICENSE_MEMBER = "package/LICENSE"
TEMPLATE = Path(__file__).with_name("offline.html")
# DVC fills these; anything else in braces is left alone.
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")
NPM_TIMEOUT_S = 300

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Written by pipelines/plots/build_offline_template.py: {versions}, inlined (no network needed). -->
{scripts}
    <style>
        table {{ border-spacing: 15px; }}
        img {{ max-width: 100%; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def _tarball(folder: Path, name: str, version: str) -> Path:
    path = folder / f"{name}-{version}.tgz"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (npm pack {name}@{version} writes it)")
    return path


def _script(tarball: Path, member: str, label: str) -> str:
    """One inline <script>: the package's license as a comment, then its bundle."""
    with tarfile.open(tarball) as archive:
        code = archive.extractfile(member).read().decode("utf-8")
        license_text = archive.extractfile(LICENSE_MEMBER).read().decode("utf-8")
    if "</script" in code.lower() or "*/" in license_text or any(p in code for p in PLACEHOLDERS):
        raise SystemExit(f"error: {label} cannot be inlined as is (a closing tag or a DVC placeholder inside)")
    # The bundles end with a source-map comment; the map is not shipped, so no browser should go looking for it.
    code = "\n".join(line for line in code.strip().splitlines() if not line.startswith("//# sourceMappingURL="))
    return f"    <script>/* {label}\n{license_text.strip()}\n*/\n{code}\n    </script>"


def build(folder: Path, out: Path = TEMPLATE) -> Path:
    """Write the template from the packed tarballs in `folder`; returns its path."""
    scripts = [_script(_tarball(folder, name, version), member, f"{name}@{version}")
               for name, version, member in PACKAGES]
    versions = ", ".join(f"{name}@{version}" for name, version, _ in PACKAGES)
    out.write_text(PAGE.format(versions=versions, scripts="\n".join(scripts)), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="folder with the packed tarballs (default: run npm pack in a temporary folder)")
    args = parser.parse_args(argv)
    if args.source is not None:
        print(build(args.source))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        specs = [f"{name}@{version}" for name, version, _ in PACKAGES]
        subprocess.run(["npm", "pack", "--silent", *specs], cwd=tmp, check=True, timeout=NPM_TIMEOUT_S,
                       stdout=subprocess.DEVNULL)
        print(build(Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
