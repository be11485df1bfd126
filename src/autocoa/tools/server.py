"""The retrieval server: any index behind the Search-R1 ``/retrieve`` protocol (FastAPI).

    POST /retrieve  {"queries": ["q1", "q2"], "topk": 3, "return_scores": true}
      -> {"result": [[{"document": {"id": "...", "contents": "\"Title\"\ntext"}, "score": 12.3}, ...], ...]}
      with "return_scores": false (the default, as in Search-R1), each list holds the plain
      documents: [[{"id", "contents"}, ...], ...]
    GET  /health    -> {"status": "ok", "documents": N, "index": "BM25Index"}

So Search-R1's, FlashRAG's and verl's search clients work against it unchanged, and
:class:`~autocoa.tools.client.RemoteRetriever` works against theirs.

All queries of one request are answered by one index call; index calls are serialised (a
request waits for the one before, so a large batch is the way to throughput). Requests are
bounded by :class:`ServerLimits`: a body too large, too many queries or a query too long is
answered 413, a topk out of range or a malformed body 422 or 400, each with
``{"error": "..."}`` saying what to change. There is no authentication: the server binds
to 127.0.0.1 unless told otherwise.

Run: ``autocoa serve-retriever --index index/ --port 8000``.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime.

import threading

from pydantic import Field

from autocoa.config import Config
from autocoa.httpbody import BodyError, read_json
from autocoa.tools.index import Retriever


class ServerLimits(Config):
    default_topk: int = Field(3, ge=1, description="documents per query when a request gives no topk")
    max_topk: int = Field(100, ge=1, description="largest topk a request may ask for")
    max_queries: int = Field(1024, ge=1, description="most queries in one request")
    max_query_chars: int = Field(2000, ge=1, description="longest query, in characters")
    max_body_bytes: int = Field(4_000_000, ge=1024, description="largest request body, in bytes")


def create_app(index: Retriever, limits: ServerLimits | None = None):
    """A FastAPI app serving ``index``; use it with uvicorn or FastAPI's TestClient."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse

    limits = limits or ServerLimits()
    lock = threading.Lock()
    app = FastAPI(title="autocoa retrieval server", version="1")

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "documents": len(index), "index": type(index).__name__}

    def search(queries: list[str], k: int):
        with lock:
            return index.search(queries, k)

    @app.post("/retrieve")
    async def retrieve(request: Request):
        try:
            req = await read_json(request, limits.max_body_bytes)
        except BodyError as e:
            return error(e.status, e.message)
        problem = _check(req, limits)
        if problem:
            return error(*problem)
        queries: list[str] = req["queries"]
        k = req.get("topk") or limits.default_topk
        scores = bool(req.get("return_scores", False))
        hits = await run_in_threadpool(search, queries, k)
        if scores:
            result = [[{"document": d.to_dict(), "score": s} for d, s in row] for row in hits]
        else:
            result = [[d.to_dict() for d, _ in row] for row in hits]
        return {"result": result}

    return app


def _check(req, limits: ServerLimits) -> tuple[int, str] | None:
    """(status, message) for a request that breaks the protocol or the limits, else None."""
    if not isinstance(req, dict):
        return 422, 'expected a JSON object {"queries": [...], "topk": k, "return_scores": bool}'
    unknown = set(req) - {"queries", "topk", "return_scores"}
    if unknown:
        return 422, f"unknown field(s) {sorted(unknown)}; expected queries, topk, return_scores"
    queries = req.get("queries")
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        return 422, "'queries' must be a list of strings"
    if len(queries) > limits.max_queries:
        return 413, f"{len(queries)} queries in one request; at most {limits.max_queries}: split the batch"
    longest = max((len(q) for q in queries), default=0)
    if longest > limits.max_query_chars:
        return 413, f"a query of {longest} characters; at most {limits.max_query_chars}"
    k = req.get("topk")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool)):
        return 422, "'topk' must be an integer"
    if k is not None and not 1 <= k <= limits.max_topk:
        return 422, f"topk {k} out of range; 1 <= topk <= {limits.max_topk}"
    if not isinstance(req.get("return_scores", False), bool):
        return 422, "'return_scores' must be true or false"
    return None
