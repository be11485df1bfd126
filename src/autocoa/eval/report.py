"""The evaluation report: a results table (Markdown and JSON), plots (PNG, matplotlib Agg) and
``report.html`` (:mod:`autocoa.eval.html_report`: the same with a trajectory browser).

    runs = [load_run("eval/base"), load_run("eval/sft12")]
    write_report(runs, "report/")   # report.md, results.json, *.png

One row per (run, method). Columns: EM by hop count and average, F1, real tool calls per
question, unneeded / missed searches, and world-model fidelity (simulated runs) or the
retriever's hit rate (real runs). Plots: EM by hop count per row; success rate by number of
actions (the paper's Fig. 3, with the share of correct answers); and, when runs carry
``train_real_calls`` (real tool calls spent in training), accuracy against that cost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autocoa.eval.runner import read_train_real_calls
from autocoa.jsonl import read_logged


def load_run(directory: str | Path) -> dict[str, Any]:
    """A run directory's ``metrics.json``; ``train_real_calls`` from its ``run.json`` if the
    metrics lack it."""
    d = Path(directory)
    p = d / "metrics.json"
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file (write one with `autocoa eval`)")
    metrics = json.loads(p.read_text(encoding="utf-8"))
    if "methods" not in metrics:
        raise ValueError(f"{p}: not an `autocoa eval` metrics file (no 'methods')")
    metrics.setdefault("run", {}).setdefault("label", d.name)
    metrics["run"]["dir"] = str(d)  # where its predictions are (the HTML report's trajectories)
    if metrics.get("train_real_calls") is None:
        calls = read_train_real_calls(d)
        if calls is not None:
            metrics["train_real_calls"] = calls
    return metrics


def _num_keys(table: dict[str, Any]) -> dict[Any, Any]:
    """Breakdown keys back from JSON strings to numbers where they are numbers."""
    out = {}
    for k, v in table.items():
        try:
            out[int(k)] = v
        except (TypeError, ValueError):
            out[k] = v
    return out


def result_rows(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per (run, method): the numbers of the table and the plots."""
    rows = []
    several = len(runs) > 1
    for run in runs:
        name = run.get("run", {}).get("label", "run")
        for method, m in run["methods"].items():
            by = m.get("by", {})
            rows.append(
                {
                    "label": f"{name} {method}" if several else method,
                    "run": name,
                    "method": method,
                    "n": m["n"],
                    "em": m["em"],
                    "f1": m["f1"],
                    "cover_em": m["cover_em"],
                    "em_by_hops": {h: g["em"] for h, g in _num_keys(by.get("hops", {})).items()},
                    "by_actions": {
                        a: {"n": g["n"], "accuracy": g["accuracy"], "share_of_correct": g["share_of_correct"]}
                        for a, g in _num_keys(by.get("n_actions", {})).items()
                    },
                    "tool_calls_per_question": m.get("tool_calls_per_question"),
                    "tool_errors_per_question": m.get("tool_errors_per_question"),
                    "malformed": m.get("errors"),
                    "llm_calls_per_question": m.get("llm_calls_per_question"),
                    "latency_per_question": m.get("latency_per_question"),
                    "verify_changed": (m.get("verify") or {}).get("changed_rate"),
                    "verify_helped": (m.get("verify") or {}).get("helped"),
                    "verify_hurt": (m.get("verify") or {}).get("hurt"),
                    "unneeded_searches": m.get("unneeded_searches"),
                    "missed_searches": m.get("missed_searches"),
                    "fidelity": m.get("fidelity"),
                    "fidelity_rare": m.get("fidelity_rare"),
                    "hallucination": m.get("hallucination"),
                    "retrieval_hit": m.get("retrieval_hit"),
                    "copy_accuracy": m.get("copy_accuracy"),
                    "past_last_hop": m.get("past_last_hop"),
                    "env": run.get("run", {}).get("env", "real"),
                    "data": Path(str(run.get("run", {}).get("data", ""))).name or None,
                    "train_real_calls": run.get("train_real_calls"),
                }
            )
    return rows


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def results_table(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table: EM by hop count and average, F1, costs, when to act, fidelity."""
    hops = sorted({h for r in rows for h in r["em_by_hops"]}, key=lambda h: (not isinstance(h, int), str(h)))
    cols = [*(f"EM {h}-hop" for h in hops), "EM avg", "F1", "real calls/q", "errors/q", "malformed"]
    cols += ["unneeded/q", "missed/q"]
    has_cost = any(r.get("llm_calls_per_question") is not None for r in rows)
    has_fid = any(r["fidelity"] is not None for r in rows)
    has_hit = any(r["retrieval_hit"] is not None for r in rows)
    has_verify = any(r.get("verify_changed") is not None for r in rows)
    cols += ["LLM calls/q", "s/q"] * has_cost
    has_copy = any(r.get("copy_accuracy") is not None for r in rows)
    has_past = any(r.get("past_last_hop") is not None for r in rows)
    cols += ["fidelity", "fidelity (rare)", "hallucination"] * has_fid + ["retrieval hit"] * has_hit
    cols += ["copy acc"] * has_copy + ["past last hop"] * has_past
    cols += ["MRFS changed", "helped", "hurt"] * has_verify
    lines = ["| method | n | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for r in rows:
        cells = [_fmt(r["em_by_hops"].get(h)) for h in hops]
        cells += [_fmt(r["em"]), _fmt(r["f1"]), _fmt(r["tool_calls_per_question"], 2)]
        cells += [_fmt(r.get("tool_errors_per_question"), 2), _fmt(r.get("malformed"), 2)]
        cells += [_fmt(r["unneeded_searches"], 2), _fmt(r["missed_searches"], 2)]
        cells += [_fmt(r.get("llm_calls_per_question"), 2), _fmt(r.get("latency_per_question"), 2)] * has_cost
        cells += [_fmt(r.get(k)) for k in ("fidelity", "fidelity_rare", "hallucination")] * has_fid
        cells += [_fmt(r["retrieval_hit"])] * has_hit
        cells += [_fmt(r.get("copy_accuracy"))] * has_copy
        cells += [_fmt(r.get("past_last_hop"))] * has_past
        cells += [_fmt(r.get("verify_changed")), _fmt(r.get("verify_helped")), _fmt(r.get("verify_hurt"))] * has_verify
        lines.append(f"| {r['label']} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Lay out, write (PNG, 110 dpi) and close a figure; return its path."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def plot_em_by_hops(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Grouped bars: EM per hop count, one bar per (run, method); None without hop counts."""
    hops = sorted({h for r in rows for h in r["em_by_hops"] if isinstance(h, int)})
    if not hops:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(hops) + 0.4 * len(rows)), 3.6))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(hops))]
        ax.bar(xs, [r["em_by_hops"].get(h, 0.0) for h in hops], width, label=r["label"])
    ax.set_xticks(range(len(hops)), [f"{h} hop{'s' * (h != 1)}" for h in hops])
    ax.set_ylabel("exact match")
    ax.set_ylim(0, 1.05)
    ax.set_title("EM by hop count")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def plot_by_actions(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """The paper's Fig. 3: success rate per number of actions (left) and the share of all
    correct answers that used that many actions (right), one line per (run, method)."""
    if not any(r["by_actions"] for r in rows):
        return None
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for r in rows:
        acts = sorted(a for a in r["by_actions"] if isinstance(a, int))
        if not acts:
            continue
        left.plot(acts, [r["by_actions"][a]["accuracy"] for a in acts], marker="o", label=r["label"])
        right.plot(acts, [r["by_actions"][a]["share_of_correct"] for a in acts], marker="o", label=r["label"])
    counts = [a for r in rows for a in r["by_actions"] if isinstance(a, int)]
    ticks = range(min(counts, default=0), max(counts, default=0) + 1)
    for ax, title in ((left, "success rate by #actions"), (right, "share of correct answers by #actions")):
        ax.set_xlabel("actions in the trajectory")
        ax.set_xticks(list(ticks))
        ax.set_xlim(ticks[0] - 0.5, ticks[-1] + 0.5)
        ax.set_ylim(-0.02, 1.05)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    left.set_ylabel("fraction")
    right.legend(fontsize=8)
    return save_figure(fig, path)


def cost_panels(rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The cost plot's points, one panel per evaluation environment (real first): the rows that
    say what training spent in real calls; only the ``agent`` rows (the trained model deciding by
    itself) when there are any, since a run's baselines share its cost and would pile up on one
    point. Evaluations in the simulated environment (the world model answering the searches)
    measure something else, so they are never beside the real ones.

    >>> rows = [{"train_real_calls": 9, "method": "agent", "env": e, "label": e} for e in ("simulated", "real")]
    >>> [(env, [r["label"] for r in ps]) for env, ps in cost_panels(rows + [{"train_real_calls": None}])]
    [('real', ['real']), ('simulated', ['simulated'])]
    """
    pts = [r for r in rows if r.get("train_real_calls") is not None]
    pts = [r for r in pts if r["method"] == "agent"] or pts
    panels = [(env, [r for r in pts if (r.get("env") or "real") == env]) for env in ("real", "simulated")]
    return [(env, ps) for env, ps in panels if ps]


def plot_cost(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Accuracy against the real tool calls spent in training (:func:`cost_panels`); None when
    no run says. Points are named in a legend, not by labels that overlap."""
    panels = cost_panels(rows)
    if not panels:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, (env, ps) in zip(axes[0], panels, strict=True):
        for i, r in enumerate(ps):
            ax.scatter(r["train_real_calls"], r["em"], s=40, marker="os^vDP*X"[i % 8], label=r["label"])
        ax.margins(x=0.2)
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlabel("real tool calls spent in training")
        ax.set_ylabel("EM (avg)")
        ax.set_title(f"accuracy vs real-environment cost ({env} env evaluation)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return save_figure(fig, path)


_LEGEND = (
    "*real calls/q*: real tool calls per question that answered (rag's one retrieval included); "
    "*errors/q*: tool calls per question that failed (a retriever down, a timeout): rows with errors do not "
    "measure the model alone; "
    "*malformed*: share of questions whose reply had no usable answer or chain (the error is in predictions.jsonl): "
    "a row of all malformed replies is a failed run, not a model that scores 0; "
    "*unneeded/q*, *missed/q*: searches beyond / short of the question's rare hops, per question."
)
_FIDELITY = (
    " *fidelity*: share of imagined results (simulated env) that state the searched hop's true object"
    " (*rare*: hops whose fact is only in the corpus); *hallucination*: share that state something else."
)
_HIT = (
    " *retrieval hit*: share of real search results that state the searched hop's true object;"
    " *copy acc*: of those, the share whose object the next thought or answer restates exactly."
)

_RL_LEGEND = (
    "*groups with no reward spread*: GRPO groups whose rollouts all got the same reward: their advantages are "
    "zero, so they teach nothing; *KL*: to the reference model (the RL stage's start); *held-out EM by step*: "
    "greedy, real search, on the run's held-out sample (its size is in heldout.jsonl)."
)


def heldout_rows(run: Path) -> list[dict[str, Any]]:
    """An RL run's held-out curve (``heldout.jsonl``, written with ``heldout_every``) by step;
    empty where it has none."""
    h = Path(run) / "heldout.jsonl"
    return sorted((r for r in read_logged(h) if "em" in r), key=lambda r: r["step"]) if h.exists() else []


def plot_rl_curves(rl_runs: Sequence[Path], path: Path, labels: Sequence[str] | None = None) -> Path | None:
    """Each RL run's training curves against the real tool calls spent so far: the step's mean
    reward (simulated steps hollow, real steps filled) from its ``metrics.jsonl``, and, where
    the run has one (``heldout_every``), held-out EM from its ``heldout.jsonl`` beside it.
    ``labels`` name the runs (default: their directories' names)."""
    curves, heldout = [], {}
    for i, d in enumerate(rl_runs):
        name = labels[i] if labels else Path(d).name
        m = Path(d) / "metrics.jsonl"
        if m.exists():
            pts = [r for r in read_logged(m) if "reward" in r and "real_calls_total" in r]
            if pts:
                curves.append((name, pts))
        if rows := heldout_rows(Path(d)):
            heldout[name] = rows
    if not curves:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 if heldout else 1, figsize=(11.0 if heldout else 6.4, 4.0), squeeze=False)
    ax = axes[0][0]
    colors = {}
    for name, pts in curves:
        (line,) = ax.plot([p["real_calls_total"] for p in pts], [p["reward"] for p in pts], "-", alpha=0.6, label=name)
        colors[name] = line.get_color()
        for real, face in ((False, "none"), (True, line.get_color())):
            sel = [p for p in pts if (p.get("rl/env_real", 0) == 1) == real]
            xs, ys = [p["real_calls_total"] for p in sel], [p["reward"] for p in sel]
            ax.scatter(xs, ys, s=18, facecolors=face, edgecolors=line.get_color())
    _unit_axes(ax, "mean reward of the step", "RL training (hollow: simulated steps, filled: real)")
    if heldout:
        hx = axes[0][1]
        for name, rows in heldout.items():
            hx.plot(
                [r["real_calls_total"] for r in rows],
                [r["em"] for r in rows],
                "o-",
                color=colors.get(name),
                label=f"{name} (n={rows[0]['n']})",
            )
            hx.annotate(f"step {rows[-1]['step']}", (rows[-1]["real_calls_total"], rows[-1]["em"]), fontsize=7)
        _unit_axes(hx, "held-out EM (greedy, real search)", "held-out EM during RL")
    return save_figure(fig, path)


def rl_table(rl_runs: Sequence[Path]) -> str | None:
    """One line per RL run: its steps (simulated + real) and real tool calls (``rl.json``), the
    mean reward and the share of GRPO groups with no reward spread of each kind of step, the KL
    at the last step (:func:`autocoa.train.rl.schedule_means` over ``metrics.jsonl``) and the
    held-out curve (``heldout.jsonl``). None when no run has finished (no ``rl.json``)."""
    from autocoa.train.rl import schedule_means

    lines = [
        "| RL run | steps: simulated + real | real calls | mean reward: simulated / real | groups with no reward "
        "spread: simulated / real | KL, last step | held-out EM by step |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for d in map(Path, rl_runs):
        if not (d / "rl.json").exists():
            continue
        run, sig = json.loads((d / "rl.json").read_text(encoding="utf-8")), schedule_means(d / "metrics.jsonl")
        curve = ", ".join(f"{r['step']}: {r['em']:.2f}" for r in heldout_rows(d)) or "-"
        lines.append(
            f"| {d.name} | {run.get('sim_steps_done', 0)} + {run.get('real_steps_done', 0)} | "
            f"{run.get('real_calls_total', 0)} | {_fmt(sig['reward_sim'])} / {_fmt(sig['reward_real'])} | "
            f"{_fmt(sig['zero_spread_sim'], 2)} / {_fmt(sig['zero_spread_real'], 2)} | "
            f"{_fmt(sig['kl_last'], 4)} | {curve} |"
        )
    return "\n".join(lines) if len(lines) > 2 else None


def _unit_axes(ax, ylabel: str, title: str) -> None:
    """An RL curve's axes: real calls spent on x, a share in [0, 1] on y."""
    ax.set_xlabel("real tool calls spent in RL so far")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def recall_table(knowledge: dict[str, dict[str, dict]]) -> str:
    """The Markdown table of closed-book recall by exposure count: one row per bucket, the
    facts and recall over every pool and over the held-out test pool."""
    buckets = list(knowledge.get("all", {}))
    lines = [
        "| times pretrain.txt states the fact | facts | recall | mean p(object) | test facts | test recall |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for b in buckets:
        a, t = knowledge["all"][b], knowledge.get("test", {}).get(b, {})
        lines.append(
            f"| {b} | {a['n']} | {a['recall']:.3f} | {a['p']:.3f} | {t.get('n', 0)} | {_fmt(t.get('recall'))} |"
        )
    return "\n".join(lines)


def plot_recall(knowledge: dict[str, dict[str, dict]], path: Path) -> Path | None:
    """Closed-book recall against exposure count (all pools, and the test pool)."""
    if not knowledge.get("all"):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for key, label in (("all", "every pool"), ("test", "test pool")):
        table = knowledge.get(key, {})
        if table:
            ax.plot(list(table), [v["recall"] for v in table.values()], marker="o", label=label)
    ax.set_xlabel("times pretrain.txt states the fact (read once per epoch)")
    ax.set_ylabel("closed-book recall (greedy)")
    ax.set_ylim(0, 1.05)
    ax.set_title("What the base model knows, by exposure")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_reading_curve(curve: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """The reading test against the pretraining step (``reading_eval_steps``): where copying a
    name just read emerges."""
    if not curve:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    ax.plot([r["step"] for r in curve], [r["reading"] for r in curve], marker=".")
    ax.set_xlabel("pretraining step")
    ax.set_ylabel("reading test (greedy)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Reading a passage never seen, during pretraining", fontsize=10)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def read_recall(base_dir: Path) -> dict[str, Any] | None:
    """The recall-by-exposure tables of a pretrained base model (its ``knowledge.jsonl``), its
    reading test (``pretrain.json``) and the test's curve during pretraining (``metrics.jsonl``)."""
    from autocoa.jsonl import read_jsonl
    from autocoa.knowledge import recall_by_exposure

    path = Path(base_dir) / "knowledge.jsonl"
    if not path.exists():
        return None
    rows = [row for _, row in read_jsonl(path)]
    out = {"all": recall_by_exposure(rows), "test": recall_by_exposure(rows, pools=("test",))}
    summary = Path(base_dir) / "pretrain.json"
    if summary.exists():  # the reading test, written beside it by pretraining
        reading = json.loads(summary.read_text(encoding="utf-8")).get("recall_by_exposure", {}).get("reading")
        if reading:
            out["reading"] = reading
    metrics = Path(base_dir) / "metrics.jsonl"
    curve = [r for r in read_logged(metrics) if "reading" in r] if metrics.exists() else []
    if curve:
        out["reading_curve"] = curve
    return out


# long: the report's sections in order over the same loaded runs and output paths, each a call
def write_report(
    runs: Sequence[dict[str, Any]],
    out_dir: str | Path,
    rl_runs: Sequence[Path] = (),
    knowledge: dict[str, dict[str, dict]] | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``results.json`` and the plots into ``out_dir``;
    return their paths. ``runs`` are metrics dicts as :func:`load_run` (or
    :func:`~autocoa.eval.runner.evaluate`) returns them; ``rl_runs``: RL output directories,
    whose training curves are plotted and whose rollouts join the HTML report's trajectory
    browser beside the predictions of the runs loaded from a directory; ``knowledge``: the
    base model's recall by exposure (:func:`read_recall`), as a table and a plot."""
    if not runs:
        raise ValueError("no runs to report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = result_rows(runs)
    paths: dict[str, Path] = {}
    plots = {
        "em_by_hops": plot_em_by_hops(rows, out / "em_by_hops.png"),
        "by_actions": plot_by_actions(rows, out / "success_by_actions.png"),
        "cost": plot_cost(rows, out / "accuracy_vs_train_calls.png"),
        "rl": plot_rl_curves(rl_runs, out / "rl_curves.png"),
        "recall": plot_recall(knowledge, out / "recall_by_exposure.png") if knowledge else None,
        "reading": plot_reading_curve((knowledge or {}).get("reading_curve", []), out / "reading_curve.png"),
    }
    paths.update({k: p for k, p in plots.items() if p is not None})
    (out / "results.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["results"] = out / "results.json"
    lines = ["# Evaluation report", ""]
    for run in runs:
        r = run.get("run", {})
        lines.append(
            f"- **{r.get('label', 'run')}**: model `{r.get('model', '?')}`, data `{r.get('data', '?')}`, "
            f"env {r.get('env', '?')}, {r.get('n_questions', '?')} questions, ReAct steps {r.get('react_steps', '?')}"
            + (f", train real calls {run['train_real_calls']}" if run.get("train_real_calls") is not None else "")
        )
    lines += [
        "",
        results_table(rows),
        "",
        _LEGEND
        + (_FIDELITY if any(r["fidelity"] is not None for r in rows) else "")
        + (_HIT if any(r["retrieval_hit"] is not None for r in rows) else "")
        + " Definitions: `autocoa.analysis`.",
        "",
    ]
    titles = {
        "em_by_hops": "EM by hop count",
        "by_actions": "Success rate by number of actions (paper Fig. 3)",
        "cost": "Accuracy vs real tool calls spent in training",
        "rl": "RL training: reward against real calls spent",
        "recall": "Closed-book recall of the base model by exposure count",
        "reading": "The reading test during pretraining",
    }
    for key, title in titles.items():
        if key in paths:
            lines += [f"## {title}", "", f"![{title}]({paths[key].name})", ""]
            if key == "rl" and (table := rl_table(rl_runs)):
                lines += [table, "", _RL_LEGEND, ""]
            if key == "recall" and knowledge:
                lines += [recall_table(knowledge), ""]
                if knowledge.get("reading"):
                    r = knowledge["reading"]
                    lines += [
                        f"Reading test of the base model (a test entity's document pretraining never stated, then "
                        f"a question about it): {_fmt(r['accuracy'])} of {r['n']} answered from the passage.",
                        "",
                    ]
    if "cost" not in paths:
        lines += ["(No run carries `train_real_calls`: the cost plot is skipped.)", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    paths["report"] = out / "report.md"
    from autocoa.eval.html_report import sample_rows, write_html

    samples = [
        t
        for run in runs
        if run.get("run", {}).get("dir")
        for t in sample_rows(Path(run["run"]["dir"]) / "predictions.jsonl", run["run"]["label"])
    ]
    samples += [t for d in rl_runs for t in sample_rows(Path(d) / "rollouts.jsonl", Path(d).name)]
    paths["html"] = write_html(rows, {titles[k]: paths[k] for k in titles if k in paths}, samples, out / "report.html")
    return paths
