"""Trajectories: parsing model output, rendering text, and THE loss-mask rule.

A :class:`Trajectory` is a prompt plus a sequence of typed :class:`Segment` s (think,
action, observation, answer, free text). It is the contract between data synthesis, the
trainers, the agent loop and evaluation.

- :func:`parse` turns any text into a trajectory and never raises. It is *lossless*:
  ``parse(x).response == x`` for every string ``x``, so nothing the model wrote is lost,
  and problems (unclosed or stray tags, text outside tags, an action without an
  observation, no answer, ...) are listed in :attr:`Trajectory.problems`.
- :func:`render` turns a trajectory into ``(input_ids, loss_mask)`` with
  :func:`is_trained` as the ONE rule for which tokens are trained on, shared by every
  SFT stage, the contrastive stage and RL.

How the token ids of :func:`render` equal a one-shot tokenization of the rendered text:
the text is cut into pieces at tags, every tag is one added token, and Hugging Face
tokenizers split added tokens out of the text *before* normalisation, pre-tokenisation and
BPE. So tokenizing the pieces one by one gives exactly the ids of tokenizing the whole
response at once. The one cut that is not at a tag is prompt | response: the prompt is
tokenized on its own, exactly as the agent loop does (it encodes the prompt, then
generates), so training and inference see the same ids. :func:`check_tags` verifies that
a tokenizer holds every tag as a single, non-special token.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from autocoa.tags import DEFAULT_TAGS, TAG_OF_KIND, Kind, Tags, close_tag, open_tag


@dataclass(frozen=True)
class Segment:
    """One span of a response.

    ``text`` is what stands between the tags (verbatim, whitespace kept). ``tool`` names the
    action's tool, which is also its tag name. ``closed`` is False for a segment whose closing
    tag never came (the model stopped, or opened another tag first).
    """

    kind: Kind
    text: str
    tool: str | None = None
    closed: bool = True

    def __post_init__(self) -> None:
        if (self.kind is Kind.ACTION) != (self.tool is not None):
            raise ValueError(f"a {self.kind} segment {'needs' if self.kind is Kind.ACTION else 'has no'} tool")
        if self.kind is Kind.PROMPT:
            raise ValueError("the prompt is Trajectory.prompt, not a segment")
        if self.kind is Kind.TEXT and not self.closed:
            raise ValueError("a text segment has no tags, so it cannot be unclosed")

    @property
    def tag(self) -> str | None:
        """The tag name (``think``, ``search``, ``result``, ``answer``); None for free text."""
        return self.tool if self.kind is Kind.ACTION else TAG_OF_KIND.get(self.kind)

    @property
    def rendered(self) -> str:
        if self.kind is Kind.TEXT:
            return self.text
        return open_tag(self.tag) + self.text + (close_tag(self.tag) if self.closed else "")

    @property
    def blank(self) -> bool:
        return self.kind is Kind.TEXT and not self.text.strip()


def think(text: str) -> Segment:
    return Segment(Kind.THINK, text)


def action(tool: str, argument: str) -> Segment:
    return Segment(Kind.ACTION, argument, tool=tool)


def observation(text: str) -> Segment:
    return Segment(Kind.OBSERVATION, text)


def answer(text: str) -> Segment:
    return Segment(Kind.ANSWER, text)


def text(s: str) -> Segment:
    return Segment(Kind.TEXT, s)


@dataclass(frozen=True)
class Trajectory:
    """A prompt and the segments of its response."""

    prompt: str
    segments: tuple[Segment, ...] = ()
    tags: Tags = field(default=DEFAULT_TAGS, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.segments))
        for s in self.segments:
            if s.kind is Kind.ACTION and s.tool not in self.tags.actions:
                raise ValueError(f"unknown tool {s.tool!r}; known: {self.tags.actions}")

    @property
    def response(self) -> str:
        return "".join(s.rendered for s in self.segments)

    @property
    def text(self) -> str:
        return self.prompt + self.response

    @cached_property
    def problems(self) -> tuple[str, ...]:
        return tuple(_problems(self.segments))

    @property
    def well_formed(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str | None:
        """The first problem, or None when well formed."""
        return self.problems[0] if self.problems else None

    @property
    def actions(self) -> list[tuple[str, str]]:
        """(tool, argument) of every closed action, in order."""
        return [(s.tool, s.text) for s in self.segments if s.kind is Kind.ACTION and s.closed]

    def action_results(self) -> list[tuple[Segment, str | None]]:
        r"""Every action with the text of the observation that answered it: the next segment,
        blank text aside, when it is an observation; else None. The one pairing rule (the
        server's ``tool_calls``, the fidelity analysis).

        >>> t = parse("<search>a</search>\n<result>A doc</result><search>b</search>x<result>B</result>")
        >>> [(a.text, r) for a, r in t.action_results()]
        [('a', 'A doc'), ('b', None)]
        """
        segs = [s for s in self.segments if not s.blank]
        nexts = [*segs[1:], None]
        return [
            (s, nxt.text if nxt is not None and nxt.kind is Kind.OBSERVATION else None)
            for s, nxt in zip(segs, nexts[: len(segs)], strict=True)
            if s.kind is Kind.ACTION
        ]

    @property
    def n_actions(self) -> int:
        return len(self.actions)

    @property
    def ends_turn(self) -> bool:
        """Whether the response ends with a closed answer (blank text after it aside): the turn
        is over, and :func:`render` appends the tokenizer's end-of-turn token."""
        segs = [s for s in self.segments if not s.blank]
        return bool(segs) and segs[-1].kind is Kind.ANSWER and segs[-1].closed

    @property
    def answer(self) -> str | None:
        """The stripped text of the last closed answer, or None."""
        answers = [s.text.strip() for s in self.segments if s.kind is Kind.ANSWER and s.closed]
        return answers[-1] if answers else None

    def to_dict(self) -> dict[str, Any]:
        def seg(s: Segment) -> dict[str, Any]:
            d: dict[str, Any] = {"kind": s.kind.value, "text": s.text}
            if s.tool is not None:
                d["tool"] = s.tool
            if not s.closed:
                d["closed"] = False
            return d

        return {"prompt": self.prompt, "segments": [seg(s) for s in self.segments]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], tags: Tags = DEFAULT_TAGS) -> Trajectory:
        """Read :meth:`to_dict` output, or ``{"prompt", "response"}`` (parsed).

        Raises ValueError naming the offending field (e.g. ``segments[3].kind``).
        """
        if not isinstance(d, dict):
            raise ValueError(f"a trajectory is a JSON object, got {type(d).__name__}")
        prompt = d.get("prompt", "")
        if not isinstance(prompt, str):
            raise ValueError("prompt: must be a string")
        if "segments" not in d:
            if not isinstance(d.get("response"), str):
                raise ValueError("needs 'segments' (a list) or 'response' (a string)")
            return parse(d["response"], prompt=prompt, tags=tags)
        if not isinstance(d["segments"], list):
            raise ValueError("segments: must be a list")
        segs = []
        for i, s in enumerate(d["segments"]):
            where = f"segments[{i}]"
            if not isinstance(s, dict):
                raise ValueError(f"{where}: must be an object")
            try:
                kind = Kind(s.get("kind"))
            except ValueError:
                raise ValueError(
                    f"{where}.kind: {s.get('kind')!r} is not one of {[k.value for k in Kind if k is not Kind.PROMPT]}"
                ) from None
            if not isinstance(s.get("text"), str):
                raise ValueError(f"{where}.text: must be a string")
            try:
                segs.append(Segment(kind, s["text"], tool=s.get("tool"), closed=bool(s.get("closed", True))))
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        try:
            return cls(prompt, tuple(segs), tags=tags)
        except ValueError as e:
            raise ValueError(f"segments: {e}") from None


