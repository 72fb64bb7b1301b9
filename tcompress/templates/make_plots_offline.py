"""Rebuild dvc_plots_offline.html: DVC's plots page with vega, vega-lite and vega-embed inlined.

`dvc plots show` writes a page whose `{scripts}` placeholder becomes three <script src> tags on a
CDN, so the plots stay blank offline. This template has no `{scripts}` placeholder; it carries the
same three libraries (the versions dvc-render loads) inline instead. They come from the npm
registry's tarballs, checked against the registry's sha512 integrity pinned below:

    python tcompress/templates/make_plots_offline.py      # rewrites the template beside this file
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

# name, version, the file inside its tarball, the npm registry's dist.integrity of the tarball
PACKAGES = (
    ("vega", "5.20.2", "package/build/vega.min.js",
     "sha512-qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw=="),
    ("vega-lite", "5.2.0", "package/build/vega-lite.min.js",
     "sha512-Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw=="),
    ("vega-embed", "6.18.2", "package/build/vega-embed.min.js",
     "sha512-wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg=="),
)
TEMPLATE = Path(__file__).with_name("dvc_plots_offline.html")
# dvc-render replaces these anywhere in the page, inlined code included
PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")

HEAD = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot (offline)</title>
    <!-- dvc plots show's page with its JavaScript inlined ({versions}), so that it renders without
         a network connection. Rebuilt by make_plots_offline.py beside this file. -->
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
"""
TAIL = """</head>
<body>
    {plot_divs}
</body>
</html>
"""


def library(name: str, version: str, member: str, integrity: str) -> str:
    url = f"https://registry.npmjs.org/{name}/-/{name}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        tarball = response.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if digest != integrity:
        sys.exit(f"error: {url}: integrity {digest} differs from the pinned {integrity}")
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        code = tar.extractfile(member).read().decode("utf-8")
    # the source map is not shipped; a browser's developer tools would otherwise try to load it
    code = re.sub(r"\n?//# sourceMappingURL=\S+\s*$", "\n", code)
    for bad in ("</script", "<!--", *PLACEHOLDERS):
        if bad in code:
            sys.exit(f"error: {name}@{version} contains {bad!r}, which would break the inlined page")
    return f"    <script>/* {name}@{version} */\n{code}</script>\n"


def main() -> None:
    versions = ", ".join(f"{n}@{v}" for n, v, _, _ in PACKAGES)
    page = HEAD.replace("{versions}", versions).replace("{{", "{").replace("}}", "}")
    page += "".join(library(*p) for p in PACKAGES) + TAIL
    TEMPLATE.write_text(page, encoding="utf-8")
    print(f"{TEMPLATE}: {len(page.encode()):,} bytes ({versions})")


if __name__ == "__main__":
    main()
