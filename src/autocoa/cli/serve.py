"""Commands that put a trained agent in front of people and programs: ``chat`` and ``serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autocoa.cli.agent import agent_options_to_config, toolbox_from_options
from autocoa.cli.app import CLIError, app
from autocoa.cli.options import (
    AgentConfigFile,
    AllowHost,
    ApiKey,
    Device,
    IndexDir,
    MaxActions,
    ModelDir,
    RetrieverURL,
    Seed,
    Temperature,
    TopK,
)
from autocoa.httpguard import LOOPBACK_BIND, LOOPBACK_HOSTS


def _engine(model: Path, index: Path | None, retriever: str | None, topk: int, env: str, device: str):
    from autocoa.agent import Engine
    from autocoa.models import load_model

    box = toolbox_from_options(index, retriever, topk, "simulated" if env == "simulated" else "real")
    lm, tok = load_model(model, device=device)
    return Engine(lm, tok, box)


@app.command("chat")
def chat_cmd(
    model: ModelDir,
    index: IndexDir = None,
    retriever: RetrieverURL = None,
    question: Annotated[str | None, typer.Option(help="answer this one question and exit")] = None,
    env: Annotated[
        str, typer.Option(help="real: tools run; simulated: the model imagines results; both: side by side")
    ] = "real",
    topk: TopK = 3,
    config: AgentConfigFile = None,
    temperature: Temperature = None,
    seed: Seed = None,
    max_actions: MaxActions = None,
    device: Device = "auto",
) -> None:
    """Ask the agent questions in the terminal and watch it reason, search and answer."""
    from autocoa.cli.chat_session import ENVS, ChatSession

    if env not in ENVS:
        raise CLIError(f"--env {env}: choose one of {', '.join(ENVS)}")
    cfg = agent_options_to_config(config, temperature=temperature, seed=seed, max_actions=max_actions)
    session = ChatSession(_engine(model, index, retriever, topk, env, device), cfg, env=env)
    if question is not None:
        session.ask(question)
        session.print_tool_stats()
    else:
        session.run()


@app.command("serve")
def serve_cmd(
    model: ModelDir,
    index: IndexDir = None,
    retriever: RetrieverURL = None,
    env: Annotated[
        str, typer.Option(help="default environment of requests: real (tools) or simulated (no tools needed)")
    ] = "real",
    host: Annotated[
        str,
        typer.Option(
            help="address to bind; beyond loopback, set --api-key "
            "(without it anyone who can reach the port can use the model)"
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    served_model_name: Annotated[
        str | None, typer.Option(help="the model name clients send (default: the model directory's name)")
    ] = None,
    topk: TopK = 3,
    config: Annotated[Path | None, typer.Option(help="AgentConfig YAML: the defaults that requests override")] = None,
    limits: Annotated[Path | None, typer.Option(help="ServeLimits YAML (request and batching limits)")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="largest max_tokens a request may ask for")] = None,
    max_batch_rows: Annotated[int | None, typer.Option(help="most rollouts decoded together")] = None,
    batch_wait_ms: Annotated[float | None, typer.Option(help="how long to collect requests into a batch")] = None,
    device: Device = "auto",
    allow_host: AllowHost = None,
    api_key: ApiKey = None,
) -> None:
    """Serve the agent with an OpenAI-compatible API: POST /v1/chat/completions, GET /v1/models."""
    import uvicorn

    from autocoa.serve.app import ServeLimits, create_app

    if env not in ("real", "simulated"):
        raise CLIError(f"--env {env}: choose real or simulated")
    cfg = agent_options_to_config(config, env=env)
    lim = ServeLimits.load(limits, max_tokens=max_tokens, max_batch_rows=max_batch_rows, batch_wait_ms=batch_wait_ms)
    engine = _engine(model, index, retriever, topk, env, device)
    name = served_model_name or model.resolve().name
    if host not in LOOPBACK_BIND and not api_key:
        typer.echo(f"warning: binding {host} without --api-key: anyone who can reach it can use the model", err=True)
    typer.echo(
        f"serving {name} at http://{host}:{port}/v1/chat/completions (tools: {'yes' if engine.toolbox else 'no'})"
    )
    hosts = allow_host or list(LOOPBACK_HOSTS)
    app_ = create_app(engine, cfg, lim, name, allowed_hosts=hosts, api_key=api_key)
    uvicorn.run(app_, host=host, port=port, log_level="warning")
