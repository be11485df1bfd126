"""The RL schedule: simulated steps call no tool, real steps do, and every call is counted."""

from __future__ import annotations

import json

import pytest

from autocoa.tools.base import Toolbox
from autocoa.train.common import OutputExistsError
from autocoa.train.rl import train_rl
from autocoa.train.rl_config import RLConfig
from tests.agent_helpers import FakeSearch
from tests.rl_helpers import allow_only, read_metrics, save_tiny_model, scripted_hook, write_questions

TURNS = ["<think>need it</think><search>Varnelo</search>", "<answer>Varnelo</answer>"]


def schedule_config(**kw) -> RLConfig:
    """2 simulated + 2 real steps of 2 x 2 rollouts, short budgets, a checkpoint every 2 steps."""
    base = dict(
        sim_steps=2,
        real_steps=2,
        prompts_per_step=2,
        num_generations=2,
        max_new_tokens=64,
        max_obs_tokens=12,
        max_answer_tokens=8,
        save_every=2,
        eval_every=2,
    )
    return RLConfig(**{**base, **kw})


def test_schedule_switches_env_and_counts_real_calls(tokenizer, tmp_path):
    model = save_tiny_model(tokenizer, tmp_path / "model")
    questions = write_questions(tmp_path / "q.jsonl", n=4)
    search = FakeSearch()
    cfg = schedule_config(rollouts_every=1)
    out = tmp_path / "out"
    hook = scripted_hook(tokenizer, TURNS)
    summary = train_rl(model, questions, out, cfg, toolbox=Toolbox([search]), progress=False, logits_hook=hook)

    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["rl/env_real"] for r in rows] == [0, 0, 1, 1]
    # every rollout searches once: 4 rollouts per step, real only in steps 3-4
    assert [r["rl/real_calls"] for r in rows] == [0, 0, 4, 4]
    assert [r["rl/actions"] for r in rows] == [1, 1, 1, 1]
    assert [r["real_calls_total"] for r in rows] == [0, 0, 4, 8]
    assert summary["real_calls_total"] == 8 == len(search.seen)
    assert (summary["sim_steps_done"], summary["real_steps_done"]) == (2, 2)
    assert all(r["reward"] == 1.0 and r["rewards/accuracy/mean"] == 1.0 for r in rows)
    # every rollout ended its turn (EOS after </answer>): TRL counts none as truncated
    assert all(r["completions/clipped_ratio"] == 0.0 for r in rows)
    dumped = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert [d["env"] for d in dumped][::4] == ["simulated", "simulated", "real", "real"]
    sim, real = dumped[0], dumped[-1]
    assert "Doc about it" in sim["response"] and sim["n_tool_calls"] == 0  # the model's own world
    assert "(Title: Varnelo)" in real["response"] and real["n_tool_calls"] == 1  # the real tool's document
    assert real["reward"] == 1.0 and real["n_trained_tokens"] < real["n_tokens"]
    assert (out / "DONE").exists() and (out / "rl_config.yaml").exists() and (out / "model.safetensors").exists()
    with pytest.raises(OutputExistsError):
        train_rl(model, questions, out, cfg, toolbox=Toolbox([search]), progress=False)


def test_real_env_needs_a_tool(tokenizer, tmp_path):
    cfg = RLConfig(sim_steps=0, real_steps=1)
    with pytest.raises(ValueError, match="needs a retrieval"):
        train_rl(tmp_path / "m", write_questions(tmp_path / "q.jsonl"), tmp_path / "out", cfg)


def test_config_validation():
    with pytest.raises(ValueError, match="at least 1"):
        RLConfig(sim_steps=0, real_steps=0)
    cfg = RLConfig(sim_steps=3, real_steps=2)
    assert [cfg.env_at(s) for s in range(5)] == ["simulated"] * 3 + ["real"] * 2