def _problems(segments: Sequence[Segment]) -> Iterable[str]:
    """Why a response is not well formed; nothing when it is.

    Grammar (free text that is only whitespace is ignored):
    ``(think | action observation)* answer``, every tag closed, actions and the answer non-empty.
    """
    segs = [s for s in segments if not s.blank]
    for s in segs:
        if s.kind is Kind.TEXT:
            yield f"text outside tags: {_clip(s.text)!r}"
        elif not s.closed:
            yield f"unclosed {open_tag(s.tag)}"
        elif s.kind is Kind.ACTION and not s.text.strip():
            yield f"empty action {open_tag(s.tag)}"
    for prev, cur in zip([None, *segs], segs, strict=False):
        if cur.kind is Kind.OBSERVATION and (prev is None or prev.kind is not Kind.ACTION):
            yield "observation without a preceding action"
    for cur, nxt in zip(segs, [*segs[1:], None], strict=False):
        if cur.kind is Kind.ACTION and (nxt is None or nxt.kind is not Kind.OBSERVATION):
            yield f"action {open_tag(cur.tag)} without an observation"
    answers = [i for i, s in enumerate(segs) if s.kind is Kind.ANSWER]
    if not answers:
        yield "no answer"
        return
    if len(answers) > 1:
        yield "more than one answer"
    if answers[0] != len(segs) - 1:
        yield "segments after the answer"
    if not segs[answers[0]].text.strip():
        yield "empty answer"


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def parse(response: str, prompt: str = "", tags: Tags = DEFAULT_TAGS) -> Trajectory:
    """Parse a response into segments. Never raises; lossless (``.response == response``).

    Rules: text outside tags is a TEXT segment; a closing tag with no matching open segment
    is kept as TEXT (a stray tag); an opening tag (or another kind's closer) inside an open
    segment ends that segment unclosed, then is read as if at top level (nesting is not
    allowed); text that ends inside a segment leaves it unclosed.
    """
    if not isinstance(response, str):
        response = str(response)
    segs: list[Segment] = []
    pending_text: list[str] = []
    open_name: str | None = None
    open_start = 0
    pos = 0

    def flush_text() -> None:
        if pending_text:
            segs.append(Segment(Kind.TEXT, "".join(pending_text)))
            pending_text.clear()

    def make(name: str, body: str, closed: bool) -> Segment:
        kind = tags.kind_of(name)
        return Segment(kind, body, tool=name if kind is Kind.ACTION else None, closed=closed)

    for m in tags.pattern.finditer(response):
        is_close, name = m.group(1) == "/", m.group(2)
        if open_name is not None:
            if is_close and name == open_name:
                segs.append(make(open_name, response[open_start : m.start()], closed=True))
                open_name, pos = None, m.end()
                continue
            segs.append(make(open_name, response[open_start : m.start()], closed=False))
            open_name, pos = None, m.start()
        pending_text.append(response[pos : m.start()])
        if is_close:  # stray closer: keep it verbatim as text
            pending_text.append(m.group(0))
            pos = m.end()
        else:
            flush_text()
            open_name, open_start, pos = name, m.end(), m.end()
    if open_name is not None:
        segs.append(make(open_name, response[open_start:], closed=False))
    else:
        pending_text.append(response[pos:])
    flush_text()
    segs = [s for s in segs if not (s.kind is Kind.TEXT and s.text == "")]
    return Trajectory(prompt, tuple(segs), tags=tags)


