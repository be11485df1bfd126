"""Commands on trajectories, tokenizers and checkpoints: ``show-mask``, ``tokenizer``, ``convert``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autocoa.cli.app import CLIError, app
from autocoa.named_models import NAMED_MODELS as NAMED


def _read_trajectories(path: Path, lines: list[int] | None):
    from autocoa.jsonl import DataError, read_jsonl
    from autocoa.trajectory import Trajectory, parse

    if path.suffix != ".jsonl":
        return [(None, parse(path.read_text(encoding="utf-8")))]
    out = []
    for n, row in read_jsonl(path):
        if lines and n not in lines:
            continue
        # A contrastive pair row holds two trajectories; show both.
        keys = [k for k in ("chosen", "rejected") if isinstance(row, dict) and k in row] or [None]
        for k in keys:
            try:
                traj = Trajectory.from_dict(row[k] if k else row)
            except ValueError as e:
                raise DataError(path, n, k, str(e)) from None
            out.append((f"line {n}" + (f" {k}" if k else ""), traj))
    if lines and not out:
        raise CLIError(f"{path}: no rows at line(s) {lines}")
    return out


@app.command("show-mask")
def show_mask(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL of trajectories ({prompt, segments} or {prompt, "
            "response}; pair rows {chosen, rejected}), or a text file"
        ),
    ],
    tokenizer: Annotated[Path, typer.Option(help="tokenizer directory (save_pretrained layout)")],
    line: Annotated[list[int] | None, typer.Option(help="show only these line numbers (repeatable)")] = None,
    limit: Annotated[int, typer.Option(help="show at most this many trajectories")] = 3,
    unmask_observations: Annotated[bool, typer.Option(help="train observations too (SFT-stage3)")] = False,
    boundaries: Annotated[bool, typer.Option(help="mark token boundaries with '·'")] = False,
) -> None:
    """Print trajectories with trained tokens in green and masked tokens in grey."""
    from rich.console import Console

    from autocoa.display import print_mask
    from autocoa.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer)
    console = Console()
    for label, traj in _read_trajectories(file, line)[:limit]:
        if label:
            console.rule(label)
        print_mask(traj, tok, mask_observations=not unmask_observations, boundaries=boundaries, console=console)


@app.command("tokenizer")
def tokenizer_cmd(
    out: Annotated[Path, typer.Option(help="output directory")],
    texts: Annotated[list[Path] | None, typer.Option(help="train a byte-level BPE on these text/JSONL files")] = None,
    base: Annotated[Path | None, typer.Option(help="instead: add the tags to this tokenizer directory")] = None,
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size (bytes + merges)")] = 1000,
    syllables: Annotated[bool, typer.Option(help="cut capitalised words (names) into syllables before BPE")] = False,
) -> None:
    """Build a tokenizer whose tags are single, non-special tokens."""
    from autocoa.tokenizer import add_tags, train_tokenizer

    if (texts is None) == (base is None):
        raise CLIError("give either --texts (train a new tokenizer) or --base (add tags to one)")
    if base is not None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(base))
        added = add_tags(tok)
        msg = f"added {added} tag tokens to {base}"
    else:
        for p in texts:
            if not p.exists():
                raise FileNotFoundError(f"{p}: no such file")
        tok = train_tokenizer(_lines(texts), vocab_size=vocab_size, syllables=syllables)
        msg = f"trained a byte-level BPE of {len(tok)} tokens on {len(texts)} file(s)"
    tok.save_pretrained(str(out))
    typer.echo(f"{msg}; saved to {out}")


def _lines(paths: list[Path]):
    for p in paths:
        with p.open(encoding="utf-8") as f:
            yield from f


@app.command("convert")
def convert(
    out: Annotated[Path, typer.Option(help="checkpoint directory to write (must not exist)")],
    gguf: Annotated[Path | None, typer.Option(help="a GGUF file transformers can read")] = None,
    model: Annotated[str | None, typer.Option(help="a named model instead: " + ", ".join(NAMED))] = None,
) -> None:
    """Turn a GGUF file (or a named model's) into a safetensors checkpoint directory with its
    tokenizer and chat template, which every command then takes as a model path. (A named model
    is also accepted directly wherever a model path is, converted once into the cache.)"""
    from autocoa.named_models import convert_gguf, named_gguf

    if (gguf is None) == (model is None):
        raise CLIError("give either --gguf FILE or --model NAME")
    if model is not None and model not in NAMED:
        raise CLIError(f"unknown model {model!r}; named models: {', '.join(NAMED)}")
    src = gguf if gguf is not None else named_gguf(model)
    try:
        convert_gguf(src, out)
    except ValueError as e:
        raise CLIError(str(e)) from None
    typer.echo(f"converted {src} -> {out}")
