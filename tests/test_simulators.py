"""The simulated environment's simulators: the world model, the controlled-fidelity oracle and an
external endpoint, behind one interface (:mod:`autocoa.agent.simulators`)."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI, Request

from autocoa.agent.config import AgentConfig
from autocoa.agent.engine import Engine
from autocoa.agent.simulators import EndpointSimulator, OracleSimulator, coin, world_evidence
from autocoa.data.corpus import Doc
from autocoa.tags import Kind
from autocoa.tools.index import BM25Index
from autocoa.tools.search import Retrieval
from autocoa.train.rl import make_simulator, train_rl
from autocoa.train.rl_config import RLConfig
from tests.agent_helpers import ScriptedLM, tiny_llama, turn_policy
from tests.rl_helpers import read_metrics, save_tiny_model, scripted_hook
from tests.servers import serve

P1 = "Question: Where was Rotema Kesh born?\n"
DOC = Doc("person-1", "Rotema Kesh", "Rotema Kesh was born in Varnelo.")
TRUE_RESULT = "Doc 1 (Title: Rotema Kesh) Rotema Kesh was born in Varnelo."


def run(tokenizer, scripts, simulator, **cfg):
    model = ScriptedLM(len(tokenizer), turn_policy(tokenizer, scripts))
    eng = Engine(model, tokenizer, None, simulator=simulator)
    return eng.generate(list(scripts), AgentConfig(env="simulated", **cfg))


def observations(r) -> list[str]:
    return [s.text.strip() for s in r.trajectory.segments if s.kind is Kind.OBSERVATION]


def test_the_oracle_inserts_the_searched_hops_true_document_as_a_simulated_result(tokenizer):
    oracle = OracleSimulator({P1: [("Rotema Kesh", DOC)]}, fidelity=1.0)
    (r,) = run(tokenizer, {P1: ["<search>Rotema Kesh born</search>", "<answer>Varnelo</answer>"]}, oracle)
    assert observations(r) == [TRUE_RESULT] and r.trajectory.answer == "Varnelo"
    assert r.obs_sources == ["oracle"] and r.n_tool_calls == 0 and r.n_actions == 1  # simulated, not a real call
    obs = [i for i, k in enumerate(r.kinds) if k is Kind.OBSERVATION]
    assert all(not r.sampled[i] and r.mask[i] == 0 for i in obs)  # inserted: never trained
    assert oracle.answered == 1


def test_a_query_that_names_no_hop_is_left_to_the_world_model(tokenizer):
    oracle = OracleSimulator({P1: [("Rotema Kesh", DOC)]}, fidelity=1.0)
    scripts = {P1: ["<search>somebody else</search><result>Doc 1 imagined</result>", "<answer>x</answer>"]}
    (r,) = run(tokenizer, scripts, oracle)
    assert observations(r) == ["Doc 1 imagined"] and r.obs_sources == ["model"]
    assert oracle.unmatched == 1 and r.sampled[r.kinds.index(Kind.OBSERVATION) + 1]  # the model wrote it


def test_the_coin_is_fixed_by_seed_rollout_and_action_and_its_rate_is_the_fidelity():
    draws = [coin(7, i, a) for i in range(400) for a in (1, 2, 3)]
    assert draws == [coin(7, i, a) for i in range(400) for a in (1, 2, 3)]
    oracle = OracleSimulator({}, fidelity=0.25)
    share = sum(oracle.takes(7, i, a) for i in range(400) for a in (1, 2, 3)) / 1200
    assert 0.21 < share < 0.29
    assert not any(OracleSimulator({}, fidelity=0.0).takes(7, i, 1) for i in range(400))
    with pytest.raises(ValueError, match=r"simulator_fidelity must be in \[0, 1\]"):
        OracleSimulator({}, fidelity=1.5)


def _acting_hook(tokenizer):
    """Sampling stays the model's, but every row searches "Rotema Kesh" first: the actions (and
    so the coins) are the same in both runs, and the imagined results are sampled."""
    search = tokenizer("<search>Rotema Kesh</search>", add_special_tokens=False)["input_ids"]

    def hook(histories, logits):
        out = logits.clone()
        for i, h in enumerate(histories):
            if len(h) < len(search):
                out[i] = -1e4
                out[i, search[len(h)]] = 0.0
        return out

    return hook


@pytest.mark.parametrize("fidelity", [0.0, 0.5])
def test_fidelity_0_is_bit_exact_with_the_world_model_and_more_changes_only_the_oracles_rows(tokenizer, fidelity):
    model = tiny_llama(tokenizer, seed=3)
    cfg = AgentConfig(env="simulated", n=4, temperature=1.0, seed=11, max_new_tokens=128, max_obs_tokens=40)
    hook = _acting_hook(tokenizer)
    base = Engine(model, tokenizer, None, logits_hook=hook).generate([P1, P1], cfg)
    oracle = OracleSimulator({P1: [("Rotema Kesh", DOC)]}, fidelity=fidelity)
    mine = Engine(model, tokenizer, None, logits_hook=hook, simulator=oracle).generate([P1, P1], cfg)
    if fidelity == 0.0:
        assert [(r.ids, r.logprobs) for r in mine] == [(r.ids, r.logprobs) for r in base]
        assert all(r.obs_sources and set(r.obs_sources) == {"model"} for r in mine)
    else:
        took = [oracle.takes(11, r.index, 1) for r in mine]
        assert 0 < sum(took) < len(took)  # both kinds of row at this seed
        for r, t in zip(mine, took, strict=True):
            assert r.obs_sources[0] == ("oracle" if t else "model")
            assert (observations(r)[0] == TRUE_RESULT) == t


def chat_server(replies: list):
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        replies.append(body["messages"])
        query = body["messages"][-1]["content"].split("\n")[0].removeprefix("Query: ")
        text = f"Doc 1 (Title: {query}) {query} is a town in Osk."
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}

    return app


def test_the_endpoint_simulator_writes_results_and_a_rerun_repeats_them_from_its_cache(tokenizer, tmp_path):
    seen: list = []
    scripts = {P1: ["<search>Varnelo</search>", "<answer>Osk</answer>"]}
    cache = tmp_path / "simulator_cache.jsonl"
    with serve(chat_server(seen)) as url:
        sim = EndpointSimulator(url + "/v1", "sim", cache, golds={P1: ["Osk"]}, questions={P1: "Where?"})
        (r,) = run(tokenizer, scripts, sim)
    assert observations(r) == ["Doc 1 (Title: Varnelo) Varnelo is a town in Osk."]
    assert r.obs_sources == ["endpoint"] and r.n_tool_calls == 0
    assert len(seen) == 1 and "Its answer: Osk" in seen[0][-1]["content"]  # the gold answer, when asked for
    assert len(cache.read_text().splitlines()) == 1
    # the server is gone: the same request is answered from the cache, as a resumed run's would be
    again = EndpointSimulator("http://127.0.0.1:9/v1", "sim", cache, golds={P1: ["Osk"]}, questions={P1: "Where?"})
    (r2,) = run(tokenizer, scripts, again)
    assert r2.ids == r.ids and again.hits == 1 and again.calls == 0
    # a line torn by a kill is dropped (asked again), a corrupt one elsewhere is named
    cache.write_text(cache.read_text() + '{"key": "ab')
    assert len(EndpointSimulator("http://127.0.0.1:9/v1", "sim", cache).cache) == 1
    cache.write_text('{"key": "k"}\n' + cache.read_text())
    with pytest.raises(ValueError, match=r"simulator_cache.jsonl:1: .*'key' and 'text'"):
        EndpointSimulator("http://127.0.0.1:9/v1", "sim", cache)


def test_the_endpoint_needs_a_url_and_an_unknown_simulator_is_refused():
    with pytest.raises(ValueError, match="simulator: endpoint needs simulator_url"):
        RLConfig(simulator="endpoint")
    with pytest.raises(ValueError, match="simulator"):
        RLConfig(simulator="dream")


def test_world_evidence_reads_chains_and_supporting_documents():
    rows = [
        {"prompt": "a", "chain": [{"subject": "Rotema Kesh", "subject_id": "person-1"}]},
        {"prompt": "b", "supporting": [{"title": "Osk", "text": "Osk is a land."}]},
        {"prompt": "c"},
    ]
    ev = world_evidence(rows, {"person-1": DOC})
    assert ev["a"] == [("Rotema Kesh", DOC)] and ev["b"][0][1].text == "Osk is a land." and "c" not in ev
    with pytest.raises(ValueError, match="no document 'person-9'"):
        world_evidence([{"prompt": "a", "chain": [{"subject": "X", "subject_id": "person-9"}]}], {})


def _chained_questions(tmp_path):
    chain = [{"subject": "Rotema Kesh", "subject_id": "person-1", "relation": "r", "object": "Varnelo"}]
    path = tmp_path / "q.jsonl"
    rows = [{"id": str(i), "question": f"Q{i}?", "golden_answers": ["Varnelo"], "chain": chain} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rl_with_the_oracle_logs_fidelity_of_the_environment_and_of_the_world_model(tokenizer, tmp_path):
    index = tmp_path / "index"
    BM25Index.build([DOC, Doc("town-1", "Varnelo", "Varnelo is a town.")]).save(index)
    model = save_tiny_model(tokenizer, tmp_path / "model")
    cfg = RLConfig(
        sim_steps=2,
        real_steps=0,
        prompts_per_step=2,
        num_generations=2,
        max_new_tokens=64,
        max_obs_tokens=24,
        max_answer_tokens=8,
        save_every=10,
        eval_every=10,
        simulator="oracle",
        simulator_fidelity=1.0,
    )
    out = tmp_path / "out"
    turns = ["<search>Rotema Kesh</search>", "<answer>Varnelo</answer>"]
    summary = train_rl(
        model,
        _chained_questions(tmp_path),
        out,
        cfg,
        retrieval=Retrieval(index),
        progress=False,
        logits_hook=scripted_hook(tokenizer, turns, sim_result="Doc about it"),
    )
    rows = read_metrics(out)
    assert [r["rl/real_calls"] for r in rows] == [0, 0] and summary["real_calls_total"] == 0
    assert [(r["rl/sim_external"], r["rl/sim_model"]) for r in rows] == [(1.0, 0.0)] * 2
    assert [r["rl/obs_fact"] for r in rows] == [1.0, 1.0]  # the true document states the hop's object
    assert all("rl/obs_fact_model" not in r for r in rows)  # the world model wrote none
    assert summary["fidelity_sim"] == 1.0 and summary["fidelity_sim_model"] is None
    # the same run with the world model: it imagines "Doc about it", which states no "Varnelo"
    out2 = tmp_path / "out2"
    summary2 = train_rl(
        model,
        _chained_questions(tmp_path),
        out2,
        cfg.model_copy(update={"simulator": "model"}),
        progress=False,
        logits_hook=scripted_hook(tokenizer, turns, sim_result="Doc about it"),
    )
    assert [r["rl/obs_fact_model"] for r in read_metrics(out2)] == [0.0, 0.0]
    assert summary2["fidelity_sim"] == summary2["fidelity_sim_model"] == 0.0


def test_the_oracle_needs_a_local_index_for_chains_and_evidence_of_some_kind(tokenizer, tmp_path):
    rows = [{"prompt": "p", "golden_answers": ["x"], "chain": [{"subject": "A", "subject_id": "a"}]}]
    cfg = RLConfig(sim_steps=1, real_steps=0, simulator="oracle")
    with pytest.raises(ValueError, match="from a local index"):
        make_simulator(cfg, rows, None, tmp_path)
    with pytest.raises(ValueError, match=r"gold chain .* or supporting"):
        make_simulator(cfg, [{"prompt": "p", "golden_answers": ["x"]}], None, tmp_path)
    assert make_simulator(cfg.model_copy(update={"simulator": "model"}), rows, None, tmp_path) is None
    assert make_simulator(cfg.model_copy(update={"sim_steps": 0, "real_steps": 1}), rows, None, tmp_path) is None


def test_the_cli_runs_the_oracle_and_refuses_it_without_an_index(tokenizer, tmp_path):
    from typer.testing import CliRunner

    from autocoa.cli import app

    index = tmp_path / "index"
    BM25Index.build([DOC]).save(index)
    model = save_tiny_model(tokenizer, tmp_path / "model")
    base = ["train", "rl", "--model", str(model), "--questions", str(_chained_questions(tmp_path))]
    base += ["--env", "simulated", "--steps", "1", "--prompts-per-step", "2", "--simulator", "oracle"]
    runner = CliRunner()
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "o1")])
    assert res.exit_code != 0 and "the oracle simulator" in str(res.exception)
    oracle = ["--simulator-fidelity", "0.5", "--index", str(index)]
    res = runner.invoke(app, [*base, *oracle, "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    saved = (tmp_path / "o" / "rl_config.yaml").read_text()
    assert "simulator: oracle" in saved and "simulator_fidelity: 0.5" in saved
    assert [r["rl/real_calls"] for r in read_metrics(tmp_path / "o")] == [0]


@pytest.mark.parametrize("name", ["hotpotqa_dev.json", "2wiki_dev.json"])
def test_hotpotqa_and_2wiki_rows_carry_their_supporting_documents_to_the_oracle(tokenizer, name):
    from pathlib import Path

    from autocoa.train.rl_rollouts import load_questions

    rows = load_questions(Path(__file__).parent / "fixtures" / name, tokenizer)
    assert all(r["supporting"] for r in rows)
    evidence = world_evidence(rows, {})
    first = rows[0]
    title, doc = evidence[first["prompt"]][0]
    assert title == first["supporting"][0]["title"] and doc.text == first["supporting"][0]["text"] and doc.text
    oracle = OracleSimulator(evidence, fidelity=1.0)
    from autocoa.agent.simulators import SimRequest

    (text,) = oracle.results([SimRequest(first["prompt"], "search", f"what is {title}")])
    assert text.startswith(f"Doc 1 (Title: {title}) ")


def test_a_simulators_setting_under_another_simulator_is_refused_not_ignored():
    with pytest.raises(ValueError, match="simulator_fidelity is the oracle's"):
        RLConfig(simulator_fidelity=0.5)
    with pytest.raises(ValueError, match="are the endpoint's"):
        RLConfig(simulator="oracle", simulator_url="http://127.0.0.1:8000/v1")
    with pytest.raises(ValueError, match="are the endpoint's"):
        RLConfig(simulator_gold=True)
    assert RLConfig(simulator="endpoint", simulator_url="http://x/v1", simulator_gold=True).simulator_gold
