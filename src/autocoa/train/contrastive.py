"""SFT-stage1 (CoT+A, "when to act"): a contrastive, reference-free, length-normalised pair loss.

Each pair shares a prefix (the prompt and the first ``prefix_segments`` segments) and diverges
at one decision: act (``<search>``) or go on reasoning. With ``P(x|c)`` the mean token
log-prob of a continuation::

    L = -log sigmoid(beta * (P(chosen|c) - P(rejected|c)) - gamma) + alpha * NLL(chosen)

With beta = 1, gamma = 0 and alpha = 0.2 this is the paper's loss. It is TRL's CPO trainer with
``loss_type="simpo"``, ``simpo_gamma=gamma``, ``cpo_alpha=alpha`` (TRL's own ``alpha`` is AlphaPO's
reward shaping, kept at 0).

Why a subclass (:class:`RenderedCPOTrainer`): ``CPOTrainer`` tokenizes text rows itself (prompt
and completions tokenized separately, BOS/EOS added). Here every token id must come from
:func:`autocoa.trajectory.render`, the one loss-mask rule, and a continuation that stops at an
action must not get an EOS. The subclass overrides only ``tokenize_row``: it turns rendered ids
into CPO's columns, the shared prefix being CPO's "prompt" (label -100), after checking that the
two sides really share it.

One difference from the formula, kept because it is CPO's: its NLL term is the token mean over
the whole batch (all chosen tokens pooled), not the mean of per-pair means. The two agree at
batch size 1 or for continuations of equal length; pairs here are short and similar.

Logged (``metrics.jsonl``): ``logps/chosen`` and ``logps/rejected`` (mean token log-probs),
``rewards/margins`` (their difference, times beta), ``rewards/accuracies`` (pairs ranked right),
``nll_loss``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # known: CPO lives in trl.experimental in TRL 1.x
from trl.experimental.cpo import CPOConfig, CPOTrainer

from autocoa.jsonl import DataError
from autocoa.train.common import trainer_args
from autocoa.train.examples import read_rows, trajectory_of
from autocoa.train.stage_config import ContrastiveConfig
from autocoa.trajectory import Trajectory, render

PAIR_KEYS = ("question", "prefix_segments", "chosen", "rejected")


def contrastive_collapse(history: list[dict], window: int = 3, tol: float = 0.02) -> dict | None:
    """The collapse monitor of the contrastive stage: did the mean token log-probs of *both*
    the chosen and the rejected continuations fall over training? (The margin can grow while
    both sink, the failure that the auxiliary NLL term, alpha, is there to prevent.)

    Compares the mean of the first and of the last ``window`` logged values of
    ``logps/chosen`` and ``logps/rejected``; a fall is a drop of more than ``tol`` nats.
    None when fewer than two logs carry both.

    >>> logs = [{"logps/chosen": -1.0, "logps/rejected": -1.2}, {"logps/chosen": -1.5, "logps/rejected": -2.5}]
    >>> contrastive_collapse(logs, window=1)["collapsed"]
    True
    >>> logs[1]["logps/chosen"] = -0.8
    >>> contrastive_collapse(logs, window=1)
    {'chosen_first': -1.0, 'chosen_last': -0.8, 'rejected_first': -1.2, 'rejected_last': -2.5, 'collapsed': False}
    """
    logs = [h for h in history if "logps/chosen" in h and "logps/rejected" in h]
    if len(logs) < 2:
        return None
    w = max(1, min(window, len(logs) // 2))
    out: dict[str, Any] = {}
    for side in ("chosen", "rejected"):
        vals = [h[f"logps/{side}"] for h in logs]
        out[f"{side}_first"] = round(sum(vals[:w]) / w, 4)
        out[f"{side}_last"] = round(sum(vals[-w:]) / w, 4)
    out["collapsed"] = all(out[f"{s}_last"] < out[f"{s}_first"] - tol for s in ("chosen", "rejected"))
    return out


def pair_example(row: dict, tokenizer: Any, max_length: int, where: tuple[Path, int]) -> dict | None:
    """Rendered ids and masks of one pair and the length of their shared prefix; None if the
    prefix alone fills ``max_length`` or a side has no trained token."""
    n = row["prefix_segments"]
    sides = {}
    for side in ("chosen", "rejected"):
        if not isinstance(row[side], dict) or "segments" not in row[side]:
            raise DataError(where[0], where[1], f"{side}.segments", "missing")
        sides[side] = trajectory_of(row, tokenizer, where, segments=row[side]["segments"])
    chosen, rejected = sides["chosen"], sides["rejected"]
    if (
        not isinstance(n, int)
        or not 0 <= n <= min(len(chosen.segments), len(rejected.segments))
        or chosen.segments[:n] != rejected.segments[:n]
    ):
        raise DataError(where[0], where[1], "prefix_segments", f"{n!r}: chosen and rejected do not share it")
    prefix_ids, _ = render(Trajectory(chosen.prompt, chosen.segments[:n]), tokenizer)
    c_ids, c_mask = render(chosen, tokenizer)
    r_ids, r_mask = render(rejected, tokenizer)
    p = len(prefix_ids)
    if p >= max_length:
        return None
    c_ids, c_mask, r_ids, r_mask = c_ids[:max_length], c_mask[:max_length], r_ids[:max_length], r_mask[:max_length]
    if not any(c_mask[p:]) or not any(r_mask[p:]):
        return None
    return {"prefix_len": p, "chosen_ids": c_ids, "chosen_mask": c_mask, "rejected_ids": r_ids, "rejected_mask": r_mask}


def cpo_columns(
    prefix_len: int, chosen_ids: list[int], chosen_mask: list[int], rejected_ids: list[int], rejected_mask: list[int]
) -> dict[str, list[int]]:
    """CPO's tokenized columns from rendered ids: the shared prefix is the prompt (label -100);
    continuation tokens keep their ids as labels where the render mask trains them."""
    p = prefix_len
    if chosen_ids[:p] != rejected_ids[:p]:
        raise ValueError("chosen and rejected do not share their first prefix_len token ids")
    out = {"prompt_input_ids": chosen_ids[:p], "prompt_attention_mask": [1] * p}
    for side, ids, mask in (("chosen", chosen_ids, chosen_mask), ("rejected", rejected_ids, rejected_mask)):
        out[f"{side}_input_ids"] = list(ids)
        out[f"{side}_attention_mask"] = [1] * len(ids)
        out[f"{side}_labels"] = [-100] * p + [t if m else -100 for t, m in zip(ids[p:], mask[p:], strict=True)]
    return out


def pair_examples(data_path: Path, tokenizer: Any, cfg: ContrastiveConfig) -> tuple[list[dict], dict]:
    """Rendered pairs of ``pairs.jsonl`` and counts for the summary."""
    rows = read_rows(data_path, PAIR_KEYS, cfg.max_examples)
    examples, dropped = [], 0
    for n, row in rows:
        ex = pair_example(row, tokenizer, cfg.max_length, (data_path, n))
        if ex is None:
            dropped += 1
        else:
            examples.append(ex)
    kinds = [r.get("kind") for _, r in rows]
    stats = {
        "rows": len(rows),
        "examples": len(examples),
        "dropped_too_long": dropped,
        "kinds": {k: kinds.count(k) for k in sorted(set(map(str, kinds)))},
        "tokens": sum(len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples),
    }
    return examples, stats


class RenderedCPOTrainer(CPOTrainer):
    """``CPOTrainer`` whose rows are already rendered (see the module docstring for why)."""

    def tokenize_row(self, feature, model=None) -> dict:
        return cpo_columns(
            feature["prefix_len"],
            feature["chosen_ids"],
            feature["chosen_mask"],
            feature["rejected_ids"],
            feature["rejected_mask"],
        )


def build_cpo_trainer(
    model: Any,
    tokenizer: Any,
    examples: list[dict],
    cfg: ContrastiveConfig,
    out_dir: Path,
    progress: bool = True,
    callbacks: list | None = None,
):
    from datasets import Dataset

    args = CPOConfig(
        **trainer_args(cfg, out_dir, progress),
        loss_type="simpo",
        beta=cfg.beta,
        simpo_gamma=cfg.gamma,
        cpo_alpha=cfg.alpha,
        alpha=0.0,  # AlphaPO reward shaping off: rewards are the plain mean log-probs
        label_smoothing=0.0,
        max_length=cfg.max_length,
        remove_unused_columns=False,
        is_encoder_decoder=False,
    )
    return RenderedCPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
