"""Pretraining until the base model reads: a warmup-stable-decay schedule whose decay starts
when the reading test passes.

Copying a name just read is an abrupt, induction-like skill in the tiny model: it appears at a
step that differs by seed (seed 0 at ~1,200, seed 2 later and weaker, seed 1 not within 2,057
steps of a cosine schedule, measured in docs/scale-model.md), and a decaying learning rate can
end the run before it. So, with ``PretrainConfig.reading_target`` set, the peak learning rate is
held after warm-up until the reading test (run every ``reading_eval_steps``) reaches the target;
then it decays linearly to 0 over ``decay_steps`` and training stops. ``epochs`` caps the run:
if the test never passes, the decay starts ``decay_steps`` before the cap.

transformers' ``get_wsd_schedule`` fixes the stable phase's length in advance; here it is decided
during training, hence this small piece: a ``LambdaLR`` over a shared :class:`DecayStart`, moved
by the reading callback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class DecayStart:
    """The step at which the decay starts (mutable: the reading callback moves it earlier when
    the reading test first reaches ``target``)."""

    step: int
    decay_steps: int
    target: float

    @property
    def end(self) -> int:
        return self.step + self.decay_steps

    def reached(self, step: int, reading: float | None) -> bool:
        """Record the reading test's result at ``step``; True when this starts the decay."""
        if reading is None or reading < self.target or step >= self.step:
            return False
        self.step = step
        return True


def lr_factor(step: int, warmup: int, decay: DecayStart) -> float:
    """The learning rate's multiple of its peak at optimizer step ``step``: linear warm-up over
    ``warmup`` steps, 1 until ``decay.step``, then linear to 0 at ``decay.end``.

    >>> d = DecayStart(step=100, decay_steps=50, target=0.5)
    >>> [lr_factor(s, 10, d) for s in (0, 5, 10, 99, 100, 125, 150, 200)]
    [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    """
    if step < warmup:
        return step / warmup
    if step <= decay.step:
        return 1.0
    return max(0.0, 1.0 - (step - decay.step) / decay.decay_steps)


def initial_decay(cap: int, decay_steps: int, rows: Iterable[dict], target: float, upto: int) -> DecayStart:
    """The schedule of a run capped at ``cap`` steps; ``rows`` are its logged metrics (a resumed
    run's reading results up to its checkpoint's step ``upto`` decide where the decay started).

    >>> rows = [{"step": 100, "reading": 0.2}, {"step": 200, "reading": 0.9}, {"step": 300, "reading": 0.95}]
    >>> initial_decay(1000, 100, rows, 0.8, upto=250).step, initial_decay(1000, 100, rows, 0.8, upto=150).step
    (200, 900)
    """
    decay = DecayStart(step=max(0, cap - decay_steps), decay_steps=decay_steps, target=target)
    for r in rows:
        if "reading" in r and r["step"] <= upto:
            decay.reached(r["step"], r["reading"])
    return decay
