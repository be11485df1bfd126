"""Run evaluation methods over QA records: prediction rows, metrics, files.

    rows = run_method(model, tokenizer, records, "agent", cfg, toolbox)
    metrics = method_metrics(rows)
    result = evaluate_checkpoint(EvalRequest.of(model="ckpt/", data="world/test.jsonl", out="eval/",
                                 retrieval=Retrieval(index="index/"), methods=["agent", "rag"]))

Every row of ``predictions.jsonl`` holds ``id, question, golden_answers, prediction,
trajectory`` (prompt and segments), ``n_actions, n_tool_calls, well_formed, method``, the
scores of :func:`autocoa.metrics.score_one`, and, when the data says so, ``hops`` and the
counts of :func:`autocoa.analysis.analyse`. ``metrics.json`` is computed from those rows
only, so ``autocoa score --pred predictions.jsonl --by method`` recomputes its EM/F1.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocoa.agent.config import AgentConfig
from autocoa.agent.engine import Engine
from autocoa.agent.state import Rollout
from autocoa.analysis import analyse, summarise, tool_failures
from autocoa.data.qa import QARecord
from autocoa.eval.baselines import DEFAULT_REACT_STEPS, Setup, setup
from autocoa.eval.methods import get as get_method
from autocoa.eval.verify import verify_rows
from autocoa.metrics import aggregate, score_one
from autocoa.runlock import holds_lock
from autocoa.tools.base import Toolbox

if TYPE_CHECKING:
    from autocoa.eval.request import EvalRequest

TOOL_ERROR_WARN = 0.05  # a run whose tool calls fail more often than this is flagged


def scored_row(record: QARecord, traj: Any, method: str, **counts: Any) -> dict[str, Any]:
    """One line of ``predictions.jsonl`` for any method: the record, the prediction and its
    scores, ``counts`` (actions, tool and LLM calls, latency, ...), the search analysis and
    the trajectory."""
    row: dict[str, Any] = {
        "id": record.id,
        "method": method,
        "question": record.question,
        "golden_answers": record.golden_answers,
        "prediction": traj.answer,
        **score_one(traj.answer, record.golden_answers),
        **counts,
        "well_formed": traj.well_formed,
    }
    if record.dataset is not None:
        row["dataset"] = record.dataset
    if record.hops is not None:
        row["hops"] = record.hops
    n_search = record.meta.get("n_search")
    if isinstance(n_search, int):
        row["n_search"] = n_search
    chain = record.meta.get("chain") if isinstance(record.meta.get("chain"), list) else None
    row.update(analyse(traj, chain, n_search if isinstance(n_search, int) else None))
    row["trajectory"] = traj.to_dict()
    return row


def prediction_row(record: QARecord, rollout: Rollout, s: Setup, latency: float = 0.0) -> dict[str, Any]:
    """One line of ``predictions.jsonl`` for an engine method. ``n_llm_calls`` counts the
    calls a text API would serve: one, plus one per real observation the generation resumes
    after. ``latency``: the question's share of the run's seconds."""
    traj = rollout.trajectory
    assert traj is not None
    return scored_row(
        record,
        traj,
        s.method,
        n_actions=rollout.n_actions,
        n_tool_calls=rollout.n_tool_calls + s.calls_before,
        n_tool_errors=tool_failures(traj),
        n_llm_calls=1 + rollout.n_tool_calls,
        latency_s=latency,
        forced_answer=rollout.forced_answer,
        finish=rollout.finish,
        n_tokens=len(rollout.ids),
    )


def coa_rows(
    records: Sequence[QARecord], llm: Any, toolbox: Toolbox, cfg: Any = None, progress: bool = True
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of ``predictions.jsonl`` for Chain-of-Action (:mod:`autocoa.coa.method`), and run
    info. A question whose chain could not be read has its ``error`` and scores 0."""
    from autocoa.coa.method import run_coa
    from autocoa.progress import progress_bar

    t0 = time.perf_counter()
    results = []
    chunk = 16  # the whole workflow per chunk of questions: progress, and batches of LLM calls
    with progress_bar(len(records), "eval coa", "questions", disable=not progress) as bar:
        for start in range(0, len(records), chunk):
            part = records[start : start + chunk]
            results += run_coa([r.question for r in part], llm, toolbox, cfg)
            bar.update(len(part))
    rows = []
    for rec, res in zip(records, results, strict=True):
        traj = res.trajectory
        assert traj is not None
        rows.append(
            scored_row(
                rec,
                traj,
                "coa",
                n_actions=len(res.nodes),
                n_tool_calls=res.tool_calls,
                n_tool_errors=tool_failures(traj),
                n_llm_calls=res.llm_calls,
                latency_s=res.seconds,
                forced_answer=False,
                finish="error" if res.error else "answer",
                error=res.error,
                coa=res.to_dict(),
            )
        )
    verdicts = [n["verdict"] for r in rows for n in r["coa"]["nodes"]]
    info = {
        "seconds": time.perf_counter() - t0,
        "env": "real",
        "llm": {k: v for k, v in vars(llm.stats).items() if k != "per_call_seconds"},
        "chain_errors": sum(r["error"] is not None for r in rows),
        "verdicts": {v: verdicts.count(v) for v in ("kept", "replaced", "filled", "unverified")},
    }
    return rows, info


