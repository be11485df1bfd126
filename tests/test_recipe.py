"""The recipe's stage table and studies: fingerprinted resume, schedules, spread over seeds, reports."""

from __future__ import annotations

import doctest
import json

import pytest
import yaml

from autocoa.recipe import stages as stages_mod
from autocoa.recipe import study, study_report
from autocoa.recipe.config import for_seed, for_world_seed, load_recipe, preset
from autocoa.recipe.stages import Stage, StageMismatchError, run_stages
from autocoa.recipe.study import Row, aggregate_rows, collapse_rows, seed_stages, split_steps, spread


def counting_stage(tmp_path, name, calls, config=None, deps=()):
    def run():
        calls.append(name)
        return {"value": len(calls)}

    return Stage(name, tmp_path / name, run, config, deps)


def test_stages_run_once_then_skip_and_refuse_another_config(tmp_path):
    calls: list[str] = []
    table = [counting_stage(tmp_path, "a", calls, {"x": 1}), counting_stage(tmp_path, "b", calls, {"y": 1}, ("a",))]
    first = run_stages(table, tmp_path / "timings.json")
    assert calls == ["a", "b"] and first["b"] == {"value": 2}
    assert set(json.loads((tmp_path / "timings.json").read_text())) == {"a", "b"}
    again = run_stages(table)
    assert calls == ["a", "b"] and again["a"]["skipped"] == "already done" and again["b"]["value"] == 2
    # another config of a stage is refused, not reused; and a changed upstream config changes
    # the downstream fingerprint too
    with pytest.raises(StageMismatchError, match="another configuration"):
        run_stages([counting_stage(tmp_path, "a", calls, {"x": 2}), table[1]])
    other_root = tmp_path / "other"
    run_stages([counting_stage(other_root, "a", calls, {"x": 2})])
    b_elsewhere = counting_stage(other_root, "b", calls, {"y": 1}, ("a",))
    b_elsewhere.out = tmp_path / "b"
    with pytest.raises(StageMismatchError):
        run_stages([counting_stage(other_root, "a", calls, {"x": 2}), b_elsewhere])
    assert calls == ["a", "b", "a"]


def test_a_killed_stage_runs_again_and_a_torn_marker_is_not_done(tmp_path):
    calls: list[str] = []
    boom = Stage("a", tmp_path / "a", lambda: 1 / 0, {"x": 1})
    with pytest.raises(ZeroDivisionError):
        run_stages([boom])
    assert not (tmp_path / "a" / "DONE").exists()
    (tmp_path / "a").mkdir(exist_ok=True)
    (tmp_path / "a" / "DONE").write_text('{"fingerpr')  # killed mid-write (before the atomic rename existed)
    run_stages([counting_stage(tmp_path, "a", calls, {"x": 1})])
    assert calls == ["a"]


def checkpointing_stage(root, name, fail=False):
    """A stage that, like a trainer, leaves checkpoints, RL's trainer/ and best/ beside its model."""

    def run():
        for d in ("checkpoints/checkpoint-2", "trainer/checkpoint-2", "best"):
            (root / name / d).mkdir(parents=True, exist_ok=True)
            (root / name / d / "model.safetensors").write_bytes(b"x" * 100)
        (root / name / "model.safetensors").write_bytes(b"final")
        if fail:
            raise KeyboardInterrupt  # killed before the stage is stamped done
        return {}

    return Stage(name, root / name, run, {"x": 1})


def test_a_finished_stage_keeps_its_model_not_its_intermediate_checkpoints(tmp_path):
    results = run_stages([checkpointing_stage(tmp_path, "a")])
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["DONE", "model.safetensors"] and results["a"] == {}
    run_stages([checkpointing_stage(tmp_path / "kept", "a")], keep_checkpoints=True)
    assert (tmp_path / "kept" / "a" / "checkpoints" / "checkpoint-2" / "model.safetensors").exists()
    # a killed stage keeps what it resumes from
    with pytest.raises(KeyboardInterrupt):
        run_stages([checkpointing_stage(tmp_path / "killed", "a", fail=True)])
    assert (tmp_path / "killed" / "a" / "trainer" / "checkpoint-2").is_dir()


def test_a_stage_must_follow_what_it_reads(tmp_path):
    with pytest.raises(ValueError, match="do not run before it"):
        run_stages([counting_stage(tmp_path, "b", [], None, ("a",))])


