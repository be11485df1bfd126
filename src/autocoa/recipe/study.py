"""``autocoa study NAME``: a grid of recipe variants over several seeds, each row as mean and min-max.

Studies (``--seeds 0,1,2`` by default; each seed is a world seed and the training seed):

- ``demo`` — the demo's own table (``autocoa demo``'s stages, so a demo directory is its seed):
  the base model (a real chat model also as the prompted agent, RAG and ReAct workflows, and
  Chain-of-Action with ``coa_baseline``), SFT-1&2&3, and the recipe's model deciding by itself
  and driven by the baselines.
- ``ablations`` — the paper's Table 1 rows in miniature: SFT-2, SFT-1&2, SFT-1&2&3, +RL-1
  (simulated only), +RL-1&2 (the paper's 5:1 schedule), +RL-2 (all real), the control the paper lacks (the
  paper schedule's real steps alone), SFT-1&2+RL-2; the recipe's
  baselines (ReAct, RAG, direct, the base model); and SFT-1's contrastive-collapse monitor with
  the auxiliary NLL term (``alpha`` of the preset) and without it (alpha 0).
- ``frontier`` — the sim:real frontier: at the recipe's total GRPO steps, all-real, 3:1, 5:1,
  7:1 and all-simulated schedules from the same SFT-1&2&3 checkpoint -> held-out EM against real
  tool calls spent in training.
- ``fidelity-curve`` — the simulator's fidelity against what the simulated steps buy: the paper's
  5:1 schedule with its simulated results written by the oracle simulator at fidelity 0 (the
  world model), 0.25, 0.5, 0.75 and 1, paired by seed against the same real steps alone and
  against all-real RL; the break-even fidelity where the simulated steps start to pay.
- ``fidelity`` — the world model's fidelity / performance trade-off: SFT-3 with several RL-pool
  budgets (``pool_repeats``) -> fidelity on the RL pool, on unseen training questions and on
  held-out questions, and held-out EM after the recipe's schedule.

Layout: ``OUT/seed<s>/`` holds one seed's stages exactly as ``autocoa demo --out`` lays them
out (so a demo directory is a study seed), shared by every study and row that needs them
(fingerprints keep a changed configuration from reusing them); ``OUT/<study>/`` holds the
study's ``report.md``, ``results.json`` and plots. Re-running resumes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocoa.recipe.config import RecipeConfig
from autocoa.recipe.stages import (
    EvalSpec,
    Stage,
    base_dir,
    base_methods,
    base_stage,
    eval_stage,
    fidelity_specs,
    main_eval_stage,
    recipe_stages,
    rl_stage,
    run_spec,
    sft_stage,
)

STUDIES = ("demo", "ablations", "frontier", "fidelity", "fidelity-curve")
FRONTIER_RATIOS: tuple[tuple[str, float | None], ...] = (
    ("all-real", 0.0),
    ("3:1", 3.0),
    ("5:1", 5.0),
    ("7:1", 7.0),
    ("all-sim", None),
)


@dataclass
class Row:
    """One row of a study: the eval run ``label`` (``eval/<label>``, method ``method``) and the
    RL stage whose real calls it spent (None: no RL). ``params`` go into the table as columns."""

    name: str
    label: str
    method: str = "agent"
    rl: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    fidelity: str | None = None  # prefix of its fidelity eval runs (``<prefix>_sim_pool`` ...)


@dataclass
class Grid:
    stages: list[Stage]
    rows: list[Row]
    sft1: list[str] = field(default_factory=list)  # SFT-1 stages whose collapse monitor is reported


def split_steps(total: int, ratio: float | None) -> tuple[int, int]:
    """``(sim, real)`` steps of a ``ratio``:1 schedule over ``total`` steps (None: all simulated).

    >>> split_steps(18, 5.0), split_steps(18, 3.0), split_steps(18, 7.0), split_steps(18, 0.0), split_steps(18, None)
    ((15, 3), (14, 4), (16, 2), (0, 18), (18, 0))
    """
    if ratio is None:
        return total, 0
    sim = int(total * ratio / (ratio + 1) + 0.5)
    return sim, total - sim


def rl_name(cfg: RecipeConfig, src: str, sim: int, real: int) -> str:
    """The stage (and directory) name of an RL run: ``rl`` for the recipe's own schedule from
    SFT-1&2&3, else ``rl_<src>_s<sim>_r<real>``."""
    if src == "sft123" and (sim, real) == (cfg.rl.sim_steps, cfg.rl.real_steps):
        return "rl"
    return f"rl_{src}_s{sim}_r{real}"


def _rl(cfg: RecipeConfig, root: Path, src: str, sim: int, real: int) -> Stage:
    return rl_stage(rl_name(cfg, src, sim, real), cfg, root, src, sim, real)


def demo_grid(cfg: RecipeConfig, root: Path) -> Grid:
    from autocoa.eval.methods import get

    rows = [Row(f"base model, {get(m).label}", "base", m) for m in base_methods(cfg)]
    rows += [
        Row("SFT-1&2&3", "sft123", fidelity="sft123"),
        Row(RECIPE, "rl", rl="rl"),
        *(Row(f"recipe model, {get(m).label}", "rl", m, rl="rl") for m in ("react", "rag", "direct")),
    ]
    return Grid([main_eval_stage(cfg, root)], rows)


RECIPE = "SFT-1&2&3 + RL (the recipe)"  # the preset's own RL schedule (``rl``), whatever it is
PAPER = "SFT-1&2&3 + RL-1&2 (the paper's 5:1 schedule)"
REAL_ONLY = "SFT-1&2&3 + the paper schedule's real steps alone"
PAPER_RATIO = 5.0  # the paper's schedule: 80 simulated then 16 real GRPO steps


def ablations_grid(cfg: RecipeConfig, root: Path) -> Grid:
    """The paper's Table 1 rows at the preset's total RL steps, whatever its own schedule: RL-1
    (all simulated), the paper's 5:1 schedule, RL-2 (all real) and, the control the paper lacks,
    the paper schedule's real steps alone."""
    total = cfg.rl.sim_steps + cfg.rl.real_steps
    paper_sim, paper_real = split_steps(total, PAPER_RATIO)
    rl_runs = {
        "sft123_rl1": _rl(cfg, root, "sft123", total, 0),
        "sft123_paper": _rl(cfg, root, "sft123", paper_sim, paper_real),
        "sft123_rl2": _rl(cfg, root, "sft123", 0, total),
        "sft12_rl2": _rl(cfg, root, "sft12", 0, total),
    }
    control = paper_sim > 0 and paper_real > 0  # else it is one of the rows above
    if control:  # the control the paper lacks: the paper schedule's real steps without its simulated ones
        rl_runs["sft123_real_only"] = _rl(cfg, root, "sft123", 0, paper_real)
    alpha0 = cfg.sft1.model_copy(update={"alpha": 0.0})
    own = {st.name: st for st in rl_runs.values() if st.name != "rl"}  # ``rl`` is the seed's own stage
    stages = [
        sft_stage("sft1", base_dir(cfg), "sft1_alpha0", alpha0, root, reads=base_stage(cfg)),
        sft_stage("sft2", base_dir(cfg), "sft2_only", cfg.sft2, root, reads=base_stage(cfg)),
        *own.values(),
    ]
    specs = [
        EvalSpec("base", base_dir(cfg), ("direct",)),
        EvalSpec("sft2", "sft2_only"),
        EvalSpec("sft12", "sft12"),
        EvalSpec("sft123", "sft123"),
        *(run_spec(name) for name in own),  # the checkpoints' own evaluations (shared by studies)
    ]
    deps = [base_stage(cfg), "sft12", "sft123", "sft2_only", "rl", *own]
    stages.append(eval_stage("study_ablations", cfg, root, specs, deps=list(dict.fromkeys(deps))))

    def rl_row(label: str, key: str) -> Row:
        return Row(label, rl_runs[key].name, rl=rl_runs[key].name)

    rows = [
        Row("base model, direct", "base", "direct"),
        Row("SFT-2", "sft2"),
        Row("SFT-1&2", "sft12"),
        Row("SFT-1&2&3", "sft123"),
        rl_row("SFT-1&2&3 + RL-1 (sim only)", "sft123_rl1"),
        rl_row(PAPER, "sft123_paper"),
        rl_row("SFT-1&2&3 + RL-2 (all real)", "sft123_rl2"),
        *([rl_row(REAL_ONLY, "sft123_real_only")] if control else []),
        rl_row("SFT-1&2 + RL-2 (all real)", "sft12_rl2"),
        Row(RECIPE, "rl", rl="rl"),
        Row("recipe model, ReAct workflow", "rl", "react", rl="rl"),
        Row("recipe model, RAG", "rl", "rag", rl="rl"),
        Row("recipe model, direct", "rl", "direct", rl="rl"),
    ]
    return Grid(stages, rows, sft1=["sft1", "sft1_alpha0"])