def run_method(
    model: Any,
    tokenizer: Any,
    records: Sequence[QARecord],
    method: str,
    cfg: AgentConfig,
    toolbox: Toolbox | None = None,
    react_steps: int = DEFAULT_REACT_STEPS,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of ``predictions.jsonl`` for one method (``cfg.n`` must be 1), and run info
    (seconds, engine counters). ``on_batch(n_done)`` reports progress."""
    if cfg.n != 1:
        raise ValueError("evaluation decodes one rollout per question (n=1)")
    t0 = time.perf_counter()
    s = setup(method, [r.question for r in records], tokenizer, cfg, toolbox, react_steps=react_steps)
    engine = Engine(model, tokenizer, toolbox, logits_hook=s.hook)
    rollouts = engine.generate(
        s.prompts, s.cfg, on_batch=(lambda b: on_batch(len(b))) if on_batch else None, prefixes=s.prefixes
    )
    seconds = time.perf_counter() - t0
    rows = [prediction_row(rec, r, s, seconds / len(records)) for rec, r in zip(records, rollouts, strict=True)]
    info = {
        "seconds": seconds,
        "env": s.cfg.env,
        "max_actions": s.cfg.max_actions,
        "engine": dict(vars(engine.stats)),
    }
    if hasattr(s.hook, "forced"):
        info["controller_forced_tokens"] = s.hook.forced
    return rows, info


def method_metrics(rows: Sequence[dict[str, Any]], simulated: bool = False) -> dict[str, Any]:
    """EM/F1/cover-EM overall and by hops (when every row knows it) and by #actions (Fig. 3),
    tool calls and actions per question, and the world's when-to-act / fidelity numbers (the
    share past the last hop by hop count too)."""
    rows = list(rows)
    if not rows:
        raise ValueError("no predictions to score")
    by = ["n_actions"]
    if all(r.get("hops") is not None for r in rows):
        by.insert(0, "hops")
    out = aggregate(rows, by=by)
    n = len(rows)
    # real calls that answered; failed ones are counted apart (a dead retriever must show)
    errors = sum(r.get("n_tool_errors", 0) for r in rows)
    calls = sum(r["n_tool_calls"] for r in rows)
    out["tool_calls_per_question"] = (calls - errors) / n
    out["tool_errors_per_question"] = errors / n
    out["tool_error_rate"] = errors / calls if calls else 0.0
    out["actions_per_question"] = sum(r["n_actions"] for r in rows) / n
    out["llm_calls_per_question"] = sum(r.get("n_llm_calls", 1) for r in rows) / n
    out["latency_per_question"] = sum(r.get("latency_s", 0.0) for r in rows) / n
    out["errors"] = sum(r.get("error") is not None for r in rows) / n
    out["searches_per_question"] = sum(r["searches"] for r in rows) / n
    out["well_formed"] = sum(r["well_formed"] for r in rows) / n
    out["forced_answer"] = sum(r["forced_answer"] for r in rows) / n
    out.update(summarise(rows, simulated=simulated))
    if "hops" in out.get("by", {}) and all("past_last_hop" in r for r in rows):
        # beside "by", which stays aggregate()'s alone (what `autocoa score` recomputes)
        out["past_last_hop_by_hops"] = {}
        for h in out["by"]["hops"]:
            group = [r["past_last_hop"] for r in rows if r["hops"] == h]
            out["past_last_hop_by_hops"][h] = sum(group) / len(group)
    return out


def _reanswer(method: str, model: Any, tokenizer: Any, cfg: AgentConfig, toolbox: Toolbox | None, llm: Any, coa: Any):
    """How ``method`` re-answers a row that verification rejects: the way it answered."""
    from autocoa.eval.verify import chat_reanswer, engine_reanswer

    if get_method(method).chat_workflow:
        return chat_reanswer(llm, coa.max_ref_chars)
    return engine_reanswer(model, tokenizer, cfg, toolbox.tags if toolbox is not None else None)


def react_steps_for(records: Sequence[QARecord]) -> int:
    """The ReAct workflow's most search steps: the data's maximum hop count, else 4."""
    hops = [r.hops for r in records if r.hops is not None]
    return max(hops) if hops else DEFAULT_REACT_STEPS


def evaluate(
    model: Any,
    tokenizer: Any,
    records: Sequence[QARecord],
    methods: Sequence[str] = ("agent",),
    cfg: AgentConfig | None = None,
    toolbox: Toolbox | None = None,
    react_steps: int | None = None,
    progress: bool = True,
    llm: Any = None,
    coa: Any = None,
    verify: str | None = None,
    coa_toolbox: Toolbox | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run every method on the same records: ``(prediction rows of all methods, metrics)``
    with ``metrics["methods"][method]`` per method and ``metrics["run"]`` the run's info.
    ``coa`` needs ``llm`` (a :class:`autocoa.coa.llm.ChatLLM`), a toolbox, and takes its
    settings from ``coa`` (a :class:`autocoa.coa.method.CoAConfig`) and its tools from
    ``coa_toolbox`` (default ``toolbox``; it may add a ``knowledge`` index). ``verify="mrfs"`` checks
    every method's answers against what it observed (:mod:`autocoa.eval.verify`) with
    ``coa``'s MRFS weights; ``metrics["methods"][m]["verify"]`` says what that changed."""
    from autocoa.coa.method import CoAConfig
    from autocoa.progress import progress_bar

    coa = coa or CoAConfig()
    cfg = cfg or AgentConfig()
    steps = react_steps or react_steps_for(records)
    all_rows: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {"methods": {}, "run": {"env": cfg.env, "n_questions": len(records), "info": {}}}
    chat = [m for m in methods if get_method(m).chat_workflow]
    if chat and (llm is None or toolbox is None):
        raise ValueError(f"{', '.join(chat)} needs a chat model (llm) and the real tools (an index or a retriever)")
    for method in dict.fromkeys(methods):
        m = get_method(method)
        if m.chat_workflow:
            rows, info = m.resolve()(records, llm, coa_toolbox or toolbox, coa, progress)
        else:
            with progress_bar(len(records), f"eval {method}", "questions", disable=not progress) as bar:
                rows, info = run_method(model, tokenizer, records, method, cfg, toolbox, steps, on_batch=bar.update)
        simulated = cfg.env == "simulated" and not m.real_observations
        checked = None
        if verify:
            checked = verify_rows(rows, _reanswer(method, model, tokenizer, cfg, toolbox, llm, coa), coa.weights)
        metrics["methods"][method] = method_metrics(rows, simulated=simulated)
        if checked is not None:
            metrics["methods"][method]["verify"] = checked
        rate = metrics["methods"][method]["tool_error_rate"]
        if rate > TOOL_ERROR_WARN:
            warnings.warn(
                f"eval {method}: {rate:.0%} of the tool calls failed (see run.tool_stats): its accuracy is not "
                "the model's (see docs/troubleshooting.md#retriever)",
                stacklevel=2,
            )
        metrics["run"]["info"][method] = info
        all_rows += rows
    metrics["run"]["react_steps"] = steps
    metrics["run"]["agent_config"] = cfg.model_dump(mode="json")
    return all_rows, metrics


