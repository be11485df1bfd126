"""The OpenAI chat-completions wire format, as far as the agent server speaks it.

Requests are validated with pydantic (unknown fields are refused, as OpenAI refuses them);
responses are built as plain dicts by the functions here, in OpenAI's shapes plus one extra
field per choice, ``agent``: the rollout (segments, answer, counts) and its tool calls.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

from autocoa.agent.config import MIN_TEMPERATURE, SEED_RANGE
from autocoa.agent.state import Rollout


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_call_id, ...: accepted, unused
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: StrictBool = False


def unencodable(text: str | None) -> bool:
    """True for text that UTF-8 cannot encode (a lone surrogate such as ``\\ud800``, which JSON
    allows as an escape): it could reach neither the tokenizer nor a response.

    >>> unencodable("fine é"), unencodable(chr(0xD800)), unencodable(None)
    (False, True, False)
    """
    if text is None:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``. The question is the last user message; earlier
    messages are accepted and not used (the agent answers one question at a time)."""

    model_config = ConfigDict(extra="forbid")
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(None, ge=1, description="the response budget N (observations included)")
    max_completion_tokens: StrictInt | None = Field(None, ge=1, description="newer name of max_tokens")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description=f"0 (greedy) or {MIN_TEMPERATURE:g} to 2")
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: StrictInt | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    n: StrictInt = Field(1, ge=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # autocoa extensions (the openai client sends them with extra_body={...})
    env: Literal["real", "simulated"] | None = Field(None, description="real tools, or the model's world model")
    max_actions: StrictInt | None = Field(None, ge=0, description="action budget T")

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float | None) -> float | None:
        if v is not None and 0 < v < MIN_TEMPERATURE:
            raise ValueError(f"must be 0 (greedy) or at least {MIN_TEMPERATURE:g}")
        return v

    @model_validator(mode="after")
    def _encodable(self) -> ChatRequest:
        fields = {"model": self.model, "user": self.user}
        for i, m in enumerate(self.messages):
            parts = m.content if isinstance(m.content, list) else [m.content]
            for part in parts:
                fields[f"messages.{i}.content"] = part.text if isinstance(part, ContentPart) else part
                if unencodable(fields[f"messages.{i}.content"]):
                    break
        bad = [name for name, text in fields.items() if unencodable(text)]
        if bad:
            raise ValueError(f"{bad[0]}: text with a lone surrogate that UTF-8 cannot encode")
        return self

    def question(self) -> str | None:
        users = [m for m in self.messages if m.role == "user"]
        return users[-1].text() if users else None


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None):
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def finish_reason(r: Rollout) -> str:
    """``length`` when the budget forced the answer, else ``stop``."""
    return "length" if r.forced_answer else "stop"


def tool_calls(r: Rollout) -> list[dict[str, Any]]:
    """Each action with the observation that followed it (None if none did)."""
    assert r.trajectory is not None
    return [
        {"tool": a.tool, "argument": a.text.strip(), "result": res.strip() if res is not None else None}
        for a, res in r.trajectory.action_results()
    ]


def agent_field(r: Rollout, env: str) -> dict[str, Any]:
    d = r.to_dict()
    d.pop("index")
    return {**d, "env": env, "tool_calls": tool_calls(r)}


def usage(rollouts: list[Rollout]) -> dict[str, int]:
    """``completion_tokens`` counts the whole response, observations included (that is what
    ``max_tokens`` bounds); ``sampled_tokens`` / ``inserted_tokens`` split it."""
    prompt = len(rollouts[0].prompt_ids)
    sampled = sum(sum(r.sampled) for r in rollouts)
    completion = sum(len(r.ids) for r in rollouts)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "sampled_tokens": sampled,
        "inserted_tokens": completion - sampled,
    }


def completion(cid: str, model: str, rollouts: list[Rollout], env: str) -> dict[str, Any]:
    choices = []
    for j, r in enumerate(rollouts):
        assert r.trajectory is not None
        choices.append(
            {
                "index": j,
                "message": {"role": "assistant", "content": r.trajectory.answer or ""},
                "finish_reason": finish_reason(r),
                "logprobs": None,
                "agent": agent_field(r, env),
            }
        )
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(rollouts),
    }


def chunk(cid: str, model: str, created: int, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }


def delta_choice(index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None, **extra}
