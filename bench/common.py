"""What the benchmark scripts share: the project on sys.path, and their sections of docs/BENCHMARKS.md."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"  # tgsim
DOC_PATH = ROOT / "docs" / "BENCHMARKS.md"

for _path in (ROOT, SHARED):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def marks(script: str) -> tuple[str, str]:
    """The comments around the section a script writes."""
    return (f"<!-- bench/{script}: generated section begins -->", f"<!-- bench/{script}: generated section ends -->")


def write_section(path: Path, script: str, section: str, heading: str) -> None:
    """Put `section` (which starts and ends with the script's marks) in place of the script's last
    one, or append it under `heading` the first time."""
    begin, end = marks(script)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        before, _, rest = text.partition(begin)
        text = before + section + rest.partition(end)[2]
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
