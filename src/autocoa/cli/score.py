"""``autocoa score``: score any system's predictions file (the logic: :mod:`autocoa.eval.score`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from autocoa.cli.app import CLIError, app


@app.command("score")
def score(
    pred: Annotated[Path, typer.Option(help="predictions JSONL, one object per line")],
    pred_field: Annotated[
        str | None,
        typer.Option(help="field holding the prediction (default: prediction, else pred_ans); a.b for nested"),
    ] = None,
    gold_field: Annotated[
        str | None,
        typer.Option(help="field holding the gold answer(s), a string or list (default: golden_answers, else answer)"),
    ] = None,
    by: Annotated[
        list[str] | None, typer.Option(help="break down by this field, e.g. hops, level (repeatable)")
    ] = None,
    correct: Annotated[
        Literal["em", "cover_em"], typer.Option(help="metric that makes an answer correct in breakdowns")
    ] = "em",
    cover_mode: Annotated[
        Literal["tokens", "substring", "bag"],
        typer.Option(help="cover EM: tokens (whole-token run), substring (Search-R1), bag (R1-Searcher)"),
    ] = "tokens",
    judge_field: Annotated[
        str | None, typer.Option(help="field with an LLM judge's verdict (true/false); report agreement with it")
    ] = None,
    actions_in: Annotated[
        str | None, typer.Option(help="count actions in this text field and break down by n_actions (paper Fig. 3)")
    ] = None,
    action_marker: Annotated[str, typer.Option(help="string that opens one action in --actions-in")] = "<search>",
    skip_bad: Annotated[bool, typer.Option(help="skip bad rows (count them) instead of stopping")] = False,
    out: Annotated[Path | None, typer.Option(help="also write the summary JSON here")] = None,
    rows_out: Annotated[Path | None, typer.Option(help="write per-row scores (JSONL) here")] = None,
) -> None:
    """Score a predictions file (EM, F1, cover EM) and print the summary as JSON."""
    from autocoa.eval.score import score_file
    from autocoa.jsonl import write_jsonl

    by = list(by or [])
    if actions_in is not None and "n_actions" not in by:
        by.append("n_actions")
    try:
        summary, rows = score_file(
            pred, pred_field, gold_field, by, skip_bad, correct, cover_mode, judge_field, actions_in, action_marker
        )
    except ValueError as e:
        if type(e) is not ValueError:  # DataError and friends: printed with their place by main()
            raise
        raise CLIError(str(e)) from None
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    if rows_out is not None:
        write_jsonl(rows_out, rows)
    typer.echo(text)
