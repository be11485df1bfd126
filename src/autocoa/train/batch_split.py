"""A batch run as length-sorted pieces: the same examples, loss and gradient, less padding.

A padded batch computes every row to its longest example's length: on the default's SFT-2
batches (1- to 4-hop trajectories, CoT rows) 44% of the tokens a step computes are padding. With
``batch_splits: k`` (SFT-2/3), each batch's examples are sorted by length and cut into ``k``
contiguous groups, chosen to pad least (:func:`length_groups`); each group runs its own forward
and backward, padded only to its own longest example, and every group's loss is its tokens' sum
over the whole batch's count of trained tokens (``num_items_in_batch``), so the groups' gradients
add up to the batch's. Which examples a step trains on, and how its loss is normalised, do not
change (batch composition is a research choice; this is not: docs/benchmarks.md#training).

Written here rather than taken from a library: TRL's options that remove padding either change
which examples share a step (``group_by_length``) or concatenate the batch into one row
(``padding_free``), whose attention mask is quadratic in the batch's total length on CPU.
"""

from __future__ import annotations

import contextlib
from typing import Any


def length_groups(lengths: list[int], k: int) -> list[list[int]]:
    """Row indices in ``k`` (at most) groups of the rows sorted by length, contiguous in that
    order, cut where the padded area (rows x longest row, summed over groups) is least.

    >>> length_groups([10, 50, 12, 48], 2)
    [[0, 2], [3, 1]]
    >>> length_groups([5, 5, 5], 2)  # equal lengths: nothing to gain, one group
    [[0, 1, 2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    n = len(order)
    sl = [lengths[i] for i in order]
    # best[j][g]: least padded area of the first j sorted rows in g groups, and the cut before it
    inf = float("inf")
    best = [[(inf, 0)] * (k + 1) for _ in range(n + 1)]
    best[0][0] = (0, 0)
    for j in range(1, n + 1):
        for g in range(1, k + 1):
            for i in range(g - 1, j):
                area = best[i][g - 1][0] + (j - i) * sl[j - 1]
                if area < best[j][g][0]:
                    best[j][g] = (area, i)
    g = min(range(1, k + 1), key=lambda g: (best[n][g][0], g))  # fewest groups among the least areas
    cuts, j = [], n
    while g:
        i = best[j][g][1]
        cuts.append(order[i:j])
        j, g = i, g - 1
    return cuts[::-1]


def rows_of(inputs: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    """The batch's ``rows``, cut to their longest real length (right padding)."""
    import torch

    index = torch.tensor(rows, device=inputs["input_ids"].device)
    width = int(inputs["attention_mask"][index].sum(1).max())
    return {k: v[index, :width] if hasattr(v, "dim") and v.dim() == 2 else v for k, v in inputs.items()}


def sft_trainer_class(splits: int) -> type:
    """TRL's ``SFTTrainer``, or with ``splits`` > 1 one whose training step runs each batch as
    length-sorted groups (:func:`length_groups`) with the batch's loss and gradient."""
    from trl import SFTTrainer

    if splits == 1:
        return SFTTrainer

    class SplitBatchSFTTrainer(SFTTrainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            mask = inputs.get("attention_mask")
            if num_items_in_batch is None or mask is None or not self.model_accepts_loss_kwargs:
                return super().training_step(model, inputs, num_items_in_batch)  # nothing to normalise by
            groups = length_groups(mask.sum(1).tolist(), splits)
            if len(groups) == 1:
                return super().training_step(model, inputs, num_items_in_batch)
            metrics = self._metrics["train"]
            before = {k: len(metrics[k]) for k in ("entropy", "mean_token_accuracy")}
            counts, loss = [], 0.0
            for n, rows in enumerate(groups):
                part = rows_of(inputs, rows)
                counts.append(self.accelerator.gather_for_metrics((part["labels"][:, 1:] != -100).sum()).sum())
                last = n == len(groups) - 1  # gradients synchronised once, after the last group
                with contextlib.nullcontext() if last else self.accelerator.no_sync(model):
                    loss = loss + super().training_step(model, part, num_items_in_batch)
            # the batch's entropy and accuracy as one batch would log them: weighted by trained tokens
            total = sum(counts)
            for key, start in before.items():
                values = metrics[key][start:]
                if len(values) == len(groups):
                    weighted = sum(v * c for v, c in zip(values, counts, strict=True)) / total if total > 0 else 0.0
                    metrics[key][start:] = [float(weighted)]
            return loss

    return SplitBatchSFTTrainer