def test_for_seed_sets_world_and_training_seeds_only():
    cfg = for_seed(preset("fast"), 7)
    assert cfg.world.seed == 7 and cfg.world.common_seed == 0  # the pretraining text stays
    assert {cfg.pretrain.seed, cfg.synth.seed, cfg.sft1.seed, cfg.sft2.seed, cfg.sft3.seed, cfg.rl.seed} == {7}
    assert cfg.world_model == preset("fast").world_model


def test_the_default_presets_seed_is_a_training_seed_on_one_world_and_base():
    cfg = for_seed(preset("default"), 7)
    assert cfg.world == preset("default").world and cfg.pretrain == preset("default").pretrain  # the shipped base
    assert {cfg.synth.seed, cfg.sft1.seed, cfg.sft2.seed, cfg.sft3.seed, cfg.rl.seed} == {7}
    other = for_world_seed(cfg, 3)
    assert other.world.seed == 3 and other.pretrain.seed == 3 and other.rl.seed == 7
    assert for_seed(preset("default"), 7, world=True).world.seed == 7


def test_an_sft_stage_replays_the_worlds_pretraining_text_only_when_asked(tmp_path):
    from autocoa.recipe.stages import sft_stage

    cfg = preset("fast")
    off = sft_stage("sft2", "sft1", "sft12", cfg.sft2, tmp_path)
    assert "replay_ratio" not in off.config["cfg"]  # directories from before the option keep their fingerprints
    on = sft_stage("sft2", "sft1", "sft12", cfg.sft2.model_copy(update={"replay_ratio": 0.25}), tmp_path)
    assert on.config["cfg"]["replay_ratio"] == 0.25


def test_load_recipe_names_the_file_and_field(tmp_path):
    from autocoa.config import ConfigError

    good = tmp_path / "r.yaml"
    good.write_text("sft3:\n  pool_repeats: 4\neval_questions: 10\n")
    cfg = load_recipe("fast", str(good))
    assert cfg.sft3.pool_repeats == 4 and cfg.sft3.max_steps == preset("fast").sft3.max_steps  # merged field by field
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft3:\n  pool_repeats: -1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid RecipeConfig: sft3.pool_repeats"):
        load_recipe("fast", str(bad))
    bad.write_text("sft3:\n  pool_repeats: [1\n")  # the same reader as every stage config's
    with pytest.raises(ConfigError, match=r"bad.yaml:3: invalid YAML"):
        load_recipe("fast", str(bad))
    bad.write_text("- sft3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: the top level must be a mapping"):
        load_recipe("fast", str(bad))


@pytest.mark.parametrize("name", ["ablations", "frontier", "fidelity"])
def test_every_study_grid_is_a_valid_stage_table(name, tmp_path):
    cfg = preset("default")
    grid = seed_stages(name, cfg, tmp_path)
    names = [s.name for s in grid.stages]
    assert len(names) == len(set(names)), names
    assert names[:7] == ["world", "index", "base", "data", "sft1", "sft12", "sft123"]
    assert all(s.out == tmp_path / s.name for s in grid.stages)  # a stage's name is its directory
    seen: set[str] = set()
    for st in grid.stages:  # every stage reads only what ran before it
        assert set(st.deps) <= seen, (st.name, st.deps)
        seen.add(st.name)
    outs = [s.out for s in grid.stages]
    assert len(outs) == len(set(outs))
    assert grid.rows and all(r.label for r in grid.rows)


def test_frontier_schedules_keep_the_total_and_reuse_the_recipe_run(tmp_path):
    cfg = preset("default")
    total = cfg.rl.sim_steps + cfg.rl.real_steps
    grid = seed_stages("frontier", cfg, tmp_path)
    sched = [(r.params["sim"], r.params["real"]) for r in grid.rows[1:]]
    assert all(s + r == total for s, r in sched) and sched[0] == (0, total) and sched[-1] == (total, 0)
    assert (cfg.rl.sim_steps, cfg.rl.real_steps) in sched
    assert "rl" in [r.label for r in grid.rows]  # the 5:1 row is the recipe's own run
    fast = seed_stages("frontier", preset("fast"), tmp_path / "f")  # 3 steps: schedules coincide, stages do not repeat
    assert len({s.name for s in fast.stages}) == len(fast.stages)


