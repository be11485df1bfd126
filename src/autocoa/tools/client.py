"""Client of a retrieval server that speaks the Search-R1 ``/retrieve`` protocol.

Works with ``autocoa serve-retriever`` and with Search-R1's / FlashRAG's own servers:
request ``{"queries": [...], "topk": k, "return_scores": true}``, response
``{"result": [[{"document": {"id", "contents"}, "score"}, ...], ...]}`` (or, without scores,
lists of plain documents).

Failures are bounded: every request has a timeout, connection errors, timeouts and 5xx
answers are retried ``retries`` times with a short backoff, and then raise
:class:`RetrievalUnavailable` (a ``ConnectionError``), or :class:`RetrievalTimeout` (a
``TimeoutError``). A 4xx answer is a bad request, raised at once as :class:`RetrievalError`
with the server's message. The :class:`~autocoa.tools.base.Toolbox` turns all of them into
observation text, so a dead server never crashes a rollout.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from autocoa.data.corpus import Doc
from autocoa.tools.index import Hit


class RetrievalError(RuntimeError):
    """The server refused the request or answered something that is not the protocol."""


class RetrievalUnavailable(RetrievalError, ConnectionError):
    """The server could not be reached or kept failing (after the retries)."""


class RetrievalTimeout(RetrievalError, TimeoutError):
    """The server did not answer within the timeout (after the retries)."""


def retrieve_url(url: str) -> str:
    """Accept ``http://host:port`` or the full ``.../retrieve`` address."""
    url = url.rstrip("/")
    return url if url.endswith("/retrieve") else url + "/retrieve"


def _doc(d: Any) -> Doc:
    if not isinstance(d, dict):
        raise RetrievalError(f"expected a document object, got {type(d).__name__}")
    doc_id = str(d.get("id", ""))
    if "contents" in d:
        return Doc.from_contents(doc_id, str(d["contents"]))
    if "text" in d:  # some servers return {"title", "text"}
        return Doc(doc_id, str(d.get("title") or ""), str(d["text"]))
    raise RetrievalError(f"document without 'contents' or 'text': keys {sorted(d)}")


def parse_result(payload: Any, n_queries: int) -> list[list[Hit]]:
    """Hits from a ``/retrieve`` response, with or without scores (score None -> 0.0)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("result"), list):
        raise RetrievalError("response has no 'result' list")
    result = payload["result"]
    if len(result) != n_queries:
        raise RetrievalError(f"response has {len(result)} result lists for {n_queries} queries")
    out = []
    for hits in result:
        if not isinstance(hits, list):
            raise RetrievalError("a result entry is not a list")
        row = []
        for h in hits:
            if isinstance(h, dict) and "document" in h:
                row.append((_doc(h["document"]), float(h.get("score") or 0.0)))
            else:
                row.append((_doc(h), 0.0))
        out.append(row)
    return out


class RemoteRetriever:
    """A :class:`~autocoa.tools.index.Retriever` backed by a retrieval server."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, retries: int = 2, backoff: float = 0.25, api_key: str | None = None
    ):
        """``api_key`` (default: ``$AUTOCOA_API_KEY``) is sent as ``Authorization: Bearer``."""
        import os

        self.url = retrieve_url(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        key = api_key if api_key is not None else os.environ.get("AUTOCOA_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), headers=headers)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteRetriever:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def post(self, body: dict) -> Any:
        """POST ``body`` to ``/retrieve`` with bounded retries; the decoded JSON answer.

        The retry loop is ours, not ``httpx.HTTPTransport(retries=...)``: that retries only
        failed connections, while a retrieval server also times out and answers 5xx under
        load, and a 4xx must not be retried at all."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                r = self._client.post(self.url, json=body)
            except httpx.TimeoutException as e:
                last = RetrievalTimeout(f"{self.url}: no answer within {self.timeout:g}s ({type(e).__name__})")
                continue
            except httpx.TransportError as e:
                last = RetrievalUnavailable(f"{self.url}: unreachable ({type(e).__name__}: {e})")
                continue
            if r.status_code >= 500:
                last = RetrievalUnavailable(f"{self.url}: server error {r.status_code}: {r.text[:200]}")
                continue
            if r.status_code >= 400:
                raise RetrievalError(
                    f"{self.url}: request refused ({r.status_code}): {_message(r)} "
                    "(see docs/troubleshooting.md#retriever)"
                )
            try:
                return r.json()
            except ValueError:
                raise RetrievalError(f"{self.url}: answer is not JSON: {r.text[:200]!r}") from None
        assert last is not None
        raise type(last)(f"{last} [after {self.retries + 1} attempts; see docs/troubleshooting.md#retriever]")

    def search(self, queries: Sequence[str], k: int = 3) -> list[list[Hit]]:
        queries = list(queries)
        if not queries:
            return []
        payload = self.post({"queries": queries, "topk": k, "return_scores": True})
        return parse_result(payload, len(queries))


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("detail") or body)[:300]
    return str(body)[:300]
