"""The agent server in process (TestClient): response shape, usage, budget, tool failures,
streaming events and OpenAI-style errors for every kind of bad request."""

from __future__ import annotations

import json
import typing

import pytest
from fastapi.testclient import TestClient

from autocoa.agent.config import AgentConfig
from autocoa.agent.engine import Engine
from autocoa.serve.app import ServeLimits, create_app
from autocoa.trajectory import encode_prompt
from tests.agent_helpers import FakeSearch, ScriptedLM
from tests.serve_helpers import echo_engine

LIMITS = ServeLimits(max_prompt_tokens=40, max_tokens=200, max_n=3, max_body_bytes=2048, batch_wait_ms=1)
BASE = AgentConfig(max_new_tokens=100, max_answer_tokens=8)


def ask(question: str = "Where is Varnelo?", **kw) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": question}], **kw}


@pytest.fixture(scope="module")
def client(tokenizer):
    app = create_app(echo_engine(tokenizer, [FakeSearch()]), BASE, LIMITS, model_name="tiny")
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def test_completion_answer_trajectory_and_usage(client, tokenizer):
    r = client.post("/v1/chat/completions", json=ask())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "tiny" and body["id"].startswith("chatcmpl-")
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "Varnelo"} and choice["finish_reason"] == "stop"
    agent = choice["agent"]
    assert agent["tool_calls"] == [
        {"tool": "search", "argument": "Varnelo", "result": "Doc 1 (Title: Varnelo) about Varnelo"}
    ]
    assert agent["n_tool_calls"] == 1 and agent["env"] == "real" and agent["well_formed"]
    assert [s["kind"] for s in agent["segments"]] == ["think", "action", "observation", "answer"]
    usage = body["usage"]
    prompt_ids = encode_prompt(tokenizer, "Question: Where is Varnelo?\n")
    assert usage["prompt_tokens"] == len(prompt_ids)
    assert usage["completion_tokens"] == agent["n_tokens"] == usage["sampled_tokens"] + usage["inserted_tokens"]
    assert usage["inserted_tokens"] > 5 and usage["total_tokens"] == len(prompt_ids) + agent["n_tokens"]
    # the question is the last user message, whatever came before
    history = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Who is Osmira?"}]
    history += [
        {"role": "assistant", "content": "Osmira"},
        {"role": "user", "content": [{"type": "text", "text": "And Lumora?"}]},
    ]
    r = client.post("/v1/chat/completions", json={"model": "tiny", "messages": history})
    assert r.json()["choices"][0]["message"]["content"] == "Lumora"


def test_n_env_and_budget_map_onto_the_agent_config(client):
    body = client.post("/v1/chat/completions", json=ask(n=2, env="simulated", temperature=0.0)).json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    for c in body["choices"]:
        assert c["message"]["content"] == "Varnelo" and c["agent"]["n_tool_calls"] == 0
        assert c["agent"]["tool_calls"][0]["result"] == "Varnelo is imagined"
    assert body["usage"]["completion_tokens"] == sum(c["agent"]["n_tokens"] for c in body["choices"])
    # a tight budget forces the answer: finish_reason "length", the response within max_tokens
    body = client.post("/v1/chat/completions", json=ask(max_tokens=14)).json()
    c = body["choices"][0]
    assert c["finish_reason"] == "length" and c["agent"]["forced_answer"] and c["agent"]["n_tokens"] <= 14


def test_a_failing_tool_is_reported_in_the_trajectory(tokenizer):
    app = create_app(echo_engine(tokenizer, [FakeSearch(fail=True)]), BASE, LIMITS, model_name="tiny")
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.post("/v1/chat/completions", json=ask())
    assert r.status_code == 200
    call = r.json()["choices"][0]["agent"]["tool_calls"][0]
    assert call["result"].startswith("[error] search failed: ConnectionError: index unreachable")


def test_a_failing_model_is_a_500_and_the_server_goes_on(tokenizer):
    calls = []

    def policy(history):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        return tokenizer.eos_token_id

    app = create_app(
        Engine(ScriptedLM(len(tokenizer), policy), tokenizer), BASE.model_copy(update={"env": "simulated"}), LIMITS
    )
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.post("/v1/chat/completions", json=ask(model="autocoa"))
        assert r.status_code == 500
        err = r.json()["error"]
        assert err["type"] == "server_error" and "server log" in err["message"]
        assert "CUDA" not in err["message"] and "RuntimeError" not in err["message"]  # internals stay in the log
        r = c.post("/v1/chat/completions", json=ask(model="autocoa"))
        assert r.status_code == 200 and r.json()["choices"][0]["agent"]["finish"] == "eos"
        # no tools on this server: the real environment is refused
        r = c.post("/v1/chat/completions", json=ask(model="autocoa", env="real"))
        assert r.status_code == 400 and r.json()["error"]["param"] == "env"


