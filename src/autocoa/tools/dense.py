"""Dense retrieval (optional extra ``autocoa[dense]``: sentence-transformers + faiss-cpu).

The same interface as :class:`~autocoa.tools.index.BM25Index` (``build``, ``save``,
``load``, batched ``search(queries, k)``), so the search tool, the server and the CLI take
either. Embeddings are L2-normalised and searched by inner product (cosine) in an exact
``faiss.IndexFlatIP``, the setup of Search-R1's e5 retriever. The encoder is any
sentence-transformers model given by a local path or hub name, stored in ``meta.json``;
``query_prefix`` / ``doc_prefix`` add e5-style ``"query: "`` / ``"passage: "`` prefixes.

Layout: ``meta.json``, ``docs.jsonl`` + ``doc_offsets.npy`` (as BM25), ``faiss.index``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autocoa.data.corpus import Doc
from autocoa.tools.index import DocStore, Hit, IndexFormatError, index_text, read_meta, write_docs

FORMAT = "autocoa-dense"
VERSION = 1


def _require():
    try:
        import faiss
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ImportError(
            f"dense retrieval needs the optional extra: pip install 'autocoa[dense]' ({e.name} is missing; "
            "see docs/troubleshooting.md#missing-package)"
        ) from None
    return faiss, SentenceTransformer


class DenseIndex:
    def __init__(self, encoder: Any, faiss_index: Any, docs: Sequence[Doc], meta: dict):
        self.encoder = encoder
        self.faiss_index = faiss_index
        self.docs = docs
        self.meta = meta
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.docs)

    def _encode(self, texts: list[str], prefix: str, progress: bool = False) -> np.ndarray:
        emb = self.encoder.encode(
            [prefix + t for t in texts],
            batch_size=self.meta["batch_size"],
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(emb, dtype=np.float32)

    @classmethod
    def build(
        cls,
        docs: Iterable[Doc],
        *,
        encoder: str | Any,
        query_prefix: str = "",
        doc_prefix: str = "",
        batch_size: int = 64,
        progress: bool = False,
    ) -> DenseIndex:
        """``encoder``: a model path/name, or a loaded SentenceTransformer (then give its path
        to :meth:`load` later; only a path is stored)."""
        faiss, SentenceTransformer = _require()
        docs = docs if isinstance(docs, list) else list(docs)
        if not docs:
            raise ValueError("cannot index an empty corpus")
        name = encoder if isinstance(encoder, str) else getattr(encoder, "name_or_path", "") or ""
        model = SentenceTransformer(encoder, device="cpu") if isinstance(encoder, str) else encoder
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "documents": len(docs),
            "encoder": str(name),
            "query_prefix": query_prefix,
            "doc_prefix": doc_prefix,
            "batch_size": batch_size,
        }
        self = cls(model, None, docs, meta)
        emb = self._encode([index_text(d) for d in docs], doc_prefix, progress)
        self.faiss_index = faiss.IndexFlatIP(emb.shape[1])
        self.faiss_index.add(emb)
        self.meta["dim"] = int(emb.shape[1])
        return self

    def save(self, directory: str | Path) -> Path:
        faiss, _ = _require()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.faiss_index, str(directory / "faiss.index"))
        write_docs(directory, self.docs)
        (directory / "meta.json").write_text(json.dumps(self.meta, indent=2) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, encoder: str | Any | None = None) -> DenseIndex:
        """``encoder`` overrides the stored model path (e.g. the model moved)."""
        faiss, SentenceTransformer = _require()
        directory = Path(directory)
        meta = read_meta(directory)
        if meta["format"] != FORMAT or meta.get("version") != VERSION:
            raise IndexFormatError(f"{directory}: not a version-{VERSION} {FORMAT} index")
        encoder = encoder if encoder is not None else meta["encoder"]
        if not encoder:
            raise IndexFormatError(f"{directory}: no encoder stored; pass encoder=")
        model = SentenceTransformer(encoder, device="cpu") if isinstance(encoder, str) else encoder
        docs = DocStore(directory)
        faiss_index = faiss.read_index(str(directory / "faiss.index"))
        if faiss_index.ntotal != len(docs):
            raise IndexFormatError(f"{directory}: {len(docs)} documents but {faiss_index.ntotal} vectors")
        return cls(model, faiss_index, docs, meta)

    def search(self, queries: Sequence[str], k: int = 3) -> list[list[Hit]]:
        if isinstance(queries, str):
            raise TypeError("search takes a list of queries")
        if not queries:
            return []
        k = max(1, min(int(k), len(self.docs)))
        emb = self._encode(list(queries), self.meta["query_prefix"])
        with self._lock:
            scores, idx = self.faiss_index.search(emb, k)
        return [
            [(self.docs[int(i)], float(s)) for i, s in zip(row_i, row_s, strict=True) if i >= 0]
            for row_i, row_s in zip(idx, scores, strict=True)
        ]
