"""The baselines of the paper's Table 1, on the same model, data and retriever as the agent.

Each method is the one rollout engine with a different prompt, ``logits_hook``, replayed
prefix or action budget (:func:`setup`), so the comparison changes nothing else:

- ``agent``: the model decides by itself when to act (the plain engine, the model's own prompt).
- ``direct``: no tools. A hook bans every action opener and closer, so the model can neither
  open nor (with a stray closer) trigger an action and must answer from memory. A model with
  a chat template gets a system message without tools.
- ``rag``: retrieve once, with the question as the query, through the same toolbox (one real
  call per question, batched), and replay ``<search>question</search><result>docs</result>``
  as the start of the response (inserted, never sampled); then actions are banned as in
  ``direct``. The replayed search counts as one action and one real tool call.
- ``react``: the ReAct workflow (Yao et al.): Thought, Action, Observation steps, and a Finish
  action that the model takes when it decides to (``<answer>``), after at most ``T`` actions
  (default: the data's maximum hop count, else 4). The workflow is a grammar the decoder is held
  to (:class:`ReactController`), the model chooses within it: every step opens with a thought;
  after a thought comes more thought, an action or the answer (only the answer once ``T``
  actions were made);
  a thought that tries to end otherwise (an opener, ``</answer>``, EOS) is closed with
  ``</think>``, an action that tries to end otherwise with its own closer. A model with a chat
  template also gets the ReAct prompt (:func:`react_prompt`: instructions and two worked
  examples as earlier turns, few-shot as in the ReAct paper); the tiny default, trained on the
  bare prompt, gets its own prompt. The difference from ``agent`` is the workflow: the agent
  may act without a thought, think twice, answer at once.
- ``coa``: Chain-of-Action (Pan et al.), a prompted workflow of several LLM calls per question
  (decompose, act, verify with MRFS, answer): not one engine rollout, so it lives in
  :mod:`autocoa.coa` and needs a chat model (:func:`autocoa.eval.runner.coa_rows`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from autocoa.agent.config import AgentConfig
from autocoa.agent.prompts import format_prompt
from autocoa.agent.state import TagIds, TagTracker, observation_ids
from autocoa.tags import ANSWER, THINK, Tags, escape_tags
from autocoa.tools.base import Toolbox

if TYPE_CHECKING:
    from autocoa.eval.methods import EngineContext

DEFAULT_REACT_STEPS = 4
SEARCH = "search"

Hook = Callable[[list[list[int]], torch.Tensor], torch.Tensor]


def action_token_ids(t: TagIds) -> list[int]:
    """Every action opener and closer (a stray closer also triggers an action)."""
    return sorted(i for table in (t.openers, t.closers) for i, name in table.items() if name in t.tags.actions)


def ban_tokens(ids: Sequence[int]) -> Hook:
    """A logits hook that makes ``ids`` impossible to sample."""
    banned = list(ids)

    def hook(histories: list[list[int]], logits: torch.Tensor) -> torch.Tensor:
        logits = logits.clone()
        logits[:, banned] = float("-inf")
        return logits

    return hook


class ReactController:
    """The ReAct workflow as a logits hook (see the module docstring): at the top level the
    logits are restricted to what the grammar allows next (the model's own preference among
    them decides); inside a thought or an action a token that would end it otherwise is
    replaced by its closer. Keeps per-row state incrementally: the engine passes each row's own
    response list, which grows by appends, so each call reads only the new tokens."""

    def __init__(self, t: TagIds, steps: int, tool: str = SEARCH):
        if steps < 1:
            raise ValueError(f"react needs at least one step, got {steps}")
        if tool not in t.tags.actions:
            raise ValueError(f"react's tool {tool!r} is not an action tag ({t.tags.actions})")
        self.t, self.steps = t, steps
        eos = {t.eos} if t.eos is not None else set()
        self.think, self.close_think, self.answer = t.open_id(THINK), t.close_id(THINK), t.open_id(ANSWER)
        self.action_openers = {i for i, n in t.openers.items() if n in t.tags.actions}
        self.after_think = sorted({self.think, *self.action_openers, self.answer})
        # a thought ends with </think> only; an action with its own closer only
        self.stop_in_think = ({*t.openers, *t.closers} | eos) - {self.close_think}
        self.stop_in_action = {*t.openers, *t.closers} | eos
        self._rows: dict[int, tuple[list[int], int, TagTracker]] = {}  # id -> (the list, tokens read, tracker)
        self.forced = 0  # tokens the grammar changed (for the log)

    def _state(self, history: list[int]) -> TagTracker:
        """The segment state after ``history`` (read incrementally: only the new tokens)."""
        _, read, tracker = self._rows.get(id(history), (history, 0, None))
        tracker = tracker or TagTracker(self.t)
        for tok in history[read:]:
            tracker.push(tok)
        self._rows[id(history)] = (history, len(history), tracker)  # the list ref keeps its id unique
        return tracker

    def allowed_at_top(self, actions: int, last: str | None) -> list[int]:
        """What may open next at the top level: a thought to start a step; after a thought more
        thought (a thought may span segments, as the recipe's trajectories write it), an action
        or the answer; once the steps are spent, the answer (ReAct's forced Finish)."""
        if last != THINK:
            return [self.think]
        return [self.answer] if actions >= self.steps else self.after_think

    def __call__(self, histories: list[list[int]], logits: torch.Tensor) -> torch.Tensor:
        top = logits.argmax(dim=-1).tolist()
        out = None
        for i, h in enumerate(histories):
            st = self._state(h)
            open_name = st.open
            if open_name is None:
                allowed = self.allowed_at_top(st.actions, st.last)
                self.forced += top[i] not in allowed
                out = logits.clone() if out is None else out
                keep = out[i, allowed].clone()
                out[i] = float("-inf")
                out[i, allowed] = keep
                continue
            closer = self.t.close_id(open_name) if open_name in (THINK, *self.t.tags.actions) else None
            stop = self.stop_in_think if open_name == THINK else self.stop_in_action
            if closer is not None and top[i] in stop - {closer}:
                self.forced += 1
                out = logits.clone() if out is None else out
                out[i] = float("-inf")
                out[i, closer] = 0.0
        return logits if out is None else out


# Two worked examples for the ReAct prompt of a chat model, in the synthetic world's style (the
# names are invented here; they are not the world's).
REACT_EXAMPLES = (
    (
        "Where was Kemaru Doli born?",
        "<think>I need the birthplace of Kemaru Doli.</think><search>Kemaru Doli born</search>"
        "<result>Doc 1 (Title: Kemaru Doli) Kemaru Doli is a person. Kemaru Doli was born in Sabeto.</result>"
        "<think>Kemaru Doli was born in Sabeto.</think><answer>Sabeto</answer>",
    ),
    (
        "In which country is the city where Lunaro Pev was born?",
        "<think>I need the city where Lunaro Pev was born.</think><search>Lunaro Pev born</search>"
        "<result>Doc 1 (Title: Lunaro Pev) Lunaro Pev was born in Orvadi.</result>"
        "<think>Lunaro Pev was born in Orvadi. Now I need the country of Orvadi.</think>"
        "<search>Orvadi country</search><result>Doc 1 (Title: Orvadi) Orvadi is a city. Orvadi lies in Tesmar.</result>"
        "<think>Orvadi lies in Tesmar.</think><answer>Tesmar</answer>",
    ),
)


def direct_prompt(question: str, tokenizer: Any) -> str:
    """The model's own prompt; with a chat template, a system message without tools."""
    if getattr(tokenizer, "chat_template", None):
        messages = [
            {
                "role": "system",
                "content": "Answer the question from your own knowledge. Reason inside <think> </think>, "
                "then give the final short answer inside <answer> </answer>.",
            },
            {"role": "user", "content": question},
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return format_prompt(question, tokenizer)


def react_prompt(question: str, tokenizer: Any, steps: int) -> str:
    """The ReAct prompt of a chat model: the workflow's instructions, then
    :data:`REACT_EXAMPLES` as earlier turns (few-shot), then the question; the model's own bare
    prompt for a model without a chat template."""
    if not getattr(tokenizer, "chat_template", None):
        return format_prompt(question, tokenizer)
    system = (
        "Solve the question with interleaved Thought, Action and Observation steps. Thought: reason about "
        "what you know and what you still need, inside <think> </think>. Action: either search the "
        "encyclopedia with a short query inside <search> </search> (the Observation, its result, comes back "
        "inside <result> </result>), or Finish: give the final short answer inside <answer> </answer> as "
        f"soon as you know it. Take at most {steps} search actions."
    )
    messages = [{"role": "system", "content": system}]
    for q, a in REACT_EXAMPLES:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": question})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def rag_prefixes(
    questions: Sequence[str], toolbox: Toolbox, tokenizer: Any, t: TagIds, max_obs_tokens: int, tool: str = SEARCH
) -> list[list[int]]:
    """``<search>question</search><result>docs</result>`` as token ids, one real retrieval
    per question (all in one toolbox call). The query's text is escaped like any
    environment text; the observation is cut at ``max_obs_tokens`` as the engine cuts it."""
    if tool not in t.tags.actions:
        raise ValueError(f"rag needs a {tool!r} action tag; tags: {t.tags.actions}")
    observations = toolbox.run([(tool, q) for q in questions])
    out = []
    for q, obs in zip(questions, observations, strict=True):
        query = tokenizer(escape_tags(q, t.tags), add_special_tokens=False)["input_ids"]
        out.append([t.open_id(tool), *query, t.close_id(tool), *observation_ids(obs, tokenizer, t, max_obs_tokens)])
    return out


@dataclass
class Setup:
    """Everything that makes a method: prompts, hook, prefixes, budget and the real calls it
    made before decoding (rag's retrievals)."""

    method: str
    prompts: list[str]
    cfg: AgentConfig
    hook: Hook | None = None
    prefixes: list[list[int]] | None = None
    calls_before: int = 0  # real tool calls per question made outside the engine


def setup(
    method: str,
    questions: Sequence[str],
    tokenizer: Any,
    cfg: AgentConfig,
    toolbox: Toolbox | None = None,
    tags: Tags | None = None,
    react_steps: int = DEFAULT_REACT_STEPS,
) -> Setup:
    """Prompts, hook, prefixes and config of the engine method ``method`` (the registry's,
    :mod:`autocoa.eval.methods`) for ``questions``."""
    from autocoa.eval.methods import EngineContext, get

    m = get(method)
    if m.engine is None:
        raise ValueError(f"{method} is a chat model's workflow, not a setup of the rollout engine")
    t = TagIds.of(tokenizer, tags or (toolbox.tags if toolbox is not None else Tags()))
    return m.resolve()(EngineContext(questions, tokenizer, cfg, toolbox, t, react_steps))


def agent_setup(ctx: EngineContext) -> Setup:
    return Setup("agent", [format_prompt(q, ctx.tokenizer) for q in ctx.questions], ctx.cfg)


def direct_setup(ctx: EngineContext) -> Setup:
    env = ctx.cfg.env if ctx.toolbox is not None else "simulated"  # no action can happen: no tool needed
    prompts = [direct_prompt(q, ctx.tokenizer) for q in ctx.questions]
    return Setup("direct", prompts, ctx.cfg.model_copy(update={"env": env}), ban_tokens(action_token_ids(ctx.tags)))


def rag_setup(ctx: EngineContext) -> Setup:
    if ctx.toolbox is None:
        raise ValueError("rag retrieves with the real search tool: give an index or a retriever")
    return Setup(
        "rag",
        [format_prompt(q, ctx.tokenizer) for q in ctx.questions],
        ctx.cfg,
        ban_tokens(action_token_ids(ctx.tags)),
        rag_prefixes(ctx.questions, ctx.toolbox, ctx.tokenizer, ctx.tags, ctx.cfg.max_obs_tokens),
        calls_before=1,
    )


def react_setup(ctx: EngineContext) -> Setup:
    steps = ctx.react_steps
    cfg = ctx.cfg.model_copy(update={"max_actions": steps + 1})  # the controller stops at T; this is a net
    prompts = [react_prompt(q, ctx.tokenizer, steps) for q in ctx.questions]
    return Setup("react", prompts, cfg, ReactController(ctx.tags, steps))
