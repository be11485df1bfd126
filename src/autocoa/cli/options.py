"""Options that several commands share (one declaration, one help text): the model to load,
its tools, and the agent loop's sampling and budget."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from autocoa.tools.search import Retrieval

ModelDir = Annotated[
    Path,
    typer.Option("--model", help="model directory (save_pretrained layout), or a named model: smollm2-135m-instruct"),
]
IndexDir = Annotated[Path | None, typer.Option("--index", help="local search index directory")]
RetrieverURL = Annotated[
    str | None, typer.Option("--retriever", help="retrieval server URL (Search-R1 /retrieve protocol)")
]
TopK = Annotated[int, typer.Option("--topk", help="documents per search")]
AgentConfigFile = Annotated[Path | None, typer.Option("--config", help="AgentConfig YAML (budget, sampling)")]
Temperature = Annotated[float | None, typer.Option("--temperature", help="sampling temperature (0 = greedy)")]
Seed = Annotated[int | None, typer.Option("--seed", help="sampling seed")]
MaxActions = Annotated[int | None, typer.Option("--max-actions", help="action budget")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")]
AllowHost = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host",
        help="a Host header the server answers (repeatable; default: 127.0.0.1, localhost, [::1]; '*' = any)",
    ),
]
LLMUrl = Annotated[
    str | None,
    typer.Option("--llm-url", help="coa's chat model: an OpenAI-compatible base URL (…/v1); default: --model itself"),
]
LLMName = Annotated[str, typer.Option("--llm-model", help="model name to send to --llm-url")]
LLMKey = Annotated[
    str | None,
    typer.Option("--llm-key", envvar="AUTOCOA_LLM_KEY", help="API key for --llm-url", show_envvar=True),
]
CoAConfigFile = Annotated[
    Path | None, typer.Option("--coa-config", help="CoAConfig YAML (chain length, MRFS weights and threshold)")
]
KnowledgeDir = Annotated[
    Path | None,
    typer.Option("--knowledge", help="coa's knowledge action: an index over your own documents (default: --index)"),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="AUTOCOA_API_KEY",
        help="require 'Authorization: Bearer KEY' on every request but /health (default: $AUTOCOA_API_KEY)",
        show_envvar=True,
    ),
]


def retrieval_option(index: Path | None, retriever: str | None, needed: str | None) -> Retrieval | None:
    """``--index`` / ``--retriever`` parsed into a :class:`~autocoa.tools.search.Retrieval`
    (None when neither is given): not both, an index that exists, and one of them when ``needed``
    (the reason: "the real environment", "rag", ...). The layers below trust what it returns."""
    from autocoa.cli.app import CLIError
    from autocoa.tools.search import Retrieval, retrieval_needed

    if index is not None and retriever is not None:
        raise CLIError("give --index or --retriever, not both")
    if index is None and retriever is None and needed:
        raise CLIError(retrieval_needed([needed]))
    try:
        return Retrieval.of(index, retriever)
    except ValueError as e:  # a URL without its scheme
        raise CLIError(str(e)) from None


def import_plugins(modules: list[str] | None) -> None:
    """Import each ``--plugin`` module (it registers evaluation methods or tools); a module that
    cannot be imported is one line naming it."""
    import importlib

    from autocoa.cli.app import CLIError

    for name in modules or []:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise CLIError(f"--plugin {name}: cannot import it ({e})") from None
