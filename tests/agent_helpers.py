"""Test doubles for the agent loop: a scripted language model, a tiny random Llama, fake tools."""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import LlamaConfig, LlamaForCausalLM


class _ScriptCache:
    """Stands in for a KV cache: remembers every real token fed to each row."""

    def __init__(self, b: int):
        self.rows: list[list[int]] = [[] for _ in range(b)]

    def batch_select_indices(self, idx: torch.Tensor) -> None:
        self.rows = [self.rows[i] for i in idx.tolist()]


class _Out:
    def __init__(self, logits, cache):
        self.logits, self.cache = logits, cache


class ScriptedLM(torch.nn.Module):
    """A 'model' whose next token is ``policy(history_ids)``: it puts all probability mass on
    that token. It reads only the real (unmasked) tokens it was fed, so it also checks that
    the engine feeds every token exactly once and hides its padding."""

    def __init__(self, vocab_size: int, policy: Callable[[list[int]], int]):
        super().__init__()
        self.vocab_size, self.policy = vocab_size, policy
        self._dummy = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, input_ids, attention_mask, cache=None, **_):
        b, width = input_ids.shape
        cache = cache if isinstance(cache, _ScriptCache) else _ScriptCache(b)
        block_mask = attention_mask[:, -width:]
        logits = torch.full((b, 1, self.vocab_size), -1e4)
        for i in range(b):
            cache.rows[i] += input_ids[i][block_mask[i].bool()].tolist()
            logits[i, 0, self.policy(cache.rows[i])] = 0.0
        self.calls += 1
        return _Out(logits, cache)


def turn_policy(tokenizer, scripts: dict[str, list[str]], after: str = "</result>", waste: str = "!") -> Callable:
    """For each prompt, emit ``turns[k]`` after the k-th ``after`` tag (turn 0 right after the
    prompt), token by token; past the end of a turn emit ``waste``, a token the engine should
    never have to ask for."""
    from autocoa.trajectory import encode_prompt

    tid = tokenizer.convert_tokens_to_ids(after)
    table = [
        (encode_prompt(tokenizer, p), [tokenizer(t, add_special_tokens=False)["input_ids"] for t in turns])
        for p, turns in scripts.items()
    ]
    waste_id = tokenizer(waste, add_special_tokens=False)["input_ids"][0]

    def policy(history: list[int]) -> int:
        prompt_ids, turns = next((p, t) for p, t in table if history[: len(p)] == p)
        rest = history[len(prompt_ids) :]
        k = rest.count(tid)
        last = max((i for i, x in enumerate(rest) if x == tid), default=-1)
        pos = len(rest) - last - 1
        if k >= len(turns) or pos >= len(turns[k]):
            return waste_id
        return turns[k][pos]

    return policy


def tiny_llama(tokenizer, seed: int = 0, hidden: int = 64, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(cfg).eval()


class FakeSearch:
    name = "search"
    description = "search a fake index"

    def __init__(self, answers: dict[str, str] | None = None, fail: bool = False):
        self.answers, self.fail, self.seen = answers or {}, fail, []

    def call(self, argument: str) -> str:
        self.seen.append(argument)
        if self.fail:
            raise ConnectionError("index unreachable")
        return self.answers.get(argument, f"Doc 1 (Title: {argument}) about {argument}")


def tiny_qwen2_config(vocab_size: int):
    """A 2-layer Qwen2 (the AutoCoA paper's family: q/k/v biases, grouped-query attention)."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    )


def chaotic(tokenizer, arch="llama"):
    """A tiny Llama (rotary positions) or GPT-2 (absolute positions) with large random
    weights: greedy outputs differ from prompt to prompt (the default init writes one token
    forever) and have no near-ties."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if arch == "llama":
        model = tiny_llama(tokenizer)
    elif arch == "qwen2":  # the AutoCoA paper's family: q/k/v biases, grouped-query attention
        from transformers import Qwen2ForCausalLM

        model = Qwen2ForCausalLM(tiny_qwen2_config(len(tokenizer))).eval()
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4)).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model
