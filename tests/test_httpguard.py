"""Both local servers refuse what a hostile web page or an unlucky client can send: other Host
headers (DNS rebinding), non-JSON bodies (simple cross-origin requests), missing API keys;
the retriever bounds one request's work and does not hold its lock for a whole giant batch;
both OpenAPI documents declare their request bodies."""

from __future__ import annotations

import doctest

import pytest
from fastapi.testclient import TestClient

from autocoa import httpguard
from autocoa.agent.config import AgentConfig
from autocoa.data.corpus import Doc
from autocoa.serve.app import create_app as agent_app
from autocoa.tools.client import RemoteRetriever
from autocoa.tools.index import BM25Index
from autocoa.tools.server import ServerLimits
from autocoa.tools.server import create_app as retriever_app
from tests.agent_helpers import FakeSearch
from tests.serve_helpers import echo_engine

DOCS = [Doc(f"d{i}", f"Entity {i}", f"Entity {i} founded company{i}.") for i in range(20)]
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "Where is Varnelo?"}]}


class CountingIndex(BM25Index):
    calls: list[int]

    def search(self, queries, k=3):
        self.calls.append(len(queries))
        return super().search(queries, k)


@pytest.fixture(scope="module")
def index():
    ix = CountingIndex.build(DOCS, backend="numpy")
    ix.calls = []
    return ix


@pytest.fixture(scope="module")
def clients(tokenizer, index):
    """One TestClient per app for the module (closing a client's lifespan stops its batcher);
    each request names its Host header."""
    cfg = AgentConfig(max_new_tokens=60, max_answer_tokens=8)
    apps = {
        "agent": agent_app(echo_engine(tokenizer, [FakeSearch()]), cfg, model_name="tiny"),
        "keyed": agent_app(echo_engine(tokenizer, [FakeSearch()]), cfg, model_name="tiny", api_key="s3cret"),
        "custom": agent_app(echo_engine(tokenizer, [FakeSearch()]), cfg, model_name="tiny", allowed_hosts=["gpu-box"]),
        "retriever": retriever_app(index, ServerLimits(max_results=40, chunk_queries=4), api_key="s3cret"),
    }
    opened = {k: TestClient(a, base_url="http://127.0.0.1") for k, a in apps.items()}
    for c in opened.values():
        c.__enter__()
    yield opened
    for c in opened.values():
        c.__exit__(None, None, None)


KEY = {"Authorization": "Bearer s3cret"}


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "[::1]:8000", "LOCALHOST:1"])
def test_loopback_hosts_are_served(clients, host):
    assert clients["agent"].post("/v1/chat/completions", json=CHAT, headers={"host": host}).status_code == 200


def test_other_hosts_are_refused_in_each_servers_error_shape(clients):
    evil = {"host": "attacker.example"}
    r = clients["agent"].post("/v1/chat/completions", json=CHAT, headers=evil)
    assert r.status_code == 400 and r.json()["error"]["code"] == "host_not_allowed"
    assert clients["agent"].get("/health", headers=evil).status_code == 400  # rebinding reads nothing
    r = clients["retriever"].post("/retrieve", json={"queries": ["x"]}, headers={**evil, **KEY})
    assert r.status_code == 400 and "not allowed" in r.json()["error"]
    assert (
        clients["custom"].post("/v1/chat/completions", json=CHAT, headers={"host": "gpu-box:8000"}).status_code == 200
    )
    assert clients["custom"].post("/v1/chat/completions", json=CHAT).status_code == 400  # only what was allowed


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None])
def test_only_json_bodies_are_taken(clients, ctype):
    import json

    c = clients["agent"]
    headers = {"content-type": ctype} if ctype else {}
    r = c.post("/v1/chat/completions", content=json.dumps(CHAT), headers=headers)
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    ok = c.post(
        "/v1/chat/completions", content=json.dumps(CHAT), headers={"content-type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200


def test_api_key_on_both_servers(clients):
    c = clients["keyed"]
    assert c.post("/v1/chat/completions", json=CHAT).status_code == 401
    assert c.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/v1/chat/completions", json=CHAT, headers=KEY).status_code == 200
    assert c.post("/v1/chat/completions", json=CHAT, headers={"x-api-key": "s3cret"}).status_code == 200
    assert c.get("/health").status_code == 200  # open: no data in it
    assert c.get("/v1/models").status_code == 401
    r = clients["retriever"]
    assert r.post("/retrieve", json={"queries": ["company3"]}).status_code == 401
    assert r.post("/retrieve", json={"queries": ["company3"]}, headers=KEY).status_code == 200


def test_the_client_sends_its_key(monkeypatch):
    assert RemoteRetriever("http://127.0.0.1", api_key="k")._client.headers["authorization"] == "Bearer k"
    monkeypatch.setenv("AUTOCOA_API_KEY", "from-env")
    assert RemoteRetriever("http://127.0.0.1")._client.headers["authorization"] == "Bearer from-env"
    monkeypatch.delenv("AUTOCOA_API_KEY")
    assert "authorization" not in RemoteRetriever("http://127.0.0.1")._client.headers


def test_retriever_bounds_work_and_locks_per_chunk(clients, index):
    c = clients["retriever"]
    r = c.post("/retrieve", json={"queries": ["company1"] * 11, "topk": 4}, headers=KEY)
    assert r.status_code == 413 and "44 documents" in r.json()["error"]  # queries x topk over 40
    index.calls.clear()
    r = c.post("/retrieve", json={"queries": [f"company{i}" for i in range(10)], "topk": 3}, headers=KEY)
    assert r.status_code == 200 and len(r.json()["result"]) == 10
    assert index.calls == [4, 4, 2]  # one index call (and lock hold) per chunk of 4
    assert [h[0]["id"] for h in r.json()["result"]][:3] == ["d0", "d1", "d2"]  # chunks keep the order


def test_openapi_documents_declare_the_request_bodies(clients):
    body = clients["agent"].get("/openapi.json").json()["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] and {"model", "messages"} <= set(schema["required"])
    doc = clients["retriever"].get("/openapi.json", headers=KEY).json()
    body = doc["paths"]["/retrieve"]["post"]["requestBody"]
    assert set(body["content"]["application/json"]["schema"]["properties"]) == {"queries", "topk", "return_scores"}


def test_doctests():
    assert doctest.testmod(httpguard).failed == 0
