"""Vendored browser libraries are the npm release, byte for byte, with their licence beside them.

webapp_static/vendor/revendor.sh writes them from the npm tarball (checked against npm's integrity
hash) and records their SHA-256 in SHA256SUMS; a hand edit of a vendored file fails here."""

from __future__ import annotations

import hashlib
import re

from tests.conftest import ROOT

VENDOR = ROOT / "webapp_static" / "vendor"


def test_vendored_files_are_the_ones_the_script_wrote_with_their_licence() -> None:
    sums = {name: digest for digest, name in (line.split("  ", 1) for line in
                                             (VENDOR / "SHA256SUMS").read_text().splitlines())}
    assert set(sums) == {"chart.umd.min.js", "chart.js-LICENSE.md"}
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    version = re.search(r"^VERSION=(\S+)$", (VENDOR / "revendor.sh").read_text(), re.MULTILINE)
    assert version is not None
    assert f"Chart.js v{version.group(1)}" in (VENDOR / "chart.umd.min.js").read_text()[:200]
    assert "MIT License" in (VENDOR / "chart.js-LICENSE.md").read_text()
