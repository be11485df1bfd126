"""``autocoa demo``: the whole recipe on the embedded default, in one command.

world -> index -> tokenizer + pretrain -> synth (with the RL pool) -> sft1 -> sft2 -> sft3 (the
world model, which also learns the RL pool's documents) -> rl (simulated on the pool, then
real) -> evaluation of the recipe, the baselines and the world model's fidelity -> report.

The stages are :mod:`autocoa.recipe.stages`'s: each writes into its own folder under ``--out``
and marks it done with a fingerprint of its configuration; running the demo again skips
finished stages and resumes the unfinished one from its last checkpoint. Stage times go to
``timings.json`` and the final tables to the terminal and ``report/report.md``.

Sizes: ``default`` (the README's main job, minutes on 2 CPU cores) and ``fast`` (about a
minute, used by the end-to-end test: every stage runs, on a tiny world and a tiny model, so its
accuracy means nothing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autocoa.recipe.config import RecipeConfig, preset
from autocoa.recipe.stages import Stage, main_eval_stage, recipe_stages, rl_stage, run_stages

DemoConfig = RecipeConfig  # the demo runs the recipe's configuration as it is
__all__ = ["DemoConfig", "build_stages", "preset", "run_demo"]


def build_stages(cfg: RecipeConfig, out: Path) -> list[Stage]:
    """The recipe's stages, its RL run and the main evaluation; with ``cfg.ablations`` also the
    ablations study's stages on this directory (:func:`autocoa.recipe.study.ablations_grid`: one
    definition of the paper's Table 1 rows for the demo and the study)."""
    stages = recipe_stages(cfg, out)
    stages.append(rl_stage("rl", cfg, out, "sft123", cfg.rl.sim_steps, cfg.rl.real_steps))
    stages.append(main_eval_stage(cfg, out))
    if cfg.ablations:
        from autocoa.recipe.study import ablations_grid

        names = {st.name for st in stages}
        stages += [st for st in ablations_grid(cfg, out).stages if st.name not in names]
    return stages


def ablations_report(cfg: RecipeConfig, out: Path) -> Path:
    """The ablations study's report of this one directory (``out/ablations/report.md``)."""
    from autocoa.recipe.study import ablations_grid, aggregate_rows, collapse_rows
    from autocoa.recipe.study_report import write_study_report

    grid = ablations_grid(cfg, out)
    rows, collapse = aggregate_rows([out], grid.rows), collapse_rows([out], grid.sft1)
    config = cfg.model_dump(mode="json")
    return write_study_report("ablations", rows, collapse, [cfg.rl.seed], out / "ablations", config=config)["report"]


def run_demo(cfg: RecipeConfig, out: str | Path, console: Any = None) -> dict[str, Any]:
    """Run (or resume) every stage; return {stage: summary} with seconds per stage."""
    from rich.console import Console

    from autocoa.progress import live, live_display

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "demo_config.yaml")
    stages = build_stages(cfg, out)
    with live_display(console) as bar, live(bar):
        task = bar.add_task("demo", total=len(stages))

        def start(st: Stage) -> None:
            bar.update(task, description=f"demo: {st.name}")

        def end(st: Stage, summary: dict[str, Any], seconds: float | None) -> None:
            if seconds is not None:
                console.log(f"{st.name} ({seconds:.0f} s): {one_line(summary)}", highlight=False)
            bar.advance(task)

        results = run_stages(
            stages,
            out / "timings.json",
            on_start=start,
            on_end=end,
            keep_checkpoints=cfg.keep_checkpoints,
            weights_on_disk=cfg.weights_on_disk,
        )
    results["timings"] = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() else {}
    if cfg.ablations:
        results["ablations_report"] = str(ablations_report(cfg, out))
    report_rows = out / "report" / "results.json"
    for table in [console_table(report_rows), *schedule_table(results, report_rows)]:
        if table is not None:
            console.print(table)
    console.print(next_steps(out), highlight=False)
    return results


