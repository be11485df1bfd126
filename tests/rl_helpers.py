"""Test doubles for the RL stage: a tiny saved checkpoint, a questions file, a scripted policy."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.agent_helpers import tiny_llama


def save_tiny_model(tokenizer, path: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A tiny random Llama and its tokenizer, saved like any checkpoint."""
    model = tiny_llama(tokenizer, seed=seed, hidden=hidden, layers=1)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_questions(path: Path, n: int = 4, answer: str = "Varnelo", chain: bool = False) -> Path:
    """``n`` questions answered by ``answer``; with ``chain``, each with a 1-hop gold chain."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            row = {"id": str(i), "question": f"Where was person {i} born?", "golden_answers": [answer]}
            if chain:
                row["chain"] = [{"subject": f"person {i}", "relation": "born_in", "object": answer, "known": False}]
            f.write(json.dumps(row) + "\n")
    return path


def scripted_hook(tokenizer, turns: list[str], sim_result: str = "Doc about it"):
    """An engine ``logits_hook`` that makes any model write ``turns[k]`` after the k-th
    ``</result>`` (token by token) and, inside a simulated ``<result>``, ``sim_result``."""

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    opener, closer = tokenizer.convert_tokens_to_ids("<result>"), tokenizer.convert_tokens_to_ids("</result>")
    scripted = [ids(t) for t in turns]
    sim = [*ids(sim_result), closer]
    eos = tokenizer.eos_token_id

    def next_token(history: list[int]) -> int:
        last_open = max((i for i, t in enumerate(history) if t == opener), default=-1)
        last_close = max((i for i, t in enumerate(history) if t == closer), default=-1)
        if last_open > last_close:  # writing a simulated observation
            pos = len(history) - last_open - 1
            return sim[min(pos, len(sim) - 1)]
        k = history.count(closer)
        pos = len(history) - last_close - 1
        if k >= len(scripted) or pos >= len(scripted[k]):
            return eos
        return scripted[k][pos]

    def hook(histories: list[list[int]], logits: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(logits, -1e4)
        for i, h in enumerate(histories):
            out[i, next_token(h)] = 0.0
        return out

    return hook


def allow_only(tokenizer, texts: list[str]):
    """An engine ``logits_hook`` that keeps the model's own logits on a few tokens only."""
    allowed = sorted({i for t in texts for i in tokenizer(t, add_special_tokens=False)["input_ids"]})

    def hook(histories, logits: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(logits, -1e4)
        out[:, allowed] = logits[:, allowed]
        return out

    return hook


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "reward" in line]
