"""Commands that measure agents: ``eval`` (a checkpoint and its baselines on a QA set) and
``report`` (tables and plots over eval runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autocoa.cli.app import app
from autocoa.cli.options import (
    AgentConfigFile,
    CoAConfigFile,
    Device,
    IndexDir,
    KnowledgeDir,
    LLMKey,
    LLMName,
    LLMUrl,
    RetrieverURL,
    Seed,
    Temperature,
    TopK,
    import_plugins,
    retrieval_option,
)
from autocoa.eval.methods import names as method_names


# long: a typer command: its 26 options are its parameters (57 lines); the body is 39
@app.command("eval")
def eval_cmd(
    data: Annotated[Path, typer.Option(help="QA file in any format `autocoa data inspect` reads")],
    out: Annotated[Path, typer.Option(help="output directory: predictions.jsonl, metrics.json, report")],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="model directory (save_pretrained layout), or a named model: smollm2-135m-instruct; "
            "not needed when every --method is coa with --llm-url (no local model runs)",
        ),
    ] = None,
    index: IndexDir = None,
    retriever: RetrieverURL = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            help=f"{', '.join(method_names())} (coa: Chain-of-Action; needs a chat model) (repeatable: all on the "
            "same data, side by side; docs/extending.md adds one)"
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="evaluate only the first N questions")] = None,
    shuffle_seed: Annotated[
        int | None,
        typer.Option(help="shuffle the questions with this seed before --limit (world splits are sorted by hops)"),
    ] = None,
    config: AgentConfigFile = None,
    env: Annotated[str | None, typer.Option(help="real: tools run; simulated: the model imagines results")] = None,
    topk: TopK = 3,
    temperature: Temperature = None,
    seed: Seed = None,
    max_actions: Annotated[int | None, typer.Option(help="action budget of agent/rag/direct")] = None,
    batch_size: Annotated[int | None, typer.Option(help="rows decoded together")] = None,
    react_steps: Annotated[
        int | None, typer.Option(help="ReAct's most searches before it must finish (default: data's max hops, else 4)")
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="name of this run in reports (default: the model's dir name)")
    ] = None,
    train_real_calls: Annotated[
        int | None, typer.Option(help="real tool calls spent training this model (default: its run.json)")
    ] = None,
    device: Device = "auto",
    report: Annotated[bool, typer.Option(help="also write report.md and plots into --out")] = True,
    llm_url: LLMUrl = None,
    llm_model: LLMName = "default",
    llm_key: LLMKey = None,
    coa_config: CoAConfigFile = None,
    knowledge: KnowledgeDir = None,
    verify: Annotated[
        str | None,
        typer.Option(help="mrfs: check each answer against what the method observed; re-answer unfaithful ones"),
    ] = None,
    plugin: Annotated[
        list[str] | None,
        typer.Option(help="import this Python module first: it registers methods or tools (docs/extending.md)"),
    ] = None,
) -> None:
    """Evaluate a model (and baselines) on a QA set: EM/F1/cover-EM, by hops and #actions."""
    from rich.console import Console

    from autocoa.cli.agent import agent_options_to_config
    from autocoa.coa.method import CoAConfig
    from autocoa.eval.report import load_run, result_rows, results_table, write_report
    from autocoa.eval.request import EvalRequest
    from autocoa.eval.runner import evaluate_checkpoint

    import_plugins(plugin)
    agent = agent_options_to_config(
        config, env=env, temperature=temperature, seed=seed, max_actions=max_actions, batch_size=batch_size
    )
    request = EvalRequest.of(  # every rule about how these options go together is checked here
        data=data,
        out=out,
        model=model,
        methods=method,
        retrieval=retrieval_option(index, retriever, needed=None),
        k=topk,
        agent=agent,
        limit=limit,
        shuffle_seed=shuffle_seed,
        react_steps=react_steps,
        label=label,
        device=device,
        train_real_calls=train_real_calls,
        llm_url=llm_url,
        llm_model=llm_model,
        llm_key=llm_key,
        coa=CoAConfig.load(coa_config),
        knowledge=knowledge,
        verify=verify,
    )
    metrics = evaluate_checkpoint(request)
    console = Console()
    console.print(results_table(result_rows([metrics])), highlight=False)
    if report:
        write_report([load_run(out)], out)  # the run as written, with its predictions for report.html
    console.print(f"[dim]wrote {out}/predictions.jsonl, metrics.json{', report.md, report.html' if report else ''}[/]")


@app.command("report")
def report_cmd(
    runs: Annotated[list[Path], typer.Option(help="an `autocoa eval` output directory (repeatable)")],
    out: Annotated[Path, typer.Option(help="output directory: report.md, report.html, results.json, PNG plots")],
    rl: Annotated[
        list[Path] | None,
        typer.Option(help="an RL output directory: its training curve and rollouts join the report (repeatable)"),
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option(help="a pretrained base model's directory: its closed-book recall by exposure joins the report"),
    ] = None,
) -> None:
    """Tables and plots over eval runs: EM by hops, success by #actions, cost vs accuracy; and
    report.html, one self-contained page with a trajectory browser."""
    from autocoa.eval.report import load_run, read_recall, write_report

    for d in rl or []:
        if not (d / "metrics.jsonl").exists():
            raise FileNotFoundError(f"{d}: not an RL output directory (no metrics.jsonl)")
    knowledge = None
    if base is not None:
        knowledge = read_recall(base)
        if knowledge is None:
            raise FileNotFoundError(f"{base / 'knowledge.jsonl'}: missing; `autocoa pretrain` writes it")
    paths = write_report([load_run(d) for d in runs], out, rl_runs=rl or [], knowledge=knowledge)
    typer.echo(f"wrote {', '.join(sorted(p.name for p in paths.values()))} to {out}")
