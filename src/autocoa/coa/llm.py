"""Chat models for prompted workflows (Chain-of-Action): one interface, two backends.

    llm = LocalChat(model, tokenizer)                 # a local chat checkpoint, batched greedy
    llm = EndpointChat("http://host:8000/v1", "qwen")  # an OpenAI-compatible /v1/chat/completions
    replies = llm.chat([[{"role": "user", "content": "..."}], ...])

Each conversation in a ``chat`` call is one LLM call; :class:`ChatStats` counts them, their
tokens and seconds, so a workflow can report LLM calls and latency per question. Local
generation is ``transformers``' ``generate`` (left-padded batches): these calls are plain text
in, text out, with no tools inside them, so the agent engine's tool loop has nothing to add.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Message = dict[str, str]


@dataclass
class ChatStats:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    per_call_seconds: list[float] = field(default_factory=list)  # each call's share of its batch's time


class ChatLLM(Protocol):
    stats: ChatStats

    def chat(self, conversations: Sequence[Sequence[Message]]) -> list[str]: ...


class NotAChatModel(ValueError):
    """The checkpoint has no chat template: prompted workflows need a chat model."""


class LLMError(RuntimeError):
    """The chat endpoint failed (the message names it and the HTTP status or connection error)."""


class LocalChat:
    """A local Hugging Face chat checkpoint: its chat template, greedy decoding, batches of
    ``batch_size`` conversations, at most ``max_new_tokens`` per reply."""

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int = 256, batch_size: int = 16, name: str = ""):
        if not getattr(tokenizer, "chat_template", None):
            raise NotAChatModel(
                f"{name or 'this checkpoint'} has no chat template, so it cannot follow a prompted workflow "
                "(the tiny default is trained on bare prompts): use a chat model, e.g. smollm2-135m-instruct, "
                "or an endpoint (--llm-url; see docs/troubleshooting.md#chat-template)"
            )
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.stats = ChatStats()

    def chat(self, conversations: Sequence[Sequence[Message]]) -> list[str]:
        import torch

        tok = self.tokenizer
        out: list[str] = []
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        side, tok.padding_side = tok.padding_side, "left"
        try:
            for start in range(0, len(conversations), self.batch_size):
                chunk = conversations[start : start + self.batch_size]
                texts = [tok.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True) for c in chunk]
                enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
                enc = {k: v.to(self.model.device) for k, v in enc.items()}
                t0 = time.perf_counter()
                with torch.inference_mode():
                    gen = self.model.generate(
                        **enc, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad
                    )
                dt = time.perf_counter() - t0
                new = gen[:, enc["input_ids"].shape[1] :]
                for row in new.tolist():
                    ids = [i for i in row if i != pad]
                    self.stats.completion_tokens += len(ids)
                    out.append(tok.decode(ids, skip_special_tokens=True).strip())
                self.stats.calls += len(chunk)
                self.stats.prompt_tokens += int(enc["attention_mask"].sum())
                self.stats.seconds += dt
                self.stats.per_call_seconds += [dt / len(chunk)] * len(chunk)
        finally:
            tok.padding_side = side
        return out


def openai_client(base_url: str, api_key: str | None, timeout: float, max_retries: int) -> Any:
    """The ``openai`` client of an OpenAI-compatible endpoint (retries with backoff on
    timeouts, 429 and 5xx; a local server needs no key)."""
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout, max_retries=max_retries)


def endpoint_call(url: str, fn: Any, **kwargs: Any) -> Any:
    """``fn(**kwargs)`` (an ``openai`` client method), its failures as one clear :class:`LLMError`
    naming ``url`` and the HTTP status or connection error."""
    import openai

    try:
        return fn(**kwargs)
    except openai.APIStatusError as e:
        raise LLMError(f"{url}: HTTP {e.status_code}: {str(e.message)[:300]}") from None
    except openai.APIConnectionError as e:
        raise LLMError(f"{url}: {e}") from None


class EndpointChat:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint (a vLLM server, say) through the
    ``openai`` client: greedy (temperature 0), retries with backoff on timeouts, 429 and 5xx, up
    to ``concurrency`` requests in flight (a server batches them; replies keep their order)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        max_tokens: int = 256,
        timeout: float = 60.0,
        max_retries: int = 3,
        concurrency: int = 8,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.max_tokens, self.concurrency = model, max_tokens, concurrency
        self.client = openai_client(base_url, api_key, timeout, max_retries)
        self.stats = ChatStats()

    def _one(self, conversation: Sequence[Message]) -> tuple[str, Any, float]:
        t0 = time.perf_counter()
        create = self.client.chat.completions.create
        r = endpoint_call(
            self.url,
            create,
            model=self.model,
            messages=list(conversation),
            max_tokens=self.max_tokens,
            temperature=0.0,
        )
        if not r.choices:
            raise LLMError(f"{self.url}: a reply without choices")
        return (r.choices[0].message.content or "").strip(), getattr(r, "usage", None), time.perf_counter() - t0

    def chat(self, conversations: Sequence[Sequence[Message]]) -> list[str]:
        from concurrent.futures import ThreadPoolExecutor

        if not conversations:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            done = list(pool.map(self._one, conversations))  # in order; the first failure is raised
        for _, usage, dt in done:
            self.stats.calls += 1
            self.stats.prompt_tokens += getattr(usage, "prompt_tokens", 0) or 0
            self.stats.completion_tokens += getattr(usage, "completion_tokens", 0) or 0
            self.stats.seconds += dt
            self.stats.per_call_seconds.append(dt)
        return [text for text, _, _ in done]
