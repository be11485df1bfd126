"""Run an ASGI app on a free loopback port in a background thread, for tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request  # module level: the route annotations resolve here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app, seconds: float = 10.0):
    """Yield the base URL (http://127.0.0.1:PORT) of ``app`` served by uvicorn; stop on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=seconds)


def completions_app(reply):
    """A scripted OpenAI-compatible ``/v1/completions`` endpoint: ``reply(prompt) -> text`` for
    every prompt of a request (stop strings stripped, as real servers do)."""
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        texts = [reply(p) for p in body["prompt"]]
        return {"choices": [{"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(texts)]}

    return app
