"""Where search looks: a local index directory or a retrieval server's URL, exactly one.

The edges (the CLI's ``--index``/``--retriever``, a recipe's stages) parse into a
:class:`Retrieval`; everything below takes it and trusts it, so the "one of them" rule is checked
here and nowhere else.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any


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

    def search_tool(self, k: int = 3, **kwargs: Any):
        """The search tool over this index or server (:func:`autocoa.tools.search.open_search`'s
        keywords: ``doc_chars``, ``timeout``, ``retries``, ``name``)."""
        from autocoa.tools.search import open_search

        return open_search(str(self.index) if self.index is not None else None, self.url, k=k, **kwargs)

    def toolbox(self, k: int = 3, *, calculator: bool = True, max_chars: int = 2000, timeout: float = 10.0):
        """The agent's standard toolbox: this search, plus the calculator
        (:func:`autocoa.tools.open_toolbox`)."""
        from autocoa.tools import open_toolbox

        return open_toolbox(self, k=k, calculator=calculator, max_chars=max_chars, timeout=timeout)
