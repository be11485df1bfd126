"""The agent loop's settings: budget, environment and sampling, in one validated object."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from autocoa.config import Config

MIN_TEMPERATURE = 1e-3  # below it, logits / temperature overflow float32 (and sampling is greedy in all but name)
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts


FORCED_ANSWER_TAGS = 4  # a forced answer's frame: the open think's closer, <answer>, </answer>, end of turn


def answer_deadline(max_new_tokens: int, max_answer_tokens: int) -> int:
    """The response length at which an answer is forced, so that it and its tags still fit.

    >>> answer_deadline(600, 32)
    564
    """
    return max_new_tokens - max_answer_tokens - FORCED_ANSWER_TAGS


def check_answer_room(max_new_tokens: int, max_answer_tokens: int) -> None:
    if answer_deadline(max_new_tokens, max_answer_tokens) <= 0:
        raise ValueError(
            f"max_new_tokens must leave room for a forced answer (max_answer_tokens + {FORCED_ANSWER_TAGS})"
        )


class AgentConfig(Config):
    # fields each rollout may set for itself (budget, environment, sampling); the others are
    # the decoding call's (its seed and batching)
    ROW_FIELDS: ClassVar[tuple[str, ...]] = (
        "env",
        "max_actions",
        "max_new_tokens",
        "max_obs_tokens",
        "max_answer_tokens",
        "temperature",
        "top_p",
    )

    env: Literal["real", "simulated"] = Field(
        "real",
        description="real: tools run and their output is inserted; simulated: the model writes its own "
        "<result> (its internal world model) and no tool is called",
    )
    max_actions: int = Field(8, ge=0, description="action budget T: after T actions an answer is forced")
    max_new_tokens: int = Field(
        512, ge=1, description="token budget N for the response (observations included); then an answer is forced"
    )
    max_obs_tokens: int = Field(
        256, ge=8, description="observations longer than this are cut, with a visible marker (real and simulated)"
    )
    max_answer_tokens: int = Field(32, ge=1, description="a forced answer is closed after this many tokens")
    temperature: float = Field(
        0.0,
        ge=0.0,
        description=f"0 = greedy decoding; otherwise at least {MIN_TEMPERATURE:g} (logits are divided by it in "
        "float32, where smaller values overflow)",
    )
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass (the top token is always kept)")
    seed: int | None = Field(
        None,
        ge=SEED_RANGE[0],
        le=SEED_RANGE[1],
        description="seed of the sampler's generator (reproducible sampling); torch's range, -2**63 .. 2**64-1",
    )
    n: int = Field(1, ge=1, description="rollouts per prompt (a GRPO group)")
    batch_size: int = Field(64, ge=1, description="rows decoded together (slots in the KV cache)")
    continuous_batching: bool | None = Field(
        None,
        description="refill finished rows' slots with queued prompts while the others decode (false: a new batch "
        "starts when every row of the current one is done; unset: on CUDA only, where a step costs about the same "
        "for few rows as for many; on CPU batch by batch is faster)",
    )
    tool_flush_fraction: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="run the waiting tool calls once this share of the active rows waits for a tool "
        "(1.0 = only when every row waits; smaller = less waiting, more padding in the KV cache)",
    )

    @property
    def answer_deadline(self) -> int:
        return answer_deadline(self.max_new_tokens, self.max_answer_tokens)

    @model_validator(mode="after")
    def _answer_fits(self) -> AgentConfig:
        if 0 < self.temperature < MIN_TEMPERATURE:
            raise ValueError(
                f"temperature must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, not {self.temperature:g}"
            )
        check_answer_room(self.max_new_tokens, self.max_answer_tokens)
        return self