def one_line(summary: dict[str, Any], width: int = 60) -> str:
    """A stage summary's scalar numbers on one line (the whole summary is in the stage's DONE).

    >>> one_line({"coa": 18718, "pairs": 4989, "first": {"loss": 2.3}, "stopped": None, "fidelity_sim": 0.71234})
    'coa 18718, pairs 4989, fidelity_sim 0.712'
    """
    parts = []
    for k, v in summary.items():
        if isinstance(v, bool) or v is None or not isinstance(v, int | float | str):
            continue
        parts.append(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}")
    text = ", ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


LEGEND = (
    "EM by hop count (1h..4h) and on average; calls, err: real tool calls that answered / failed per "
    "question; extra, miss: searches beyond / short of the question's rare hops per question."
)


def console_table(path: Path):
    """The report's real-environment rows as a rich table that fits 80 columns (short headers;
    :data:`LEGEND` explains them): EM by hops and average, tool calls, when-to-act counts."""
    from rich.table import Table

    if not path.exists():
        return None
    rows = [r for r in json.loads(path.read_text(encoding="utf-8")) if r.get("env", "real") == "real"]
    if not rows:
        return None
    hops = sorted({h for r in rows for h in r["em_by_hops"]}, key=int)
    table = Table(title="held-out test questions (EM)", caption=LEGEND, padding=(0, 1), caption_justify="left")
    for col in ("run / method", *(f"{h}h" for h in hops), "avg", "calls", "err", "extra", "miss"):
        first = col == "run / method"
        table.add_column(
            col, justify="left" if first else "right", no_wrap=not first, overflow="fold" if first else None
        )
    for r in rows:
        table.add_row(
            r["label"],
            *(f"{r['em_by_hops'].get(h, 0):.2f}" for h in hops),
            f"{r['em']:.3f}",
            f"{r['tool_calls_per_question']:.2f}",
            f"{r.get('tool_errors_per_question') or 0:.2f}",
            f"{r['unneeded_searches']:.2f}",
            f"{r['missed_searches']:.2f}",
        )
    return table


def next_steps(out: Path) -> str:
    """What to run with what the demo trained (printed at its end)."""
    return (
        f"report: {out / 'report' / 'report.md'}\n"
        f"chat with the trained agent:  autocoa chat --model {out / 'rl'} --index {out / 'index'} --topk 1\n"
        f"serve it (OpenAI API):         autocoa serve --model {out / 'rl'} --index {out / 'index'} --topk 1"
    )


def schedule_table(results: dict[str, Any], report_rows: Path):
    """The world model and the RL schedule: the fidelity of SFT-1&2&3's imagined results on
    each question set, and each RL run's mean reward in its simulated and its real steps."""
    from rich.table import Table

    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)

    tables = []
    rows = json.loads(report_rows.read_text(encoding="utf-8")) if report_rows.exists() else []
    sim = [r for r in rows if r.get("env") == "simulated"]
    if sim:
        t = Table(title="world model (simulated environment, its own imagined results)", padding=(0, 1))
        for col in ("run", "questions", "EM", "fidelity", "rare", "halluc."):
            t.add_column(col, justify="left" if col in ("run", "questions") else "right")
        for r in sim:
            t.add_row(
                r["run"],
                r.get("data") or "-",
                f(r["em"]),
                f(r["fidelity"]),
                f(r["fidelity_rare"]),
                f(r["hallucination"]),
            )
        tables.append(t)
    rl_runs = {k: v for k, v in results.items() if isinstance(v, dict) and "reward_sim" in v}
    if rl_runs:
        t = Table(title="RL: mean reward of the simulated and the real steps", padding=(0, 1))
        for col in ("run", "sim", "real", "rew. sim", "rew. real", "fidelity", "calls"):
            t.add_column(col, justify="left" if col == "run" else "right")
        for name, s in rl_runs.items():
            keys = (
                "sim_steps_done",
                "real_steps_done",
                "reward_sim",
                "reward_real",
                "fidelity_sim",
                "real_calls_total",
            )
            t.add_row(name, *(f(s.get(k)) for k in keys))
        tables.append(t)
    return tables
