"""``autocoa study fidelity-curve``: the paper's schedule with its simulated steps written by the
oracle at each fidelity, against its real steps alone and all-real RL; the break-even fidelity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autocoa.recipe import study, study_report
from autocoa.recipe.config import preset
from autocoa.recipe.stages import unused_simulator_fields
from autocoa.recipe.study import ALL_REAL, REAL_ALONE, WORLD_MODEL, seed_stages


@pytest.mark.parametrize("size", ["default", "fast", "legacy"])
def test_the_curve_runs_the_papers_schedule_at_each_fidelity_from_one_checkpoint(size, tmp_path):
    cfg = preset(size)
    grid = seed_stages("fidelity-curve", cfg, tmp_path)
    names = [s.name for s in grid.stages]
    assert len(names) == len(set(names))
    seen: set[str] = set()
    for st in grid.stages:  # every stage reads only what ran before it
        assert set(st.deps) <= seen, (st.name, st.deps)
        seen.add(st.name)
    rows = {r.name: r for r in grid.rows}
    total = cfg.rl.sim_steps + cfg.rl.real_steps
    sim, real = rows[WORLD_MODEL].params["sim"], rows[WORLD_MODEL].params["real"]
    assert sim + real == total and sim > 0 and real > 0
    if size == "default":
        assert (sim, real) == (15, 3)  # the paper's 5:1
    by_name = {s.name: s for s in grid.stages}
    for p in study.FIDELITIES:
        row = rows[study.oracle_row_name(p)]
        rl = by_name[row.rl].config["rl"]
        assert (rl["sim_steps"], rl["real_steps"]) == (sim, real)
        if p == 0:  # the world model itself: the ablations' stage (bit-exact with the oracle at 0)
            own = (cfg.rl.sim_steps, cfg.rl.real_steps) == (sim, real)  # the preset's own schedule: its ``rl``
            assert row.rl == ("rl" if own else f"rl_sft123_s{sim}_r{real}") and "simulator" not in rl
        else:
            assert (rl["simulator"], rl["simulator_fidelity"]) == ("oracle", p)
    assert rows[REAL_ALONE].params == {"fidelity": None, "sim": 0, "real": real}
    assert rows[ALL_REAL].params["real"] == total
    # one shared world model stage: the same fingerprint as the ablations study's
    abl = {s.name: s for s in seed_stages("ablations", cfg, tmp_path).stages}
    if rows[WORLD_MODEL].rl in abl:
        assert abl[rows[WORLD_MODEL].rl].config == by_name[rows[WORLD_MODEL].rl].config


def test_an_endpoint_simulator_in_the_recipe_adds_its_row():
    cfg = preset("default")
    cfg = cfg.model_copy(
        update={"rl": cfg.rl.model_copy(update={"simulator": "endpoint", "simulator_url": "http://x"})}
    )
    grid = study.fidelity_curve_grid(cfg, Path("/tmp/nowhere"))
    row = next(r for r in grid.rows if r.name == study.ENDPOINT)
    st = next(s for s in grid.stages if s.name == row.rl)
    assert st.config["rl"]["simulator"] == "endpoint" and st.config["rl"]["simulator_url"] == "http://x"
    # the seed's own all-real run keeps its fingerprint: no simulated step, no simulator fields
    assert unused_simulator_fields(cfg.rl.model_copy(update={"sim_steps": 0})) >= {"simulator", "simulator_url"}


def _spread(values):
    return study.spread(values)


def test_the_report_pairs_each_fidelity_with_the_real_steps_alone_and_names_the_break_even(tmp_path):
    def row(name, em, fid=None, fidelity=None):
        r = {"name": name, "label": name, "method": "agent", "params": {"fidelity": fidelity}, "em": _spread(em)}
        r["real_calls"] = _spread([100, 110])
        if fid is not None:
            r["fidelity_in_rl"] = _spread(fid)
        return r

    rows = [
        row(REAL_ALONE, [0.80, 0.82]),
        row(WORLD_MODEL, [0.75, 0.79], fid=[0.01, 0.02], fidelity=0.0),
        row("oracle p=0.5", [0.79, 0.81], fid=[0.50, 0.52], fidelity=0.5),
        row("oracle p=1", [0.84, 0.86], fid=[0.95, 0.97], fidelity=1.0),
        row(ALL_REAL, [0.90, 0.90]),
    ]
    paths = study_report.write_study_report("fidelity-curve", rows, [], [0, 1], tmp_path / "curve")
    data = json.loads(paths["results"].read_text())
    pairs = {(d["row"], d["baseline"]): d for d in data["paired"]}
    assert pairs[(WORLD_MODEL, REAL_ALONE)]["per_seed"] == [-0.05, -0.03]
    assert pairs[("oracle p=1", ALL_REAL)]["mean"] == pytest.approx(-0.05)
    curve = data["fidelity_curve"]
    assert [p["name"] for p in curve["points"]] == [WORLD_MODEL, "oracle p=0.5", "oracle p=1"]
    # mean gains -0.04 at 0.015, -0.01 at 0.51, +0.04 at 0.96: the crossing lies between the last two
    assert curve["break_even"] == pytest.approx(0.51 + 0.01 * 0.45 / 0.05, abs=1e-3)
    md = paths["report"].read_text()
    assert "break even" in md and f"{curve['break_even']:.3f}" in md
    assert curve["positive_on_every_seed_from"] == pytest.approx(0.96)  # p=1 alone gains on both seeds
    assert "positive on every seed is 0.960" in md
    assert paths["fidelity_curve"].stat().st_size > 1000
    assert "| world model's |" not in md.splitlines()[4]  # a column no row has is left out
