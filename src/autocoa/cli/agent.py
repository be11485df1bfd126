"""Commands that run a trained agent: ``run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autocoa.cli.app import CLIError, app
from autocoa.cli.options import (
    AgentConfigFile,
    CoAConfigFile,
    Device,
    IndexDir,
    KnowledgeDir,
    LLMKey,
    LLMName,
    LLMUrl,
    MaxActions,
    ModelDir,
    RetrieverURL,
    Seed,
    Temperature,
    TopK,
    retrieval_option,
)


def agent_options_to_config(config: Path | None, **overrides):
    from autocoa.agent.config import AgentConfig

    return AgentConfig.load(config, **overrides)


def toolbox_from_options(index: Path | None, retriever: str | None, k: int, env: str, max_chars: int = 2000):
    """The toolbox for ``--index`` / ``--retriever``; none needed for the simulated env.
    ``max_chars``: observation budget (0 = whole documents)."""
    retrieval = retrieval_option(index, retriever, "the real environment" if env == "real" else None)
    return retrieval.toolbox(k, max_chars=max_chars) if retrieval is not None else None


# long: a typer command: its options are its parameters (22 lines); the body draws each answer
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
    method: Annotated[
        str, typer.Option(help="agent: the model acts by itself; coa: the Chain-of-Action workflow (a chat model)")
    ] = "agent",
    llm_url: LLMUrl = None,
    llm_model: LLMName = "default",
    llm_key: LLMKey = None,
    coa_config: CoAConfigFile = None,
    knowledge: KnowledgeDir = None,
) -> None:
    """Answer questions with the agent loop (or Chain-of-Action) and print each trajectory in colour."""
    import json

    from rich.console import Console

    from autocoa.agent import Engine
    from autocoa.agent.prompts import format_prompt
    from autocoa.display import trajectory_view
    from autocoa.models import load_model

    if method not in ("agent", "coa"):
        raise CLIError(f"unknown --method {method}; expected agent or coa")
    if method == "coa":
        _run_coa(
            model,
            question,
            index,
            retriever,
            topk,
            device,
            json_out,
            llm_url,
            llm_model,
            llm_key,
            coa_config,
            knowledge,
        )
        return
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


def _run_coa(
    model, questions, index, retriever, topk, device, json_out, llm_url, llm_model, llm_key, coa_config, knowledge
) -> None:
    """``autocoa run --method coa``: each question's chain, its verdicts and the answer."""
    import json

    from rich.console import Console
    from rich.table import Table

    from autocoa.coa.method import CoAConfig, run_coa
    from autocoa.display import trajectory_view
    from autocoa.eval.runner import coa_backend

    cfg = CoAConfig.load(coa_config)
    box = toolbox_from_options(index, retriever, topk, "real")  # refuses neither --index nor --retriever
    lm = tok = None
    if llm_url is None:
        from autocoa.models import load_model

        lm, tok = load_model(model, device=device)
    llm, box = coa_backend(lm, tok, str(model), box, llm_url, llm_model, llm_key, knowledge, topk)
    console = Console()
    for res in run_coa(questions, llm, box, cfg):
        if json_out:
            row = {
                "question": res.question,
                "prediction": res.prediction,
                "llm_calls": res.llm_calls,
                "tool_calls": res.tool_calls,
                "seconds": round(res.seconds, 3),
                **res.to_dict(),
            }
            typer.echo(json.dumps(row, ensure_ascii=False))
            continue
        console.rule(f"[bold]{res.question}")
        if res.error:
            console.print(f"[red]no usable chain:[/] {res.error}", highlight=False)
        else:
            table = Table("#", "action", "sub-question (as run)", "guess", "MRFS", "verdict", "answer")
            for i, n in enumerate(res.nodes, start=1):
                table.add_row(
                    str(i), n.tool, n.query, "(missing)" if n.missing else n.guess, f"{n.mrfs:.2f}", n.verdict, n.answer
                )
            console.print(table)
            console.print(trajectory_view(res.trajectory, simulated=False))
        console.print(
            f"[dim]answer:[/] [bold green]{res.prediction}[/]  [dim]LLM calls {res.llm_calls}, real tool "
            f"calls {res.tool_calls}, {res.seconds:.1f} s[/]",
            highlight=False,
        )