def test_reward_rises_on_a_tiny_learnable_task(tokenizer, tmp_path):
    """A random tiny model, restricted to a few tokens, must learn to answer "X" (chance: 1/4 to 1/3)."""
    model = save_tiny_model(tokenizer, tmp_path / "model", seed=1)
    questions = write_questions(tmp_path / "q.jsonl", n=4, answer="X")
    cfg = RLConfig(
        sim_steps=40,
        real_steps=0,
        prompts_per_step=4,
        num_generations=4,
        lr=3e-2,
        # full-temperature sampling: at 0.6 a prompt's group soon samples one answer only, so
        # it carries no advantage, and a run can stall with some prompts never right (seen:
        # reward stuck at 0.5 from step 20 with this seed)
        temperature=1.0,
        max_new_tokens=8,
        max_answer_tokens=1,
        require_well_formed=False,
        save_every=100,
        eval_every=5,
        stop_on_collapse=False,
    )
    hook = allow_only(tokenizer, ["<answer>", "X", "Y", "Z"])
    summary = train_rl(model, questions, tmp_path / "out", cfg, progress=False, logits_hook=hook)
    rewards = [r["reward"] for r in read_metrics(tmp_path / "out")]
    first, last = sum(rewards[:10]) / 10, sum(rewards[-10:]) / 10
    assert last > first + 0.3 and last >= 0.8, rewards
    assert summary["best_window_reward"] >= 0.8


def test_cli_options(tmp_path):
    from typer.testing import CliRunner

    from autocoa.cli import app

    runner = CliRunner()
    base = ["train", "rl", "--model", str(tmp_path), "--questions", str(tmp_path / "q"), "--out", str(tmp_path / "o")]
    res = runner.invoke(app, [*base, "--env", "real", "--steps", "2"])
    assert res.exit_code != 0 and "needs --index" in str(res.exception)
    res = runner.invoke(app, [*base, "--env", "simulated", "--sim-steps", "2"])
    assert res.exit_code != 0 and "not both" in str(res.exception)
    res = runner.invoke(app, [*base, "--env", "simulated", "--steps", "1", "--heldout", str(tmp_path / "dev.jsonl")])
    assert res.exit_code != 0 and "--heldout searches for real: give --heldout-index, --index" in str(res.exception)


def test_fidelity_and_rewards_are_logged_per_environment(tokenizer, tmp_path):
    """With gold chains, each step logs the share of search results stating the hop's object:
    the world model's imagined result ("Doc about it") states "it"; the real tool's does not."""
    model = save_tiny_model(tokenizer, tmp_path / "model")
    chain = [{"subject": "Varnelo", "relation": "r", "object": "it", "known": False}]
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"id": str(i), "question": f"Q{i}?", "golden_answers": ["Varnelo"], "chain": chain}) + "\n"
            for i in range(4)
        )
    )
    cfg = RLConfig(
        sim_steps=2,
        real_steps=1,
        prompts_per_step=2,
        num_generations=2,
        max_new_tokens=64,
        max_obs_tokens=12,
        max_answer_tokens=8,
        save_every=10,
        eval_every=10,
    )
    out = tmp_path / "out"
    summary = train_rl(
        model,
        questions,
        out,
        cfg,
        toolbox=Toolbox([FakeSearch()]),
        progress=False,
        logits_hook=scripted_hook(tokenizer, TURNS),
    )
    rows = read_metrics(out)
    assert [r["rl/obs_fact"] for r in rows] == [1.0, 1.0, 0.0]
    assert [r["rl/obs_checked"] for r in rows] == [4, 4, 4]
    # every rollout answers right: the 1-hop reward is 1 and no group has a spread to learn from
    assert [(r["rl/reward_1hop"], r["rl/zero_spread_1hop"]) for r in rows] == [(1.0, 1.0)] * 3
    assert (summary["fidelity_sim"], summary["reward_sim"], summary["reward_real"]) == (1.0, 1.0, 1.0)


def test_a_bad_questions_file_fails_before_anything_is_written_or_deleted(tokenizer, tmp_path):
    from autocoa.jsonl import DataError

    model = save_tiny_model(tokenizer, tmp_path / "model")
    good = write_questions(tmp_path / "q.jsonl", n=4)
    cfg = RLConfig(
        sim_steps=1, real_steps=0, prompts_per_step=2, num_generations=2, max_new_tokens=32, max_answer_tokens=4
    )
    out = tmp_path / "out"
    train_rl(model, good, out, cfg, progress=False, logits_hook=scripted_hook(tokenizer, TURNS))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"id": "x", "question": null}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:5"):
        train_rl(model, bad, out, cfg, progress=False, overwrite=True)
    assert (out / "DONE").exists() and (out / "model.safetensors").exists()  # the finished run is intact
    again = train_rl(model, good, out, cfg, progress=False, overwrite=True, logits_hook=scripted_hook(tokenizer, TURNS))
    assert again["resumed_from_step"] is None and len(read_metrics(out)) == 1  # started over: one step logged once
    # a start that failed leaves nothing that blocks the corrected re-run (no checkpoint: nothing to resume)
    out2 = tmp_path / "out2"
    with pytest.raises(DataError):
        train_rl(model, bad, out2, cfg, progress=False)
    train_rl(model, good, out2, cfg, progress=False, logits_hook=scripted_hook(tokenizer, TURNS))
    run = json.loads((out2 / "run.json").read_text())
    assert run["stage"] == "rl" and len(next(iter(run["questions"].values()))) == 64


