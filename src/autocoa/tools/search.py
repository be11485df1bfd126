"""The search tool: top-k documents for a query, from a local index or a retrieval server.

One formatting function for both, in the Search-R1 style the field's models were trained on::

    Doc 1 (Title: Ilsa Moravec) Ilsa Moravec was born in Tarvel...
    Doc 2 (Title: Tarvel) Tarvel is a city in...

Search-R1 keeps the title's double quotes and writes ``Doc 1(Title:``; we write the bare
title and a space. Whitespace inside a document is collapsed so each document is one line.

``Retrieval`` is where search looks: a local index directory or a retrieval server's URL,
exactly one. The edges (the CLI's ``--index``/``--retriever``, a recipe's stages) parse into one;
everything below takes it and trusts it, so the "one of them" rule is checked here alone.

>>> Retrieval(url="http://127.0.0.1:8001").describe()
{'index': None, 'retriever': 'http://127.0.0.1:8001'}
>>> Retrieval()
Traceback (most recent call last):
...
ValueError: give exactly one of an index directory (--index) or a retrieval server's URL (--retriever)
>>> Retrieval.of(None, None) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autocoa.tools.index import Hit, Retriever

DESCRIPTION = "a search query; returns the top documents of the corpus"


def format_doc(i: int, doc, max_chars: int = 0) -> str:
    text = " ".join(doc.text.split())
    if max_chars and len(text) > max_chars:
        text = text[:max_chars] + "..."
    head = f"Doc {i} (Title: {' '.join(doc.title.split())})" if doc.title else f"Doc {i}"
    return f"{head} {text}" if text else head


def format_hits(hits: Sequence[Hit], doc_chars: int = 0) -> str:
    """The observation text of one query's hits; empty string when there are none."""
    return "\n".join(format_doc(i, doc, doc_chars) for i, (doc, _score) in enumerate(hits, start=1))


def split_hits(observation: str) -> list[str]:
    r"""The documents of one observation that :func:`format_hits` wrote (one per line), each
    with its ``Doc i (Title: ...)`` head; none for an empty or error observation.

    >>> split_hits("Doc 1 (Title: A) A is a city.\nDoc 2 B is a river.")
    ['Doc 1 (Title: A) A is a city.', 'Doc 2 B is a river.']
    >>> split_hits("[error] search failed: timeout")
    []
    """
    return [line for line in observation.split("\n") if line.startswith("Doc ")]


class SearchTool:
    """``<search> query </search>`` over any :class:`Retriever`: a :class:`BM25Index`, a
    ``DenseIndex``, or a :class:`RemoteRetriever` (the same observations either way).

    ``k``: documents per query. ``doc_chars``: cut each document's text at this many
    characters (0 = whole documents), so that top-k fits an observation budget without the
    last documents being cut away whole.
    """

    def __init__(
        self, retriever: Retriever, k: int = 3, *, name: str = "search", doc_chars: int = 0, description: str = ""
    ):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.retriever = retriever
        self.k = k
        self.name = name
        self.doc_chars = doc_chars
        self.description = description or DESCRIPTION

    def call(self, argument: str) -> str:
        return self.call_batch([argument])[0]

    def call_batch(self, arguments: Sequence[str]) -> list[str]:
        """All queries in one retriever call (one index lookup, or one HTTP request)."""
        return [format_hits(hits, self.doc_chars) for hits in self.retriever.search(list(arguments), self.k)]


def open_search(
    index: str | None = None,
    url: str | None = None,
    *,
    k: int = 3,
    doc_chars: int = 0,
    timeout: float = 10.0,
    retries: int = 2,
    name: str = "search",
) -> SearchTool:
    """A search tool over a saved index directory or a retrieval server's URL (exactly one): the
    registry's factory of ``search``, parsed into a :class:`Retrieval`."""
    where = Retrieval(Path(index) if index is not None else None, url)
    return where.search_tool(k, doc_chars=doc_chars, timeout=timeout, retries=retries, name=name)


def load_index(directory: str | Path, **kwargs) -> Retriever:
    """Load any index kind that ``autocoa index`` writes (BM25, or dense with the extra).
    Keyword arguments go to the loader of that kind (``backend``/``mmap``/``n_threads`` for
    BM25, ``encoder`` for dense); the ones that don't apply are ignored."""
    from autocoa.tools import dense
    from autocoa.tools.index import FORMAT, BM25Index, IndexFormatError, read_meta

    meta = read_meta(directory)
    if meta["format"] == FORMAT:
        return BM25Index.load(directory, **{k: v for k, v in kwargs.items() if k in ("backend", "mmap", "n_threads")})
    if meta["format"] == dense.FORMAT:
        return dense.DenseIndex.load(directory, encoder=kwargs.get("encoder"))
    raise IndexFormatError(f"{directory}: unknown index format {meta['format']!r}")


def retrieval_needed(reasons: Sequence[str], hint: bool = True) -> str:
    """The one message for a missing ``--index``/``--retriever``: what needs it, and (``hint``)
    the way around it.

    >>> retrieval_needed(["the real environment", "rag"])
    'the real environment and rag need --index DIR or --retriever URL (or use --env simulated)'
    """
    verb = "need" if len(reasons) > 1 else "needs"
    return f"{' and '.join(reasons)} {verb} --index DIR or --retriever URL" + (
        " (or use --env simulated)" if hint else ""
    )


@dataclass(frozen=True)
class Retrieval:
    index: Path | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if (self.index is None) == (self.url is None):
            raise ValueError(
                "give exactly one of an index directory (--index) or a retrieval server's URL (--retriever)"
            )
        if self.index is not None:
            object.__setattr__(self, "index", Path(self.index))
            if not self.index.exists():
                raise FileNotFoundError(f"{self.index}: no such index directory (build one with `autocoa index`)")
        elif not str(self.url).startswith(("http://", "https://")):
            raise ValueError(f"{self.url}: a retrieval server's URL starts with http:// or https://")

    @classmethod
    def of(cls, index: str | Path | None, url: str | None) -> Retrieval | None:
        """None when neither is given (the simulated environment, the closed-book methods)."""
        return None if index is None and url is None else cls(Path(index) if index is not None else None, url)

    def describe(self) -> dict[str, str | None]:
        """What a run's metadata records: ``index`` and ``retriever``."""
        return {"index": str(self.index) if self.index is not None else None, "retriever": self.url}

    def search_tool(
        self, k: int = 3, *, doc_chars: int = 0, timeout: float = 10.0, retries: int = 2, name: str = "search"
    ) -> SearchTool:
        """The search tool over this index or server (``timeout``/``retries``: the server's)."""
        if self.index is not None:
            retriever = load_index(self.index)
        else:
            from autocoa.tools.client import RemoteRetriever

            retriever = RemoteRetriever(self.url, timeout=timeout, retries=retries)
        return SearchTool(retriever, k, name=name, doc_chars=doc_chars)

    def toolbox(self, k: int = 3, *, calculator: bool = True, max_chars: int = 2000, timeout: float = 10.0):
        """The agent's standard toolbox: this search, plus the calculator
        (:func:`autocoa.tools.open_toolbox`)."""
        from autocoa.tools import open_toolbox

        return open_toolbox(self, k=k, calculator=calculator, max_chars=max_chars, timeout=timeout)