# ---------------------------------------------------------------------------------------
# Rendering to token ids: the one loss-mask rule.


def is_trained(kind: Kind, mask_observations: bool, only_observations: bool = False) -> bool:
    """THE loss-mask rule. Prompt tokens never train; observation tokens (tags included)
    train only when ``mask_observations`` is False (SFT-stage3, the world model); every
    token the model itself writes trains, unless ``only_observations`` (the world model
    learns a document without the policy learning that question's reasoning and answer).

    >>> is_trained(Kind.THINK, True), is_trained(Kind.OBSERVATION, True), is_trained(Kind.OBSERVATION, False)
    (True, False, True)
    >>> is_trained(Kind.ANSWER, False, only_observations=True), is_trained(Kind.OBSERVATION, False, True)
    (False, True)
    """
    if kind is Kind.PROMPT:
        return False
    if kind is Kind.OBSERVATION:
        return not mask_observations
    return not only_observations


# check_tags' answers per tokenizer object, keyed by the tags, the vocabulary size (adding a
# token changes it) and the special ids: rendering asks once per example, 10 encodes each
_TAG_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_tags(tokenizer: Any, tags: Tags = DEFAULT_TAGS) -> dict[str, int]:
    """Map every tag string to its single token id; raise if the tokenizer lacks one or
    holds it as a special token (which decoding would strip)."""
    try:
        cache = _TAG_IDS.setdefault(tokenizer, {})
        key = (tags, len(tokenizer), tuple(tokenizer.all_special_ids))
    except TypeError:  # not weakly referenceable, or no len(): nothing cached
        return _tag_ids(tokenizer, tags)
    if key not in cache:
        cache[key] = _tag_ids(tokenizer, tags)
    return dict(cache[key])