def test_spread_and_aggregation_over_seed_directories(tmp_path):
    def write(root, label, em, hops):
        d = root / "eval" / label
        d.mkdir(parents=True)
        by = {"hops": {str(h): {"em": v} for h, v in hops.items()}}
        (d / "metrics.json").write_text(
            json.dumps({"methods": {"agent": {"em": em, "by": by, "tool_calls_per_question": 2.0}}})
        )

    roots = [tmp_path / f"seed{s}" for s in range(3)]
    for root, em in zip(roots, (0.5, 0.7, 0.6), strict=True):
        write(root, "rl", em, {1: em + 0.1})
        (root / "rl").mkdir(parents=True)
        (root / "rl" / "DONE").write_text(json.dumps({"real_calls_total": 100, "reward_sim": 0.2, "reward_real": None}))
        (root / "sft1").mkdir(parents=True)
        (root / "sft1" / "DONE").write_text(
            json.dumps(
                {
                    "collapse": {
                        "chosen_first": -1,
                        "chosen_last": -2,
                        "rejected_first": -1,
                        "rejected_last": -3,
                        "collapsed": em > 0.55,
                    }
                }
            )
        )
    [row] = aggregate_rows(roots, [Row("recipe", "rl", rl="rl")])
    assert row["em"] == {"mean": 0.6, "min": 0.5, "max": 0.7, "n": 3, "values": [0.5, 0.7, 0.6]}
    assert row["em_1hop"]["mean"] == pytest.approx(0.7) and row["real_calls"]["mean"] == 100
    assert row["reward_real"] is None  # no seed has it
    [c] = collapse_rows(roots, ["sft1", "sft1_alpha0"])
    assert c["collapsed"] == "2/3" and c["chosen_last"]["mean"] == -2
    assert spread([]) is None

    paths = study_report.write_study_report("frontier", [row], [c], [0, 1, 2], tmp_path / "report")
    md = paths["report"].read_text()
    assert "0.600 (0.500-0.700)" in md and "both fell" in md
    assert paths["frontier"].stat().st_size > 1000 and paths["cost"].exists()
    assert json.loads(paths["results"].read_text())["seeds"] == [0, 1, 2]


def test_a_study_report_draws_each_seeds_heldout_curve_during_rl(tmp_path):
    """The recipe's RL with a held-out curve: the study's report tables it per seed and plots it;
    a seed whose RL ran without one (or has not run) is left out, not drawn as zeros."""
    runs = {}
    for s, ems in ((0, [0.2, 0.3, 0.4]), (1, [0.5, 0.4, 0.6]), (2, None)):
        d = tmp_path / f"seed{s}" / "rl"
        d.mkdir(parents=True)
        (d / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": i + 1, "reward": 0.3, "real_calls_total": 10 * i}) + "\n" for i in range(3))
        )
        if ems:
            (d / "heldout.jsonl").write_text(
                "".join(
                    json.dumps({"step": 6 * i, "em": em, "n": 30, "real_calls_total": 40 * i}) + "\n"
                    for i, em in enumerate(ems)
                )
            )
        runs[f"seed {s}"] = d
    row = {"name": "r", "label": "rl", "method": "agent", "em": {"mean": 0.5, "min": 0.5, "max": 0.5, "n": 3}}
    paths = study_report.write_study_report("demo", [row], [], [0, 1, 2], tmp_path / "report", rl_runs=runs)
    md = paths["report"].read_text()
    assert "| seed 0 | 0.200 | 0.300 | 0.400 |" in md and "| seed 1 | 0.500 | 0.400 | 0.600 |" in md
    assert "seed 2 |" not in md and "(30 dev questions" in md and "![rl](rl_curves.png)" in md
    assert paths["rl"].stat().st_size > 1000
    assert set(json.loads(paths["results"].read_text())["heldout"]) == {"seed 0", "seed 1"}
    plain = study_report.write_study_report("demo", [row], [], [0], tmp_path / "plain")
    assert "rl" not in plain and "Held-out EM" not in plain["report"].read_text()


def test_split_steps_rounds_to_the_nearest_step():
    assert split_steps(24, 3.0) == (18, 6) and split_steps(24, 7.0) == (21, 3) and split_steps(1, None) == (1, 0)


