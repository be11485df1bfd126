"""`autocoa eval` and `autocoa report` end to end: a tiny random model, a tiny world, BM25.

Random weights: what the methods do is tested in test_eval_baselines; here the wiring, the
files and their fields, that metrics.json is recomputable with `autocoa score`, and the report.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from autocoa.cli import app
from autocoa.jsonl import read_jsonl, write_jsonl
from autocoa.tools.index import BM25Index
from autocoa.world.config import WorldConfig
from autocoa.world.files import write_world
from autocoa.world.generate import generate_world
from tests.agent_helpers import tiny_llama

runner = CliRunner()
METHODS = ("agent", "direct", "rag", "react")
SMALL_WORLD = WorldConfig(
    common_countries=4,
    common_cities=8,
    common_universities=4,
    common_people=6,
    common_companies=4,
    common_films=4,
    train_entities=30,
    dev_entities=10,
    test_entities=30,
    train_questions=0,
    dev_questions=0,
    test_questions=8,
    pretrain_repeats=1,
)


def invoke(*args):
    res = runner.invoke(app, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tokenizer):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on shared cores: 10x faster than 2 contending threads
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("autocoa.tools.index._default_backend", lambda: "numpy")  # numba's JIT costs ~5-15 s
            return _evaluate(tmp_path_factory.mktemp("eval"), tokenizer)
    finally:
        torch.set_num_threads(threads)


def _evaluate(d, tokenizer):
    world = generate_world(SMALL_WORLD)
    write_world(world, d / "world")
    BM25Index.build(world.docs).save(d / "index")
    tiny_llama(tokenizer).save_pretrained(d / "model")
    tokenizer.save_pretrained(d / "model")
    (d / "agent.yaml").write_text("max_new_tokens: 48\nmax_answer_tokens: 4\nmax_obs_tokens: 24\n")
    args = ["eval", "--model", d / "model", "--data", d / "world" / "test.jsonl", "--index", d / "index"]
    args += ["--out", d / "out", "--config", d / "agent.yaml", "--limit", 6, "--react-steps", 2]
    args += ["--shuffle-seed", 0]  # the split is sorted by hops: a sample across them
    for m in METHODS:
        args += ["--method", m]
    invoke(*args)
    return d


def test_eval_writes_predictions_and_metrics(evaluated):
    out = evaluated / "out"
    rows = [r for _, r in read_jsonl(out / "predictions.jsonl")]
    assert len(rows) == 6 * len(METHODS)
    assert [r["method"] for r in rows] == [m for m in METHODS for _ in range(6)]
    fields = {"id", "question", "golden_answers", "prediction", "trajectory", "n_actions", "n_tool_calls"}
    fields |= {"well_formed", "method", "hops", "n_search", "unneeded", "missed", "em", "f1", "cover_em"}
    for r in rows:
        assert fields <= set(r), fields - set(r)
        assert r["trajectory"]["prompt"].startswith("Question: ") and isinstance(r["trajectory"]["segments"], list)
        # the budget (48) may be crossed by one observation, kept whole (24 + marker + its 2 tags);
        # rag's replayed context may fill the budget on its own
        assert r["n_tokens"] <= 48 + 24 + 8 or r["method"] == "rag"
    by = {m: [r for r in rows if r["method"] == m] for m in METHODS}
    assert all(r["n_tool_calls"] == 0 and r["n_actions"] == 0 for r in by["direct"])
    assert all(r["n_tool_calls"] >= 1 and r["trajectory"]["segments"][0]["kind"] == "action" for r in by["rag"])
    assert all(r["n_actions"] <= 2 for r in by["react"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == set(METHODS)
    assert metrics["run"]["react_steps"] == 2 and metrics["run"]["label"] == "model"
    assert metrics["run"]["info"]["react"]["max_actions"] == 3  # T = 2 by the controller, +1 as a net
    for m, rs in by.items():
        mm = metrics["methods"][m]
        assert mm["n"] == 6 and set(mm["by"]) == {"hops", "n_actions"}
        assert len(mm["by"]["hops"]) > 1
        assert mm["tool_calls_per_question"] == pytest.approx(sum(r["n_tool_calls"] for r in rs) / 6)
        assert mm["unneeded_searches"] == pytest.approx(sum(r["unneeded"] for r in rs) / 6)
        assert mm["missed_searches"] == pytest.approx(sum(r["missed"] for r in rs) / 6)
    assert "retrieval_hit" in metrics["methods"]["rag"] or metrics["methods"]["rag"].get("observations")
    assert (out / "report.md").exists() and (out / "em_by_hops.png").exists()


def test_metrics_are_recomputable_with_autocoa_score(evaluated, tmp_path):
    out = evaluated / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    summary = json.loads(invoke("score", "--pred", out / "predictions.jsonl", "--by", "method").output)
    for m in METHODS:
        for k in ("n", "em", "f1", "cover_em", "n_correct"):
            assert summary["by"]["method"][m][k] == pytest.approx(metrics["methods"][m][k]), (m, k)
    # and the per-method breakdowns (hops, #actions) from that method's rows alone
    write_jsonl(tmp_path / "agent.jsonl", (r for _, r in read_jsonl(out / "predictions.jsonl") if r["method"] == "rag"))
    s = json.loads(invoke("score", "--pred", tmp_path / "agent.jsonl", "--by", "hops", "--by", "n_actions").output)
    for key in ("hops", "n_actions"):
        assert s["by"][key] == metrics["methods"]["rag"]["by"][key]


def test_report_over_runs_with_and_without_training_cost(evaluated, tmp_path):
    import matplotlib.image

    second = tmp_path / "second"
    shutil.copytree(evaluated / "out", second)
    metrics = json.loads((second / "metrics.json").read_text())
    metrics["run"]["label"] = "rl"
    (second / "metrics.json").write_text(json.dumps(metrics))
    (second / "run.json").write_text(json.dumps({"train_real_calls": 1234}))
    invoke("report", "--runs", evaluated / "out", "--runs", second, "--out", tmp_path / "rep")
    rep = tmp_path / "rep"
    text = (rep / "report.md").read_text()
    assert "| model agent |" in text and "| rl react |" in text and "EM 1-hop" in text
    for png in ("em_by_hops.png", "success_by_actions.png", "accuracy_vs_train_calls.png"):
        img = matplotlib.image.imread(rep / png)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert f"({png})" in text
    results = json.loads((rep / "results.json").read_text())
    assert len(results) == 2 * len(METHODS)
    assert {r["train_real_calls"] for r in results} == {None, 1234}
    # without any training cost the cost plot is skipped, and said so
    invoke("report", "--runs", evaluated / "out", "--out", tmp_path / "rep1")
    assert not (tmp_path / "rep1" / "accuracy_vs_train_calls.png").exists()
    assert "cost plot is skipped" in (tmp_path / "rep1" / "report.md").read_text()


def test_eval_errors(evaluated):
    base = ["eval", "--model", evaluated / "model", "--data", evaluated / "world" / "test.jsonl"]
    base += ["--out", evaluated / "bad"]
    res = runner.invoke(app, [str(a) for a in base])
    assert res.exit_code != 0 and "the real environment needs --index" in str(res.exception)
    res = runner.invoke(app, [str(a) for a in [*base, "--env", "simulated", "--method", "rag"]])
    assert res.exit_code != 0 and "rag needs --index" in str(res.exception)
    res = runner.invoke(app, [str(a) for a in [*base, "--method", "rag"]])
    assert res.exit_code != 0 and "the real environment and rag need --index" in str(res.exception)
    res = runner.invoke(app, [str(a) for a in [*base, "--index", evaluated / "index", "--retriever", "http://x"]])
    assert res.exit_code != 0 and "not both" in str(res.exception)
    res = runner.invoke(app, [str(a) for a in [*base, "--index", evaluated / "index", "--method", "cot"]])
    assert res.exit_code != 0 and "unknown method cot" in str(res.exception)
    res = runner.invoke(app, [str(a) for a in [*base, "--env", "simulated", "--method", "rag"]])
    assert res.exit_code != 0 and "rag" in str(res.exception)
    sim = [*base, "--env", "simulated"]
    res = runner.invoke(app, [str(a) for a in [*sim, "--verify", "nli"]])
    assert res.exit_code != 0 and "verify: Input should be 'mrfs'" in str(res.exception)
    res = runner.invoke(app, [str(a) for a in [*sim, "--index", evaluated / "index", "--knowledge", evaluated / "no"]])
    assert res.exit_code != 0 and "no such knowledge index directory" in str(res.exception)
    res = runner.invoke(app, [str(a) for a in [*sim, "--retriever", "localhost:8001"]])
    assert res.exit_code != 0 and "starts with http:// or https://" in str(res.exception)


def test_train_real_calls_come_from_the_rl_summary(tmp_path):
    from autocoa.eval.runner import read_train_real_calls

    assert read_train_real_calls(tmp_path) is None
    (tmp_path / "run.json").write_text(json.dumps({"stage": "rl"}))  # a training manifest without the field
    assert read_train_real_calls(tmp_path) is None
    (tmp_path / "rl.json").write_text(json.dumps({"real_calls_total": 96}))
    assert read_train_real_calls(tmp_path) == 96


def test_an_sft_checkpoint_spent_no_real_calls_in_training(tmp_path):
    from autocoa.eval.runner import read_train_real_calls

    (tmp_path / "sft.json").write_text(json.dumps({"steps": 10}))
    assert read_train_real_calls(tmp_path) == 0  # a point on the accuracy-vs-cost plot
    (tmp_path / "rl.json").write_text(json.dumps({"real_calls_total": 96}))  # an RL run's own count wins
    assert read_train_real_calls(tmp_path) == 96
