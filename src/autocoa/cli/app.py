"""The typer application that every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="autocoa",
    help="Train agent models that decide inside their own reasoning when and how to act (AutoCoA).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def preset_section(preset: str, section: str):
    """One stage's config of a tiny-model recipe preset (``autocoa world/pretrain --preset``)."""
    from autocoa.recipe.config import TINY_PRESETS
    from autocoa.recipe.config import preset as recipe_preset

    names = (*TINY_PRESETS, "fast")
    if preset not in names:
        raise CLIError(f"--preset {preset}: one of {', '.join(names)}")
    return getattr(recipe_preset(preset), section)
