"""Commands that run a trained agent: ``run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autocoa.cli.app import app
from autocoa.cli.options import (
    AgentConfigFile,
    Device,
    IndexDir,
    MaxActions,
    ModelDir,
    RetrieverURL,
    Seed,
    Temperature,
    TopK,
    check_retrieval,
)


def agent_options_to_config(config: Path | None, **overrides):
    from autocoa.agent.config import AgentConfig

    return AgentConfig.load(config, **overrides)


def toolbox_from_options(index: Path | None, retriever: str | None, k: int, env: str, max_chars: int = 2000):
    """The toolbox for ``--index`` / ``--retriever``; none needed for the simulated env.
    ``max_chars``: observation budget (0 = whole documents)."""
    from autocoa.tools import open_toolbox

    check_retrieval(index, retriever, "the real environment" if env == "real" else None)
    if index is None and retriever is None:
        return None
    return open_toolbox(index=str(index) if index else None, url=retriever, k=k, max_chars=max_chars)


@app.command("run")
def run_cmd(
    model: ModelDir,
    question: Annotated[list[str], typer.Option(help="question to answer (repeatable: answered as one batch)")],
    index: IndexDir = None,
    retriever: RetrieverURL = None,
    env: Annotated[str, typer.Option(help="real: tools run; simulated: the model imagines results")] = "real",
    topk: TopK = 3,
    config: AgentConfigFile = None,
    temperature: Temperature = None,
    seed: Seed = None,
    max_actions: MaxActions = None,
    device: Device = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="print rollouts as JSON lines instead of colours")] = False,
) -> None:
    """Answer questions with the agent loop and print each trajectory in colour."""
    import json

    from rich.console import Console

    from autocoa.agent import Engine
    from autocoa.agent.prompts import format_prompt
    from autocoa.display import trajectory_view
    from autocoa.models import load_model

    cfg = agent_options_to_config(config, env=env, temperature=temperature, seed=seed, max_actions=max_actions)
    box = toolbox_from_options(index, retriever, topk, cfg.env)
    lm, tok = load_model(model, device=device)
    engine = Engine(lm, tok, box)
    rollouts = engine.generate([format_prompt(q, tok) for q in question], cfg)
    console = Console()
    for q, r in zip(question, rollouts, strict=True):
        if json_out:
            typer.echo(json.dumps({"question": q, **r.to_dict()}, ensure_ascii=False))
            continue
        console.rule(f"[bold]{q}")
        console.print(trajectory_view(r.trajectory, simulated=cfg.env == "simulated"))
        console.print(
            f"[dim]answer:[/] [bold green]{r.trajectory.answer}[/]  [dim]actions {r.n_actions}, real tool calls "
            f"{r.n_tool_calls}, tokens {len(r.ids)}, finish {r.finish}"
            + ("" if r.trajectory.well_formed else f", malformed: {r.trajectory.reason}")
            + "[/]",
            highlight=False,
        )
