"""The retrieval server (protocol, validation, limits) and the client against a real uvicorn:
a dead server, a killed server and a server that never answers become observations."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from autocoa.data.corpus import Doc
from autocoa.tools import Toolbox
from autocoa.tools.client import RemoteRetriever, RetrievalError, parse_result
from autocoa.tools.index import BM25Index
from autocoa.tools.search import SearchTool
from autocoa.tools.server import ServerLimits, create_app

DOCS = [Doc(f"d{i}", f"Entity {i}", f"Entity {i} was born in city{i % 7} and founded company{i}.") for i in range(40)]
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def index():
    return BM25Index.build(DOCS, backend="numpy")


@pytest.fixture(scope="module")
def client(index):
    limits = ServerLimits(default_topk=2, max_topk=5, max_queries=4, max_query_chars=50, max_body_bytes=2048)
    return TestClient(create_app(index, limits), base_url="http://127.0.0.1")


def test_protocol_with_and_without_scores(client, index):
    r = client.post("/retrieve", json={"queries": ["company3", "city2 born"], "topk": 3, "return_scores": True})
    assert r.status_code == 200
    result = r.json()["result"]
    assert len(result) == 2 and len(result[0]) >= 1 and len(result[1]) == 3
    first = result[0][0]
    assert set(first) == {"document", "score"} and set(first["document"]) == {"id", "contents"}
    assert first["document"] == {"id": "d3", "contents": '"Entity 3"\nEntity 3 was born in city3 and founded company3.'}
    assert isinstance(first["score"], float)
    # Search-R1: without return_scores the lists hold the plain documents; topk defaults to the server's
    r = client.post("/retrieve", json={"queries": ["company3"]})
    assert r.json() == {"result": [[DOCS[3].to_dict()]]}
    assert len(client.post("/retrieve", json={"queries": ["city2"]}).json()["result"][0]) == 2
    # the client reads what the server writes, to the same hits as the local index
    hits = parse_result(client.post("/retrieve", json={"queries": ["city2 born"], "topk": 3}).json(), 1)
    assert [d.id for d, _ in hits[0]] == [d.id for d, _ in index.search(["city2 born"], 3)[0]]
    assert client.get("/health").json() == {"status": "ok", "documents": 40, "index": "BM25Index"}
    assert client.post("/retrieve", json={"queries": []}).json() == {"result": []}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b'"just a string"', 422, "expected a JSON object"),
        (b'{"query": ["x"]}', 422, "unknown field"),
        (b'{"queries": "x"}', 422, "list of strings"),
        (b'{"queries": [1, 2]}', 422, "list of strings"),
        (b'{"queries": ["x"], "topk": 6}', 422, "topk 6 out of range"),
        (b'{"queries": ["x"], "topk": 0}', 422, "out of range"),
        (b'{"queries": ["x"], "topk": "3"}', 422, "integer"),
        (b'{"queries": ["x"], "return_scores": "yes"}', 422, "true or false"),
        (json.dumps({"queries": ["x"] * 5}).encode(), 413, "5 queries in one request; at most 4"),
        (json.dumps({"queries": ["x" * 51]}).encode(), 413, "a query of 51 characters; at most 50"),
        (json.dumps({"queries": ["x"], "pad": "y" * 3000}).encode(), 413, "request body"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason(client, body, status, message):
    r = client.post("/retrieve", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert message in r.json()["error"]


def test_client_reports_a_refused_request(client):
    retriever = RemoteRetriever("http://127.0.0.1", retries=0)
    retriever._client = client  # route the real client code through the in-process app
    with pytest.raises(RetrievalError, match=r"413.*at most 4"):
        retriever.search(["q"] * 5, k=2)
    assert [d.id for d, _ in retriever.search(["company7"], k=1)[0]] == ["d7"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server did not start")


def test_real_server_then_killed_mid_run(tmp_path, index):
    index.save(tmp_path / "ix")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-c", "from autocoa.cli import main; main()", "serve-retriever"]
    cmd += ["--index", str(tmp_path / "ix"), "--port", str(port), "--backend", "numpy"]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_healthy(url, proc)
        box = Toolbox([SearchTool(RemoteRetriever(url, timeout=5, retries=1, backoff=0.05), k=1)])
        obs = box.run([("search", "company5"), ("search", "company6")])
        assert obs == [
            "Doc 1 (Title: Entity 5) Entity 5 was born in city5 and founded company5.",
            "Doc 1 (Title: Entity 6) Entity 6 was born in city6 and founded company6.",
        ]
        proc.kill()
        proc.wait(timeout=10)
        start = time.monotonic()
        obs = box.run([("search", "company5"), ("search", "company6")])
        assert time.monotonic() - start < 5
        assert all(o.startswith("[error] search failed: RetrievalUnavailable:") for o in obs), obs
        assert "unreachable" in obs[0] and "after 2 attempts" in obs[0]
        assert box.stats.errors["search"] == 2 and box.stats.calls["search"] == 4
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_server_that_never_answers_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    stop = threading.Event()

    def accept_and_hold():  # accept connections, read nothing, answer nothing
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept_and_hold, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        box = Toolbox([SearchTool(RemoteRetriever(url, timeout=0.3, retries=1, backoff=0.01))])
        start = time.monotonic()
        (obs,) = box.run([("search", "anything")])
        assert time.monotonic() - start < 3
        assert obs.startswith("[error] search timed out:") and "after 2 attempts" in obs
        assert box.stats.timeouts["search"] == 1
    finally:
        stop.set()
        t.join(timeout=2)
        for c in accepted:
            c.close()
        listener.close()


def test_nothing_listening():
    box = Toolbox([SearchTool(RemoteRetriever(f"http://127.0.0.1:{_free_port()}", retries=2, backoff=0.01))])
    (obs,) = box.run([("search", "q")])
    assert obs.startswith("[error] search failed: RetrievalUnavailable:") and "after 3 attempts" in obs
