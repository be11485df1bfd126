"""The held-out curve of an RL run: EM on held-out questions at several steps.

Evaluation builds it (:func:`heldout_curve`) and hands it to training as a plain callable,
``curve(model, tokenizer) -> {em, f1, n, eval_tool_calls}``; the RL trainer's callback
(:func:`autocoa.train.rl_monitor.heldout_monitor`) calls it and logs the rows. So training never
imports evaluation, which runs after it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autocoa.tools.search import Retrieval

HeldOutCurve = Callable[[Any, Any], dict[str, Any]]


def heldout_curve(cfg: Any, path: str | Path, retrieval: Retrieval | None = None, toolbox: Any = None) -> HeldOutCurve:
    """``cfg.heldout_questions`` of the QA file ``path`` (a seeded sample), answered greedily by the
    agent with real search within the RL run's budget (``cfg``: an RLConfig) over ``retrieval``
    (held-out entities' documents are only in the full index), else over ``toolbox``."""
    from autocoa.agent.config import AgentConfig
    from autocoa.data.qa import load_qa, take
    from autocoa.eval.runner import evaluate
    from autocoa.train.rl_config import ROLLOUT_FIELDS

    # a seeded sample, as evaluation takes its questions: the world's splits are sorted by hop
    # count, and their first N alone are 1-hop questions only
    records = take(load_qa(path), cfg.heldout_questions, shuffle_seed=0)
    if not records:
        raise ValueError(f"{path}: no questions")
    if retrieval is not None:
        toolbox = retrieval.toolbox(cfg.topk)
    elif toolbox is None:
        raise ValueError("the held-out evaluation searches for real: give its retrieval or toolbox")
    budget = {k: getattr(cfg, k) for k in ROLLOUT_FIELDS if k not in ("temperature", "top_p")}
    agent = AgentConfig(env="real", temperature=0.0, seed=cfg.seed, **budget)

    def curve(model: Any, tokenizer: Any) -> dict[str, Any]:
        _, metrics = evaluate(model, tokenizer, records, ["agent"], agent, toolbox, progress=False)
        m = metrics["methods"]["agent"]
        return {
            "em": m["em"],
            "f1": m["f1"],
            "n": m["n"],
            "eval_tool_calls": round(m["tool_calls_per_question"] * m["n"]),
        }

    return curve
