"""`autocoa demo --fast`: every stage runs end to end and a killed demo resumes (tiny sizes:
the numbers mean nothing, the wiring does)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from autocoa.cli import app
from autocoa.recipe.study import RECIPE


def test_fast_demo_end_to_end_resume_and_a_study_on_its_stages(tmp_path):
    torch.set_num_threads(1)
    root = tmp_path / "study"
    out = root / "seed0"  # a demo directory is a study's seed directory
    res = CliRunner().invoke(app, ["demo", "--fast", "--out", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    results = json.loads((out / "demo.json").read_text())
    stages = ["world", "index", "base", "data", "sft1", "sft12", "sft123", "rl", "eval/main"]
    timings = json.loads((out / "timings.json").read_text())
    assert list(timings) == stages
    for st in ("base", "sft1", "sft12", "sft123", "rl"):
        assert (out / st / "model.safetensors").exists()
    assert not list(out.rglob("checkpoint-*")) and not (out / "rl" / "best").exists()  # deleted once done
    assert results["data"]["coa"] > 0 and results["sft12"]["steps"] == 8
    assert results["data"]["rl_pool"] == 24 and results["sft123"]["pool_rows"] == 0  # SFT-3 as the paper's: no copies
    assert (out / "base" / "knowledge.jsonl").exists() and (out / "report" / "recall_by_exposure.png").exists()
    assert set(results["eval/main"]["em"]["rl"]) == {"agent", "direct", "rag", "react"}
    assert set(results["eval/main"]["em"]) >= {"sft123_sim_pool", "sft123_sim_unseen", "sft123_sim_test"}
    rl = results["rl"]
    assert (rl["sim_steps_done"], rl["real_steps_done"]) == (2, 1) and rl["reward_sim"] is not None
    assert rl["real_calls_total"] == sum(
        r["rl/real_calls"]
        for r in map(json.loads, (out / "rl" / "metrics.jsonl").read_text().splitlines())
        if "rl/real_calls" in r
    )
    heldout = [json.loads(line) for line in (out / "rl" / "heldout.jsonl").read_text().splitlines()]
    assert [h["step"] for h in heldout] == [0, 3] and heldout[-1]["real_calls_total"] == rl["real_calls_total"]
    assert (out / "report" / "rl_curves.png").exists()
    report = (out / "report" / "report.md").read_text()
    assert "rl react" in report and "sft123_sim_pool agent" in report
    assert "| rl | 2 + 1 |" in report and "no reward spread" in report  # the RL table: signal and KL
    rows = json.loads((out / "report" / "results.json").read_text())
    sim = {r["data"] for r in rows if r["env"] == "simulated"}
    assert sim == {"rl_pool.jsonl", "train_unseen.jsonl", "test.jsonl"}
    assert (out / "report" / "em_by_hops.png").stat().st_size > 1000
    assert "held-out test questions" in res.output and "world model" in res.output  # the final tables
    assert "{'loss'" not in res.output and "Map:" not in res.output  # log dictionaries go to metrics.jsonl only
    assert "autocoa chat --model" in res.output and "autocoa serve --model" in res.output
    from rich.console import Console

    from autocoa.demo import console_table, schedule_table

    narrow = Console(width=80, record=True)
    for table in [
        console_table(out / "report" / "results.json"),
        *schedule_table(results, out / "report" / "results.json"),
    ]:
        narrow.print(table)
    assert "…" not in narrow.export_text()  # nothing squeezed out at 80 columns

    # a second run skips every finished stage; a stage whose marker is gone runs again
    (out / "eval" / "main" / "DONE").unlink()
    res = CliRunner().invoke(app, ["demo", "--fast", "--out", str(out)])
    assert res.exit_code == 0, res.output
    again = json.loads((out / "demo.json").read_text())
    assert all(again[s]["skipped"] == "already done" for s in stages[:-1]) and "skipped" not in again["eval/main"]
    # another configuration is refused instead of silently reusing (or deleting) finished stages
    cfg = tmp_path / "other.yaml"
    cfg.write_text("sft2:\n  lr: 0.5\n")
    res = CliRunner().invoke(app, ["demo", "--fast", "--out", str(out), "--config", str(cfg)])
    assert res.exit_code != 0 and "another configuration" in str(res.exception or res.output)

    # the frontier study on that seed: shared stages are reused, only its own schedules run
    res = CliRunner().invoke(app, ["study", "frontier", "--fast", "--seeds", "0", "--out", str(root)])
    assert res.exit_code == 0, res.output
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) - set(stages) == {"rl_sft123_s0_r3", "rl_sft123_s3_r0", "eval/study_frontier"}
    study = json.loads((root / "frontier" / "results.json").read_text())
    names = [r["name"] for r in study["rows"]]
    assert names[0] == "SFT-1&2&3 (no RL)" and any(n.startswith("all-real (0 sim + 3 real)") for n in names)
    for r in study["rows"]:
        assert r["em"]["n"] == 1
    all_sim = next(r for r in study["rows"] if r["params"].get("schedule") == "all-sim")
    assert all_sim["real_calls"]["mean"] == 0
    # what each RL row had to learn from, read from its run's metrics.jsonl (schedule_means)
    sim_log = [json.loads(x) for x in (root / "seed0" / "rl_sft123_s3_r0" / "metrics.jsonl").read_text().splitlines()]
    flat = [r["frac_reward_zero_std"] for r in sim_log if "frac_reward_zero_std" in r]
    assert all_sim["zero_spread_sim"]["mean"] == round(sum(flat) / len(flat), 4) and all_sim["zero_spread_real"] is None
    assert all_sim["kl_last"]["mean"] == round([r["kl"] for r in sim_log if "kl" in r][-1], 6)
    assert (root / "frontier" / "report.md").exists() and (root / "frontier" / "accuracy_vs_train_calls.png").exists()

    # the demo's own table as a study: its stages are the demo's (nothing runs again), its rows
    # are the demo's evaluations
    res = CliRunner().invoke(app, ["study", "demo", "--fast", "--seeds", "0", "--out", str(root)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "timings.json").read_text()) == timings
    demo_rows = {
        (r["name"], r["label"], r["method"]): r
        for r in json.loads((root / "demo" / "results.json").read_text())["rows"]
    }
    em = results["eval/main"]["em"]
    assert {(lab, m): round(r["em"]["mean"], 3) for (_, lab, m), r in demo_rows.items()} == {
        ("base", "direct"): em["base"]["direct"],
        ("sft123", "agent"): em["sft123"]["agent"],
        **{("rl", m): em["rl"][m] for m in ("agent", "react", "rag", "direct")},
    }
    recipe = demo_rows[RECIPE, "rl", "agent"]
    assert recipe["real_calls"]["mean"] == rl["real_calls_total"] and recipe["reward_sim"]["mean"] == rl["reward_sim"]
    assert "fidelity_pool" in demo_rows["SFT-1&2&3", "sft123", "agent"]  # None when the tiny model never searches
    assert "| base model, direct |" in (root / "demo" / "report.md").read_text()
    # the stage times are the seed's own (timings.json), for the demo's stages
    times = json.loads((root / "demo" / "results.json").read_text())["timings"]
    assert {n: s["per_seed"] for n, s in times["stages"].items()} == {n: [timings[n]] for n in times["stages"]}
    assert {"sft1", "sft12", "sft123", "rl", "eval/main"} <= set(times["stages"])
    assert times["total"]["per_seed"] == [pytest.approx(sum(timings[n] for n in times["stages"]))]
    assert "| **all** |" in (root / "demo" / "report.md").read_text()


@pytest.mark.slow
def test_fast_demo_with_ablations(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--fast", "--ablations", "--out", str(out)])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "demo.json").read_text())
    # the ablations study's rows on this one directory (one definition for the demo and the study)
    assert set(results["eval/study_ablations"]["em"]) >= {"sft2", "sft12", "rl_sft123_s3_r0", "rl_sft123_s0_r3"}
    # every RL row trains the same number of steps (the fast preset's 2 + 1)
    assert (results["rl_sft123_s3_r0"]["sim_steps_done"], results["rl_sft123_s3_r0"]["real_steps_done"]) == (3, 0)
    assert (results["rl_sft123_s0_r3"]["sim_steps_done"], results["rl_sft123_s0_r3"]["real_steps_done"]) == (0, 3)
    assert results["rl_sft123_s3_r0"]["real_calls_total"] == 0
    report = (out / "ablations" / "report.md").read_text()
    assert "| SFT-1&2&3 + RL-1 (sim only) |" in report and "| SFT-2 |" in report
    assert json.loads((out / "ablations" / "results.json").read_text())["seeds"] == [0]


@pytest.mark.slow
def test_pretrained_fast_demo_on_the_real_model(tmp_path, monkeypatch):
    """`autocoa demo --model smollm2-135m-instruct --fast`: every stage on the real weights, and
    the base chat model evaluated as the prompted workflows (the paper's Table 1 comparison)."""
    monkeypatch.setenv("AUTOCOA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "study" / "seed0"
    coa = tmp_path / "coa.yaml"
    coa.write_text("coa_baseline: true\n")  # Chain-of-Action too (off by default: it costs minutes)
    model = ["--model", "smollm2-135m-instruct", "--fast", "--config", str(coa)]
    res = CliRunner().invoke(app, ["demo", *model, "--out", str(out)])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "demo.json").read_text())
    assert results["base_model"]["num_hidden_layers"] == 30 and not (out / "base").exists()
    assert set(results["eval/main"]["em"]["base"]) == {"agent", "direct", "rag", "react", "coa"}
    assert set(results["eval/main"]["em"]["rl"]) == {"agent", "direct", "rag", "react"}
    assert (out / "rl" / "model.safetensors").exists() and results["sft12"]["steps"] == 2
    # a finished stage keeps its model, not its checkpoints with their optimizer state
    assert not list(out.rglob("checkpoint-*"))
    assert sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) < 2e9  # 3 SFT x ~270 MB (bf16), RL ~540
    dtype = {st: json.loads((out / st / "config.json").read_text()).get("dtype") for st in ("sft123", "rl")}
    assert dtype == {"sft123": "bfloat16", "rl": "float32"}  # RL's small updates would round away in bf16
    heldout = [json.loads(line) for line in (out / "rl" / "heldout.jsonl").read_text().splitlines()]
    assert [r["step"] for r in heldout] == [0, 1, 2]  # the held-out curve: before RL and after each step
    # its table over seeds: the study reuses the demo's stages (a demo directory is a study seed)
    res = CliRunner().invoke(app, ["study", "demo", *model, "--seeds", "0", "--out", str(out.parent)])
    assert res.exit_code == 0, res.output
    rows = json.loads((out.parent / "demo" / "results.json").read_text())["rows"]
    assert [r["name"] for r in rows][:5] == [
        "base model, agent prompt",
        "base model, direct",
        "base model, RAG",
        "base model, ReAct workflow",
        "base model, Chain-of-Action",
    ]
    assert {r["method"]: r["em"]["mean"] for r in rows if r["label"] == "base"} == results["eval/main"]["em"]["base"]
    assert "| seed 0 |" in (out.parent / "demo" / "report.md").read_text()  # the held-out curve's table


