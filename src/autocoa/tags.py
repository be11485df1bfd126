"""The tags of a chain-of-action trajectory: the one place that names them.

A trajectory interleaves reasoning, actions, observations and a final answer::

    <think> reasoning </think>
    <search> query </search>          # action: generation stops here, the tool runs
    <result> observation </result>    # written by the environment (or, simulated, by the model)
    <answer> final answer </answer>

Each tool has its own action tag (the paper's "action type" token): ``<search>``,
``<calculate>``, ... Tags are *ordinary added tokens* of the tokenizer, never "special"
tokens, because decoders (TRL's among them) strip special tokens and would erase the
structure of every trajectory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property


class Kind(StrEnum):
    """What a span of a trajectory is."""

    THINK = "think"
    ACTION = "action"
    OBSERVATION = "observation"
    ANSWER = "answer"
    TEXT = "text"  # anything outside tags: whitespace between segments, or stray model output
    PROMPT = "prompt"  # token-level only: the prompt is not a segment of the response


# Tag names of the non-action kinds. An action's tag name is its tool's name.
THINK, OBSERVATION, ANSWER = "think", "result", "answer"
# The non-action kinds and their tag names, both ways (an action's tag is its tool's name).
TAG_OF_KIND = {Kind.THINK: THINK, Kind.OBSERVATION: OBSERVATION, Kind.ANSWER: ANSWER}
KIND_OF_TAG = {name: kind for kind, name in TAG_OF_KIND.items()}
DEFAULT_ACTIONS = ("search", "calculate")
# What a chat model's instructions say of each built-in action (a prompt must not depend on the
# runtime toolbox: training and inference format it alike). Other actions are described by name.
ACTION_DESCRIPTIONS = {
    "search": "search the encyclopedia: write a short query, get the best-matching documents",
    "calculate": "arithmetic: write an expression such as (3 + 4) * 2 ** 3, get its value",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def open_tag(name: str) -> str:
    return f"<{name}>"


def close_tag(name: str) -> str:
    return f"</{name}>"


@dataclass(frozen=True)
class Tags:
    """The tag vocabulary: the fixed tags plus one action tag per tool.

    Frozen and hashable, so one instance can be shared by the tokenizer, the parser and
    the agent loop. ``Tags(actions=("search", "lookup"))`` adds a tool's tag.
    """

    actions: tuple[str, ...] = DEFAULT_ACTIONS
    _fixed: tuple[str, ...] = field(default=(THINK, OBSERVATION, ANSWER), init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.actions:
            raise ValueError("Tags needs at least one action (tool) name")
        for name in self.actions:
            if not _NAME.match(name):
                raise ValueError(f"action name {name!r} must match {_NAME.pattern}")
            if name in self._fixed:
                raise ValueError(f"action name {name!r} collides with a fixed tag")
        if len(set(self.actions)) != len(self.actions):
            raise ValueError(f"duplicate action names in {self.actions}")

    @property
    def names(self) -> tuple[str, ...]:
        return (THINK, *self.actions, OBSERVATION, ANSWER)

    @property
    def strings(self) -> list[str]:
        """Every tag string, openers and closers: the tokens to add to a tokenizer."""
        return [t for n in self.names for t in (open_tag(n), close_tag(n))]

    def kind_of(self, name: str) -> Kind:
        if name in KIND_OF_TAG:
            return KIND_OF_TAG[name]
        if name in self.actions:
            return Kind.ACTION
        raise KeyError(f"unknown tag name {name!r}")

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """Matches any tag; group 1 is '/' for a closer, group 2 the tag name."""
        names = "|".join(re.escape(n) for n in sorted(self.names, key=len, reverse=True))
        return re.compile(rf"<(/?)({names})>")

    @property
    def action_closers(self) -> list[str]:
        """The strings at which generation must stop so that a tool can run."""
        return [close_tag(a) for a in self.actions]


DEFAULT_TAGS = Tags()


def escape_tags(text: str, tags: Tags = DEFAULT_TAGS) -> str:
    """Neutralise tag strings inside environment text (a retrieved document that contains
    ``</result>`` must not end the observation): ``<result>`` becomes ``&lt;result>``.

    >>> escape_tags("a </result> b")
    'a &lt;/result> b'
    """
    return tags.pattern.sub(lambda m: "&lt;" + m.group(0)[1:], text)
