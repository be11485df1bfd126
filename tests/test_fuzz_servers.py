"""Property-based fuzzing of both servers (bounded in examples and time): a valid request with any
field replaced by arbitrary JSON, arbitrary bodies and content types. No answer may be a 5xx,
every error has the server's error shape, and the server keeps answering normal requests."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autocoa.agent.config import AgentConfig
from autocoa.data.corpus import Doc
from autocoa.serve.app import ServeLimits
from autocoa.serve.app import create_app as agent_app
from autocoa.tools.index import BM25Index
from autocoa.tools.server import create_app as retriever_app
from tests.agent_helpers import FakeSearch
from tests.serve_helpers import echo_engine

SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "Where is Varnelo?"}], "max_tokens": 40}
CHAT_FIELDS = [
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "n",
    "stream",
    "stream_options",
    "user",
    "env",
    "max_actions",
    "extra",
]
RETRIEVE = {"queries": ["company3"], "topk": 2, "return_scores": True}


@pytest.fixture(scope="module")
def clients(tokenizer):
    cfg = AgentConfig(max_new_tokens=60, max_answer_tokens=8)
    agent = agent_app(
        echo_engine(tokenizer, [FakeSearch()]), cfg, ServeLimits(max_tokens=100, batch_wait_ms=0), model_name="tiny"
    )
    index = BM25Index.build([Doc(f"d{i}", f"E{i}", f"E{i} founded company{i}.") for i in range(10)], backend="numpy")
    opened = {
        k: TestClient(a, base_url="http://127.0.0.1")
        for k, a in (("agent", agent), ("retriever", retriever_app(index)))
    }
    for c in opened.values():
        c.__enter__()
    yield opened
    for c in opened.values():
        c.__exit__(None, None, None)


def _post(client, path: str, body: object, content_type: str = "application/json"):
    raw = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    return client.post(path, content=raw, headers={"content-type": content_type})


# values near the edges the model sees (tiny positive floats, huge ints) as well as any JSON
numbers = st.floats(min_value=0, max_value=2) | st.integers(min_value=-(2**70), max_value=2**70)


@SETTINGS
@given(updates=st.dictionaries(st.sampled_from(CHAT_FIELDS), json_values | numbers, max_size=3), drop=st.booleans())
def test_agent_server_never_answers_5xx(clients, updates, drop):
    body = {**CHAT, **updates}
    if drop:
        body.pop("messages", None)
    r = _post(clients["agent"], "/v1/chat/completions", body)
    assert r.status_code < 500, (body, r.text)
    if r.status_code >= 400:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}


@SETTINGS
@given(
    body=st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()),
    ctype=st.sampled_from(["application/json", "text/plain", ""]),
)
def test_any_body_is_a_clean_4xx_or_an_answer(clients, body, ctype):
    for client, path in ((clients["agent"], "/v1/chat/completions"), (clients["retriever"], "/retrieve")):
        r = _post(client, path, body, ctype)
        assert r.status_code < 500, (path, body, r.text)
        assert r.status_code != 200 or path == "/retrieve"  # no arbitrary body is a valid chat request


@SETTINGS
@given(field=st.sampled_from(["queries", "topk", "return_scores", "other"]), value=json_values)
def test_retriever_never_answers_5xx(clients, field, value):
    body = {**RETRIEVE, field: value}
    r = _post(clients["retriever"], "/retrieve", body)
    assert r.status_code < 500, (body, r.text)
    if r.status_code >= 400:
        assert set(r.json()) == {"error"}


def test_the_servers_still_answer_after_the_fuzzing(clients):
    assert _post(clients["agent"], "/v1/chat/completions", CHAT).json()["choices"][0]["message"]["content"] == "Varnelo"
    assert _post(clients["retriever"], "/retrieve", RETRIEVE).status_code == 200


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    temperature=st.floats(min_value=0, max_value=2),
    top_p=st.floats(min_value=0, max_value=1, exclude_min=True),
    seed=st.none() | st.integers(min_value=-(2**63), max_value=2**64 - 1),
)
def test_every_sampling_setting_the_schema_takes_decodes(clients, temperature, top_p, seed):
    """Whatever the schema accepts must decode, down to float32 underflow (top_p 1e-300 -> 0)."""
    body = {**CHAT, "temperature": temperature, "top_p": top_p, "seed": seed}
    r = _post(clients["agent"], "/v1/chat/completions", body)
    assert r.status_code in (200, 400), (body, r.text)
    if r.status_code == 400:  # only what the schema refuses with a reason: a temperature below 1e-3
        assert r.json()["error"]["param"] == "temperature" and 0 < temperature < 1e-3