def test_demo_refuses_an_unknown_model(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "d")])
    assert res.exit_code != 0 and "not a checkpoint directory nor a named model" in str(res.output or res.exception)


def test_demo_seed_sets_the_world_and_every_training_seed(tmp_path, monkeypatch):
    import autocoa.demo

    seen = {}

    def fake_run_demo(cfg, out, console=None):
        seen["cfg"] = cfg
        out.mkdir(parents=True, exist_ok=True)
        return {}

    monkeypatch.setattr(autocoa.demo, "run_demo", fake_run_demo)
    res = CliRunner().invoke(app, ["demo", "--fast", "--seed", "2", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    cfg = seen["cfg"]
    stages = ("pretrain", "synth", "sft1", "sft2", "sft3", "rl")
    assert cfg.world.seed == 2 and {getattr(cfg, s).seed for s in stages} == {2}
    seen.clear()
    res = CliRunner().invoke(app, ["demo", "--fast", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0 and seen["cfg"].world.seed == 0 and seen["cfg"].sft2.seed == 0


def test_verbose_draws_no_live_display():
    from autocoa.progress import active, live, live_display, set_verbose, verbose

    try:
        set_verbose(True)
        with live(object()):
            assert active() is None and verbose()
        assert live_display().disable  # nothing drawn: the libraries' output is the display
    finally:
        set_verbose(False)
    assert not live_display().disable
    marker = object()
    with live(marker):
        assert active() is marker
    assert active() is None
