"""Simulators of the search environment for RL-stage1: who writes a simulated ``<result>``.

In the simulated environment no search runs; after an action, the result comes from one of:

- ``model``: the policy itself (its internal world model, the paper's RL-stage1): the row
  writes the result token by token (:class:`autocoa.agent.state.Row`), masked in the loss;
- ``oracle`` (fidelity ``p``): a controlled-fidelity simulator. For each action a coin,
  drawn from (call seed, rollout, action) alone, says whether the oracle answers: then the
  result is the true document of the hop the query asks about (the gold chain's subject's
  document in the world's corpus, or a supporting document a dataset row names); otherwise,
  or when the query matches no hop, the world model writes it. ``p = 0`` never answers and
  draws nothing from the sampling generator, so it is bit-exact with ``model``;
- ``endpoint``: an external simulator LLM behind an OpenAI-compatible chat URL (ZeroSearch's
  set-up), prompted with the query and, optionally, the question's gold answer; replies are
  cached on disk (``simulator_cache.jsonl``), so a killed run resumes and a rerun repeats.

External results are inserted like a tool's (never trained: the policy did not sample them)
but count as simulated, never as real calls (:attr:`autocoa.agent.state.Rollout.obs_sources`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from autocoa.analysis import names
from autocoa.data.corpus import Doc
from autocoa.tools.search import format_doc


@dataclass(frozen=True)
class SimRequest:
    """One simulated search: the rollout's prompt, the action's tool and argument."""

    prompt: str
    tool: str
    query: str


class Simulator(Protocol):
    name: str

    def takes(self, seed: int | None, index: int, action: int) -> bool:
        """Whether this simulator (not the world model) answers action ``action`` (1-based) of
        rollout ``index`` in the call seeded ``seed``."""
        ...

    def results(self, requests: Sequence[SimRequest]) -> list[str | None]:
        """The result text of each request; None: the world model writes that one."""
        ...


def coin(seed: int | None, index: int, action: int) -> float:
    """A uniform draw in [0, 1) fixed by (seed, rollout index, action number): the same in every
    run and process, and independent of the sampling generator.

    >>> coin(0, 3, 1) == coin(0, 3, 1) != coin(0, 3, 2)
    True
    >>> 0.0 <= coin(None, 0, 1) < 1.0
    True
    """
    blob = f"{seed}:{index}:{action}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") / 2**64


class OracleSimulator:
    """With probability ``fidelity`` per action, the true document of the searched hop.

    ``evidence[prompt]`` lists ``(key, document)`` pairs: the hop's subject name and its
    document. A query names a hop when the key occurs in it as whole tokens (the last such
    pair wins: :func:`autocoa.analysis.match_hop`'s rule)."""

    name = "oracle"

    def __init__(self, evidence: Mapping[str, Sequence[tuple[str, Doc]]], fidelity: float):
        if not 0.0 <= fidelity <= 1.0:
            raise ValueError(f"simulator_fidelity must be in [0, 1], got {fidelity}")
        self.evidence, self.fidelity = evidence, fidelity
        self.answered = self.unmatched = 0

    def takes(self, seed: int | None, index: int, action: int) -> bool:
        return self.fidelity > 0 and coin(seed, index, action) < self.fidelity

    def results(self, requests: Sequence[SimRequest]) -> list[str | None]:
        out: list[str | None] = []
        for req in requests:
            found = [doc for key, doc in self.evidence.get(req.prompt, ()) if names(req.query, key)]
            if found:
                self.answered += 1
                out.append(format_doc(1, found[-1]))
            else:
                self.unmatched += 1
                out.append(None)
        return out


def world_evidence(questions: Sequence[Mapping[str, Any]], docs: Mapping[str, Doc]) -> dict[str, list]:
    """The oracle's evidence from question rows: each gold-chain hop's subject and its document
    (``docs`` by id: the world's corpus); rows without a chain use their ``supporting`` documents
    (``{"title", "text"}``: a dataset's supporting facts), keyed by title. A hop whose document is
    missing from ``docs`` is an error naming it."""
    evidence: dict[str, list] = {}
    for q in questions:
        pairs = []
        for hop in q.get("chain") or ():
            doc = docs.get(hop["subject_id"])
            if doc is None:
                raise ValueError(f"oracle simulator: no document {hop['subject_id']!r} in the corpus (hop {hop})")
            pairs.append((hop["subject"], doc))
        for i, s in enumerate(q.get("supporting") or ()):
            pairs.append((s["title"], Doc(f"support-{i}", s["title"], s["text"])))
        if pairs:
            evidence[q["prompt"]] = pairs
    return evidence


SIM_SYSTEM = (
    "You are a search engine over an encyclopedia. Given a search query, write the single most "
    "relevant encyclopedia document, one paragraph, starting with its title. Write only the document."
)


def sim_messages(query: str, question: str | None, gold: Sequence[str] | None) -> list[dict[str, str]]:
    """The endpoint simulator's chat: the query, and with ``gold`` the question's answer as a
    hint that the document may state where it fits (ZeroSearch's useful-document prompt).

    >>> sim_messages("Tarvel country", None, None)[1]["content"]
    'Query: Tarvel country'
    """
    user = f"Query: {query}"
    if gold:
        user += f"\n(The user's question: {question}\nIts answer: {gold[0]}. State it where the query asks for it.)"
    return [{"role": "system", "content": SIM_SYSTEM}, {"role": "user", "content": user}]


class EndpointSimulator:
    """An external LLM writes every simulated result; replies cached in ``cache`` (JSONL,
    appended as they come: a killed run keeps what it paid for)."""

    name = "endpoint"

    def __init__(
        self,
        url: str,
        model: str,
        cache: Path,
        *,
        golds: Mapping[str, Sequence[str]] | None = None,
        questions: Mapping[str, str] | None = None,
        api_key: str | None = None,
        max_tokens: int = 128,
        timeout: float = 60.0,
    ):
        from autocoa.coa.llm import EndpointChat
        from autocoa.jsonl import read_jsonl, trim_jsonl

        self.chat = EndpointChat(url, model, api_key=api_key, max_tokens=max_tokens, timeout=timeout)
        self.model, self.cache_path = model, Path(cache)
        self.golds, self.questions = golds, questions or {}
        self.cache: dict[str, str] = {}
        self.hits = self.calls = 0
        if self.cache_path.exists():
            trim_jsonl(self.cache_path, lambda row: "key" in row)  # a line torn by a kill: asked again
            for n, row in read_jsonl(self.cache_path):
                if not isinstance(row.get("text"), str):
                    raise ValueError(f"{self.cache_path}:{n}: a simulator cache row needs 'key' and 'text'")
                self.cache[row["key"]] = row["text"]

    def takes(self, seed: int | None, index: int, action: int) -> bool:
        return True

    def _messages(self, req: SimRequest) -> list[dict[str, str]]:
        gold = self.golds.get(req.prompt) if self.golds is not None else None
        return sim_messages(req.query, self.questions.get(req.prompt), gold)

    def results(self, requests: Sequence[SimRequest]) -> list[str | None]:
        from autocoa.jsonl import write_jsonl

        convs = [self._messages(r) for r in requests]
        keys = [hashlib.sha256(json.dumps([self.model, c], sort_keys=True).encode()).hexdigest() for c in convs]
        todo = sorted({k: c for k, c in zip(keys, convs, strict=True) if k not in self.cache}.items())
        if todo:
            texts = self.chat.chat([c for _, c in todo])
            rows = [{"key": k, "text": t} for (k, _), t in zip(todo, texts, strict=True)]
            write_jsonl(self.cache_path, rows, append=True)
            self.cache.update((r["key"], r["text"]) for r in rows)
            self.calls += len(todo)
        self.hits += len(keys) - len(todo)
        return [self.cache[k] for k in keys]