def _tag_ids(tokenizer: Any, tags: Tags) -> dict[str, int]:
    special = set(tokenizer.all_special_ids)
    out = {}
    for t in tags.strings:
        ids = tokenizer.encode(t, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(
                f"tokenizer encodes tag {t!r} as {len(ids)} tokens; add it with autocoa.tokenizer.add_tags()"
            )
        if ids[0] in special:
            raise ValueError(f"tag {t!r} is a special token; decoding would strip it")
        out[t] = ids[0]
    return out


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a prompt, as both training and the agent loop encode it: with the
    tokenizer's special tokens (BOS), unless the text already starts with BOS (a chat
    template's output does)."""
    if not prompt:
        return []
    bos = getattr(tokenizer, "bos_token", None)
    add = not (bos and prompt.startswith(bos))
    return list(tokenizer(prompt, add_special_tokens=add)["input_ids"])


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The token a finished turn ends with: the tokenizer's EOS, which is what its chat
    template closes a turn with (``<|im_end|>`` for ChatML models). Trained after the answer,
    so that ``generate``, vLLM and llama.cpp stop without stop strings; the agent loop appends
    it after ``</answer>`` without sampling it (:mod:`autocoa.agent.state`)."""
    return getattr(tokenizer, "eos_token_id", None)


def render_pieces(traj: Trajectory, tokenizer: Any) -> list[tuple[list[int], Kind]]:
    """Token ids of the trajectory, cut at tags: ``[(ids, kind), ...]`` starting with the
    prompt; a trajectory that :attr:`~Trajectory.ends_turn` gets the end-of-turn token
    (:func:`end_of_turn_id`) as a last piece of kind ANSWER (trained as the answer is)."""
    tag_ids = check_tags(tokenizer, traj.tags)
    texts: list[tuple[str, Kind]] = []  # pieces to tokenize; tags become ids directly
    layout: list[tuple[int | None, int | None, Kind]] = []  # (tag id, text index, kind)
    for s in traj.segments:
        if s.kind is not Kind.TEXT:
            layout.append((tag_ids[open_tag(s.tag)], None, s.kind))
        if s.text:
            layout.append((None, len(texts), s.kind))
            texts.append((s.text, s.kind))
        if s.kind is not Kind.TEXT and s.closed:
            layout.append((tag_ids[close_tag(s.tag)], None, s.kind))
    encoded = tokenizer([t for t, _ in texts], add_special_tokens=False)["input_ids"] if texts else []
    prompt_ids = encode_prompt(tokenizer, traj.prompt)
    pieces: list[tuple[list[int], Kind]] = [(list(prompt_ids), Kind.PROMPT)]
    for tag_id, idx, kind in layout:
        pieces.append(([tag_id], kind) if tag_id is not None else (list(encoded[idx]), kind))
    eot = end_of_turn_id(tokenizer)
    if traj.ends_turn and eot is not None:
        pieces.append(([eot], Kind.ANSWER))
    return pieces


def render(
    traj: Trajectory, tokenizer: Any, mask_observations: bool = True, only_observations: bool = False
) -> tuple[list[int], list[int]]:
    """``(input_ids, loss_mask)`` of prompt + response; mask 1 = trained (see :func:`is_trained`)."""
    ids: list[int] = []
    mask: list[int] = []
    for piece, kind in render_pieces(traj, tokenizer):
        ids.extend(piece)
        mask.extend([int(is_trained(kind, mask_observations, only_observations))] * len(piece))
    return ids, mask
