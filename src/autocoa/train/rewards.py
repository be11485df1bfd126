"""RL rewards: pure functions of the model's own output and the gold answers.

A reward never looks at the prompt (the original release checked the format on text that
included the prompt, so its format check could never fail): the completion, i.e. the
response the policy wrote plus the observations the environment inserted, is parsed with
:func:`autocoa.trajectory.parse` (which never raises) and scored with
:mod:`autocoa.metrics`, the same functions evaluation reports, so a rewarded answer and a
counted answer cannot disagree.

The paper's reward: 1 for a correct, well-formed answer, else 0 (no partial credit).
Options: token F1 instead of EM (partial credit), and a format term that subtracts
``format_weight`` from a trajectory that breaks a format rule (:func:`format_violations`).

TRL calls reward functions as ``f(prompts=..., completions=..., golden_answers=..., **kw)``
with one list entry per completion; :func:`make_reward` builds such a function, and
:func:`accuracy` is EM ignoring the format (logged next to the reward, never optimised).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from autocoa.metrics import exact_match, f1
from autocoa.tags import Kind
from autocoa.trajectory import Trajectory, parse

Metric = Literal["em", "f1"]
_METRICS: dict[str, Callable[[str | None, Sequence[str]], float]] = {"em": exact_match, "f1": f1}


def format_violations(traj: Trajectory) -> tuple[str, ...]:
    """The format rules a trajectory breaks: ``no_answer`` (no closed, non-empty answer),
    ``action_after_answer`` (an action follows the first answer), ``malformed`` (any other
    problem: unclosed or stray tags, text outside tags, ...).

    >>> format_violations(parse("<think>easy</think><answer>Paris</answer>"))
    ()
    >>> format_violations(parse("<think>hmm</think>"))
    ('no_answer',)
    >>> format_violations(parse("<answer>Paris</answer><search>Paris</search>"))
    ('action_after_answer', 'malformed')
    >>> format_violations(parse("Paris <answer>Paris</answer>"))
    ('malformed',)
    """
    out = []
    if traj.answer is None or not traj.answer:
        out.append("no_answer")
    kinds = [s.kind for s in traj.segments if not s.blank]
    if Kind.ANSWER in kinds and Kind.ACTION in kinds[kinds.index(Kind.ANSWER) :]:
        out.append("action_after_answer")
    if any(p not in ("no answer", "empty answer") for p in traj.problems):
        out.append("malformed")
    return tuple(out)


def answer_reward(
    completion: str,
    golden_answers: str | Sequence[str],
    metric: Metric = "em",
    require_well_formed: bool = True,
    format_weight: float = 0.0,
) -> float:
    """The reward of one completion.

    ``metric`` scores the last answer against the golds (``em`` or ``f1``); with
    ``require_well_formed`` a trajectory that breaks any format rule scores 0 however right
    its answer (the paper's rule); ``format_weight`` is then subtracted once from a
    trajectory that breaks a rule.

    >>> answer_reward("<think>I know</think><answer>the Beatles</answer>", ["Beatles"])
    1.0
    >>> answer_reward("<answer>Rolling Stones</answer>", ["Beatles"])
    0.0
    >>> answer_reward("Beatles <answer>Beatles</answer>", ["Beatles"])  # text outside tags
    0.0
    >>> answer_reward("Beatles <answer>Beatles</answer>", ["Beatles"], require_well_formed=False)
    1.0
    >>> answer_reward("<answer>John Lennon Beatles</answer>", ["Beatles"], metric="f1")
    0.5
    >>> answer_reward("<think>no idea", ["Beatles"], format_weight=0.5)
    -0.5
    >>> answer_reward("<answer>x</answer>", [])
    Traceback (most recent call last):
    ...
    ValueError: no gold answers
    """
    traj = parse(completion)
    violations = format_violations(traj)
    score = _METRICS[metric](traj.answer, golden_answers)
    if require_well_formed and violations:
        score = 0.0
    return score - (format_weight if violations else 0.0)


def make_reward(
    metric: Metric = "em", require_well_formed: bool = True, format_weight: float = 0.0
) -> Callable[..., list[float]]:
    """A TRL reward function ``f(completions, golden_answers, **kw) -> list[float]``.

    >>> reward = make_reward()
    >>> reward(completions=["<answer>Paris</answer>", "<answer>Lyon</answer>"], golden_answers=[["Paris"], ["Paris"]])
    [1.0, 0.0]
    >>> reward.__name__
    'answer_reward'
    """
    if metric not in _METRICS:
        raise ValueError(f"unknown reward metric {metric!r}; expected one of {sorted(_METRICS)}")

    def reward(completions: Sequence[Any], golden_answers: Sequence[Any], **_: Any) -> list[float]:
        return [
            answer_reward(_text(c), g, metric, require_well_formed, format_weight)
            for c, g in zip(completions, golden_answers, strict=True)
        ]

    reward.__name__ = "answer_reward"
    return reward


def accuracy(completions: Sequence[Any], golden_answers: Sequence[Any], **_: Any) -> list[float]:
    """EM of the last answer, whatever the format: logged beside the reward, weight 0.

    >>> accuracy(["Paris <answer>Paris</answer>"], [["Paris"]])
    [1.0]
    """
    return [exact_match(parse(_text(c)).answer, g) for c, g in zip(completions, golden_answers, strict=True)]


def _text(completion: Any) -> str:
    """TRL hands conversational completions as ``[{"role": ..., "content": ...}]``."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def reward_by_hops(samples: Sequence[tuple[str, int, float]]) -> dict[int, dict[str, float]]:
    """One GRPO step's reward signal by the questions' hop count: ``samples`` are
    ``(prompt, hops, reward)`` per rollout (a prompt's rollouts form its group). For each hop
    count: the mean ``reward``, and ``zero_spread``, the share of its groups whose rollouts all
    scored the same (their advantages are all 0: nothing to learn from them).

    >>> reward_by_hops([("a", 1, 1.0), ("a", 1, 0.0), ("b", 1, 0.0), ("b", 1, 0.0), ("c", 2, 1.0), ("c", 2, 1.0)])
    {1: {'reward': 0.25, 'zero_spread': 0.5}, 2: {'reward': 1.0, 'zero_spread': 1.0}}
    """
    groups: dict[str, list[float]] = {}
    hops: dict[str, int] = {}
    for prompt, h, r in samples:
        groups.setdefault(prompt, []).append(r)
        hops[prompt] = h
    out = {}
    for h in sorted(set(hops.values())):
        of_h = [g for p, g in groups.items() if hops[p] == h]
        rewards = [r for g in of_h for r in g]
        out[h] = {
            "reward": sum(rewards) / len(rewards),
            "zero_spread": sum(max(g) == min(g) for g in of_h) / len(of_h),
        }
    return out
