"""``--verify mrfs``: check any method's final answer against the observations it saw, with
Chain-of-Action's multi-reference faith score, and re-answer the unfaithful ones.

    summary = verify_rows(rows, reanswer, weights)

A row's references are the documents of its trajectory's observations (one reference per
search hit, a calculator's value as one). A row whose answer scores at most the threshold is
re-answered from those references by ``reanswer`` (each method the way it answers: the engine
methods' model with the references replayed as one observation, CoA's chat model with its fill
prompt), and its prediction and scores are replaced; the original is kept in ``row["verify"]``.
A row without references (``direct``, a search that found nothing) is left as it is and
counted apart. The summary says how often verification changed an answer and whether that
helped (wrong -> right) or hurt (right -> wrong): the data to judge the verifier with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from autocoa.metrics import FaithWeights, mrfs, score_one
from autocoa.tags import Kind
from autocoa.tools.base import references_in

Reanswer = Callable[[list[tuple[str, list[str]]]], list[str]]  # (question, references) -> answers


def references(row: dict[str, Any]) -> list[str]:
    """The documents the row's trajectory observed, the last observation's first (the one the
    answer most likely rests on), without repeats."""
    out: list[str] = []
    for seg in reversed(row["trajectory"]["segments"]):
        if Kind(seg["kind"]) is Kind.OBSERVATION:
            out += [d for d in references_in(seg["text"]) if d not in out]
    return out


def verify_rows(rows: Sequence[dict[str, Any]], reanswer: Reanswer, weights: FaithWeights) -> dict[str, Any]:
    """Verify ``rows`` in place (see the module docstring); the summary."""
    todo: list[tuple[dict[str, Any], list[str], float]] = []
    unverifiable = 0
    for row in rows:
        refs = references(row)
        if not refs:
            unverifiable += 1
            row["verify"] = {"mrfs": None, "changed": False}
            continue
        score, _ = mrfs(row["prediction"], refs, weights)
        row["verify"] = {"mrfs": score, "changed": False}
        if score <= weights.threshold:
            todo.append((row, refs, score))
    answers = reanswer([(row["question"], refs) for row, refs, _ in todo]) if todo else []
    helped = hurt = changed = 0
    for (row, _, _), new in zip(todo, answers, strict=True):
        new = new or None
        if new == row["prediction"]:
            continue
        before = {k: row[k] for k in ("em", "f1", "cover_em")}
        row["verify"].update(changed=True, original_prediction=row["prediction"], original_scores=before)
        row["prediction"] = new
        row.update(score_one(new, row["golden_answers"]))
        changed += 1
        helped += before["em"] < 1 <= row["em"]
        hurt += row["em"] < 1 <= before["em"]
    n = len(rows)
    return {
        "n": n,
        "unverifiable": unverifiable,
        "below_threshold": len(todo),
        "changed": changed,
        "changed_rate": changed / n if n else 0.0,
        "helped": helped,
        "hurt": hurt,
        "weights": weights._asdict(),
    }


def engine_reanswer(model: Any, tokenizer: Any, cfg: Any, tags: Any = None) -> Reanswer:
    """Re-answer with a checkpoint through the engine: its own prompt, then
    ``<search>question</search><result>references</result>`` replayed (as ``rag`` replays its
    retrieval), actions banned, so it answers from the references."""
    from autocoa.agent.engine import Engine
    from autocoa.agent.prompts import format_prompt
    from autocoa.agent.state import TagIds, observation_ids
    from autocoa.eval.baselines import SEARCH, action_token_ids, ban_tokens
    from autocoa.tags import Tags, escape_tags

    t = TagIds.of(tokenizer, tags or Tags())
    engine = Engine(model, tokenizer, None, tags=t.tags, logits_hook=ban_tokens(action_token_ids(t)))

    def reanswer(items: list[tuple[str, list[str]]]) -> list[str]:
        prefixes = []
        for q, refs in items:
            query = tokenizer(escape_tags(q, t.tags), add_special_tokens=False)["input_ids"]
            obs = observation_ids("\n".join(refs), tokenizer, t, cfg.max_obs_tokens)
            prefixes.append([t.open_id(SEARCH), *query, t.close_id(SEARCH), *obs])
        run_cfg = cfg.model_copy(update={"env": "simulated", "n": 1})
        rollouts = engine.generate([format_prompt(q, tokenizer) for q, _ in items], run_cfg, prefixes=prefixes)
        return [r.trajectory.answer or "" for r in rollouts]

    return reanswer


def chat_reanswer(llm: Any, max_ref_chars: int = 400) -> Reanswer:
    """Re-answer with a chat model and CoA's fill prompt (one LLM call per row)."""
    from autocoa.coa.chain import fill_prompt, short_answer

    def reanswer(items: list[tuple[str, list[str]]]) -> list[str]:
        replies = llm.chat([fill_prompt(q, [r[:max_ref_chars] for r in refs]) for q, refs in items])
        return [short_answer(r) for r in replies]

    return reanswer
