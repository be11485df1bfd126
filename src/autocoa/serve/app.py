"""The agent server: an OpenAI-compatible chat-completions API over the agent loop (FastAPI).

    POST /v1/chat/completions  {"model", "messages", "max_tokens", "temperature", "top_p",
                                "seed", "n", "stream", ...}
      -> the agent's final answer as the message content; the whole rollout (segments,
         tool calls, counts) in each choice's extra field "agent"; usage in tokens.
      "stream": true -> server-sent ``chat.completion.chunk`` events: the reasoning, actions
         and observations as ``delta.reasoning_content`` (with ``delta.kind`` naming the
         segment), the answer as ``delta.content``, the rollout on the last chunk of each
         choice, usage (``stream_options.include_usage``), then ``data: [DONE]``.
    GET  /v1/models            -> the one served model
    GET  /health               -> status and batching counters

The agent loop runs on the server: its tools (search, calculator) are the server's, and a
failing tool becomes observation text in the trajectory, never an HTTP error. Requests are
batched through :class:`~autocoa.serve.batcher.Batcher` (one thread owns the model).
Errors have OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: 400 for a
malformed or invalid request, 404 for an unknown model, 413 for a body too large, 503 when
the queue is full, 500 if the model itself fails (its details go to the server log, never to
the client). :mod:`autocoa.httpguard` checks the Host header (loopback names unless
``--allow-host``), JSON content types (415) and, with ``--api-key`` or ``AUTOCOA_API_KEY``,
the key (401); the server binds to 127.0.0.1 unless told otherwise. The OpenAPI document
(``/openapi.json``) declares the request body's schema.

Run: ``autocoa serve --model ckpt/ --index index/ --port 8000``.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime.

import asyncio
import json
import logging
import time

from pydantic import Field, ValidationError

from autocoa import httpguard
from autocoa.agent.config import AgentConfig
from autocoa.agent.engine import Engine
from autocoa.agent.prompts import format_prompt
from autocoa.config import Config
from autocoa.httpbody import BodyError, read_json, request_body_schema
from autocoa.serve import schemas
from autocoa.serve.batcher import Batcher, QueueFull
from autocoa.serve.stream import Piece
from autocoa.tags import ANSWER, Kind, close_tag, open_tag
from autocoa.trajectory import encode_prompt

log = logging.getLogger(__name__)


class ServeLimits(Config):
    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body, in bytes")
    max_prompt_tokens: int = Field(2048, ge=1, description="longest prompt (question in its template), in tokens")
    max_tokens: int = Field(4096, ge=8, description="largest max_tokens (response budget) a request may ask for")
    max_n: int = Field(8, ge=1, description="most choices (rollouts) per request")
    max_actions: int = Field(32, ge=0, description="largest action budget a request may ask for")
    max_batch_rows: int = Field(64, ge=1, description="most rows decoded together")
    batch_wait_ms: float = Field(5.0, ge=0.0, description="how long the batcher collects requests before decoding")
    max_queue: int = Field(256, ge=1, description="most waiting requests; more are answered 503")


class RequestError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


# long: FastAPI routes are closures over the engine, the limits and the guard, so they are defined inside the factory
def create_app(
    engine: Engine,
    agent_config: AgentConfig | None = None,
    limits: ServeLimits | None = None,
    model_name: str = "autocoa",
    allowed_hosts: tuple[str, ...] | list[str] = httpguard.LOOPBACK_HOSTS,
    api_key: str | None = None,
):
    """A FastAPI app serving ``engine``: ``agent_config`` holds the defaults that a request's
    fields override within ``limits``. Use it with uvicorn or FastAPI's TestClient.
    ``allowed_hosts`` / ``api_key``: see :mod:`autocoa.httpguard`."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    base = agent_config or AgentConfig()
    limits = limits or ServeLimits()
    batcher = Batcher(engine, limits.max_batch_rows, limits.batch_wait_ms / 1000, limits.max_queue)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_app):
        yield
        batcher.close()

    app = FastAPI(title="autocoa agent server", version="1", lifespan=lifespan)
    app.state.batcher = batcher

    def error(status: int, message: str, param=None, code=None, type="invalid_request_error") -> JSONResponse:
        return JSONResponse(schemas.error_body(message, type, param, code), status_code=status)

    httpguard.install(app, lambda status, message, code: error(status, message, code=code), allowed_hosts, api_key)

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):  # unknown routes, wrong methods
        return error(exc.status_code, str(exc.detail), type="invalid_request_error")

    @app.exception_handler(Exception)
    async def internal_error(_request, exc: Exception):  # a bug: OpenAI's shape, details in the log only
        log.error("internal error", exc_info=exc)
        return error(500, "internal server error (see the server log)", type="server_error")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": model_name, "batcher": batcher.stats.as_dict()}

    @app.get("/v1/models")
    def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": created, "owned_by": "autocoa"}],
        }

    @app.post("/v1/chat/completions", openapi_extra=request_body_schema(schemas.ChatRequest))
    async def chat_completions(request: Request):
        try:
            req = await _read(request, limits)
            if req.model != model_name:
                raise RequestError(
                    404,
                    f"The model `{req.model}` does not exist; this server serves `{model_name}`",
                    "model",
                    "model_not_found",
                )
            cfg = _agent_config(req, base, limits, engine)
            prompt = _prompt(req, engine, limits)
            if req.stream:
                return await _streamed(batcher, engine, model_name, req, cfg, prompt)
            rollouts = await asyncio.wrap_future(batcher.submit(prompt, cfg))
        except RequestError as e:
            return error(e.status, e.message, e.param, e.code)
        except QueueFull as e:
            return error(503, str(e), type="server_error", code="overloaded")
        except Exception:  # logged by the batcher; the client learns no internals
            return error(500, "the model failed on this request (see the server log)", type="server_error")
        return schemas.completion(schemas.completion_id(), model_name, rollouts, cfg.env)

    return app


