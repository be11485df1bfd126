"""Commands on data: ``world`` (generate the synthetic world) and ``data inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autocoa.cli.app import CLIError, app, preset_section

data_app = typer.Typer(help="Inspect QA datasets and corpora in the formats the field uses.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@app.command("world")
def world_cmd(
    out: Annotated[Path, typer.Option(help="output directory")],
    seed: Annotated[int | None, typer.Option(help="seed of the rare entities and questions")] = None,
    config: Annotated[Path | None, typer.Option(help="WorldConfig YAML; the options below override it")] = None,
    entities: Annotated[int | None, typer.Option(help="rare entities in the train pool")] = None,
    max_hops: Annotated[int | None, typer.Option(help="questions have 1..max-hops hops")] = None,
    train_questions: Annotated[int | None, typer.Option(help="questions in train.jsonl")] = None,
    common_seed: Annotated[int | None, typer.Option(help="seed of the common entities and pretrain.txt")] = None,
    preset: Annotated[
        str, typer.Option(help="the recipe preset whose world to start from: default (the scale model), legacy, fast")
    ] = "default",
) -> None:
    """Generate the synthetic world: corpus, pretraining text, train/dev/test questions."""
    import time

    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from autocoa.world import WorldConfig, generate_world, write_world

    cfg = WorldConfig.load(
        config,
        base=preset_section(preset, "world"),
        seed=seed,
        common_seed=common_seed,
        train_entities=entities,
        max_hops=max_hops,
        train_questions=train_questions,
    )
    console = Console()
    t0 = time.perf_counter()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("world", total=None)
        world = generate_world(cfg, on_stage=lambda msg: bar.update(task, description=f"world: {msg}"))
        bar.update(task, description="world: writing files")
        paths = write_world(world, out)
    seconds = time.perf_counter() - t0
    cfg.save(Path(out) / "world.yaml")
    s = world.stats
    console.print(
        f"[bold]world[/] seed {cfg.seed} in {seconds:.1f} s -> {out}: {s['docs']} documents, "
        f"{s['pretrain_lines']} pretraining lines, entities {s['entities']}",
        highlight=False,
    )
    for split, q in s["questions"].items():
        console.print(
            f"  {split}: {q['n']} questions, by hops {q['by_hops']}, by searches needed {q['by_n_search']}, "
            f"known hops {q['known_hop_fraction']:.0%}",
            highlight=False,
        )
    if s["rejected"]:
        console.print(f"  rejected candidates: {s['rejected']}", highlight=False)
    console.print("  files: " + ", ".join(sorted(p.name for p in paths.values())) + ", world.yaml", highlight=False)


@data_app.command("inspect")
def inspect_cmd(
    file: Annotated[Path, typer.Argument(help="a QA file (JSONL, JSON, parquet) or a corpus (JSONL, TSV)")],
    rows: Annotated[int, typer.Option(help="how many rows to print")] = 3,
    skip_bad: Annotated[bool, typer.Option(help="skip and count bad rows instead of stopping at the first")] = False,
    kind: Annotated[str, typer.Option(help="auto, qa or corpus")] = "auto",
    fmt: Annotated[str | None, typer.Option("--format", help="QA format (default: detected)")] = None,
) -> None:
    """Print counts and a few rows of a QA dataset or a corpus."""
    from rich.console import Console

    if kind not in ("auto", "qa", "corpus"):
        raise CLIError(f"--kind must be auto, qa or corpus, not {kind!r}")
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such file")
    if kind == "auto":
        kind = _guess_kind(file)
    console = Console()
    if kind == "corpus":
        _inspect_corpus(console, file, rows, skip_bad)
    else:
        _inspect_qa(console, file, rows, skip_bad, fmt)


def _guess_kind(file: Path) -> str:
    from autocoa.data.qa import detect_format, iter_rows

    if file.suffix == ".tsv":
        return "corpus"
    for _, row in iter_rows(file):
        if detect_format(row) is not None:
            return "qa"
        if isinstance(row, dict) and ({"contents", "text", "wikipedia_title"} & set(row)):
            return "corpus"
        break
    raise CLIError(f"{file}: neither a QA file nor a corpus of a known format (try --kind)")


def _inspect_qa(console, file: Path, rows: int, skip_bad: bool, fmt: str | None) -> None:
    from collections import Counter

    from autocoa.data.qa import FORMATS, load_qa

    if fmt is not None and fmt not in FORMATS:
        raise CLIError(f"unknown --format {fmt!r}; known: {', '.join(FORMATS)}")
    bad: list = []
    records = load_qa(file, skip_bad=skip_bad, bad=bad, fmt=fmt)
    n_answers = sum(len(r.golden_answers) for r in records)
    console.print(f"[bold]{file}[/]: {len(records)} QA records, {len(bad)} bad rows skipped", highlight=False)
    if records:
        console.print(f"  answers per question: {n_answers / len(records):.2f}", highlight=False)
    datasets = Counter(r.dataset or "-" for r in records)
    console.print(f"  by dataset: {dict(datasets.most_common())}", highlight=False)
    hops = Counter(r.hops for r in records if r.hops is not None)
    if hops:
        console.print(f"  by hops: {dict(sorted(hops.items()))}", highlight=False)
    for e in bad[:5]:
        console.print(f"  [yellow]bad:[/] {e}", highlight=False)
    for r in records[:rows]:
        meta = ", ".join(f"{k}={_short(v)}" for k, v in r.meta.items())
        console.print(
            f"  [cyan]{r.id}[/] {r.question}\n    -> {r.golden_answers}"
            f"{f'  dataset={r.dataset}' if r.dataset else ''}{f'  hops={r.hops}' if r.hops else ''}"
            f"{'  ' + meta if meta else ''}",
            highlight=False,
        )


def _inspect_corpus(console, file: Path, rows: int, skip_bad: bool) -> None:
    from autocoa.data.corpus import iter_corpus

    bad: list = []
    docs = list(iter_corpus(file, skip_bad=skip_bad, bad=bad))
    words = sum(len(d.text.split()) for d in docs)
    console.print(f"[bold]{file}[/]: {len(docs)} documents, {len(bad)} bad rows skipped", highlight=False)
    if docs:
        console.print(f"  words per document: {words / len(docs):.1f}", highlight=False)
    for e in bad[:5]:
        console.print(f"  [yellow]bad:[/] {e}", highlight=False)
    for d in docs[:rows]:
        console.print(f"  [cyan]{d.id}[/] [bold]{d.title}[/]: {_short(d.text, 200)}", highlight=False)


def _short(value, n: int = 60) -> str:
    text = str(value)
    return text if len(text) <= n else text[: n - 3] + "..."
