"""A BM25 search index over corpus documents: build, save, load, batched search.

The index is bm25s (sparse BM25 scores precomputed at build time, so a query is a few sparse
row sums) with its numba backend when numba is installed. The documents are stored next to
the bm25s files as ``docs.jsonl`` plus a table of byte offsets, and read lazily on a hit, so
loading an index costs the size of the BM25 matrix, not the size of the corpus text.

Layout of an index directory::

    meta.json              format, version, document count, tokenizer, BM25 parameters
    docs.jsonl             one {"id", "title", "text"} per document, in index order
    doc_offsets.npy        byte offset of each line of docs.jsonl (int64)
    *.index.npy / *.json   the bm25s matrix, vocabulary and parameters

Tokenization is deliberately simple and deterministic: lowercase, ``\\w+`` words, English
stopwords removed, no stemming. Queries and documents go through the same function.

Run: ``autocoa index --corpus corpus.jsonl --out index/`` then
``autocoa search --index index/ "who founded X"``.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, overload, runtime_checkable

import numpy as np

from autocoa.data.corpus import Doc

FORMAT = "autocoa-bm25"
VERSION = 1
TOKENIZER = "lower-word-en-stopwords-v1"
_WORD = re.compile(r"\w+")

Hit = tuple[Doc, float]


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


STOPWORDS = _stopwords()


def tokenize(text: str) -> list[str]:
    """Lowercased words without English stopwords: the one tokenizer of queries and documents."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def index_text(doc: Doc) -> str:
    """What is indexed for a document: its title (entity names matter most) and its text."""
    return f"{doc.title}\n{doc.text}" if doc.title else doc.text


@runtime_checkable
class Retriever(Protocol):
    """Anything that answers a batch of queries with the top-k documents and their scores:
    the local BM25 index, the dense index, and the client of a remote retrieval server."""

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]: ...


class IndexFormatError(ValueError):
    """A directory that is not an index of this format, or a damaged one."""


