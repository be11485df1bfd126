"""The tool protocol and the toolbox that runs tools for the agent loop.

A tool has a ``name`` (which is also its action tag: ``search`` answers ``<search>``), a
``description``, and ``call(argument) -> observation text``. A tool may also offer
``call_batch(arguments) -> observations`` to answer many calls at once (one index lookup
for a whole rollout batch); the toolbox uses it when present.

The toolbox never raises into a rollout: an unknown tool, an empty argument, an exception,
or an empty result becomes observation text that says so (the agent can react to it), and
each is counted in :class:`ToolStats`. A tool signals a timeout by raising ``TimeoutError``
(or an exception whose class name says "Timeout", as httpx's do); it is counted apart.

Observations are made safe to wrap in ``<result>...</result>``: a tag string inside a
document (``</result>``, ``<search>``...) would be tokenized as the tag token and break the
trajectory's structure, so :func:`escape_tags` writes its ``<`` as ``&lt;``. Long
observations are then cut at ``max_chars`` characters, or ``max_tokens`` tokens of a given
tokenizer, with a visible marker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from autocoa.tags import DEFAULT_ACTIONS, Tags, escape_tags

TRUNCATED = " ...[truncated {n} chars]"
TRUNCATED_TOKENS = " ...[truncated {n} tokens]"


@runtime_checkable
class Tool(Protocol):
    """``name`` is also the action tag the tool answers (``search`` -> ``<search>``)."""

    name: str
    description: str

    def call(self, argument: str) -> str: ...


@dataclass
class ToolStats:
    """Counts per tool name: calls, errors (exceptions, unknown tool, empty argument),
    timeouts (also counted as errors), empty results and truncated observations."""

    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    timeouts: Counter[str] = field(default_factory=Counter)
    empty: Counter[str] = field(default_factory=Counter)
    truncated: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {k: dict(getattr(self, k)) for k in ("calls", "errors", "timeouts", "empty", "truncated")}


def truncate(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut ``text`` to at most ``max_chars`` characters plus a visible marker."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text, False
    return text[:max_chars] + TRUNCATED.format(n=len(text) - max_chars), True


def truncate_tokens(text: str, tokenizer: Any, max_tokens: int) -> tuple[str, bool]:
    """Cut ``text`` after its first ``max_tokens`` tokens (a fast Hugging Face tokenizer: the
    cut is at a token's character offset, so the kept text is a prefix of the original)."""
    if max_tokens <= 0:
        return text, False
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_tokens:
        return text, False
    return text[: offsets[max_tokens - 1][1]] + TRUNCATED_TOKENS.format(n=len(offsets) - max_tokens), True


def _is_timeout(e: BaseException) -> bool:
    return isinstance(e, TimeoutError) or "Timeout" in type(e).__name__


def states_nothing(observation: str) -> bool:
    """An observation that carries no claim: the toolbox's error and empty-result texts.

    >>> states_nothing("[no results] search returned nothing"), states_nothing(" [error] x"), states_nothing("Doc 1")
    (True, True, False)
    """
    text = observation.strip()
    return not text or text.startswith(("[error]", "[no results]"))


def references_in(observation: str) -> list[str]:
    r"""What an observation states, as references to check an answer against: each document of a
    search result (:func:`autocoa.tools.search.split_hits`), else the whole text (a calculator's
    value); nothing for an error or empty result (:func:`states_nothing`). The one rule of CoA's
    verifier, ``--verify mrfs`` and evaluation's observation checks.

    >>> references_in("Doc 1 (Title: A) A is a city.\nDoc 2 B."), references_in("42"), references_in("[error] x")
    (['Doc 1 (Title: A) A is a city.', 'Doc 2 B.'], ['42'], [])
    """
    from autocoa.tools.search import split_hits

    if states_nothing(observation):
        return []
    return split_hits(observation) or [observation.strip()]


class Toolbox:
    """The tools of one agent, by name, with error containment and statistics."""

    def __init__(
        self,
        tools: Iterable[Tool],
        max_chars: int = 2000,
        *,
        max_tokens: int = 0,
        tokenizer: Any = None,
        escape: Tags | None = None,
    ):
        """``max_chars`` / ``max_tokens`` (with ``tokenizer``): observation budget, 0 = none.
        ``escape``: the tag vocabulary to neutralise in observations; by default these
        tools' tags plus the default action tags."""
        self.tools: dict[str, Tool] = {}
        for t in tools:
            if t.name in self.tools:
                raise ValueError(f"two tools are named {t.name!r}")
            self.tools[t.name] = t
        if not self.tools:
            raise ValueError("a toolbox needs at least one tool")
        if max_tokens and tokenizer is None:
            raise ValueError("max_tokens needs a tokenizer")
        self.max_chars = max_chars
        self.max_tokens = max_tokens
        self.tokenizer = tokenizer
        self.escape = escape or Tags(actions=tuple(dict.fromkeys((*DEFAULT_ACTIONS, *self.tools))))
        self.stats = ToolStats()

    @property
    def tags(self) -> Tags:
        """Tag vocabulary whose actions are exactly these tools."""
        return Tags(actions=tuple(self.tools))

    def run(self, calls: Sequence[tuple[str, str]]) -> list[str]:
        """Observation text for each ``(tool name, argument)``; calls to the same tool are
        batched. Never raises."""
        out: list[str | None] = [None] * len(calls)
        by_tool: dict[str, list[int]] = {}
        for i, (name, arg) in enumerate(calls):
            self.stats.calls[name] += 1
            if name not in self.tools:
                self.stats.errors[name] += 1
                out[i] = f"[error] unknown tool '{name}'; available: {', '.join(self.tools)}"
            elif not arg.strip():
                self.stats.errors[name] += 1
                out[i] = f"[error] empty {name} argument"
            else:
                by_tool.setdefault(name, []).append(i)
        for name, idx in by_tool.items():
            args = [calls[i][1].strip() for i in idx]
            for i, obs in zip(idx, self._call(name, args), strict=True):
                out[i] = self._finish(name, obs)
        return [o if o is not None else "" for o in out]

    def _call(self, name: str, args: list[str]) -> list[str | Exception]:
        tool = self.tools[name]
        batch = getattr(tool, "call_batch", None)
        if batch is not None:
            try:
                res = list(batch(args))
                if len(res) != len(args):
                    raise RuntimeError(f"call_batch returned {len(res)} results for {len(args)} calls")
                return res
            except Exception as e:
                # A dead or slow backend fails every call alike: don't pay its timeout per call.
                # Otherwise fall back to one call at a time, to find the bad one(s).
                if len(args) == 1 or _is_timeout(e) or isinstance(e, ConnectionError):
                    return [e] * len(args)
        results: list[str | Exception] = []
        for a in args:
            try:
                results.append(tool.call(a))
            except Exception as e:
                results.append(e)
        return results

    def _finish(self, name: str, obs: str | Exception) -> str:
        if isinstance(obs, Exception):
            self.stats.errors[name] += 1
            if _is_timeout(obs):
                self.stats.timeouts[name] += 1
                return escape_tags(f"[error] {name} timed out: {obs}", self.escape)
            return escape_tags(f"[error] {name} failed: {type(obs).__name__}: {obs}", self.escape)
        if not str(obs).strip():
            self.stats.empty[name] += 1
            return f"[no results] {name} returned nothing"
        text = escape_tags(str(obs), self.escape)
        cut_t = False
        if self.max_tokens:
            text, cut_t = truncate_tokens(text, self.tokenizer, self.max_tokens)
        text, cut_c = truncate(text, self.max_chars)
        if cut_t or cut_c:
            self.stats.truncated[name] += 1
        return text
