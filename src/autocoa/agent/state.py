"""One rollout's token-level bookkeeping: the agent loop's state machine, without a model.

A :class:`Row` receives tokens one at a time, sampled by the model or inserted by the
environment, and decides what happens next: keep generating, wait for a tool, write a
simulated observation, force an answer, or stop. Every token is kept as an id, with its
segment kind, its sampling log-prob and whether the model sampled it; the loss mask is
derived from those with the one rule of :mod:`autocoa.trajectory`. Being model-free, this
logic is shared by every decoding backend (the Hugging Face KV-cache decoder of
:mod:`autocoa.agent.engine`; a vLLM backend would feed it turn by turn) and is tested
with scripted tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from autocoa.agent.config import AgentConfig
from autocoa.tags import ANSWER, OBSERVATION, TAG_OF_KIND, Kind, Tags, close_tag, escape_tags, open_tag
from autocoa.trajectory import Trajectory, check_tags, end_of_turn_id, is_trained, parse


@dataclass(frozen=True)
class TagIds:
    """The token ids of the tags for one tokenizer (each tag is a single id)."""

    openers: dict[int, str]  # id -> tag name
    closers: dict[int, str]
    tags: Tags
    eos: int | None

    @classmethod
    def of(cls, tokenizer: Any, tags: Tags) -> TagIds:
        ids = check_tags(tokenizer, tags)
        return cls(
            openers={ids[open_tag(n)]: n for n in tags.names},
            closers={ids[close_tag(n)]: n for n in tags.names},
            tags=tags,
            eos=end_of_turn_id(tokenizer),
        )

    def open_id(self, name: str) -> int:
        return next(i for i, n in self.openers.items() if n == name)

    def close_id(self, name: str) -> int:
        return next(i for i, n in self.closers.items() if n == name)


class TagTracker:
    """Which segment a stream of token ids is in: the token-level twin of :func:`parse`, the
    one owner of that rule for the agent loop and the ReAct grammar. An opener starts its
    segment (ending any open one); a closer of the open segment's kind ends it; any other
    closer is stray text (an action closer still counts as an action: the environment answers
    it). ``last`` is the name of the last segment closed, ``actions`` the action closers seen."""

    def __init__(self, t: TagIds):
        self.t = t
        self.kind = Kind.TEXT  # kind of the segment the next token belongs to
        self.open: str | None = None  # the open segment's tag name
        self.last: str | None = None
        self.actions = 0

    def push(self, token: int) -> Kind:
        """Take one token; return the kind of the segment it belongs to."""
        t = self.t
        if token in t.openers:
            self.open = t.openers[token]
            self.kind = t.tags.kind_of(self.open)
            return self.kind
        if token in t.closers:
            name = t.closers[token]
            self.actions += name in t.tags.actions
            if self.kind is not Kind.TEXT and t.tags.kind_of(name) is self.kind:
                kind, self.kind, self.last, self.open = self.kind, Kind.TEXT, self.open, None
                return kind
            return Kind.TEXT
        return self.kind


class Status(StrEnum):
    GENERATING = "generating"
    WAITING_TOOL = "waiting_tool"
    DONE = "done"


class Mode(StrEnum):
    FREE = "free"  # reasoning and acting
    SIM_OBS = "sim_obs"  # writing a simulated observation
    ANSWER = "answer"  # inside the (possibly forced) answer


@dataclass
class Rollout:
    """One trajectory as token ids, with everything the trainers and evaluation need.

    ``ids[i]`` is the i-th response token; ``sampled[i]`` says the model produced it (False
    for tokens the environment inserted: observations, forced tags); ``logprobs[i]`` is the
    log-prob under the sampling distribution (0.0 for inserted tokens); ``kinds[i]`` its
    segment kind.
    """

    index: int
    prompt: str
    prompt_ids: list[int]
    ids: list[int] = field(default_factory=list)
    sampled: list[bool] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    kinds: list[Kind] = field(default_factory=list)
    n_actions: int = 0
    n_tool_calls: int = 0  # real tool calls (0 in the simulated environment)
    # who wrote each observation, in order: "tool" (a real call), "error" (a malformed action or a
    # spent budget, answered by the engine), "model" (the world model), or an external
    # simulator's name ("oracle", "endpoint": simulated, never a real call)
    obs_sources: list[str] = field(default_factory=list)
    forced_answer: bool = False
    finish: str = ""  # answer | eos | budget
    trajectory: Trajectory | None = None

    @property
    def mask(self) -> list[int]:
        """1 = trained on: sampled by the model and not an observation (real or simulated)."""
        return [int(s and is_trained(k, mask_observations=True)) for s, k in zip(self.sampled, self.kinds, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        assert self.trajectory is not None
        return {
            "index": self.index,
            **self.trajectory.to_dict(),
            "answer": self.trajectory.answer,
            "well_formed": self.trajectory.well_formed,
            "problems": list(self.trajectory.problems),
            "n_actions": self.n_actions,
            "n_tool_calls": self.n_tool_calls,
            "forced_answer": self.forced_answer,
            "finish": self.finish,
            "n_tokens": len(self.ids),
        }


class Row:
    """The state machine of one rollout. ``push`` a token; read ``status``; tokens that the
    environment inserts are pushed by the row itself (``forced``), never sampled."""

    def __init__(self, rollout: Rollout, tag_ids: TagIds, cfg: AgentConfig):
        self.r, self.t, self.cfg = rollout, tag_ids, cfg
        self.status = Status.GENERATING
        self.mode = Mode.FREE
        self.tags = TagTracker(tag_ids)
        self.mode_tokens = 0  # tokens written in the current SIM_OBS / ANSWER span
        self.pending: list[int] = []  # pushed but not yet fed to the model
        self._forcing = False
        # simulated environment: whether an external simulator (not the world model) answers
        # this rollout's k-th action (:mod:`autocoa.agent.simulators`); None: the model always does
        self.external: Callable[[Rollout, int], bool] | None = None
        self.waiting_simulator = False

    # -- token intake ------------------------------------------------------------------
    def push(self, token: int, logprob: float = 0.0, sampled: bool = True) -> None:
        """Append one token and react to it."""
        self._append(token, sampled, logprob if sampled else 0.0, self.tags.push(token))
        self.pending.append(token)
        self.mode_tokens += 1
        self._react(token)

    def replay(self, tokens: Sequence[int]) -> None:
        """Start the response with given tokens (a baseline's retrieved context, a chat
        history): inserted, never trained, and not acted on (a replayed action runs no tool),
        but their segment kinds are tracked and replayed actions are counted."""
        for tok in tokens:
            kind = self.tags.push(tok)
            self._append(tok, False, 0.0, kind)
            self.pending.append(tok)
            if tok in self.t.closers and self.t.closers[tok] in self.t.tags.actions and kind is Kind.ACTION:
                self.r.n_actions += 1
            if tok in self.t.openers and self.t.openers[tok] == ANSWER:
                self.mode, self.mode_tokens = Mode.ANSWER, 0

    def _append(self, token: int, sampled: bool, logprob: float, kind: Kind) -> None:
        r = self.r
        r.ids.append(token)
        r.sampled.append(sampled)
        r.logprobs.append(logprob)
        r.kinds.append(kind)

    def push_forced(self, tokens: Sequence[int]) -> None:
        """Insert environment tokens (never trained); budget checks wait until all are in."""
        outer, self._forcing = self._forcing, True
        try:
            for tok in tokens:
                if self.status is Status.DONE:
                    return
                self.push(tok, sampled=False)
        finally:
            self._forcing = outer
        if not outer:
            self._check_token_budget()

    @property
    def kind(self) -> Kind:
        """Kind of the segment the next token belongs to."""
        return self.tags.kind

    def _react(self, token: int) -> None:
        t, cfg = self.t, self.cfg
        if token == t.eos:
            self._finish("eos")
        elif token in t.closers and t.closers[token] == ANSWER:
            self._finish("budget" if self.r.forced_answer else "answer")
            self._end_turn()
        elif self.mode is Mode.FREE and token in t.closers and t.closers[token] in t.tags.actions:
            # An action closed (a stray closer counts too: the environment answers it with an error).
            self.r.n_actions += 1
            if cfg.env == "real" or self.over_action_budget:
                self.status = Status.WAITING_TOOL  # over budget: the engine answers with BUDGET_SPENT
            elif self.external is not None and self.external(self.r, self.r.n_actions):
                self.status, self.waiting_simulator = Status.WAITING_TOOL, True
            else:
                self.simulate()
        elif self.mode is Mode.SIM_OBS:
            if token in t.closers and t.closers[token] == OBSERVATION:
                self.mode = Mode.FREE
                self._after_observation()
            elif self.mode_tokens >= cfg.max_obs_tokens:
                self.push_forced([t.close_id(OBSERVATION)])
        elif self.mode is Mode.ANSWER and self.mode_tokens >= cfg.max_answer_tokens:
            self.push_forced([t.close_id(ANSWER)])
        elif self.mode is Mode.FREE and token in t.openers and t.openers[token] == ANSWER:
            self.mode, self.mode_tokens = Mode.ANSWER, 0
        if not self._forcing:
            self._check_token_budget()

    def _check_token_budget(self) -> None:
        """Reserve room for a forced answer so the response stays within ``max_new_tokens``
        (an observation that crosses the line is kept whole first)."""
        limit = self.cfg.answer_deadline  # </think> <answer> ... </answer> still fit after it
        if self.status is Status.GENERATING and self.mode is not Mode.ANSWER and len(self.r.ids) >= limit:
            self.force_answer()

    @property
    def over_action_budget(self) -> bool:
        """The last action went past ``max_actions``: it gets no tool call, only a notice."""
        return self.r.n_actions > self.cfg.max_actions

    def _after_observation(self) -> None:
        if self.r.n_actions >= self.cfg.max_actions:
            self.force_answer()

    def _end_turn(self) -> None:
        """After ``</answer>`` the turn is over: append the end-of-turn token (trained in SFT,
        see :func:`autocoa.trajectory.end_of_turn_id`) without sampling it, so the rollout ends
        as its chat template does (TRL then counts it as finished, not truncated). Not
        trained in RL: the policy did not sample it."""
        if self.t.eos is None:
            return
        self._append(self.t.eos, False, 0.0, Kind.TEXT)

    def _finish(self, why: str) -> None:
        self.status = Status.DONE
        self.r.finish = why
        self.pending.clear()

    # -- environment -------------------------------------------------------------------
    def simulate(self) -> None:
        """The world model writes the result of the action just closed: open ``<result>``
        and let the model generate until ``</result>`` (closed for it after ``max_obs_tokens``)."""
        self.status, self.waiting_simulator = Status.GENERATING, False
        self.r.obs_sources.append("model")
        # the budget of this result starts here: reset before the opener is pushed, or the
        # tokens since the previous result's start would close this one empty
        self.mode, self.mode_tokens = Mode.SIM_OBS, 0
        self.push_forced([self.t.open_id(OBSERVATION)])
        self.mode_tokens = 0

    def force_answer(self) -> None:
        """The budget is spent: close an open think, append the answer opener, and let the
        model write the answer (closed for it after ``max_answer_tokens``)."""
        if self.mode is Mode.ANSWER or self.status is Status.DONE:
            return
        self.r.forced_answer = True
        self.mode, self.mode_tokens = Mode.ANSWER, 0
        open_name = TAG_OF_KIND.get(self.kind) if self.kind is not Kind.ANSWER else None
        closers = [self.t.close_id(open_name)] if open_name else []
        self.push_forced([*closers, self.t.open_id(ANSWER)])
        self.mode_tokens = 0

    def pending_call(self, decode) -> tuple[str, str] | None:
        """The action to run: ``(tool, argument)`` of the just-closed action, or None when the
        closer was stray (no matching opener)."""
        traj = parse(decode(self.r.ids), tags=self.t.tags)
        segs = [s for s in traj.segments if not s.blank]
        last = segs[-1] if segs else None
        if last is None or last.kind is not Kind.ACTION or not last.closed:
            return None
        return last.tool, last.text

    def observe(self, text: str, tokenizer: Any, source: str = "tool") -> None:
        """Insert an observation ``<result> text </result>`` (cut at ``max_obs_tokens``) written
        by ``source`` (see :attr:`Rollout.obs_sources`)."""
        ids = observation_ids(text, tokenizer, self.t, self.cfg.max_obs_tokens)
        self.status, self.waiting_simulator = Status.GENERATING, False
        self.r.obs_sources.append(source)
        outer, self._forcing = self._forcing, True
        try:
            self.push_forced(ids)
            self._after_observation()
        finally:
            self._forcing = outer
        self._check_token_budget()


def observation_ids(text: str, tokenizer: Any, t: TagIds, max_tokens: int) -> list[int]:
    """``<result>`` + the escaped text's ids + ``</result>``; text over ``max_tokens`` is cut
    at a token boundary and marked (:func:`autocoa.tools.base.truncate_tokens`), then encoded
    (environment text, never sampled, so encoding it keeps ids equal to a one-shot
    tokenization)."""
    from autocoa.tools.base import truncate_tokens

    text, _ = truncate_tokens(escape_tags(text, t.tags), tokenizer, max_tokens)
    body = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [t.open_id(OBSERVATION), *body, t.close_id(OBSERVATION)]