def write_eval(out_dir: str | Path, rows: Sequence[dict[str, Any]], metrics: dict[str, Any]) -> dict[str, Path]:
    """``predictions.jsonl`` and ``metrics.json`` in ``out_dir``."""
    from autocoa.jsonl import write_jsonl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"predictions": out / "predictions.jsonl", "metrics": out / "metrics.json"}
    write_jsonl(paths["predictions"], rows)
    paths["metrics"].write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return paths


@holds_lock("request.out")
def evaluate_checkpoint(request: EvalRequest, progress: bool = True) -> dict[str, Any]:
    """Load the request's checkpoint, evaluate it with its methods on its data and write
    ``request.out``; return the metrics. The request (:class:`autocoa.eval.request.EvalRequest`)
    was checked where it was made: this trusts it. ``shuffle_seed`` shuffles the questions before
    taking the first ``limit`` (a sample across hop counts). ``train_real_calls`` (or
    ``run.json``'s field of that name in the checkpoint directory) is copied into the metrics for
    the report's cost plot. Chain-of-Action's chat model is the endpoint at ``llm_url`` if given,
    else the checkpoint itself, which must then have a chat template; ``knowledge``: an index
    over the user's own documents for its knowledge action. ``verify``: see :func:`evaluate`."""
    from autocoa.data.qa import load_qa, take
    from autocoa.models import load_model

    r = request
    records = take(load_qa(r.data), r.limit, r.shuffle_seed)
    if not records:
        raise ValueError(f"{r.data}: no questions")
    toolbox = r.retrieval.toolbox(r.k) if r.retrieval is not None else None
    lm = tok = llm = coa_box = None
    if not r.endpoint_only:
        lm, tok = load_model(r.model, device=r.device)
    if r.chat_workflows:
        llm, coa_box = coa_backend(lm, tok, r.name, toolbox, r.llm_url, r.llm_model, r.llm_key, r.knowledge, r.k)
    rows, metrics = evaluate(
        lm, tok, records, r.methods, r.agent, toolbox, r.react_steps, progress, llm, r.coa, r.verify, coa_box
    )
    run = metrics["run"]
    run.update({"label": r.label or Path(r.name).name, "model": r.name, "data": str(r.data)})
    run.update(r.retrieval.describe() if r.retrieval is not None else {"index": None, "retriever": None})
    run.update({"k": r.k, "limit": r.limit, "shuffle_seed": r.shuffle_seed, "llm_url": r.llm_url, "verify": r.verify})
    if toolbox is not None:
        run["tool_stats"] = toolbox.stats.as_dict()
    calls = r.train_real_calls
    if calls is None and r.model is not None:
        calls = read_train_real_calls(Path(r.model))
    if calls is not None:
        metrics["train_real_calls"] = calls
    write_eval(r.out, rows, metrics)
    return metrics