def test_doctests():
    for mod in (stages_mod, study, study_report):
        result = doctest.testmod(mod)
        assert result.failed == 0, mod.__name__


def test_plots_take_a_rounded_mean_below_its_minimum(tmp_path):
    third = {"mean": 0.3333, "min": 1 / 3, "max": 1 / 3, "n": 1, "values": [1 / 3]}
    rows = [
        {
            "name": "r",
            "label": "r",
            "method": "agent",
            "params": {"pool_repeats": 1},
            "em": third,
            "real_calls": {"mean": 10.0, "min": 10, "max": 10, "n": 1},
            "fidelity_pool": third,
            "em_start": third,
        }
    ]
    for name in ("frontier", "fidelity", "ablations"):
        paths = study_report.write_study_report(name, rows, [], [0], tmp_path / name)
        assert all(p.exists() for p in paths.values())


def test_a_pretrained_model_replaces_the_pretrain_stage(tmp_path, monkeypatch):
    from autocoa.demo import build_stages

    monkeypatch.setenv("AUTOCOA_CACHE", str(tmp_path / "cache"))
    cfg = preset("pretrained").model_copy(update={"model": "smollm2-135m-instruct"})
    stages = {s.name: s for s in build_stages(cfg, tmp_path / "run")}
    base = tmp_path / "cache" / "models" / "smollm2-135m-instruct"
    assert stages["base_model"].out == tmp_path / "run" / "base_model" and stages["base_model"].config == {
        "model": "smollm2-135m-instruct"
    }
    assert stages["sft1"].deps[0] == "base_model"  # SFT-1 reads the converted checkpoint, not run/base
    main = stages["eval/main"]
    base_spec = next(sp for sp in main.config["specs"] if sp["label"] == "base")
    assert base_spec["ckpt"] == str(base.resolve()) and set(base_spec["methods"]) == {"agent", "direct", "rag", "react"}
    tiny = {s.name: s for s in build_stages(preset("default"), tmp_path / "tiny")}
    assert tiny["base"].out == tmp_path / "tiny" / "base"
    for size in ("pretrained", "pretrained-fast"):
        p = preset(size)
        assert p.size == size and p.model is None and p.sft2.max_steps and p.rl.max_new_tokens <= 320
        # RL (#27): on every training question, not SFT's own pool; no reference model; a held-out curve
        assert p.world_model.rl_questions == "train" and p.rl.kl_coef == 0 and p.rl.heldout_every
    assert preset("pretrained").rl.sim_steps == 0  # its world model simulates nothing (fidelity 0.00-0.02)


def test_a_trainer_marker_left_unstamped_by_a_kill_runs_the_stage_again(tmp_path):
    """A stage's trainer writes DONE (no fingerprint) as its run ends; a kill before run_stages
    stamps it must neither refuse the directory as another configuration's nor skip it."""
    calls: list[str] = []
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "DONE").write_text('{"steps": 4}')
    out = run_stages([counting_stage(tmp_path, "a", calls, {"x": 1})])
    assert calls == ["a"] and out["a"] == {"value": 1}
    again = run_stages([counting_stage(tmp_path, "a", calls, {"x": 1})])
    assert calls == ["a"] and again["a"] == {"value": 1, "skipped": "already done"}  # no fingerprint in results


def test_the_base_model_is_evaluated_as_the_workflows_it_can_follow():
    from autocoa.recipe.stages import base_methods

    assert base_methods(preset("default")) == ("direct",)  # the tiny model follows no prompt
    chat = preset("pretrained").model_copy(update={"model": "smollm2-135m-instruct"})
    assert base_methods(chat) == ("agent", "direct", "rag", "react")
    assert base_methods(chat.model_copy(update={"coa_baseline": True}))[-1] == "coa"


