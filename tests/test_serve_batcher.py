"""The request batcher: which requests share a generate call, early resolution of short
requests, failures confined to their batch, and a full queue answered 503."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from autocoa.agent.config import AgentConfig
from autocoa.agent.engine import Engine
from autocoa.serve.app import ServeLimits, create_app
from autocoa.serve.batcher import Batcher, QueueFull
from autocoa.tools.base import Toolbox
from tests.agent_helpers import FakeSearch, ScriptedLM
from tests.serve_helpers import echo_engine, echo_policy


class CountingEngine(Engine):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls: list[tuple[int, float]] = []  # (rows, temperature) of each generate call

    def generate(self, prompts, cfg=None, **kw):
        self.calls.append((len(prompts), cfg.temperature))
        return super().generate(prompts, cfg, **kw)


def prompt(word: str) -> str:
    return f"Question: Where is {word}?\n"


def test_greedy_and_sampling_requests_share_a_call_and_seeded_samplers_run_alone(tokenizer):
    eng = CountingEngine(ScriptedLM(len(tokenizer), echo_policy(tokenizer)), tokenizer, Toolbox([FakeSearch()]))
    batcher = Batcher(eng, max_wait_s=0.3)
    try:
        greedy, hot = AgentConfig(), AgentConfig(temperature=1.0)
        futures = [
            batcher.submit(prompt("Varnelo"), greedy),
            batcher.submit(prompt("Osmira"), greedy.model_copy(update={"n": 2})),
            batcher.submit(prompt("Lumora"), hot),
            batcher.submit(prompt("Kesh"), hot.model_copy(update={"seed": 1})),
            batcher.submit(prompt("Pelto"), hot.model_copy(update={"seed": 1})),
        ]
        results = [f.result(timeout=30) for f in futures]
    finally:
        batcher.close()
    assert sorted(eng.calls) == [(1, 1.0), (1, 1.0), (4, 0.0)]  # temperature is each row's own
    assert [len(r) for r in results] == [1, 2, 1, 1, 1]
    assert [r.trajectory.answer for r in results[1]] == ["Osmira", "Osmira"]
    assert [r.index for r in results[1]] == [0, 1]  # choice indices, not batch rows
    assert results[0][0].trajectory.answer == "Varnelo"
    assert batcher.stats.as_dict() == {
        "requests": 5,
        "batches": 3,
        "rows": 6,
        "largest_batch": 4,
        "failed_batches": 0,
        "isolated": 0,
    }


def test_a_short_request_is_not_held_back_by_a_long_one(tokenizer):
    batcher = Batcher(echo_engine(tokenizer, [FakeSearch()]), max_wait_s=0.3)
    try:
        long = batcher.submit(prompt("Varnelo" * 8), AgentConfig())
        seen = []
        short = batcher.submit(prompt("Kesh"), AgentConfig())
        short.add_done_callback(lambda _f: seen.append(long.done()))
        assert short.result(timeout=30)[0].trajectory.answer == "Kesh"
        assert long.result(timeout=30)[0].trajectory.answer == "Varnelo" * 8
    finally:
        batcher.close()
    assert seen == [False] and batcher.stats.batches == 1


def test_a_full_queue_is_a_503_and_a_failed_batch_fails_only_its_requests(tokenizer):
    release, entered = threading.Event(), threading.Event()
    policy = echo_policy(tokenizer)
    calls = []

    def blocking(history):
        calls.append(1)
        if len(calls) == 1:
            entered.set()
            release.wait(10)
            raise RuntimeError("device lost")
        return policy(history)

    eng = Engine(ScriptedLM(len(tokenizer), blocking), tokenizer, Toolbox([FakeSearch()]))
    app = create_app(eng, AgentConfig(), ServeLimits(max_queue=1, batch_wait_ms=0), model_name="tiny")
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Where is Varnelo?"}]}
    statuses = []
    with TestClient(app, base_url="http://127.0.0.1") as c:

        def post():
            statuses.append(c.post("/v1/chat/completions", json=body).status_code)

        first = threading.Thread(target=post)
        first.start()
        assert entered.wait(10)  # the worker is inside the first batch
        second = threading.Thread(target=post)
        second.start()
        for _ in range(200):  # until the second request waits in the queue
            if app.state.batcher._q.full():
                break
            threading.Event().wait(0.01)
        r = c.post("/v1/chat/completions", json=body)
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
        release.set()
        first.join(10)
        second.join(10)
    assert sorted(statuses) == [200, 500]


def test_a_request_that_fails_the_model_fails_alone(tokenizer):
    """A poisoned row makes its batch's generate raise: the batch's other requests are decoded
    again alone and succeed; only the poisoned one gets the error."""
    policy = echo_policy(tokenizer)

    def poisoned(history):
        if "Poison" in tokenizer.decode(history):
            raise RuntimeError("invalid multinomial distribution")
        return policy(history)

    eng = CountingEngine(ScriptedLM(len(tokenizer), poisoned), tokenizer, Toolbox([FakeSearch()]))
    batcher = Batcher(eng, max_wait_s=0.3)
    try:
        words = ["Varnelo", "Osmira", "Poison", "Lumora"]
        futures = [batcher.submit(prompt(w), AgentConfig()) for w in words]
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result(timeout=30)[0].trajectory.answer)
            except RuntimeError as e:
                outcomes.append(f"error: {e}")
    finally:
        batcher.close()
    assert outcomes == ["Varnelo", "Osmira", "error: invalid multinomial distribution", "Lumora"]
    assert eng.calls[0] == (4, 0.0) and len(eng.calls) == 5  # the batch, then each of its requests alone
    assert (batcher.stats.failed_batches, batcher.stats.isolated) == (2, 4)


def test_a_tiny_top_p_samples_the_top_token_instead_of_failing_the_batch(tokenizer):
    from autocoa.agent.engine import Engine as RealEngine
    from tests.agent_helpers import tiny_llama

    eng = RealEngine(tiny_llama(tokenizer, seed=0), tokenizer)
    cfgs = [
        AgentConfig(temperature=1.0, top_p=1e-300, max_new_tokens=12, max_answer_tokens=4, env="simulated"),
        AgentConfig(max_new_tokens=12, max_answer_tokens=4, env="simulated"),
    ]
    greedy = eng.generate([prompt("Varnelo")], AgentConfig(max_new_tokens=12, max_answer_tokens=4, env="simulated"))[0]
    out = eng.generate([prompt("Varnelo")] * 2, cfgs[1], row_configs=cfgs)
    assert out[0].ids == greedy.ids == out[1].ids  # top_p rounds to 0 in float32: only the top token is left


def test_queue_full_is_raised_by_submit(tokenizer):
    release = threading.Event()

    class Stuck:
        tags = None

        def decode(self, ids):
            return ""

        def generate(self, prompts, cfg, on_step=None, admit=None, row_configs=None):
            release.wait(10)
            raise RuntimeError("boom")

    batcher = Batcher(Stuck(), max_wait_s=0, max_queue=1)
    try:
        first = batcher.submit("a", AgentConfig())
        for _ in range(200):  # until the worker took the first one
            if batcher._q.empty():
                break
            threading.Event().wait(0.01)
        second = batcher.submit("b", AgentConfig())
        with pytest.raises(QueueFull, match="1 requests are waiting"):
            batcher.submit("c", AgentConfig())
        release.set()
        for f in (first, second):
            with pytest.raises(RuntimeError, match="boom"):
                f.result(timeout=10)
    finally:
        release.set()
        batcher.close()


def _while_one_decodes(tokenizer, words, max_batch_rows=64, cancel_first=False, max_rows_per_call=None, later=None):
    """Submit a long request, then (once it streams) one request per word, with the config
    changes ``later``; return the batcher, the engine, the results and each word's result
    when decoded alone."""
    from tests.agent_helpers import chaotic

    eng = Engine(chaotic(tokenizer), tokenizer)
    cfg = AgentConfig(env="simulated", max_new_tokens=200, max_answer_tokens=4)  # on CPU: on for a server
    later_cfg = cfg.model_copy(update=later or {})
    alone = [r.ids for r in eng.generate([prompt(w) for w in words], later_cfg.model_copy(update={"batch_size": 1}))]
    started = threading.Event()
    batcher = Batcher(eng, max_batch_rows=max_batch_rows, max_wait_s=0)
    if max_rows_per_call is not None:
        batcher.max_rows_per_call = max_rows_per_call
    try:
        long = batcher.submit(prompt("Varnelo"), cfg, on_pieces=lambda j, pieces: started.set())
        assert started.wait(30)
        futures = [batcher.submit(prompt(w), later_cfg) for w in words]
        if cancel_first:
            assert futures[0].cancel()
            futures = futures[1:]
        results = [f.result(timeout=60)[0] for f in futures]
        first = long.result(timeout=60)[0]
    finally:
        batcher.close()
    assert len(first.ids) > 150  # (greedy, so always) long enough to still decode when the others arrive
    return batcher, eng, results, alone


def test_a_request_joins_the_batch_that_is_decoding(tokenizer):
    """A request that arrives while another decodes is admitted into the running generate
    call (a new slot), not queued behind it, and decodes exactly as it would alone."""
    batcher, eng, (got,), (alone,) = _while_one_decodes(tokenizer, ["Kesh"])
    assert batcher.stats.batches == 1 and batcher.stats.largest_batch == 2
    assert eng.stats.refills == 1  # it took a new slot while the first row decoded
    assert got.ids == alone


def test_requests_beyond_the_free_slots_wait_for_one_in_the_same_call(tokenizer):
    batcher, _, got, alone = _while_one_decodes(tokenizer, ["Kesh", "Osmira", "Lumora"], max_batch_rows=2)
    assert batcher.stats.batches == 1 and batcher.stats.largest_batch == 4
    assert [r.ids for r in got] == alone


def test_a_call_admits_a_bounded_number_of_rows_then_drains(tokenizer):
    batcher, _, got, alone = _while_one_decodes(tokenizer, ["Kesh", "Osmira"], max_rows_per_call=2)
    assert batcher.stats.batches == 2 and batcher.stats.largest_batch == 2
    assert [r.ids for r in got] == alone


def test_requests_with_other_budgets_share_the_running_call(tokenizer):
    """max_tokens is a row's own budget: a short request joins a long one's call and stops at
    its own budget, exactly as alone."""
    batcher, _, (short,), (alone,) = _while_one_decodes(tokenizer, ["Kesh"], later={"max_new_tokens": 20})
    assert batcher.stats.batches == 1 and short.ids == alone and len(short.ids) <= 20


def test_a_cancelled_request_does_not_fail_the_others(tokenizer):
    _, _, got, alone = _while_one_decodes(tokenizer, ["Kesh", "Osmira"], cancel_first=True)
    assert [r.ids for r in got] == alone[1:]
