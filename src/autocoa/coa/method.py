"""The Chain-of-Action workflow (Pan et al., 2024) on our tools and any chat model.

    results = run_coa(questions, llm, toolbox, CoAConfig())

For each question, four steps:

1. **Decompose** (one LLM call): the chain of sub-questions, each with an action, a
   missing-knowledge flag and a guess (:func:`autocoa.coa.chain.decompose_prompt`).
2. **Act**: every node's action runs on our tools: ``search`` (the web query) on the search
   tool, ``knowledge`` on the ``knowledge`` tool (a second index over the user's documents;
   the search tool when there is none), ``calculate`` on the calculator.
3. **Verify**: the guess is scored against the node's references with the multi-reference
   faith score (:func:`autocoa.metrics.mrfs`). A guess above the threshold is kept with no
   further call; a missing or unfaithful one is replaced by an answer from the references
   (one LLM call; for ``calculate``, the computed value, no call). This is where detecting the
   model's knowledge boundary saves LLM calls.
4. **Answer** (one LLM call) from the verified chain.

Nodes are solved in order, batched across questions (node k of every question, then node
k+1). Our departure from the authors' code: when a guess was replaced by a short answer, later
sub-questions that quote the old guess are rewritten with the new answer before they run (a
multi-hop chain's second query names the first hop's answer, so a stale guess would send it to
the wrong entity). A reply with no usable chain is that question's error (recorded, scored 0),
never the run's.

Each result is rendered as a trajectory of our tags (the chain as a thought, each action and
its observation, the verdict as a thought, the answer), so the report, the trajectory browser
and the search analysis read it like every other method.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import Field

from autocoa.coa.chain import ChainError, Node, decompose_prompt, fill_prompt, final_prompt, parse_chain, short_answer
from autocoa.coa.llm import ChatLLM
from autocoa.config import Config
from autocoa.metrics import FaithWeights, mrfs
from autocoa.tags import Tags
from autocoa.tools.base import Toolbox, references_in
from autocoa.trajectory import Trajectory, action, answer, observation, think

KNOWLEDGE = "knowledge"


class CoAConfig(Config):
    max_nodes: int = Field(6, ge=1, description="most sub-questions used of a chain (the rest are dropped, flagged)")
    mrfs_precision: float = Field(0.3, ge=0.0, description="MRFS weight of word precision (authors' code: 0.3)")
    mrfs_recall: float = Field(0.3, ge=0.0, description="MRFS weight of word recall (authors' code: 0.3)")
    mrfs_length: float = Field(0.4, ge=0.0, description="MRFS weight of the average word length (authors' code: 0.4)")
    mrfs_threshold: float = Field(
        2.0, ge=0.0, description="a guess whose MRFS is at most this is replaced (authors' code: kept above 2)"
    )
    max_ref_chars: int = Field(400, ge=20, description="each reference is cut to this many characters in a prompt")

    @property
    def weights(self) -> FaithWeights:
        return FaithWeights(self.mrfs_precision, self.mrfs_recall, self.mrfs_length, self.mrfs_threshold)


@dataclass
class NodeResult:
    action: str
    sub: str  # as the model wrote it
    query: str  # as it ran (rewritten with earlier replaced answers)
    tool: str
    missing: bool
    guess: str
    observation: str = ""
    mrfs: float = 0.0
    reference: int = -1  # the best reference's index
    answer: str = ""
    verdict: str = ""  # kept | replaced | filled | unverified


@dataclass
class CoAResult:
    question: str
    nodes: list[NodeResult] = field(default_factory=list)
    prediction: str | None = None
    error: str | None = None
    chain_cut: bool = False
    llm_calls: int = 0
    tool_calls: int = 0
    seconds: float = 0.0
    trajectory: Trajectory | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [asdict(n) for n in self.nodes],
            "error": self.error,
            "chain_cut": self.chain_cut,
        }


def _tool_for(node: Node, toolbox: Toolbox) -> str:
    if node.action == KNOWLEDGE:
        return KNOWLEDGE if KNOWLEDGE in toolbox.tools else "search"
    return node.action


REWRITE_MAX_WORDS = 4  # a new answer longer than this is a sentence, not a name: not put into queries


def _rewrite(sub: str, replaced: dict[str, str]) -> str:
    """``sub`` with each replaced guess (old -> new) swapped for its new answer, when the new
    answer is a short phrase (a model that answers a sub-question with a sentence would
    otherwise grow the next query around it).

    >>> _rewrite("In which country is Town9?", {"Town9": "City4"})
    'In which country is City4?'
    >>> _rewrite("In which city is Kothani born?", {"Kothani": "In which city is Kothani born?"})
    'In which city is Kothani born?'
    """
    for old, new in replaced.items():
        if old and new and old != new and old in sub and len(new.split()) <= REWRITE_MAX_WORDS:
            sub = sub.replace(old, new)
    return sub


def _chat(llm: ChatLLM, convs: list, owners: list[CoAResult]) -> list[str]:
    """One batched round of LLM calls; each owner is charged one call and its share of time."""
    if not convs:
        return []
    before = len(llm.stats.per_call_seconds)
    replies = llm.chat(convs)
    shares = llm.stats.per_call_seconds[before:]
    for r, s in zip(owners, shares, strict=True):
        r.llm_calls += 1
        r.seconds += s
    return replies


def _trajectory(res: CoAResult, tags) -> Trajectory:
    if res.error is not None and not res.nodes:
        return Trajectory(res.question, (think(f"[error] {res.error}"),), tags=tags)
    plan = "; ".join(
        f"{i}. [{n.action}] {n.sub} -> {'missing' if n.missing else repr(n.guess)}"
        for i, n in enumerate(res.nodes, start=1)
    )
    segs = [think(f"Chain: {plan}" + (" (cut)" if res.chain_cut else ""))]
    for n in res.nodes:
        segs += [action(n.tool, n.query), observation(n.observation)]
        verdict = {
            "kept": f"MRFS {n.mrfs:.2f}: kept {n.guess!r}",
            "replaced": f"MRFS {n.mrfs:.2f}: {n.guess!r} replaced by {n.answer!r}",
            "filled": f"missing: filled with {n.answer!r}",
            "unverified": f"no reference: kept {n.guess!r} unverified",
        }[n.verdict]
        segs.append(think(verdict))
    segs.append(answer(res.prediction or ""))
    return Trajectory(res.question, tuple(segs), tags=tags)


# long: the workflow's steps in order (decompose, act, verify, answer), each batched across the questions
def run_coa(questions: Sequence[str], llm: ChatLLM, toolbox: Toolbox, cfg: CoAConfig | None = None) -> list[CoAResult]:
    """The workflow for every question (see the module docstring)."""
    cfg = cfg or CoAConfig()
    w = cfg.weights
    results = [CoAResult(q) for q in questions]
    chains: list[list[Node]] = [[] for _ in questions]
    replies = _chat(llm, [decompose_prompt(q) for q in questions], results)
    for r, chain, reply in zip(results, chains, replies, strict=True):
        try:
            nodes, r.chain_cut = parse_chain(reply, cfg.max_nodes)
            chain.extend(nodes)
        except ChainError as e:
            r.error = str(e)
    replaced: list[dict[str, str]] = [{} for _ in questions]
    for k in range(cfg.max_nodes):
        live = [i for i, c in enumerate(chains) if len(c) > k]
        if not live:
            break
        todo = []
        for i in live:
            node = chains[i][k]
            todo.append(
                NodeResult(
                    node.action,
                    node.sub,
                    _rewrite(node.sub, replaced[i]),
                    _tool_for(node, toolbox),
                    node.missing,
                    node.guess,
                )
            )
        t0 = time.perf_counter()
        obs = toolbox.run([(n.tool, n.query) for n in todo])
        share = (time.perf_counter() - t0) / len(todo)
        fills, fill_owners, fill_nodes = [], [], []
        for i, n, o in zip(live, todo, obs, strict=True):
            res = results[i]
            res.tool_calls += 1
            res.seconds += share
            n.observation = o
            refs = references_in(o)
            n.mrfs, n.reference = mrfs(n.guess, refs, w) if not n.missing else (0.0, -1)
            if not refs:
                n.answer, n.verdict = n.guess, "unverified"
            elif not n.missing and n.mrfs > w.threshold:
                n.answer, n.verdict = n.guess, "kept"
            elif n.tool == "calculate":  # the data-analysis action computed the value
                n.answer, n.verdict = refs[0], "filled" if n.missing else "replaced"
            else:
                fills.append(fill_prompt(n.query, [r[: cfg.max_ref_chars] for r in refs]))
                fill_owners.append(res)
                fill_nodes.append(n)
            res.nodes.append(n)
        for n, reply in zip(fill_nodes, _chat(llm, fills, fill_owners), strict=True):
            n.answer, n.verdict = short_answer(reply), "filled" if n.missing else "replaced"
        for i, n in zip(live, todo, strict=True):
            if n.verdict in ("replaced", "filled") and n.guess:
                replaced[i][n.guess] = n.answer
    answerable = [r for r in results if r.nodes]
    finals = _chat(
        llm, [final_prompt(r.question, [(n.query, n.answer) for n in r.nodes]) for r in answerable], answerable
    )
    for r, reply in zip(answerable, finals, strict=True):
        r.prediction = short_answer(reply) or None
    tags = Tags(actions=tuple(dict.fromkeys((*toolbox.tools, "search", "calculate"))))
    for r in results:
        r.trajectory = _trajectory(r, tags)
    return results
