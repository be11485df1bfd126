"""Rows of the stages' data files -> rendered token examples: reading and checking rows (with
their file and line), a row's trajectory re-prompted for the student's tokenizer, one
trajectory's ``{"input_ids", "labels"}`` under the loss-mask rule, and the CoT mix. Shared by
the contrastive stage (:mod:`autocoa.train.contrastive`) and SFT-2/3 (:mod:`autocoa.train.sft`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from autocoa.jsonl import DataError, read_jsonl
from autocoa.trajectory import Trajectory, render


def read_rows(
    path: str | Path, required: tuple[str, ...], limit: int | None = None, allow_empty: bool = False
) -> list[tuple[int, dict]]:
    """``(line, row)`` of a JSONL data file, checking that each row has the ``required`` keys;
    a file without rows is an error unless ``allow_empty``."""
    rows = []
    for n, row in read_jsonl(path):
        if not isinstance(row, dict):
            raise DataError(path, n, None, "a row must be a JSON object")
        for key in required:
            if key not in row:
                raise DataError(path, n, key, "missing (is this the right file for the stage? see `autocoa synth`)")
        rows.append((n, row))
        if limit is not None and len(rows) >= limit:
            break
    if not rows and not allow_empty:
        raise DataError(path, None, None, "no rows")
    return rows


def check_rows(path: Path, pairs: bool = False, allow_empty: bool = False) -> int:
    """Read and check every row of a stage's data file without a tokenizer (keys, segment
    kinds, question text): a bad row raises ``DataError`` with its file and line. Returns the
    number of rows."""
    keys = ("question", "prefix_segments", "chosen", "rejected") if pairs else ("question", "segments")
    rows = read_rows(path, keys, allow_empty=allow_empty)
    for n, row in rows:
        if not isinstance(row["question"], str) or not row["question"].strip():
            raise DataError(path, n, "question", "must be a non-empty string")
        sides = (
            [
                (f"{side}.segments", row[side].get("segments") if isinstance(row[side], dict) else None)
                for side in ("chosen", "rejected")
            ]
            if pairs
            else [("segments", row["segments"])]
        )
        for field, segments in sides:
            try:
                Trajectory.from_dict({"prompt": "", "segments": segments})
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                raise DataError(path, n, field, str(e) or type(e).__name__) from None
    return len(rows)


def trajectory_of(row: dict, tokenizer: Any, where: tuple[Path, int], segments: Any = None) -> Trajectory:
    """The row's trajectory with its prompt re-formatted for ``tokenizer``."""
    from autocoa.agent.prompts import format_prompt

    try:
        return Trajectory.from_dict(
            {
                "prompt": format_prompt(row["question"], tokenizer),
                "segments": row["segments"] if segments is None else segments,
            }
        )
    except ValueError as e:
        raise DataError(where[0], where[1], None, str(e)) from None


def masked_example(
    traj: Trajectory, tokenizer: Any, mask_observations: bool, max_length: int, only_observations: bool = False
) -> dict | None:
    """``{"input_ids", "labels"}`` of one trajectory, cut to ``max_length``; None if nothing is trained."""
    ids, mask = render(traj, tokenizer, mask_observations=mask_observations, only_observations=only_observations)
    ids, mask = ids[:max_length], mask[:max_length]
    if not any(mask):
        return None
    return {"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask, strict=True)]}


def mix_rows(n_coa: int, rows: list, ratio: float, seed: int) -> list:
    """``round(ratio * n_coa)`` of ``rows`` (CoT rows, replayed text blocks), without repeats
    while there are enough (seeded)."""
    want = round(ratio * n_coa)
    if want == 0 or not rows:
        return []
    rng = random.Random(seed)
    out = []
    while len(out) + len(rows) <= want:
        out += rows
    return out + rng.sample(rows, want - len(out))


def replay_examples(path: Path, tokenizer: Any, n_coa: int, ratio: float, block: int, seed: int) -> list[dict]:
    """``round(ratio * n_coa)`` blocks of ``block`` tokens of the text file ``path`` (its lines
    joined by EOS, as pretraining packs them), every token trained."""
    from autocoa.train.pretrain import pack

    lines = Path(path).read_text(encoding="utf-8").splitlines()
    blocks = pack(lines, tokenizer, block)
    if not blocks:
        raise ValueError(f"{path}: too little text for one replay block of {block} tokens")
    return [{"input_ids": b, "labels": list(b)} for b in mix_rows(n_coa, blocks, ratio, seed)]
