"""Commands that build the recipe's inputs: ``pretrain`` (tiny base model) and ``synth`` (stage data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from autocoa.cli.app import CLIError, app, preset_section


@app.command("pretrain")
def pretrain_cmd(
    world: Annotated[Path, typer.Option(help="synthetic world directory (`autocoa world`)")],
    out: Annotated[Path, typer.Option(help="output model directory")],
    config: Annotated[Path | None, typer.Option(help="PretrainConfig YAML")] = None,
    init: Annotated[Path | None, typer.Option(help="continue from this checkpoint, not a fresh model")] = None,
    epochs: Annotated[float | None, typer.Option(help="passes over pretrain.txt")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace a finished run in --out")] = False,
    preset: Annotated[
        str, typer.Option(help="the recipe preset whose model and tokenizer to start from: default, legacy, fast")
    ] = "default",
) -> None:
    """Train the BPE tokenizer and a tiny Llama on the world's pretrain.txt (common facts, the long tail of rare ones,
    reading passages); probe what it recalls (knowledge.jsonl)."""
    from autocoa.train.common import OutputExistsError, check_out_dir
    from autocoa.train.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig.load(config, base=preset_section(preset, "pretrain"), epochs=epochs)
    try:
        check_out_dir(out, overwrite)
    except OutputExistsError as e:
        raise CLIError(str(e)) from None
    summary = pretrain(world, out, cfg, init=init, overwrite=overwrite)
    facts = summary.get("common_facts", {})
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "common_facts"}))
    if facts:
        typer.echo(f"common facts known: {facts['accuracy']:.1%} of {facts['n']} ({facts['by_relation']})")
    typer.echo(f"saved to {out}")


@app.command("ship-base")
def ship_base_cmd(
    work: Annotated[Path, typer.Option(help="where the world and the base are made (resumable)")] = Path(
        "runs/shipped-base"
    ),
) -> None:
    """Re-make the base model shipped with the package (autocoa/assets/default-base/): pretrain the default
    preset's model on the default world, then write it with its record (config, world hashes, commit)."""
    from autocoa.recipe.config import preset
    from autocoa.shipped import ASSET, make

    cfg = preset("default")
    record = make(cfg.world, cfg.pretrain, work)
    typer.echo(json.dumps({k: v for k, v in record.items() if k != "config"}, indent=2))
    typer.echo(f"shipped base written to {ASSET}")


# long: a typer command: its options are its parameters (29 lines); the body is 31
@app.command("synth")
def synth_cmd(
    out: Annotated[Path, typer.Option(help="output directory for coa/cot(/pairs) JSONL and summary.json")],
    world: Annotated[Path | None, typer.Option(help="synthetic world directory: the oracle teacher")] = None,
    config: Annotated[Path | None, typer.Option(help="SynthConfig YAML (oracle teacher)")] = None,
    topk: Annotated[int | None, typer.Option(help="documents per search")] = None,
    max_questions: Annotated[int | None, typer.Option(help="use at most this many training questions")] = None,
    rl_pool: Annotated[
        int | None, typer.Option(help="oracle: CoA rows also written to rl_pool.jsonl (the RL questions)")
    ] = None,
    holdout: Annotated[
        int | None, typer.Option(help="oracle: CoA rows held apart in train_unseen.jsonl (no SFT stage sees them)")
    ] = None,
    knowledge: Annotated[
        Path | None,
        typer.Option(
            help="oracle: a base model's recall probe (BASE/knowledge.jsonl, written by `autocoa pretrain`): the "
            "teacher searches exactly the hops that model cannot recall"
        ),
    ] = None,
    questions: Annotated[Path | None, typer.Option(help="LLM teacher: QA file in any supported format")] = None,
    teacher_model: Annotated[Path | None, typer.Option(help="LLM teacher: a local checkpoint")] = None,
    teacher_url: Annotated[str | None, typer.Option(help="LLM teacher: OpenAI-compatible base URL (…/v1)")] = None,
    teacher_name: Annotated[str, typer.Option(help="model name to send to --teacher-url")] = "teacher",
    index: Annotated[Path | None, typer.Option(help="LLM teacher: local search index")] = None,
    retriever: Annotated[str | None, typer.Option(help="LLM teacher: retrieval server URL")] = None,
    n: Annotated[int, typer.Option(help="LLM teacher: candidates sampled per question")] = 4,
    keep: Annotated[int, typer.Option(help="LLM teacher: correct trajectories kept per question")] = 1,
    temperature: Annotated[float, typer.Option(help="LLM teacher: sampling temperature")] = 0.7,
) -> None:
    """Write the stage datasets: with the oracle teacher on a synthetic world (--world), or with
    an LLM teacher and rejection sampling on real questions (--questions + --teacher-model/--teacher-url)."""
    from rich.progress import Progress

    if (world is None) == (questions is None):
        raise CLIError("give --world (oracle teacher) or --questions with a teacher (LLM teacher)")
    with Progress(transient=True) as bar:
        task = bar.add_task("synthesizing", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if world is not None:
            from autocoa.synth.run import SynthConfig, synthesize

            cfg = SynthConfig.load(config, topk=topk, max_questions=max_questions, rl_pool=rl_pool, holdout=holdout)
            if not (world / "train.jsonl").exists():
                raise FileNotFoundError(f"{world / 'train.jsonl'}: missing; generate the world with `autocoa world`")
            if knowledge is not None and not knowledge.exists():
                raise FileNotFoundError(f"{knowledge}: missing; `autocoa pretrain` writes it beside the model")
            summary = synthesize(world, out, cfg, progress=progress, knowledge=knowledge)
            summary = {k: v for k, v in summary.items() if k not in ("config", "tool_stats")}
        else:
            from autocoa.cli.agent import toolbox_from_options
            from autocoa.data.qa import load_qa
            from autocoa.synth.llm import rejection_sample

            box = toolbox_from_options(index, retriever, topk or 3, "real")
            teacher = _teacher(teacher_model, teacher_url, teacher_name, box, temperature)
            records = load_qa(questions)[:max_questions]
            summary = rejection_sample(teacher, records, out, n=n, keep_per_question=keep, progress=progress)
    typer.echo(json.dumps(summary, indent=1))
    typer.echo(f"wrote {out}")


def _teacher(teacher_model: Path | None, teacher_url: str | None, name: str, box, temperature: float):
    from autocoa.synth.llm import EndpointTeacher, LocalTeacher

    if (teacher_model is None) == (teacher_url is None):
        raise CLIError("give exactly one of --teacher-model or --teacher-url")
    if teacher_url is not None:
        return EndpointTeacher(teacher_url, name, box, temperature=temperature)
    from autocoa.agent.config import AgentConfig
    from autocoa.models import load_model

    model, tok = load_model(teacher_model)
    return LocalTeacher(model, tok, box, AgentConfig(temperature=temperature, top_p=0.95))
