"""Typed requests, checked once where they are made: Retrieval (an index or a server, one of them)
and EvalRequest (how an evaluation's options go together)."""

from __future__ import annotations

import doctest

import pytest

from autocoa.config import ConfigError
from autocoa.eval import request
from autocoa.tools import search as retrieval
from autocoa.tools.search import Retrieval


@pytest.mark.parametrize("module", [retrieval, request])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_retrieval_is_one_existing_index_or_one_url(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        Retrieval(tmp_path, "http://127.0.0.1:8001")
    with pytest.raises(FileNotFoundError, match="no such index directory"):
        Retrieval(tmp_path / "missing")
    with pytest.raises(ValueError, match="starts with http"):
        Retrieval(url="127.0.0.1:8001")
    assert Retrieval(str(tmp_path)).describe() == {"index": str(tmp_path), "retriever": None}  # a str path is a Path


def test_eval_request_names_every_wrong_field(tmp_path):
    from autocoa.agent.config import AgentConfig

    sim = AgentConfig(env="simulated")
    with pytest.raises(ConfigError) as e:
        request.EvalRequest.of(data="q.jsonl", out="o", model="m", methods=["cot"], limit=0, agent=sim)
    assert "methods: unknown method cot" in str(e.value) and "limit: Input should be greater than or equal to 1" in str(
        e.value
    )
    with pytest.raises(ConfigError, match="a model is needed, unless every method is coa with an LLM URL"):
        request.EvalRequest.of(data="q.jsonl", out="o", methods=["coa"], retrieval=Retrieval(tmp_path))
    only = request.EvalRequest.of(
        data="q.jsonl", out="o", methods=["coa"], retrieval=Retrieval(tmp_path), llm_url="http://127.0.0.1:9"
    )
    assert only.endpoint_only and only.name == "default"  # no local model runs
    with pytest.raises(ConfigError, match="coa needs --index DIR"):
        request.EvalRequest.of(data="q.jsonl", out="o", model="m", methods=["coa"], agent=sim)
