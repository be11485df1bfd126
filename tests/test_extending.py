"""docs/extending.md's examples run as written: a new tool and a new evaluation method, each
added through its registry, and the method evaluated end to end beside the agent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autocoa.eval import methods as method_registry
from autocoa.tools import _REGISTRY as TOOLS

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture
def registered():
    """Run the page's Python, then take its registrations back out."""
    namespace: dict = {}
    for block in python_blocks():
        exec(compile(block, str(DOC), "exec"), namespace)
    yield namespace
    TOOLS.pop("lookup", None)
    method_registry._REGISTRY.pop("one_search", None)


def test_the_page_has_both_examples():
    assert len(python_blocks()) == 2


def test_the_new_method_is_evaluated_beside_the_agent(registered, tokenizer, tmp_path):
    from autocoa.agent.config import AgentConfig
    from autocoa.data.qa import QARecord
    from autocoa.eval.runner import evaluate
    from tests.agent_helpers import tiny_llama

    assert "one_search" in method_registry.names() and "lookup" in TOOLS
    records = [QARecord(id=str(i), question=f"Who founded Rute {i}?", golden_answers=["Lavis"]) for i in range(3)]
    cfg = AgentConfig(env="simulated", max_new_tokens=24, max_answer_tokens=4)
    rows, metrics = evaluate(tiny_llama(tokenizer), tokenizer, records, ["agent", "one_search"], cfg, progress=False)
    assert set(metrics["methods"]) == {"agent", "one_search"}
    assert [r["method"] for r in rows].count("one_search") == 3
    assert all(r["n_actions"] <= 1 for r in rows if r["method"] == "one_search")  # its own budget


def test_plugin_option_imports_the_module_that_registers(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from autocoa.cli import app

    (tmp_path / "my_methods.py").write_text(python_blocks()[1], encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        paths = ["--model", str(tmp_path), "--data", str(tmp_path / "q.jsonl"), "--out", str(tmp_path / "o")]
        args = ["eval", "--plugin", "my_methods", "--method", "one_search", "--method", "nope", *paths]
        res = CliRunner().invoke(app, [*args, "--env", "simulated"])
        # the plugin's method is known; the unknown one is named with the registered ones
        assert res.exit_code != 0 and "unknown method nope; expected agent, direct, rag, react, coa, one_search" in str(
            res.exception
        )
    finally:
        method_registry._REGISTRY.pop("one_search", None)
