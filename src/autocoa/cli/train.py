"""``autocoa train``: the training stages (``sft1``, ``sft2``, ``sft3``; RL adds its own).

Every command resumes an unfinished run in ``--out`` by itself, refuses a finished one unless
``--overwrite``, and runs unchanged under ``accelerate launch`` (see ``configs/accelerate/``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from autocoa.cli.app import CLIError, app

train_app = typer.Typer(help="Train a stage of the recipe: SFT stages 1-3 and GRPO (rl).", no_args_is_help=True)
app.add_typer(train_app, name="train")

Model = Annotated[Path, typer.Option(help="input checkpoint directory (pretrained or a previous stage)")]
Out = Annotated[Path, typer.Option(help="output directory: checkpoints, metrics.jsonl, the final model")]
ConfigOpt = Annotated[Path | None, typer.Option(help="stage config YAML (fields: see configs/paper/)")]
MaxSteps = Annotated[int | None, typer.Option(help="stop after this many optimizer steps")]
Epochs = Annotated[float | None, typer.Option(help="passes over the data")]
Overwrite = Annotated[bool, typer.Option(help="replace a finished run (or an unfinished one) in --out")]
Quiet = Annotated[bool, typer.Option(help="no progress bar")]


def _run(
    stage: str,
    model: Path,
    data: Path,
    out: Path,
    config: Path | None,
    cot_data: Path | None,
    overwrite: bool,
    quiet: bool,
    pool_data: Path | None = None,
    replay_text: Path | None = None,
    **overrides,
) -> None:
    from autocoa.train.checkpoints import RunMismatchError
    from autocoa.train.common import OutputExistsError
    from autocoa.train.sft import train_sft
    from autocoa.train.stage_config import config_for

    cfg = config_for(stage).load(config, **overrides)
    try:
        summary = train_sft(
            stage,
            model,
            data,
            out,
            cfg,
            cot_path=cot_data,
            overwrite=overwrite,
            progress=not quiet,
            pool_path=pool_data,
            replay_path=replay_text,
        )
    except (OutputExistsError, RunMismatchError, ValueError) as e:
        raise CLIError(str(e)) from None
    typer.echo(json.dumps(summary))
    typer.echo(f"saved to {out}")


@train_app.command("sft1")
def sft1_cmd(
    model: Model,
    data: Annotated[Path, typer.Option(help="contrastive pairs (pairs.jsonl)")],
    out: Out,
    config: ConfigOpt = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """SFT-stage1, "when to act": SimPO-style pair loss + alpha * NLL on the chosen branch (TRL CPO)."""
    _run("sft1", model, data, out, config, None, overwrite, quiet, max_steps=max_steps, epochs=epochs)


def _masked_stage(stage: str, doc: str) -> None:
    """Register ``train sft2`` / ``train sft3``: the same data and options, one masking flag apart."""

    def cmd(
        model: Model,
        data: Annotated[Path, typer.Option(help="CoA trajectories (coa.jsonl)")],
        out: Out,
        cot_data: Annotated[
            Path | None, typer.Option(help="pure-CoT trajectories (cot.jsonl), mixed in at cot_ratio")
        ] = None,
        pool_data: Annotated[
            Path | None,
            typer.Option(help="rows added --pool-repeats times each (sft3: synth's rl_pool.jsonl, the RL questions)"),
        ] = None,
        pool_repeats: Annotated[int | None, typer.Option(help="copies of each --pool-data row")] = None,
        replay_text: Annotated[
            Path | None,
            typer.Option(
                help="the base model's pretraining text (the world's pretrain.txt), replayed at --replay-ratio blocks "
                "per CoA row so that fine-tuning keeps what the base read"
            ),
        ] = None,
        replay_ratio: Annotated[float | None, typer.Option(help="replayed text blocks per CoA row")] = None,
        config: ConfigOpt = None,
        max_steps: MaxSteps = None,
        epochs: Epochs = None,
        overwrite: Overwrite = False,
        quiet: Quiet = False,
    ) -> None:
        if pool_data is not None and pool_repeats is None:
            pool_repeats = 1
        if replay_text is not None and replay_ratio is None:
            replay_ratio = 0.25
        _run(
            stage,
            model,
            data,
            out,
            config,
            cot_data,
            overwrite,
            quiet,
            pool_data=pool_data,
            replay_text=replay_text,
            max_steps=max_steps,
            epochs=epochs,
            pool_repeats=pool_repeats,
            replay_ratio=replay_ratio,
        )

    cmd.__doc__ = doc
    train_app.command(stage)(cmd)


_masked_stage(
    "sft2", """SFT-stage2, "how to act": cross-entropy on the model's tokens, observations masked (TRL SFT)."""
)
_masked_stage("sft3", "SFT-stage3, the internal world model: as sft2, observation tokens trained too.")
