"""Scoring any system's predictions file with the project's one metric code (:mod:`autocoa.metrics`).

Reads JSONL predictions (ours, R1-Searcher's ``pred_ans`` files, FlashRAG's
``golden_answers``, verl-style ``reward_model.ground_truth``): EM, F1 and cover EM, optionally
broken down by fields (hop count, level, number of actions), and agreement with an LLM judge's
verdicts. A bad row raises ``DataError`` with the file, line and field, or is counted and
skipped. Actions are counted in a text field by a marker string (``<search>`` by default;
other systems' formats have their own), since a foreign file's text is not our trajectory.
The command is ``autocoa score`` (:mod:`autocoa.cli.score`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_PRED_FIELDS = ("prediction", "pred_ans")
DEFAULT_GOLD_FIELDS = ("golden_answers", "answer")
_MISSING = object()
_JUDGE_VALUES = {
    "true": 1.0, "yes": 1.0, "correct": 1.0, "1": 1.0,
    "false": 0.0, "no": 0.0, "incorrect": 0.0, "0": 0.0,
}  # fmt: skip


def get_field(row: Any, path: str) -> Any:
    """The value at ``path`` in a JSON row, or ``_MISSING``.

    A key that itself contains dots wins; otherwise dots walk into objects and lists
    (``reward_model.ground_truth``, ``answers.0``).
    """
    if isinstance(row, dict) and path in row:
        return row[path]
    value = row
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


class BadField(ValueError):
    """A row whose ``field`` is missing or of the wrong kind."""

    def __init__(self, field: str | None, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


def _pick(row: dict, fields: tuple[str, ...]) -> tuple[str, Any]:
    """The first of ``fields`` present in the row, and its value."""
    for f in fields:
        value = get_field(row, f)
        if value is not _MISSING:
            return f, value
    raise BadField(fields[0], "missing" + (f" (looked for {' and '.join(fields)})" if len(fields) > 1 else ""))


def _golds(field: str, value: Any) -> list[str]:
    golds = [value] if isinstance(value, str) else value
    if not isinstance(golds, list) or not all(isinstance(g, str) for g in golds):
        raise BadField(field, f"must be a string or a list of strings, got {json.dumps(value)[:80]}")
    if not golds:
        raise BadField(field, "empty list of gold answers")
    return golds


def _judge(field: str, value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    key = str(value).strip().lower()
    if key not in _JUDGE_VALUES:
        raise BadField(field, f"unrecognised verdict {json.dumps(value)[:80]} (expected true/false, yes/no, 1/0)")
    return _JUDGE_VALUES[key]


def score_row(
    row: Any,
    pred_fields: tuple[str, ...] = DEFAULT_PRED_FIELDS,
    gold_fields: tuple[str, ...] = DEFAULT_GOLD_FIELDS,
    by: list[str] | None = None,
    cover_mode: str = "tokens",
    judge_field: str | None = None,
    actions_in: str | None = None,
    action_marker: str = "<search>",
) -> dict[str, Any]:
    """Scores of one JSON row, plus its judge verdict, action count and breakdown keys.

    Raises :class:`BadField` naming the field that is missing or of the wrong type.
    """
    from autocoa.metrics import score_one

    if not isinstance(row, dict):
        raise BadField(None, f"a row is a JSON object, got {type(row).__name__}")
    pred_field, pred = _pick(row, pred_fields)
    if pred is not None and not isinstance(pred, str):
        raise BadField(pred_field, f"must be a string or null, got {type(pred).__name__}")
    gold_field, golds = _pick(row, gold_fields)
    out: dict[str, Any] = score_one(pred, _golds(gold_field, golds), cover_mode=cover_mode)
    out["fields"] = (pred_field, gold_field)
    if judge_field is not None:
        out["judge"] = _judge(judge_field, _pick(row, (judge_field,))[1])
    if actions_in is not None:
        text = _pick(row, (actions_in,))[1]
        if not isinstance(text, str):
            raise BadField(actions_in, f"must be a string, got {type(text).__name__}")
        out["n_actions"] = text.count(action_marker)
    for key in by or []:
        if key == "n_actions" and actions_in is not None:
            continue
        value = _pick(row, (key,))[1]
        if not (value is None or isinstance(value, str | int | float | bool)):
            raise BadField(key, f"must be a string, number, boolean or null to group by, got {type(value).__name__}")
        out[key] = value
    return out


def score_file(
    path: Path,
    pred_field: str | None = None,
    gold_field: str | None = None,
    by: list[str] | None = None,
    skip_bad: bool = False,
    correct: str = "em",
    cover_mode: str = "tokens",
    judge_field: str | None = None,
    actions_in: str | None = None,
    action_marker: str = "<search>",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score every row of a predictions JSONL: ``(summary, per-row scores)``."""
    from autocoa.jsonl import DataError, read_jsonl
    from autocoa.metrics import METRICS, aggregate

    by = list(by or [])
    pred_fields = (pred_field,) if pred_field else DEFAULT_PRED_FIELDS
    gold_fields = (gold_field,) if gold_field else DEFAULT_GOLD_FIELDS
    scored, skipped, used = [], [], set()
    for n, row in read_jsonl(path):
        try:
            s = score_row(row, pred_fields, gold_fields, by, cover_mode, judge_field, actions_in, action_marker)
        except BadField as e:
            err = DataError(path, n, e.field, e.message)
            if not skip_bad:
                raise err from None
            skipped.append(str(err))
            continue
        used.add(s.pop("fields"))
        scored.append({"line": n, **s})
    if not scored:
        raise ValueError(f"{path}: no rows to score" + (f" ({len(skipped)} skipped as bad)" if skipped else ""))
    summary: dict[str, Any] = {"file": str(path)}
    summary.update(aggregate(scored, by=by or None, correct=correct))
    summary["cover_mode"] = cover_mode
    summary["fields"] = {
        "prediction": sorted({p for p, _ in used}),
        "gold": sorted({g for _, g in used}),
    }
    if judge_field is not None:
        judged = [r["judge"] for r in scored]
        summary["judge"] = {
            "field": judge_field,
            "accuracy": sum(judged) / len(judged),
            "agreement": {m: sum(r[m] == r["judge"] for r in scored) / len(scored) for m in METRICS if m != "f1"},
        }
    summary["skipped"] = len(skipped)
    if skipped:
        summary["skipped_first"] = skipped[:5]
    return summary, scored
