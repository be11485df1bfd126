"""What an evaluation is asked to do, checked once where it is asked.

``autocoa eval`` and the recipe's eval stages parse their options into an :class:`EvalRequest`;
:func:`autocoa.eval.runner.evaluate_checkpoint` takes it and trusts it. Every rule about how the
options go together lives here: the methods exist, a local model is given unless Chain-of-Action
talks to an endpoint alone, the real environment and the retrieving methods have a
:class:`~autocoa.tools.search.Retrieval`, the knowledge index exists.

>>> EvalRequest.of(data="q.jsonl", out="eval/", model="ckpt/", methods=["agent", "agent", "direct"],
...                agent=AgentConfig(env="simulated")).methods
('agent', 'direct')
>>> try:
...     EvalRequest.of(data="q.jsonl", out="eval/", model="ckpt/", methods=["rag"])
... except ValueError as e:
...     print(str(e).split("EvalRequest: ")[1])
the real environment and rag need --index DIR or --retriever URL (or use --env simulated)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autocoa.agent.config import AgentConfig
from autocoa.coa.method import CoAConfig
from autocoa.config import validated
from autocoa.tools.search import Retrieval, retrieval_needed


class EvalRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    data: Path
    out: Path
    model: Path | None = None
    methods: tuple[str, ...] = ("agent",)
    retrieval: Retrieval | None = None
    k: int = Field(3, ge=1)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    limit: int | None = Field(None, ge=1)
    shuffle_seed: int | None = None
    react_steps: int | None = Field(None, ge=1)
    label: str | None = None
    device: str = "auto"
    train_real_calls: int | None = Field(None, ge=0)
    llm_url: str | None = None
    llm_model: str = "default"
    llm_key: str | None = None
    coa: CoAConfig = Field(default_factory=CoAConfig)
    knowledge: Path | None = None
    verify: Literal["mrfs"] | None = None

    @field_validator("methods", mode="before")
    @classmethod
    def _known_methods(cls, value: Any) -> tuple[str, ...]:
        from autocoa.eval import methods as registry

        methods = tuple(dict.fromkeys([value] if isinstance(value, str) else value or ["agent"]))
        bad = [m for m in methods if m not in registry.names()]
        if bad:
            raise ValueError(f"unknown method {', '.join(bad)}; expected {', '.join(registry.names())}")
        return methods

    @model_validator(mode="after")
    def _fits_together(self) -> EvalRequest:
        if self.model is None and not self.endpoint_only:
            raise ValueError("a model is needed, unless every method is coa with an LLM URL (no local model runs)")
        from autocoa.eval.methods import get

        needs = ["the real environment"] if self.agent.env == "real" else []
        needs += [m for m in self.methods if get(m).retrieves]
        if needs and self.retrieval is None:
            raise ValueError(retrieval_needed(needs, hint=self.agent.env == "real"))
        if self.knowledge is not None and not self.knowledge.exists():
            raise ValueError(f"{self.knowledge}: no such knowledge index directory (build one with `autocoa index`)")
        return self

    @classmethod
    def of(cls, **fields: Any) -> EvalRequest:
        """The request from options (None = not given); a bad one raises ConfigError naming every
        field that is wrong, which the CLI prints as one line."""
        return validated(cls, {k: v for k, v in fields.items() if v is not None}, "the evaluation")

    @property
    def chat_workflows(self) -> list[str]:
        """The methods that are a chat model's workflow (coa)."""
        from autocoa.eval.methods import get

        return [m for m in self.methods if get(m).chat_workflow]

    @property
    def endpoint_only(self) -> bool:
        """Every method is a chat workflow on an LLM endpoint (coa with --llm-url): no local model runs."""
        return self.llm_url is not None and len(self.chat_workflows) == len(self.methods)

    @property
    def name(self) -> str:
        """The model's name in the metrics: its directory, else the endpoint's model."""
        return str(self.model) if self.model is not None else self.llm_model