def test_the_short_and_legacy_presets_and_the_preset_option(tmp_path):
    from typer.testing import CliRunner

    from autocoa.cli import app

    default, short, legacy = preset("default"), preset("short"), preset("legacy")
    # the previous default is the scale model with SFT-2 half as long, and nothing else
    assert default.sft2.max_steps == 2 * short.sft2.max_steps == 2400
    assert short.model_copy(update={"size": "default", "sft2": default.sft2}) == default
    assert default.world.rare_exposure_max > 0 and default.world.reading_passages > 0
    assert default.synth.known_from == "model" and default.sft3.pool_repeats == 0
    assert default.sft3.observations_in == "all"
    assert legacy.world.rare_exposure_max == 0 and legacy.synth.known_from == "world" and legacy.sft3.pool_repeats
    res = CliRunner().invoke(app, ["demo", "--fast", "--preset", "short", "--out", str(tmp_path / "d")])
    assert res.exit_code != 0 and "not with --fast" in str(res.exception)
    res = CliRunner().invoke(app, ["world", "--preset", "nope", "--out", str(tmp_path / "w")])
    assert res.exit_code != 0 and "--preset nope" in str(res.exception)
    res = CliRunner().invoke(app, ["world", "--preset", "fast", "--out", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    stats = json.loads((tmp_path / "w" / "world.json").read_text())
    assert stats["config"]["reading_passages"] == preset("fast").world.reading_passages


def test_ablations_carry_the_papers_schedule_and_its_control_whatever_the_presets_schedule(tmp_path):
    """The paper's 5:1 schedule and its real steps alone (the control the paper lacks) are rows
    of their own at the preset's total steps, whether the preset's RL is all real (the default)
    or the paper's schedule itself (whose run is then the seed's ``rl``, not a second stage)."""
    from autocoa.recipe.study import PAPER, REAL_ONLY, RECIPE

    cfg = preset("default")
    for c, root in ((cfg, tmp_path / "a"), (preset("legacy"), tmp_path / "b")):
        grid = seed_stages("ablations", c, root)
        rows = {r.name: r for r in grid.rows}
        total = c.rl.sim_steps + c.rl.real_steps
        sim, real = study.split_steps(total, study.PAPER_RATIO)
        assert rows[REAL_ONLY].rl == f"rl_sft123_s0_r{real}" in [s.name for s in grid.stages]
        paper = "rl" if (c.rl.sim_steps, c.rl.real_steps) == (sim, real) else f"rl_sft123_s{sim}_r{real}"
        assert rows[PAPER].rl == paper and rows[RECIPE].rl == "rl"
        assert len({s.name for s in grid.stages}) == len(grid.stages)
    assert preset("legacy").rl.sim_steps > 0 and cfg.rl.sim_steps == 0  # both cases are covered


def test_a_recipe_file_may_not_shadow_a_field_the_recipe_sets_and_a_saved_recipe_loads_back(tmp_path):
    """topk (and the RL pool's sizes) have one source, the recipe's own field: a recipe file that
    sets rl.topk is refused with the field to set instead; a saved recipe leaves the stage copies
    out, so that it loads back as the same recipe."""
    from autocoa.config import ConfigError
    from autocoa.recipe.config import SET_BY_RECIPE

    bad = tmp_path / "bad.yaml"
    bad.write_text("rl:\n  topk: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: rl.topk: set by the recipe from its topk.*set topk"):
        load_recipe("default", str(bad))
    for size in ("default", "fast", "legacy", "pretrained-fast"):
        cfg = preset(size)
        cfg.save(tmp_path / f"{size}.yaml")
        saved = yaml.safe_load((tmp_path / f"{size}.yaml").read_text())
        assert all(dotted.split(".")[1] not in saved[dotted.split(".")[0]] for dotted in SET_BY_RECIPE)
        assert load_recipe(size, str(tmp_path / f"{size}.yaml")) == cfg


@pytest.mark.parametrize("size", ["default", "short", "legacy", "fast", "pretrained", "pretrained-fast"])
def test_rl_rollouts_and_evaluation_share_the_token_budget(size):
    """Each preset writes its token budget once (recipe.config.BUDGET, FAST_BUDGET, or the
    pretrained preset's own) for RL's rollouts and evaluation alike. The action budget is the one
    difference, and a deliberate one of the field defaults: evaluation allows 8 actions, RL 6."""
    cfg = preset(size)
    for k in ("max_new_tokens", "max_obs_tokens", "max_answer_tokens"):
        assert getattr(cfg.rl, k) == getattr(cfg.agent, k), k
    assert (cfg.rl.max_actions, cfg.agent.max_actions) == (6, 8)


# Fields whose setting the stage fingerprints leave out, with the reason (a setting that changes
# nothing is not a second source): checkpoint cadence and limits, and options that only matter
# with another that is off in the preset.
NO_EFFECT = {
    "pretrain.save_steps",
    "pretrain.save_total_limit",
    "sft2.replay_block",  # with replay_ratio > 0 only
    "sft3.replay_block",
    "pretrain.reading_eval_steps",  # with reading_target only
    "pretrain.decay_steps",
}


def _other_value(info, value):
    """A valid value other than ``value`` for the field ``info`` (None: none simple to make)."""
    import typing

    args = typing.get_args(info.annotation)
    if info.annotation is bool:
        return not value
    if typing.get_origin(info.annotation) is typing.Literal:
        return next((a for a in args if a != value), None)
    if info.annotation is int and isinstance(value, int):
        return value + 1
    if info.annotation is float and isinstance(value, float):
        return round(value * 0.5, 6) if value else 0.25
    return None


def _stage_configs(cfg, root):
    from autocoa.recipe.stages import main_eval_stage, recipe_stages, rl_stage

    stages = [
        *recipe_stages(cfg, root),
        rl_stage("rl", cfg, root, "sft123", cfg.rl.sim_steps, cfg.rl.real_steps),
    ]
    return json.dumps([s.config for s in [*stages, main_eval_stage(cfg, root)]], sort_keys=True, default=str)


def test_no_recipe_setting_is_silently_overwritten(tmp_path):
    """Every field of every stage section of a recipe file either reaches the stages that run
    (it changes their configuration, hence their fingerprints) or is refused with its name
    (SET_BY_RECIPE): no setting has a second source that silently wins (introspected over every
    field of the fast preset's sections)."""
    from autocoa.config import ConfigError
    from autocoa.recipe.config import SET_BY_RECIPE

    base = preset("fast")
    before = _stage_configs(base, tmp_path)
    silent, checked = [], 0
    for section in ("world", "pretrain", "synth", "world_model", "sft1", "sft2", "sft3", "rl", "agent"):
        sub = getattr(base, section)
        for name, info in type(sub).model_fields.items():
            dotted = f"{section}.{name}"
            value = _other_value(info, getattr(sub, name))
            if value is None or dotted in NO_EFFECT:
                continue
            path = tmp_path / f"{dotted}.yaml"
            path.write_text(yaml.safe_dump({section: {name: value}}), encoding="utf-8")
            try:
                cfg = load_recipe("fast", str(path))
            except ConfigError as e:
                if dotted in SET_BY_RECIPE:
                    assert dotted in str(e)
                continue  # a value the field's own constraints refuse (e.g. a ratio above 1)
            checked += 1
            if dotted in SET_BY_RECIPE:
                silent.append(f"{dotted} (listed as set by the recipe, but accepted)")
            elif _stage_configs(cfg, tmp_path) == before:
                silent.append(dotted)
    assert checked > 100 and not silent, silent


def test_a_seed_option_never_overwrites_the_files_seed(tmp_path):
    """``--seed`` sets every training seed and ``--world-seed`` the world's; a seed the recipe
    file set to another value is refused with both named, not overwritten."""
    from autocoa.config import ConfigError
    from autocoa.recipe.config import for_seed, for_world_seed

    path = tmp_path / "r.yaml"
    path.write_text("sft2:\n  seed: 5\nworld:\n  seed: 2\n")
    cfg = load_recipe("fast", str(path)).model_copy(update={"ablations": True})  # survives copies
    with pytest.raises(ConfigError, match=r"r.yaml: sft2.seed is 5, but --seed is 0"):
        for_seed(cfg, 0, world=False)
    assert {for_seed(cfg, 5, world=False).rl.seed, for_seed(cfg, 5, world=False).sft2.seed} == {5}
    with pytest.raises(ConfigError, match=r"world.seed is 2, but the world seed is 7"):
        for_world_seed(cfg, 7)
    assert for_seed(load_recipe("fast"), 3).sft1.seed == 3  # no file: the option alone


def test_finished_stages_can_keep_their_weights_in_bf16(tokenizer, tmp_path):
    """weights_on_disk: bfloat16 (the real-model presets): a finished stage's final weights are
    rewritten in bf16 (half the bytes), load back as fp32 for training, and answer as before up to
    bf16 rounding; a stage killed before its DONE keeps its fp32 weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from autocoa.models import load_model
    from tests.rl_helpers import save_tiny_model

    def model_stage(name):
        return Stage(name, tmp_path / name, lambda: (save_tiny_model(tokenizer, tmp_path / name, hidden=64), {})[1])

    fp32 = AutoModelForCausalLM.from_pretrained(save_tiny_model(tokenizer, tmp_path / "ref", hidden=64))
    run_stages([model_stage("a")], weights_on_disk="bfloat16")
    size = (tmp_path / "a" / "model.safetensors").stat().st_size
    assert size < 0.6 * (tmp_path / "ref" / "model.safetensors").stat().st_size
    assert json.loads((tmp_path / "a" / "config.json").read_text()).get("dtype") == "bfloat16"
    model, _ = load_model(tmp_path / "a", for_training=True)
    assert next(model.parameters()).dtype == torch.float32  # master weights, as always
    ids = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, fp32(ids).logits, atol=0.05)
    from autocoa.train.checkpoints import compact_weights

    save_tiny_model(tokenizer, tmp_path / "unfinished", hidden=64)
    assert compact_weights(tmp_path / "unfinished") == 0  # no DONE: left as it is
    # a stage that keeps its precision (RL: its updates would round away) is left in fp32
    keep = model_stage("rl")
    keep.compact = False
    run_stages([keep], weights_on_disk="bfloat16")
    fp32_bytes = (tmp_path / "ref" / "model.safetensors").stat().st_size
    assert (tmp_path / "rl" / "model.safetensors").stat().st_size == fp32_bytes
    assert json.loads((tmp_path / "rl" / "config.json").read_text()).get("dtype") != "bfloat16"


def test_the_rl_stage_keeps_fp32_weights(tmp_path):
    from autocoa.recipe.config import preset
    from autocoa.recipe.stages import rl_stage

    cfg = preset("pretrained")
    assert cfg.weights_on_disk == "bfloat16"
    assert rl_stage("rl", cfg, tmp_path, "sft123", 0, 2).compact is False


@pytest.mark.parametrize(("rl_questions", "read"), [("pool", "data/rl_pool.jsonl"), ("train", "world/train.jsonl")])
def test_the_rl_stage_draws_the_questions_the_recipe_names(tmp_path, monkeypatch, rl_questions, read):
    """world_model.rl_questions: the RL pool SFT-3 learned, or every training question."""
    import autocoa.tools.search
    import autocoa.train.rl
    from autocoa.recipe.config import preset
    from autocoa.recipe.stages import rl_stage

    seen = {}
    monkeypatch.setattr(autocoa.tools.search, "Retrieval", lambda path: path)
    monkeypatch.setattr(autocoa.train.rl, "train_rl", lambda model, questions, *a, **k: seen.update(q=questions) or {})
    cfg = preset("pretrained")
    wm = cfg.world_model.model_copy(update={"rl_questions": rl_questions})
    cfg = cfg.model_copy(update={"world_model": wm, "rl": cfg.rl.model_copy(update={"heldout_every": 0})})
    stage = rl_stage("rl", cfg, tmp_path, "sft123", 0, 2)
    stage.run()
    assert seen["q"] == tmp_path / read
    assert stage.config["questions"] == ("rl_pool.jsonl" if rl_questions == "pool" else None)


def test_a_study_row_reads_the_share_past_the_last_hop(tmp_path):
    """The study's demo table shows past the last hop overall and at 1 hop from eval metrics; a
    column no row has a value for (an older study) is left out of the table."""
    from autocoa.recipe.study import row_values

    m = {"em": 0.5, "by": {"hops": {"1": {"em": 0.25}}}, "past_last_hop": 0.4, "past_last_hop_by_hops": {"1": 0.75}}
    (tmp_path / "eval" / "rl").mkdir(parents=True)
    (tmp_path / "eval" / "rl" / "metrics.json").write_text(json.dumps({"methods": {"agent": m}}))
    values = row_values(tmp_path, Row("r", "rl"))
    assert (values["past_last_hop"], values["past_1hop"], values["em_1hop"]) == (0.4, 0.75, 0.25)
    rows = [{"name": "r", "past_last_hop": spread([0.4, 0.5]), "em": spread([0.5, 0.6])}]
    table = study_report.markdown_table("demo", rows)
    assert "past last hop" in table and "past, 1-hop" not in table and "reward sim" not in table
