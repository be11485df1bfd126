"""Command-line entry point: ``autocoa --help``. Each module named in ``COMMAND_MODULES``
registers its commands on the one typer app; heavy libraries are imported inside the
commands so that ``--help`` stays fast."""

from __future__ import annotations

import importlib
import sys

from rich.console import Console

from autocoa.cli.app import CLIError, app
from autocoa.coa.llm import LLMError, NotAChatModel
from autocoa.config import ConfigError
from autocoa.jsonl import DataError
from autocoa.named_models import MissingDependency
from autocoa.runlock import RunLockedError

COMMAND_MODULES = ("core", "data", "tools", "stages", "train", "rl", "agent", "eval", "serve", "score", "demo")
for _name in COMMAND_MODULES:
    importlib.import_module(f"autocoa.cli.{_name}")


def main() -> None:
    try:
        app()
    except (
        CLIError,
        DataError,
        ConfigError,
        FileNotFoundError,
        FileExistsError,
        MissingDependency,
        NotAChatModel,
        LLMError,
        RunLockedError,
    ) as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)