def frontier_grid(cfg: RecipeConfig, root: Path) -> Grid:
    total = cfg.rl.sim_steps + cfg.rl.real_steps
    stages, specs = [], [EvalSpec("sft123", "sft123")]
    rows = [Row("SFT-1&2&3 (no RL)", "sft123", params={"schedule": "-", "sim": 0, "real": 0})]
    for tag, ratio in FRONTIER_RATIOS:
        sim, real = split_steps(total, ratio)
        st = _rl(cfg, root, "sft123", sim, real)
        if all(x.name != st.name for x in stages):  # short runs: two ratios can round to one schedule
            stages.append(st)
            specs.append(run_spec(st.name))
        rows.append(
            Row(
                f"{tag} ({sim} sim + {real} real)",
                st.name,
                rl=st.name,
                params={"schedule": tag, "sim": sim, "real": real},
            )
        )
    stages.append(eval_stage("study_frontier", cfg, root, specs, deps=["sft123", *(s.name for s in stages)]))
    return Grid(stages, rows)


def fidelity_budgets(cfg: RecipeConfig) -> list[int]:
    """World-model budgets (copies of the RL pool in SFT-3): none, a quarter, half and all of the recipe's."""
    r = max(1, cfg.sft3.pool_repeats)
    return sorted({0, max(1, r // 4), max(1, r // 2), r})


def fidelity_grid(cfg: RecipeConfig, root: Path) -> Grid:
    if not cfg.world_model.rl_pool:
        raise ValueError("the fidelity study needs an RL pool (world_model.rl_pool > 0)")
    stages: list[Stage] = []
    specs: list[EvalSpec] = []
    rows: list[Row] = []
    deps: list[str] = []
    for b in fidelity_budgets(cfg):
        if b == cfg.sft3.pool_repeats:
            ckpt = "sft123"
        else:
            ckpt = f"sft123_pool{b}"
            pooled = cfg.sft3.model_copy(update={"pool_repeats": b})
            stages.append(sft_stage("sft3", "sft12", ckpt, pooled, root, pool=b > 0))
        rl_st = _rl(cfg, root, ckpt, cfg.rl.sim_steps, cfg.rl.real_steps)
        if ckpt != "sft123":
            stages.append(rl_st)
        # the start's held-out evaluation is the checkpoint's own (shared with other studies)
        specs += [EvalSpec(ckpt, ckpt), run_spec(rl_st.name), *fidelity_specs(ckpt, ckpt, cfg)]
        deps += [ckpt, rl_st.name]
        rows.append(
            Row(
                f"pool x{b}",
                rl_st.name,
                rl=rl_st.name,
                params={"pool_repeats": b, "start": ckpt},
                fidelity=ckpt,
            )
        )
    stages.append(eval_stage("study_fidelity", cfg, root, specs, deps=list(dict.fromkeys(deps))))
    return Grid(stages, rows)


FIDELITIES = (0.0, 0.25, 0.5, 0.75, 1.0)  # the oracle simulator's fidelities on the curve
WORLD_MODEL = "world model (= oracle p=0)"
REAL_ALONE = "the schedule's real steps alone"
ALL_REAL = "all real"
ENDPOINT = "endpoint simulator"


def oracle_row_name(p: float) -> str:
    """The fidelity curve's row of the oracle at fidelity ``p``.

    >>> oracle_row_name(0.25), oracle_row_name(1.0), oracle_row_name(0.0)
    ('oracle p=0.25', 'oracle p=1', 'world model (= oracle p=0)')
    """
    return WORLD_MODEL if p == 0 else f"oracle p={p:g}"


def _with_simulator(cfg: RecipeConfig, **fields: Any) -> RecipeConfig:
    return cfg.model_copy(update={"rl": cfg.rl.model_copy(update=fields)})


def fidelity_curve_grid(cfg: RecipeConfig, root: Path) -> Grid:
    """The paper's 5:1 schedule at the preset's total RL steps, its simulated steps written by the
    oracle simulator at each fidelity of :data:`FIDELITIES` (p = 0 is the world model itself:
    bit-exact, so its stage is the ablations study's), against the same real steps alone and all
    real steps; with ``rl.simulator: endpoint`` (``rl.simulator_url``) the endpoint simulator too."""
    total = cfg.rl.sim_steps + cfg.rl.real_steps
    if total < 2:
        raise ValueError(f"the fidelity curve needs simulated and real steps: the preset has {total} RL step")
    sim = min(split_steps(total, PAPER_RATIO)[0], total - 1)  # at least one real step (short runs)
    real = total - sim
    from autocoa.train.rl_config import SIMULATOR_FIELDS, RLConfig

    # the world model with every simulator field at its default (a recipe's endpoint settings dropped)
    model_cfg = _with_simulator(cfg, **{k: RLConfig.model_fields[k].default for k in SIMULATOR_FIELDS})
    runs: list[tuple[str, Stage, dict[str, Any]]] = []
    for p in FIDELITIES:
        if p == 0:
            st = _rl(model_cfg, root, "sft123", sim, real)
        else:
            oracle = _with_simulator(cfg, simulator="oracle", simulator_fidelity=p)
            st = rl_stage(f"rl_sft123_s{sim}_r{real}_oracle{round(p * 100)}", oracle, root, "sft123", sim, real)
        runs.append((oracle_row_name(p), st, {"fidelity": p, "sim": sim, "real": real}))
    if cfg.rl.simulator == "endpoint":
        st = rl_stage(f"rl_sft123_s{sim}_r{real}_endpoint", cfg, root, "sft123", sim, real)
        runs.append((ENDPOINT, st, {"fidelity": None, "sim": sim, "real": real}))
    runs.append((REAL_ALONE, _rl(model_cfg, root, "sft123", 0, real), {"fidelity": None, "sim": 0, "real": real}))
    runs.append((ALL_REAL, _rl(model_cfg, root, "sft123", 0, total), {"fidelity": None, "sim": 0, "real": total}))
    own = [st for _, st, _ in runs if st.name != "rl"]  # ``rl`` is the seed's own stage
    used = list(dict.fromkeys(st.name for _, st, _ in runs))  # ``rl`` too: its evaluation is the demo's
    specs = [EvalSpec("sft123", "sft123"), *(run_spec(name) for name in used)]
    deps = ["sft123", "rl", *(st.name for st in own)]
    rows = [Row("SFT-1&2&3 (no RL)", "sft123", params={"fidelity": None, "sim": 0, "real": 0})]
    rows += [Row(name, st.name, rl=st.name, params=params) for name, st, params in runs]
    stages = [*own, eval_stage("study_fidelity_curve", cfg, root, specs, deps=list(dict.fromkeys(deps)))]
    return Grid(stages, rows)


GRIDS: dict[str, Callable[[RecipeConfig, Path], Grid]] = {
    "demo": demo_grid,
    "ablations": ablations_grid,
    "frontier": frontier_grid,
    "fidelity": fidelity_grid,
    "fidelity-curve": fidelity_curve_grid,
}


def seed_stages(name: str, cfg: RecipeConfig, root: Path) -> Grid:
    """Every stage one seed needs for study ``name``: the shared recipe stages, the recipe's
    own RL run (rows reuse it), then the study's."""
    if name not in GRIDS:
        raise ValueError(f"unknown study {name!r}; one of {', '.join(STUDIES)}")
    grid = GRIDS[name](cfg, root)
    shared = [*recipe_stages(cfg, root), _rl(cfg, root, "sft123", cfg.rl.sim_steps, cfg.rl.real_steps)]
    names = {s.name for s in shared}
    return Grid(shared + [s for s in grid.stages if s.name not in names], grid.rows, grid.sft1)


# ---------------------------------------------------------------------------------------
# Collecting and aggregating (pure over the per-seed files)


def spread(values: Sequence[float | None]) -> dict[str, Any] | None:
    """Mean, min and max of the values that exist; None when none does.

    >>> spread([0.5, 0.7, None, 0.6])
    {'mean': 0.6, 'min': 0.5, 'max': 0.7, 'n': 3, 'values': [0.5, 0.7, 0.6]}
    >>> spread([None]) is None
    True
    """
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    return {"mean": round(sum(xs) / len(xs), 4), "min": min(xs), "max": max(xs), "n": len(xs), "values": xs}


def _metrics(root: Path, label: str) -> dict[str, Any] | None:
    p = root / "eval" / label / "metrics.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


def _stage_summary(root: Path, name: str) -> dict[str, Any]:
    from autocoa.train.common import read_done

    return read_done(root / name) or {}


def row_values(root: Path, row: Row) -> dict[str, Any]:
    """One seed's numbers of one row."""
    out: dict[str, Any] = {}
    m = _metrics(root, row.label)
    if m is not None and row.method in m["methods"]:
        mm = m["methods"][row.method]
        out["em"] = mm["em"]
        for h, g in mm.get("by", {}).get("hops", {}).items():
            out[f"em_{h}hop"] = g["em"]
        for h, share in mm.get("past_last_hop_by_hops", {}).items():
            out[f"past_{h}hop"] = share
        out["past_last_hop"] = mm.get("past_last_hop")
        out["calls_per_q"] = mm.get("tool_calls_per_question")
        out["copy_acc"] = mm.get("copy_accuracy")
        out["unneeded"] = mm.get("unneeded_searches")
        out["missed"] = mm.get("missed_searches")
    if row.rl is not None:
        from autocoa.train.rl import schedule_means

        s = _stage_summary(root, row.rl)
        out["real_calls"] = s.get("real_calls_total")
        out["reward_sim"] = s.get("reward_sim")
        out["reward_real"] = s.get("reward_real")
        out["fidelity_in_rl"] = s.get("fidelity_sim")
        # read from the run's metrics.jsonl, so that runs from before rl.json carried them have them too
        sig = schedule_means(root / row.rl / "metrics.jsonl")
        out.update({k: sig[k] for k in ("zero_spread_sim", "zero_spread_real", "kl_last")})
        out["fidelity_model_in_rl"] = sig["fidelity_sim_model"]
    else:
        out["real_calls"] = 0 if row.label != "base" else None
    start = row.params.get("start")
    if start:
        sm = _metrics(root, start)
        out["em_start"] = sm["methods"]["agent"]["em"] if sm else None
    if row.fidelity:
        for q in ("pool", "unseen", "test"):
            fm = _metrics(root, f"{row.fidelity}_sim_{q}")
            if fm is not None:
                a = fm["methods"]["agent"]
                out[f"fidelity_{q}"] = a.get("fidelity")
                out[f"fidelity_rare_{q}"] = a.get("fidelity_rare")
                out[f"hallucination_{q}"] = a.get("hallucination")
                out[f"sim_em_{q}"] = a.get("em")
    return out


def aggregate_rows(roots: Sequence[Path], rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Every row's numbers as :func:`spread` over the seeds."""
    out = []
    for row in rows:
        per_seed = [row_values(r, row) for r in roots]
        keys = list(dict.fromkeys(k for v in per_seed for k in v))
        out.append(
            {
                "name": row.name,
                "label": row.label,
                "method": row.method,
                "params": row.params,
                **{k: spread([v.get(k) for v in per_seed]) for k in keys},
            }
        )
    return out


def collapse_rows(roots: Sequence[Path], stages: Sequence[str]) -> list[dict[str, Any]]:
    """SFT-1's collapse monitor per stage over the seeds (log-probs first -> last, collapsed share)."""
    out = []
    for name in stages:
        mons = [_stage_summary(r, name).get("collapse") for r in roots]
        mons = [m for m in mons if m]
        if not mons:
            continue
        row: dict[str, Any] = {"stage": name}
        for k in ("chosen_first", "chosen_last", "rejected_first", "rejected_last"):
            row[k] = spread([m[k] for m in mons])
        row["collapsed"] = f"{sum(bool(m['collapsed']) for m in mons)}/{len(mons)}"
        out.append(row)
    return out