def coa_backend(
    lm: Any,
    tok: Any,
    name: str,
    toolbox: Toolbox,
    llm_url: str | None,
    llm_model: str = "default",
    llm_key: str | None = None,
    knowledge: str | Path | None = None,
    k: int = 3,
) -> tuple[Any, Toolbox]:
    """CoA's chat model (the endpoint, else the local checkpoint, which must be a chat model)
    and its toolbox (``toolbox`` plus a ``knowledge`` search over ``knowledge``, if given)."""
    from autocoa.coa.llm import EndpointChat, LocalChat
    from autocoa.tools.search import Retrieval

    llm = EndpointChat(llm_url, llm_model, api_key=llm_key) if llm_url else LocalChat(lm, tok, name=name)
    if knowledge is None:
        return llm, toolbox
    extra = Retrieval(Path(knowledge)).search_tool(k, name="knowledge")
    return llm, Toolbox([*toolbox.tools.values(), extra], max_chars=toolbox.max_chars)


def read_train_real_calls(directory: Path) -> int | None:
    """Real tool calls spent training the checkpoint in ``directory``: the RL summary's
    ``real_calls_total`` (``rl.json``), else a ``train_real_calls`` field in ``run.json``, else 0
    for an SFT stage's output (``sft.json``: SFT trains on fixed data and calls no tool), so that
    every trained run has its point on the accuracy-vs-cost plot."""
    for name, key in (("rl.json", "real_calls_total"), ("run.json", "train_real_calls")):
        p = directory / name
        if p.exists():
            value = json.loads(p.read_text(encoding="utf-8")).get(key)
            if value is not None:
                break
    else:
        return 0 if (directory / "sft.json").exists() else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