class DocStore(Sequence[Doc]):
    """The documents of a saved index, read from ``docs.jsonl`` on demand (thread-safe:
    ``os.pread`` at a stored offset, no shared file position)."""

    def __init__(self, directory: Path):
        self.path = directory / "docs.jsonl"
        self.offsets = np.load(directory / "doc_offsets.npy", mmap_mode="r")
        self._fd = os.open(self.path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size

    def __len__(self) -> int:
        return len(self.offsets)

    @overload
    def __getitem__(self, i: int) -> Doc: ...
    @overload
    def __getitem__(self, i: slice) -> list[Doc]: ...
    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        start = int(self.offsets[i])
        end = int(self.offsets[i + 1]) if i + 1 < len(self) else self._size
        row = json.loads(os.pread(self._fd, end - start, start))
        return Doc(row["id"], row["title"], row["text"])

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def write_docs(directory: Path, docs: Sequence[Doc]) -> None:
    """Write ``docs.jsonl`` and ``doc_offsets.npy`` (the shared document store of every index kind)."""
    offsets = np.empty(len(docs), dtype=np.int64)
    pos = 0
    with (directory / "docs.jsonl").open("wb") as f:
        for i, d in enumerate(docs):
            line = (json.dumps({"id": d.id, "title": d.title, "text": d.text}, ensure_ascii=False) + "\n").encode()
            offsets[i] = pos
            f.write(line)
            pos += len(line)
    np.save(directory / "doc_offsets.npy", offsets)


def read_meta(directory: str | Path) -> dict:
    path = Path(directory) / "meta.json"
    if not path.exists():
        raise IndexFormatError(f"{directory}: not an index directory (no meta.json); build one with `autocoa index`")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or "format" not in meta:
        raise IndexFormatError(f"{path}: no 'format' field")
    return meta


def _default_backend() -> str:
    try:
        import numba  # noqa: F401
    except ImportError:
        return "numpy"
    return "numba"


class BM25Index:
    """A BM25 index over documents. ``search`` answers a whole batch in one bm25s call.

    ``backend``: "numba" (fast; its first search of a process JIT-compiles for ~5 s),
    "numpy", or "auto" (numba when installed). ``n_threads`` > 1 uses numba's parallel loop,
    which is not re-entrant, so searches are serialised by a lock.
    """

    def __init__(self, bm25, docs: Sequence[Doc], n_threads: int = 1):
        self.bm25 = bm25
        self.docs = docs
        self.n_threads = n_threads
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def backend(self) -> str:
        return self.bm25.backend

    @classmethod
    def build(
        cls,
        docs: Iterable[Doc],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        backend: str = "auto",
        progress: bool = False,
        n_threads: int = 1,
    ) -> BM25Index:
        """Tokenize and index ``docs`` (materialised into a list: they are kept for hits)."""
        import bm25s

        from autocoa.progress import track

        docs = docs if isinstance(docs, list) else list(docs)
        if not docs:
            raise ValueError("cannot index an empty corpus")
        vocab: dict[str, int] = {"": 0}  # id 0: the empty token, so a query of stopwords still scores (0)
        ids: list[list[int]] = []
        for d in track(docs, "tokenize", "docs", disable=not progress):
            ids.append([vocab.setdefault(w, len(vocab)) for w in tokenize(index_text(d))])
        bm25 = bm25s.BM25(k1=k1, b=b, backend=_default_backend() if backend == "auto" else backend)
        bm25.index((ids, vocab), create_empty_token=False, show_progress=progress)
        return cls(bm25, docs, n_threads=n_threads)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.bm25.save(str(directory), show_progress=False)
        write_docs(directory, self.docs)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "documents": len(self.docs),
            "tokenizer": TOKENIZER,
            "k1": self.bm25.k1,
            "b": self.bm25.b,
            "method": self.bm25.method,
        }
        (directory / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, backend: str = "auto", mmap: bool = False, n_threads: int = 1) -> BM25Index:
        import bm25s

        directory = Path(directory)
        meta = read_meta(directory)
        if meta["format"] != FORMAT:
            raise IndexFormatError(f"{directory}: a {meta['format']!r} index, not {FORMAT!r}")
        if meta.get("version") != VERSION or meta.get("tokenizer") != TOKENIZER:
            raise IndexFormatError(
                f"{directory}: index version {meta.get('version')} / tokenizer {meta.get('tokenizer')!r}; "
                f"this autocoa reads version {VERSION} / {TOKENIZER!r}: rebuild it with `autocoa index`"
            )
        bm25 = bm25s.BM25.load(str(directory), mmap=mmap, show_progress=False, verbosity=0)
        bm25.backend = _default_backend() if backend == "auto" else backend
        if bm25.backend == "numba":
            bm25.compile(activate_numba=True, warmup=False)
        docs = DocStore(directory)
        if len(docs) != bm25.scores["num_docs"] or len(docs) != meta["documents"]:
            raise IndexFormatError(
                f"{directory}: {len(docs)} stored documents but the BM25 matrix has {bm25.scores['num_docs']}"
            )
        return cls(bm25, docs, n_threads=n_threads)

    def query_ids(self, query: str) -> list[int]:
        vocab = self.bm25.vocab_dict
        return [vocab[w] for w in tokenize(query) if w in vocab] or [vocab[""]]

    def search(self, queries: Sequence[str], k: int = 3) -> list[list[Hit]]:
        """Top-``k`` documents of each query, best first, as ``(doc, score)``; documents that
        share no word with the query (score 0) are left out, so a hit list may be short or empty."""
        if isinstance(queries, str):
            raise TypeError("search takes a list of queries")
        if not queries:
            return []
        k = max(1, min(int(k), len(self.docs)))
        with self._lock:
            idx, scores = self.bm25.retrieve(
                [self.query_ids(q) for q in queries], k=k, show_progress=False, n_threads=self.n_threads
            )
        return [
            [(self.docs[int(i)], float(s)) for i, s in zip(row_i, row_s, strict=True) if s > 0]
            for row_i, row_s in zip(idx, scores, strict=True)
        ]

    def warmup(self) -> None:
        """Run one search so that numba's JIT compilation is paid now, not by the first request."""
        self.search(["warmup"], k=1)
