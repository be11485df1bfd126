"""The retrieval server: any index behind the Search-R1 ``/retrieve`` protocol (FastAPI).

    POST /retrieve  {"queries": ["q1", "q2"], "topk": 3, "return_scores": true}
      -> {"result": [[{"document": {"id": "...", "contents": "\"Title\"\ntext"}, "score": 12.3}, ...], ...]}
      with "return_scores": false (the default, as in Search-R1), each list holds the plain
      documents: [[{"id", "contents"}, ...], ...]
    GET  /health    -> {"status": "ok", "documents": N, "index": "BM25Index"}

So Search-R1's, FlashRAG's and verl's search clients work against it unchanged, and
:class:`~autocoa.tools.client.RemoteRetriever` works against theirs.

A request's queries are answered in chunks of ``chunk_queries`` (one index call each); the
index's own lock (``index`` must be thread-safe, as ours are) is held per chunk, not per
request, so one client's giant batch cannot stall the others for its whole length.

Requests are validated with pydantic (:class:`RetrieveRequest`, which the OpenAPI document
declares) and bounded by :class:`ServerLimits`: a body too large, too many queries, a query
too long or more than ``max_results`` documents (queries x topk) is answered 413; a topk out
of range or a malformed body 422 or 400; each with ``{"error": "..."}`` saying what to change.
:mod:`autocoa.httpguard` checks the Host header (loopback names unless ``--allow-host``), JSON
content types (415) and, with ``--api-key`` or ``AUTOCOA_API_KEY``, the key; the server binds
to 127.0.0.1 unless told otherwise.

Run: ``autocoa serve-retriever --index index/ --port 8000``.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime.

import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from autocoa import httpguard
from autocoa.config import Config
from autocoa.httpbody import BodyError, read_json, request_body_schema
from autocoa.tools.index import Retriever


class RetrieveRequest(BaseModel):
    """``POST /retrieve`` (Search-R1's protocol)."""

    model_config = ConfigDict(extra="forbid")
    queries: list[StrictStr] = Field(description="the search queries, answered in order")
    topk: StrictInt | None = Field(None, description="documents per query (default: the server's)")
    return_scores: StrictBool = Field(False, description="wrap each document as {document, score}")


class ServerLimits(Config):
    default_topk: int = Field(3, ge=1, description="documents per query when a request gives no topk")
    max_topk: int = Field(100, ge=1, description="largest topk a request may ask for")
    max_queries: int = Field(1024, ge=1, description="most queries in one request")
    max_query_chars: int = Field(2000, ge=1, description="longest query, in characters")
    max_body_bytes: int = Field(4_000_000, ge=1024, description="largest request body, in bytes")
    max_results: int = Field(4096, ge=1, description="most documents (queries x topk) one request may ask for")
    chunk_queries: int = Field(64, ge=1, description="queries per index call; the index lock is held per chunk")


def create_app(
    index: Retriever,
    limits: ServerLimits | None = None,
    allowed_hosts: Sequence[str] = httpguard.LOOPBACK_HOSTS,
    api_key: str | None = None,
):
    """A FastAPI app serving ``index``; use it with uvicorn or FastAPI's TestClient.
    ``allowed_hosts`` / ``api_key``: see :mod:`autocoa.httpguard`."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse, Response

    limits = limits or ServerLimits()
    app = FastAPI(title="autocoa retrieval server", version="1")

    def error(status: int, message: str, _code: str | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    httpguard.install(app, error, allowed_hosts, api_key)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "documents": len(index), "index": type(index).__name__}

    def search(queries: list[str], k: int):
        # one index call per chunk: the index serialises its own calls (BM25Index and DenseIndex
        # hold a lock), so other requests interleave with a large one between chunks
        hits = []
        for i in range(0, len(queries), limits.chunk_queries):
            hits += index.search(queries[i : i + limits.chunk_queries], k)
        return hits

    def answer(queries: list[str], k: int, scores: bool) -> bytes:
        hits = search(queries, k)
        if scores:
            result = [[{"document": d.to_dict(), "score": float(s)} for d, s in row] for row in hits]
        else:
            result = [[d.to_dict() for d, _ in row] for row in hits]
        return json.dumps({"result": result}, ensure_ascii=False).encode("utf-8")

    @app.post("/retrieve", openapi_extra=request_body_schema(RetrieveRequest))
    async def retrieve(request: Request):
        try:
            data = await read_json(request, limits.max_body_bytes)
        except BodyError as e:
            return error(e.status, e.message)
        problem, req = _check(data, limits)
        if problem:
            return error(*problem)
        queries = req.queries
        k = req.topk or limits.default_topk
        scores = req.return_scores
        # search, build and serialise off the event loop: a maximal answer (thousands of
        # documents) encoded in the loop stalled every other request for its whole duration
        return Response(await run_in_threadpool(answer, queries, k, scores), media_type="application/json")

    return app


def _check(data, limits: ServerLimits) -> tuple[tuple[int, str] | None, RetrieveRequest | None]:
    """``((status, message), None)`` for a request that breaks the protocol or the limits,
    else ``(None, request)``."""
    if not isinstance(data, dict):
        return (422, 'expected a JSON object {"queries": [...], "topk": k, "return_scores": bool}'), None
    unknown = set(data) - set(RetrieveRequest.model_fields)
    if unknown:
        return (422, f"unknown field(s) {sorted(unknown)}; expected queries, topk, return_scores"), None
    try:
        req = RetrieveRequest.model_validate(data)
    except ValidationError as e:
        field = str(e.errors()[0]["loc"][0]) if e.errors()[0]["loc"] else "body"
        expected = {"queries": "a list of strings", "topk": "an integer", "return_scores": "true or false"}
        return (422, f"'{field}' must be {expected.get(field, 'valid')}"), None
    if len(req.queries) > limits.max_queries:
        return (413, f"{len(req.queries)} queries in one request; at most {limits.max_queries}: split the batch"), None
    longest = max((len(q) for q in req.queries), default=0)
    if longest > limits.max_query_chars:
        return (413, f"a query of {longest} characters; at most {limits.max_query_chars}"), None
    k = req.topk
    if k is not None and not 1 <= k <= limits.max_topk:
        return (422, f"topk {k} out of range; 1 <= topk <= {limits.max_topk}"), None
    results = len(req.queries) * (k or limits.default_topk)
    if results > limits.max_results:
        return (413, f"{results} documents asked (queries x topk); at most {limits.max_results}: split the batch"), None
    return None, req
