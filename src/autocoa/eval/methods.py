"""Evaluation methods by name: the registry that ``autocoa eval --method``, the recipe's eval
stages and the studies read.

A method is a :class:`Method`: how it answers, and what it needs. Most methods are the one
rollout engine set up differently (``engine``: prompts, a logits hook, replayed prefixes, a
budget; :class:`autocoa.eval.baselines.Setup`), so a comparison changes nothing else; a
prompted multi-call workflow of a chat model answers the records itself (``workflow``, as
Chain-of-Action does). Built-ins: ``agent``, ``direct``, ``rag``, ``react``, ``coa``.

A new method is one module that registers itself, plus its test::

    from autocoa.eval.baselines import Setup
    from autocoa.eval.methods import Method, register_method
    from autocoa.agent.prompts import format_prompt

    def one_search(ctx):  # the agent, allowed one action
        prompts = [format_prompt(q, ctx.tokenizer) for q in ctx.questions]
        return Setup("one_search", prompts, ctx.cfg.model_copy(update={"max_actions": 1}))

    register_method(Method("one_search", "the agent with one action", engine=one_search))

(``docs/extending.md`` runs this example.) Its rows then go through the same scoring,
analysis, verification and report as every other method's.

>>> [m.name for m in methods()]
['agent', 'direct', 'rag', 'react', 'coa']
>>> get("rag").retrieves, get("agent").retrieves
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from autocoa.lazy import resolve


@dataclass(frozen=True)
class EngineContext:
    """What an engine method's setup is given: the questions, the tokenizer, the run's agent
    config, the toolbox (None in the simulated environment without tools), the tag ids and the
    ReAct step budget (the data's most hops, else 4)."""

    questions: Sequence[str]
    tokenizer: Any
    cfg: Any  # AgentConfig
    toolbox: Any
    tags: Any  # agent.state.TagIds
    react_steps: int


@dataclass(frozen=True)
class Method:
    """``engine(ctx) -> Setup`` for a rollout-engine method, or ``workflow(records, llm,
    toolbox, coa_cfg, progress) -> (rows, info)`` for a chat model's workflow (exactly one);
    each may be a ``"module:attribute"`` string, imported on first use. ``retrieves``: it needs
    the real search tool whatever the environment (so an index or a server); ``real_observations``:
    its observations are real even in the simulated environment (fidelity is not measured on
    them)."""

    name: str
    summary: str
    engine: Callable[[EngineContext], Any] | str | None = None
    workflow: Callable[..., tuple[list[dict], dict]] | str | None = None
    retrieves: bool = False
    real_observations: bool = False
    label: str = ""  # its name in study tables ("ReAct workflow"); default: the name

    def __post_init__(self) -> None:
        if (self.engine is None) == (self.workflow is None):
            raise ValueError(f"method {self.name!r}: give exactly one of engine or workflow")
        if not self.label:
            object.__setattr__(self, "label", self.name)

    @property
    def chat_workflow(self) -> bool:
        """A chat model's workflow (needs a chat model: a local chat checkpoint or an endpoint)."""
        return self.workflow is not None

    def resolve(self) -> Callable[..., Any]:
        """The engine setup or the workflow, imported if given by name."""
        return resolve(self.engine if self.engine is not None else self.workflow)


_REGISTRY: dict[str, Method] = {}


def register_method(method: Method) -> None:
    """Make ``method`` available by name to ``autocoa eval --method`` and evaluation code."""
    if method.name in _REGISTRY:
        raise ValueError(f"an evaluation method named {method.name!r} is already registered")
    _REGISTRY[method.name] = method


def get(name: str) -> Method:
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name}; expected {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def methods() -> list[Method]:
    return list(_REGISTRY.values())


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


_B = "autocoa.eval.baselines"
for _m in (
    Method("agent", "the model decides by itself when to act", engine=f"{_B}:agent_setup", label="agent prompt"),
    Method("direct", "no tools: every action token banned, answered from memory", engine=f"{_B}:direct_setup"),
    Method(
        "rag",
        "one retrieval with the question, replayed, then answered without actions",
        engine=f"{_B}:rag_setup",
        retrieves=True,
        real_observations=True,
        label="RAG",
    ),
    Method(
        "react",
        "the ReAct workflow: a thought before every action, at most T actions",
        engine=f"{_B}:react_setup",
        label="ReAct workflow",
    ),
    Method(
        "coa",
        "Chain-of-Action (Pan et al.): decompose, act, verify with MRFS, answer; a chat model",
        workflow="autocoa.eval.runner:coa_rows",
        retrieves=True,
        real_observations=True,
        label="Chain-of-Action",
    ),
):
    register_method(_m)