def test_the_held_out_curve_is_drawn_against_real_calls_and_counted_apart(tokenizer, tmp_path):
    from autocoa.eval.heldout import heldout_curve
    from autocoa.eval.report import plot_rl_curves

    model = save_tiny_model(tokenizer, tmp_path / "model")
    questions = write_questions(tmp_path / "q.jsonl", n=4)
    heldout = write_questions(tmp_path / "dev.jsonl", n=3, answer="Osmira")
    search = FakeSearch()
    cfg = schedule_config(heldout_every=2, heldout_questions=2)
    out = tmp_path / "out"
    hook = scripted_hook(tokenizer, TURNS)
    curve = heldout_curve(cfg, heldout, toolbox=Toolbox([search]))
    summary = train_rl(
        model, questions, out, cfg, toolbox=Toolbox([search]), progress=False, logits_hook=hook, heldout=curve
    )
    rows = [json.loads(line) for line in (out / "heldout.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4] and all(r["n"] == 2 for r in rows)
    assert [r["real_calls_total"] for r in rows] == [0, 0, 8]  # training's calls, not the evaluation's
    assert summary["real_calls_total"] == 8
    assert len(search.seen) == 8 + sum(r["eval_tool_calls"] for r in rows)  # the evaluation's, counted apart
    assert all(0.0 <= r["em"] <= 1.0 for r in rows)
    png = plot_rl_curves([out], tmp_path / "curves.png")
    from PIL import Image

    assert Image.open(png).size[0] > 1000  # two panels: reward and held-out EM


def test_heldout_every_needs_questions(tokenizer, tmp_path):
    model = save_tiny_model(tokenizer, tmp_path / "model")
    cfg = RLConfig(
        sim_steps=1,
        real_steps=0,
        prompts_per_step=2,
        num_generations=2,
        max_new_tokens=64,
        max_answer_tokens=8,
        heldout_every=1,
    )
    with pytest.raises(ValueError, match="heldout_every needs held-out questions"):
        train_rl(model, write_questions(tmp_path / "q.jsonl"), tmp_path / "out", cfg, progress=False)


def test_rollouts_past_the_last_hop_are_counted_for_the_step_metrics(tokenizer, tmp_path):
    """The step's ``rl/past_last_hop``: of the rollouts whose question has a gold chain, those
    that go past the last hop (analysis.past_last_hop); a rollout without a chain is not counted."""
    from types import SimpleNamespace

    from autocoa.train.rl_monitor import RunState
    from autocoa.train.rl_rollouts import AgentRollouts
    from autocoa.trajectory import Trajectory, action, answer, observation

    chain = [{"subject": "Rute", "relation": "producer", "object": "Rifo Group", "known": False}]
    read = (action("search", "Rute producer"), observation("Rute was produced by Rifo Group."))
    past = Trajectory("Q", (*read, action("search", "Rifo Group seat"), observation("Bekila"), answer("Bekila")))
    stop = Trajectory("Q", (*read, answer("Rifo Group")))
    roll = AgentRollouts(tokenizer, RLConfig(), None, {}, tmp_path, RunState(), chains={"a": chain})
    pairs = (("a", past), ("a", stop), ("a", past), ("b", past))
    rollouts = [SimpleNamespace(prompt=p, trajectory=t, obs_sources=["tool"] * 2) for p, t in pairs]
    checked, fact, chained, n_past, checked_model, fact_model = roll._observation_check(rollouts)
    assert (chained, n_past) == (3, 2)
    assert (checked, fact) == (3, 3)  # the query about Rifo Group names no hop's subject: unmatched
    assert (checked_model, fact_model) == (0, 0)  # the tool wrote every result, not the world model
    rollouts[0].obs_sources = ["model", "tool"]
    assert roll._observation_check(rollouts)[4:] == (1, 1)