async def _streamed(batcher: Batcher, engine: Engine, model_name: str, req, cfg: AgentConfig, prompt: str):
    """A streaming reply: the batcher's pieces become server-sent events (``QueueFull`` if
    the queue is full; a model failure is reported inside the stream)."""
    from fastapi.responses import StreamingResponse

    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    events: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def on_pieces(j: int, pieces: list[Piece]) -> None:  # worker thread
        loop.call_soon_threadsafe(events.put_nowait, ("pieces", j, pieces))

    fut = batcher.submit(prompt, cfg, on_pieces)
    fut.add_done_callback(lambda f: loop.call_soon_threadsafe(events.put_nowait, ("done", f)))
    sse = _stream(schemas.completion_id(), model_name, cfg, events, include_usage, engine)
    return StreamingResponse(sse, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _read(request, limits: ServeLimits) -> schemas.ChatRequest:
    try:
        data = await read_json(request, limits.max_body_bytes, "We could not parse the JSON body of your request")
    except BodyError as e:
        raise RequestError(e.status, e.message) from None
    if not isinstance(data, dict):
        raise RequestError(400, "the request body must be a JSON object")
    try:
        return schemas.ChatRequest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        if param is None and ": " in err["msg"]:  # a model-level check names its field first
            param = err["msg"].split(": ", 1)[0].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            raise RequestError(400, f"Unrecognized request argument supplied: {param}", param) from None
        raise RequestError(400, f"Invalid value for '{param}': {err['msg']}", param) from None


def _agent_config(req: schemas.ChatRequest, base: AgentConfig, limits: ServeLimits, engine: Engine) -> AgentConfig:
    max_tokens = req.max_completion_tokens or req.max_tokens
    param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
    if max_tokens is not None and max_tokens > limits.max_tokens:
        raise RequestError(400, f"{param} is {max_tokens}; this server allows at most {limits.max_tokens}", param)
    if req.n > limits.max_n:
        raise RequestError(400, f"n is {req.n}; this server allows at most {limits.max_n}", "n")
    if req.max_actions is not None and req.max_actions > limits.max_actions:
        raise RequestError(400, f"max_actions is {req.max_actions}; at most {limits.max_actions}", "max_actions")
    updates = {
        "max_new_tokens": max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "seed": req.seed,
        "n": req.n,
        "env": req.env,
        "max_actions": req.max_actions,
    }
    try:
        cfg = AgentConfig.model_validate({**base.model_dump(), **{k: v for k, v in updates.items() if v is not None}})
    except ValidationError as e:  # a model-level check (loc ()) is the forced answer's room in max_tokens
        loc = e.errors()[0]["loc"]
        field = param if not loc or loc[0] == "max_new_tokens" else str(loc[0])
        raise RequestError(400, f"{field}: {e.errors()[0]['msg']}", field) from None
    if cfg.max_new_tokens > limits.max_tokens:  # the server's default above its own limit
        cfg = cfg.model_copy(update={"max_new_tokens": limits.max_tokens})
    if cfg.env == "real" and engine.toolbox is None:
        raise RequestError(400, "this server has no tools (no index): send env='simulated'", "env")
    return cfg


def _prompt(req: schemas.ChatRequest, engine: Engine, limits: ServeLimits) -> str:
    question = req.question()
    if question is None:
        raise RequestError(400, "messages hold no user message: the question is the last user message", "messages")
    if not question.strip():
        raise RequestError(400, "the last user message is empty", "messages")
    prompt = format_prompt(question, engine.tokenizer, engine.tags)
    n = len(encode_prompt(engine.tokenizer, prompt))
    if n > limits.max_prompt_tokens:
        raise RequestError(
            400,
            f"the prompt is {n} tokens; this server allows at most {limits.max_prompt_tokens}",
            "messages",
            "context_length_exceeded",
        )
    return prompt


class _AnswerStream:
    """The answer's text as ``delta.content``: tags removed, stripped like the final answer
    (trailing whitespace is held back until more text follows)."""

    def __init__(self, opener: str, closer: str):
        self.opener, self.closer, self.raw, self.sent = opener, closer, "", ""

    def feed(self, text: str) -> str:
        self.raw += text
        body = self.raw.split(self.opener, 1)[-1].split(self.closer, 1)[0].strip()
        return self._extend(body)

    def finish(self, answer: str) -> str:
        return self._extend(answer)

    def _extend(self, text: str) -> str:
        if not text.startswith(self.sent):
            return ""  # cannot retract what was sent; the final rollout has the truth
        new, self.sent = text[len(self.sent) :], text
        return new


async def _stream(cid, model, cfg: AgentConfig, events: asyncio.Queue, include_usage: bool, engine: Engine):
    created = int(time.time())

    def sse(choices, **extra) -> str:
        return f"data: {json.dumps(schemas.chunk(cid, model, created, choices, **extra), ensure_ascii=False)}\n\n"

    answers = [_AnswerStream(open_tag(ANSWER), close_tag(ANSWER)) for _ in range(cfg.n)]
    for j in range(cfg.n):
        yield sse([schemas.delta_choice(j, {"role": "assistant", "content": ""})])
    while True:
        event = await events.get()
        if event[0] == "done":
            fut = event[1]
            break
        _, j, pieces = event
        for kind, text in pieces:
            if kind is Kind.ANSWER:
                new = answers[j].feed(text)
                if new:
                    yield sse([schemas.delta_choice(j, {"content": new})])
            else:
                yield sse([schemas.delta_choice(j, {"reasoning_content": text, "kind": kind.value})])
    try:
        rollouts = fut.result()
    except Exception:  # the model failed mid-stream: say so in the stream, then end it
        body = schemas.error_body("the model failed on this request (see the server log)", "server_error")
        yield f"data: {json.dumps(body)}\n\n"
        yield "data: [DONE]\n\n"
        return
    for j, r in enumerate(rollouts):
        rest = answers[j].finish(r.trajectory.answer or "")
        delta = {"content": rest} if rest else {}
        finish = schemas.finish_reason(r)
        yield sse([schemas.delta_choice(j, delta, finish, agent=schemas.agent_field(r, cfg.env))])
    if include_usage:
        yield sse([], usage=schemas.usage(rollouts))
    yield "data: [DONE]\n\n"
