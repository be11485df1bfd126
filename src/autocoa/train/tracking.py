"""Experiment tracking: every stage (pretrain, SFT 1-3, RL) takes ``report_to`` and passes it
to its trainer, which logs the metrics of ``metrics.jsonl`` under the same names."""

from __future__ import annotations

REPORT_TO_HELP = "experiment trackers (tensorboard, trackio, wandb, ...): the metrics of metrics.jsonl, same names"


def trackers(report_to: list[str]) -> list[str] | str:
    """``TrainingArguments.report_to`` of a stage: its trackers, or none (never transformers'
    default of every installed one).

    >>> trackers([]), trackers(["tensorboard"])
    ('none', ['tensorboard'])
    """
    return list(report_to) or "none"
