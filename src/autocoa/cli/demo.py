"""``autocoa demo`` (the main job: the whole recipe on the embedded default) and ``autocoa study``
(a grid of recipe variants over several seeds, reported as mean and min-max)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from autocoa.cli.app import CLIError, app

ConfigFile = Annotated[Path | None, typer.Option(help="recipe YAML (fields of DemoConfig); overrides the preset's")]
Fast = Annotated[
    bool, typer.Option(help="tiny world and model, a few steps a stage (a smoke test: its accuracy means nothing)")
]
Verbose = Annotated[bool, typer.Option(help="the libraries' own bars and every log line instead of the live display")]
FromScratch = Annotated[
    bool,
    typer.Option(
        help="pretrain the base model even where the one shipped with the package applies (the default world; "
        "about 10 minutes on 2 CPU cores)"
    ),
]
KeepCheckpoints = Annotated[
    bool,
    typer.Option(help="keep each finished stage's intermediate checkpoints (by default deleted once it is done)"),
]


ModelOption = Annotated[
    str | None,
    typer.Option(
        help="start from this pretrained chat model (directory or named model: smollm2-135m-instruct) "
        "instead of pretraining the tiny one; its own preset (pretrained)"
    ),
]


PresetOption = Annotated[
    str | None,
    typer.Option(
        help="a named recipe preset of the tiny model: default (the scale model, ~20 minutes a seed), short "
        "(SFT-2 half as long, ~12-13 minutes: the previous default, undertrained), legacy (the world before the "
        "scale model)"
    ),
]


def recipe_for(model: str | None, fast: bool, config: Path | None, preset: str | None = None):
    """The recipe a demo or study runs: the tiny default (or ``fast``, or the named ``preset``),
    or with ``model`` the ``pretrained`` one starting from that checkpoint; ``config``'s fields over it."""
    from autocoa.recipe.config import TINY_PRESETS, load_recipe

    if preset is not None:
        if preset not in TINY_PRESETS:
            raise CLIError(
                f"--preset {preset}: one of {', '.join(TINY_PRESETS)} (--fast and --model choose the others)"
            )
        if fast or model is not None:
            raise CLIError("--preset names a tiny-model preset: not with --fast or --model")
    if model is None:
        return load_recipe(preset or ("fast" if fast else "default"), config)
    from autocoa.named_models import NAMED_MODELS

    if model not in NAMED_MODELS and not (Path(model) / "config.json").exists():
        raise CLIError(f"--model {model}: not a checkpoint directory nor a named model ({', '.join(NAMED_MODELS)})")
    cfg = load_recipe("pretrained-fast" if fast else "pretrained", config)
    return cfg.model_copy(update={"model": model})


def with_flags(cfg, from_scratch: bool, keep_checkpoints: bool):
    """The recipe with the demo's and the study's shared flags over it."""
    if from_scratch:
        cfg = cfg.model_copy(update={"shipped_base": False})
    if keep_checkpoints:
        cfg = cfg.model_copy(update={"keep_checkpoints": True})
    return cfg


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option(help="where every stage writes (re-running resumes)")] = Path("runs/demo"),
    fast: Fast = False,
    ablations: Annotated[
        bool,
        typer.Option(
            help="also the ablations study's rows on this directory (the paper's Table 1 and the real-steps-alone "
            "control; report in OUT/ablations/)"
        ),
    ] = False,
    config: ConfigFile = None,
    model: ModelOption = None,
    preset: PresetOption = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="every training seed (as a study's seed<s>/; with --fast, --preset legacy or --model the world seed "
            "too); default: the preset's (0)"
        ),
    ] = None,
    world_seed: Annotated[
        int | None,
        typer.Option(help="another world, and a base model pretrained on it (the shipped base read world 0)"),
    ] = None,
    from_scratch: FromScratch = False,
    verbose: Verbose = False,
    keep_checkpoints: KeepCheckpoints = False,
) -> None:
    """Run the recipe end to end on a generated synthetic world, on CPU."""
    from rich.console import Console

    from autocoa.demo import run_demo
    from autocoa.progress import set_verbose
    from autocoa.recipe.config import for_seed, for_world_seed
    from autocoa.recipe.stages import StageMismatchError

    cfg = with_flags(recipe_for(model, fast, config, preset), from_scratch, keep_checkpoints)
    if ablations:
        cfg = cfg.model_copy(update={"ablations": True})
    if seed is not None:
        cfg = for_seed(cfg, seed)
    if world_seed is not None:
        cfg = for_world_seed(cfg, world_seed)
    console = Console()
    set_verbose(verbose)
    try:
        results = run_demo(cfg, out, console=console)
    except StageMismatchError as e:
        raise CLIError(str(e)) from None
    (out / "demo.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"stage summaries: {out / 'demo.json'}; report: {out / 'report' / 'report.md'}")


@app.command("study")
def study_cmd(
    name: Annotated[
        Literal["demo", "ablations", "frontier", "fidelity", "fidelity-curve"],
        typer.Argument(help="which grid (docs/studies.md)"),
    ],
    out: Annotated[Path, typer.Option(help="studies root: seed<s>/ (shared stages) and <name>/ (the report)")] = Path(
        "runs/study"
    ),
    seeds: Annotated[
        str,
        typer.Option(
            help="comma-separated seeds: every training seed (with --fast, --preset legacy or --model the world "
            "seed too)"
        ),
    ] = "0,1,2",
    fast: Fast = False,
    config: ConfigFile = None,
    model: ModelOption = None,
    preset: PresetOption = None,
    from_scratch: FromScratch = False,
    verbose: Verbose = False,
    keep_checkpoints: KeepCheckpoints = False,
) -> None:
    """Run a grid of recipe variants over several seeds (resumable); write report.md, results.json, plots."""
    from rich.console import Console

    from autocoa.progress import set_verbose
    from autocoa.recipe.stages import StageMismatchError
    from autocoa.recipe.study_report import run_study

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise CLIError(f"--seeds {seeds!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise CLIError(f"--seeds {seeds!r}: give distinct seeds")
    cfg = with_flags(recipe_for(model, fast, config, preset), from_scratch, keep_checkpoints)
    set_verbose(verbose)
    try:
        run_study(name, cfg, out, seed_list, console=Console())
    except (StageMismatchError, ValueError) as e:
        raise CLIError(str(e)) from None
