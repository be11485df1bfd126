"""``autocoa train rl``: GRPO RL-stage1 (simulated world) and RL-stage2 (real tools), on the
``train`` sub-app of :mod:`autocoa.cli.train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from autocoa.cli.app import CLIError
from autocoa.cli.options import retrieval_option
from autocoa.cli.train import train_app


# long: a typer command: its options are its parameters (22 lines); the body maps --env/--steps onto the schedule
@train_app.command("rl")
def rl_cmd(
    model: Annotated[Path, typer.Option(help="input checkpoint (after SFT)")],
    questions: Annotated[Path, typer.Option(help="QA file in any supported format (e.g. synth's coa.jsonl)")],
    out: Annotated[Path, typer.Option(help="output directory (re-run the same command to resume)")],
    env: Annotated[str | None, typer.Option(help="one stage: simulated or real (with --steps)")] = None,
    steps: Annotated[int | None, typer.Option(help="steps of the one stage given by --env")] = None,
    sim_steps: Annotated[int | None, typer.Option(help="schedule: RL-stage1 steps in the simulated env")] = None,
    real_steps: Annotated[int | None, typer.Option(help="schedule: RL-stage2 steps in the real env (after)")] = None,
    index: Annotated[Path | None, typer.Option(help="real env: local search index directory")] = None,
    retriever: Annotated[str | None, typer.Option(help="real env: retrieval server URL")] = None,
    config: Annotated[Path | None, typer.Option(help="RLConfig YAML")] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate")] = None,
    prompts_per_step: Annotated[int | None, typer.Option(help="questions per step")] = None,
    max_questions: Annotated[int | None, typer.Option(help="use at most this many questions")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace a finished run in --out")] = False,
    heldout: Annotated[
        Path | None, typer.Option(help="held-out QA file: its EM curve during RL (config heldout_every, default 5)")
    ] = None,
    heldout_index: Annotated[
        Path | None, typer.Option(help="search index of the held-out evaluation (default: --index)")
    ] = None,
    simulator: Annotated[
        str | None,
        typer.Option(
            help="who writes the simulated steps' results: model (the policy's world model), oracle (the "
            "searched hop's true document with probability --simulator-fidelity; needs --index and gold "
            "chains or supporting facts), endpoint (an LLM at --simulator-url)"
        ),
    ] = None,
    simulator_fidelity: Annotated[float | None, typer.Option(help="oracle: probability of the true document")] = None,
    simulator_url: Annotated[
        str | None, typer.Option(help="endpoint: OpenAI-compatible base URL (key: $AUTOCOA_SIMULATOR_API_KEY)")
    ] = None,
    simulator_model: Annotated[str | None, typer.Option(help="endpoint: the model name it serves")] = None,
    simulator_gold: Annotated[
        bool | None, typer.Option(help="endpoint: show it the question's gold answer (ZeroSearch)")
    ] = None,
) -> None:
    """GRPO with the agent loop: --env simulated|real --steps N for one stage, or
    --sim-steps A --real-steps B for RL-stage1 then RL-stage2 in one run."""
    from autocoa.train.checkpoints import RunMismatchError
    from autocoa.train.common import OutputExistsError
    from autocoa.train.rl import train_rl
    from autocoa.train.rl_config import RLConfig

    if env is not None:
        if env not in ("simulated", "real"):
            raise CLIError("--env must be simulated or real")
        if sim_steps is not None or real_steps is not None:
            raise CLIError("give --env with --steps, or --sim-steps/--real-steps, not both")
        n = (
            steps
            if steps is not None
            else RLConfig.model_fields[f"{'sim' if env == 'simulated' else 'real'}_steps"].default
        )
        sim_steps, real_steps = (n, 0) if env == "simulated" else (0, n)
    elif steps is not None:
        raise CLIError("--steps needs --env")
    cfg = RLConfig.load(
        config,
        sim_steps=sim_steps,
        real_steps=real_steps,
        lr=lr,
        prompts_per_step=prompts_per_step,
        simulator=simulator,
        simulator_fidelity=simulator_fidelity,
        simulator_url=simulator_url,
        simulator_model=simulator_model,
        simulator_gold=simulator_gold,
    )
    if heldout is not None and not cfg.heldout_every:
        cfg = cfg.model_copy(update={"heldout_every": 5})
    if cfg.heldout_every and heldout is None:
        raise CLIError("heldout_every needs --heldout FILE (held-out questions)")
    needs = "the real environment (real_steps > 0)" if cfg.real_steps else None
    if cfg.simulator == "oracle" and cfg.sim_steps:
        needs = needs or "the oracle simulator (its gold chains' documents)"
    retrieval = retrieval_option(index, retriever, needs)
    curve = toolbox = None
    if heldout is not None:
        from autocoa.eval.heldout import heldout_curve
        from autocoa.tools.search import Retrieval

        if heldout_index is not None:
            curve = heldout_curve(cfg, heldout, Retrieval(heldout_index))
        elif retrieval is not None:  # one index in memory for training's search and the curve's
            toolbox = retrieval.toolbox(cfg.topk)
            curve = heldout_curve(cfg, heldout, toolbox=toolbox)
        else:
            raise CLIError("--heldout searches for real: give --heldout-index, --index or --retriever")
    try:
        summary = train_rl(
            model,
            questions,
            out,
            cfg,
            retrieval=retrieval,
            toolbox=toolbox if cfg.real_steps else None,
            max_questions=max_questions,
            overwrite=overwrite,
            heldout=curve,
        )
    except (OutputExistsError, RunMismatchError) as e:
        raise CLIError(str(e)) from None
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "window_rewards"}))
    if summary["stopped"]:
        typer.echo(f"stopped early: {summary['stopped']}; the best model (step {summary['best_step']}) is in {out}")
    typer.echo(f"real tool calls: {summary['real_calls_total']}; saved to {out}")