def events(client, body: dict) -> list:
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_streaming_chunks(client):
    chunks = events(client, ask(stream=True, stream_options={"include_usage": True}))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    first, *middle, last, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in middle]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    content = "".join(d.get("content", "") for d in [*deltas, last["choices"][0]["delta"]])
    assert content == "Varnelo"
    assert reasoning.startswith("<think>look up Varnelo</think><search>Varnelo</search><result>")
    assert {d["kind"] for d in deltas if "kind" in d} == {"think", "action", "observation"}
    assert sum("reasoning_content" in d for d in deltas) > 5  # token by token
    fin = last["choices"][0]
    assert fin["finish_reason"] == "stop" and fin["agent"]["tool_calls"][0]["argument"] == "Varnelo"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == fin["agent"]["n_tokens"]
    # n=2 streams both choices; without include_usage there is no usage chunk
    chunks = events(client, ask(stream=True, n=2))
    assert {c["choices"][0]["index"] for c in chunks} == {0, 1}
    assert all("usage" not in c for c in chunks)
    finals = [c["choices"][0] for c in chunks if c["choices"][0]["finish_reason"]]
    assert len(finals) == 2


@pytest.mark.parametrize(
    ("body", "status", "param", "message"),
    [
        (b"{not json", 400, None, "could not parse the JSON"),
        (b"[1, 2]", 400, None, "JSON object"),
        (json.dumps(ask(foo=1)).encode(), 400, "foo", "Unrecognized request argument supplied: foo"),
        (json.dumps(ask(model="gpt-4")).encode(), 404, "model", "does not exist"),
        (json.dumps({"model": "tiny", "messages": []}).encode(), 400, "messages", "at least 1"),
        (json.dumps({"model": "tiny"}).encode(), 400, "messages", "Field required"),
        (
            json.dumps({"model": "tiny", "messages": [{"role": "system", "content": "x"}]}).encode(),
            400,
            "messages",
            "no user",
        ),
        (json.dumps(ask(" ")).encode(), 400, "messages", "empty"),
        (json.dumps(ask("word " * 60)).encode(), 400, "messages", "at most 40"),
        (json.dumps(ask(max_tokens=201)).encode(), 400, "max_tokens", "at most 200"),
        (json.dumps(ask(max_completion_tokens=500)).encode(), 400, "max_completion_tokens", "at most 200"),
        (json.dumps(ask(max_tokens=5)).encode(), 400, "max_tokens", "room for a forced answer"),
        (json.dumps(ask(n=4)).encode(), 400, "n", "at most 3"),
        (json.dumps(ask(temperature=3)).encode(), 400, "temperature", "less than or equal to 2"),
        (json.dumps(ask(max_actions=99)).encode(), 400, "max_actions", "at most 32"),
        (json.dumps(ask(pad="y" * 3000)).encode(), 413, None, "request body"),
        # values the model would see differently from the schema, and coercions refused
        (json.dumps(ask(seed=2**64)).encode(), 400, "seed", "less than or equal to"),
        (json.dumps(ask(seed=-(2**63) - 1)).encode(), 400, "seed", "greater than or equal to"),
        (json.dumps(ask(temperature=1e-300)).encode(), 400, "temperature", "at least 0.001"),
        (json.dumps(ask(n="3")).encode(), 400, "n", "valid integer"),
        (json.dumps(ask(stream="yes")).encode(), 400, "stream", "valid boolean"),
        (json.dumps(ask(max_actions=False)).encode(), 400, "max_actions", "valid integer"),
        (
            b'{"model": "tiny", "messages": [{"role": "user", "content": "\\ud800"}]}',
            400,
            "messages.0.content",
            "surrogate",
        ),
        (b'{"model": "\\ud800", "messages": [{"role": "user", "content": "x"}]}', 400, "model", "surrogate"),
        (b"[" * 100_000 + b"]" * 100_000, 413, None, "request body"),
    ],
)
def test_bad_requests_get_openai_errors(client, body, status, param, message):
    r = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    assert err["param"] == param and message in err["message"]
    if "at most 40" in message:
        assert err["code"] == "context_length_exceeded"


def test_models_health_and_unknown_routes(client):
    assert client.get("/v1/models").json()["data"][0]["id"] == "tiny"
    before = client.get("/health").json()["batcher"]["requests"]
    assert client.post("/v1/chat/completions", json=ask()).status_code == 200
    assert client.get("/health").json()["batcher"]["requests"] == before + 1
    r = client.get("/v1/nope")
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_json_nested_beyond_the_parser_is_a_400_not_a_crash():
    import asyncio

    from autocoa.httpbody import BodyError, read_json

    class Request:
        headers: typing.ClassVar[dict] = {}

        def __init__(self, body: bytes):
            self.body = body

        async def stream(self):
            yield self.body

    with pytest.raises(BodyError, match="nested too deeply") as e:
        asyncio.run(read_json(Request(b"[" * 100_000 + b"]" * 100_000), 10**6))
    assert e.value.status == 400
    assert asyncio.run(read_json(Request(b'{"a": [1]}'), 100)) == {"a": [1]}
