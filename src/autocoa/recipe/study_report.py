"""A study's report: ``report.md`` (rows as mean and min-max over seeds), ``results.json`` and plots.

Plots: ``frontier.png`` (held-out EM against real tool calls spent in RL, error bars min-max,
one point per schedule), ``fidelity.png`` (world-model fidelity on the RL pool / unseen training
questions / held-out questions and held-out EM after RL, against the world-model budget), and
``ablations.png`` (EM avg per row with its spread). Every study also gets
``accuracy_vs_train_calls.png`` (every row with its real calls), and, where the recipe's RL ran
with a held-out curve (``rl.heldout_every``), ``rl_curves.png`` and a table of that curve per seed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autocoa.eval.report import heldout_rows, plot_rl_curves, pyplot, save_figure
from autocoa.recipe.study import PAPER, REAL_ONLY, RECIPE, spread


def fmt(s: dict[str, Any] | None, digits: int = 3) -> str:
    """``mean (min-max)`` of a :func:`~autocoa.recipe.study.spread`, or ``-``.

    >>> fmt({"mean": 0.61, "min": 0.5, "max": 0.7, "n": 3}), fmt(None)
    ('0.610 (0.500-0.700)', '-')
    >>> fmt({"mean": 2.0, "min": 2, "max": 2, "n": 3}, 0)
    '2'
    """
    if not s:
        return "-"
    if s["min"] == s["max"]:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


BY_HOPS = [
    ("EM avg", "em", 3),
    ("1", "em_1hop", 3),
    ("2", "em_2hop", 3),
    ("3", "em_3hop", 3),
    ("4", "em_4hop", 3),
    ("calls/q", "calls_per_q", 2),
    ("RL real calls", "real_calls", 0),
]
COLUMNS = {
    "demo": [
        *BY_HOPS,
        ("copy acc", "copy_acc", 3),
        ("past last hop", "past_last_hop", 3),
        ("past, 1-hop", "past_1hop", 3),
        ("unneeded/q", "unneeded", 2),
        ("missed/q", "missed", 2),
        ("fidelity test", "fidelity_test", 3),
        ("fidelity pool", "fidelity_pool", 3),
        ("reward sim", "reward_sim", 3),
        ("reward real", "reward_real", 3),
    ],
    "ablations": [  # with what each RL row had to learn from (autocoa.train.rl.schedule_means)
        *BY_HOPS,
        ("missed/q", "missed", 2),
        ("reward sim", "reward_sim", 3),
        ("no spread, sim", "zero_spread_sim", 2),
        ("no spread, real", "zero_spread_real", 2),
        ("KL last", "kl_last", 4),
    ],
    "frontier": [
        ("EM avg", "em", 3),
        ("RL real calls", "real_calls", 0),
        ("reward sim", "reward_sim", 3),
        ("reward real", "reward_real", 3),
        ("fidelity in RL", "fidelity_in_rl", 3),
    ],
    "fidelity-curve": [  # what the simulated steps had, and what they bought (paired below)
        ("EM avg", "em", 3),
        ("4", "em_4hop", 3),
        ("RL real calls", "real_calls", 0),
        ("fidelity in RL", "fidelity_in_rl", 3),
        ("world model's", "fidelity_model_in_rl", 3),
        ("reward sim", "reward_sim", 3),
        ("no spread, sim", "zero_spread_sim", 2),
        ("missed/q", "missed", 2),
    ],
    "fidelity": [
        ("fidelity pool", "fidelity_pool", 3),
        ("fid. pool rare", "fidelity_rare_pool", 3),
        ("halluc. pool", "hallucination_pool", 3),
        ("fidelity unseen", "fidelity_unseen", 3),
        ("fidelity test", "fidelity_test", 3),
        ("sim EM pool", "sim_em_pool", 3),
        ("EM start", "em_start", 3),
        ("EM after RL", "em", 3),
        ("reward sim", "reward_sim", 3),
    ],
}


# Paired comparisons each study reports: (row, baseline row) by name, the difference of their
# held-out EM per seed. Pairs whose rows a grid lacks are left out.
PAIRS = {
    "demo": [
        (RECIPE, "SFT-1&2&3"),
        (RECIPE, "recipe model, ReAct workflow"),
        (RECIPE, "recipe model, RAG"),
        (RECIPE, "recipe model, direct"),
    ],
    "ablations": [
        ("SFT-1&2", "SFT-2"),
        ("SFT-1&2&3", "SFT-1&2"),
        ("SFT-1&2&3 + RL-1 (sim only)", "SFT-1&2&3"),
        (PAPER, "SFT-1&2&3"),
        ("SFT-1&2&3 + RL-2 (all real)", "SFT-1&2&3"),
        (REAL_ONLY, "SFT-1&2&3"),
        # what the simulated steps themselves contribute: the paper's schedule against its real steps alone
        (PAPER, REAL_ONLY),
        ("SFT-1&2 + RL-2 (all real)", "SFT-1&2"),
    ],
}


def _curve_pairs() -> list[tuple[str, str]]:
    from autocoa.recipe.study import ALL_REAL, ENDPOINT, FIDELITIES, REAL_ALONE, oracle_row_name

    simulated = [*(oracle_row_name(p) for p in FIDELITIES), ENDPOINT]
    return [(r, REAL_ALONE) for r in simulated] + [(r, ALL_REAL) for r in simulated] + [(ALL_REAL, REAL_ALONE)]


PAIRS["fidelity-curve"] = _curve_pairs()


def break_even(points: Sequence[tuple[float, float]]) -> float | None:
    """The fidelity at which the simulated steps' paired gain crosses zero going up: linear
    between the last point below zero and the next at or above it, over the points sorted by
    fidelity; the first fidelity when every gain is >= 0; None when none is.

    >>> break_even([(0.0, -0.05), (0.5, -0.01), (1.0, 0.03)])
    0.625
    >>> break_even([(0.1, 0.01), (0.9, 0.02)]), break_even([(0.0, -0.1), (1.0, -0.02)])
    (0.1, None)
    """
    pts = sorted(points)
    if not pts or pts[-1][1] < 0:
        return None
    below = [i for i, (_, g) in enumerate(pts) if g < 0]
    if not below:
        return pts[0][0]
    i = below[-1]
    (x0, y0), (x1, y1) = pts[i], pts[i + 1]
    return round(x0 + (0 - y0) * (x1 - x0) / (y1 - y0), 4)


def curve_points(rows: Sequence[dict[str, Any]], diffs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fidelity curve's points: per simulated row, the fidelity measured during its simulated
    steps (``fidelity_in_rl``) and its paired gain over the same real steps alone."""
    from autocoa.recipe.study import REAL_ALONE

    gain = {d["row"]: d for d in diffs if d["baseline"] == REAL_ALONE}
    out = []
    for r in rows:
        if r["name"] in gain and r.get("fidelity_in_rl"):
            out.append({"name": r["name"], "fidelity": r["fidelity_in_rl"], "gain": gain[r["name"]]})
    return out


def plot_fidelity_curve(points: Sequence[dict[str, Any]], all_real: dict[str, Any] | None, path: Path) -> Path | None:
    """Paired gain of the simulated steps over their real steps alone against the fidelity
    measured during them (means, bars min-max over seeds), all-real RL's gain as a line."""
    if not points:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for p in points:
        f, g = p["fidelity"], p["gain"]
        ax.errorbar([f["mean"]], [g["mean"]], xerr=_err(f), yerr=_err(g), fmt="o", capsize=3, color="#3b6ea5")
        ax.annotate(p["name"], (f["mean"], g["mean"]), xytext=(6, 4), textcoords="offset points", fontsize=7)
    ax.axhline(0.0, color="0.3", lw=0.8)
    if all_real is not None:
        ax.axhline(all_real["mean"], color="#b5543c", lw=0.8, ls="--", label="all-real RL over the real steps alone")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("fidelity during the simulated steps (results stating the hop's fact)")
    ax.set_ylabel("held-out EM gain over the real steps alone (paired)")
    ax.set_title("what simulated RL steps buy, by the simulator's fidelity", fontsize=10)
    ax.set_xlim(-0.05, 1.2)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def paired(rows: Sequence[dict[str, Any]], pairs: Sequence[tuple[str, str]], key: str = "em") -> list[dict[str, Any]]:
    """Paired differences: per seed ``row - baseline`` of ``key`` for each (row, baseline) of
    ``pairs`` whose rows exist (a study's: :data:`PAIRS`), and their spread.

    >>> rows = [{"name": "a", "em": {"values": [0.5, 0.7]}}, {"name": "b", "em": {"values": [0.4, 0.8]}}]
    >>> paired(rows, [("a", "b"), ("a", "missing")])
    [{'row': 'a', 'baseline': 'b', 'per_seed': [0.1, -0.1], 'mean': 0.0, 'min': -0.1, 'max': 0.1}]
    """
    by = {r["name"]: r.get(key) for r in rows}
    out = []
    for a, b in pairs:
        if not by.get(a) or not by.get(b) or len(by[a]["values"]) != len(by[b]["values"]):
            continue
        d = [round(x - y, 4) for x, y in zip(by[a]["values"], by[b]["values"], strict=True)]
        out.append(
            {"row": a, "baseline": b, "per_seed": d, "mean": round(sum(d) / len(d), 4), "min": min(d), "max": max(d)}
        )
    return out


def paired_table(diffs: Sequence[dict[str, Any]]) -> str:
    """The Markdown table of :func:`paired`'s differences."""
    lines = ["| row | minus | mean | min | max | per seed |", "|---|---|---:|---:|---:|---|"]
    for d in diffs:
        seeds = " / ".join(f"{x:+.3f}" for x in d["per_seed"])
        lines.append(
            f"| {d['row']} | {d['baseline']} | {d['mean']:+.3f} | {d['min']:+.3f} | {d['max']:+.3f} | {seeds} |"
        )
    return "\n".join(lines)


def markdown_table(study: str, rows: Sequence[dict[str, Any]], keys: Sequence[str] | None = None) -> str:
    """The study's :data:`COLUMNS` that any row has a value for (a study run before a column
    existed keeps its table), one line per row; ``keys``: only the columns of these result keys
    (a narrow table; a key that is not one of the study's columns is an error).

    >>> rows = [{"name": "a", "em": {"mean": 0.5, "min": 0.5, "max": 0.5}, "missed": {"mean": 1, "min": 1, "max": 1}}]
    >>> print(markdown_table("ablations", rows, keys=["em"]))
    | row | EM avg |
    |---|---:|
    | a | 0.500 |
    """
    known = [c[1] for c in COLUMNS[study]]
    if keys is not None and (unknown := [k for k in keys if k not in known]):
        raise ValueError(f"columns {unknown} are not columns of the {study!r} table: {', '.join(known)}")
    cols = [c for c in COLUMNS[study] if any(r.get(c[1]) for r in rows) and (keys is None or c[1] in keys)]
    lines = ["| row | " + " | ".join(c[0] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for r in rows:
        lines.append(f"| {r['name']} | " + " | ".join(fmt(r.get(k), d) for _, k, d in cols) + " |")
    return "\n".join(lines)


def collapse_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| SFT-1 run | logp chosen first -> last | logp rejected first -> last | both fell |",
        "|---|---|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {fmt(r['chosen_first'])} -> {fmt(r['chosen_last'])} | "
            f"{fmt(r['rejected_first'])} -> {fmt(r['rejected_last'])} | {r['collapsed']} |"
        )
    return "\n".join(lines)


def _err(s: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Error bar lengths below and above the mean (never negative: the mean is rounded)."""
    return [max(0.0, s["mean"] - s["min"])], [max(0.0, s["max"] - s["mean"])]


def label_heights(xs: Sequence[float], ys: Sequence[float], gap: float, near: float) -> list[float]:
    """Heights for the labels of points (xs, ys): points whose x lie within ``near`` of each other
    share a column, in which the labels keep their points' order from bottom to top and stand at
    least ``gap`` apart, each as low as that allows but never below its point.

    >>> label_heights([0, 0, 0, 1500], [0.897, 0.907, 0.848, 0.931], gap=0.02, near=100)
    [0.897, 0.917, 0.848, 0.931]
    """
    out = list(ys)
    by_x = sorted(range(len(xs)), key=lambda i: xs[i])
    columns: list[list[int]] = []
    for i in by_x:
        if columns and xs[i] - xs[columns[-1][-1]] <= near:
            columns[-1].append(i)
        else:
            columns.append([i])
    for col in columns:
        below = None
        for i in sorted(col, key=lambda i: (ys[i], i)):
            out[i] = ys[i] if below is None else max(ys[i], below + gap)
            below = out[i]
    return out


def plot_cost(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path | None:
    """EM (mean, min-max bars) against real calls spent in RL (mean, min-max bars); each point's
    label beside it, in its points' order where points share an x (:func:`label_heights`), and no
    legend (it repeated the labels, and covered some)."""
    pts = [r for r in rows if r.get("em") and r.get("real_calls") and r.get("method", "agent") == "agent"]
    if not pts:
        return None
    from matplotlib.transforms import offset_copy

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    xs, ys = [r["real_calls"]["mean"] for r in pts], [r["em"]["mean"] for r in pts]
    lows, highs = [r["em"]["min"] for r in pts], [r["em"]["max"] for r in pts]
    span = max(max(highs) - min(lows), 0.05)
    heights = label_heights(xs, ys, gap=0.045 * span, near=0.08 * max(max(xs) - min(xs), 1.0))
    beside = offset_copy(ax.transData, fig=fig, x=6, y=0, units="points")  # 6 points right of its place
    for r, x, y, h in zip(pts, xs, ys, heights, strict=True):
        label = r["params"].get("schedule") if r.get("params", {}).get("schedule") not in (None, "-") else r["name"]
        ax.errorbar([x], [y], xerr=_err(r["real_calls"]), yerr=_err(r["em"]), fmt="o", capsize=3, label=r["name"])
        leader = None if h == y else {"arrowstyle": "-", "lw": 0.5, "color": "0.5"}
        right = max(x, r["real_calls"].get("max", x))  # past the x bar's end
        ax.annotate(label, (x, y), xytext=(right, h), textcoords=beside, fontsize=7, va="center", arrowprops=leader)
    ax.set_xlabel("real tool calls spent in RL (mean over seeds, bars: min-max)")
    ax.set_ylabel("held-out EM (avg)")
    ax.set_title(title, fontsize=10)
    ax.margins(x=0.25, y=0.15)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_fidelity(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Fidelity on each question set and held-out EM after RL, against the world-model budget."""
    rows = [r for r in rows if "pool_repeats" in r["params"]]
    if not rows:
        return None
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    xs = [r["params"]["pool_repeats"] for r in rows]
    for key, label in (
        ("fidelity_pool", "RL pool"),
        ("fidelity_unseen", "unseen training q."),
        ("fidelity_test", "held-out"),
    ):
        ss = [r.get(key) for r in rows]
        if any(ss):
            pts = [(x, s) for x, s in zip(xs, ss, strict=True) if s]
            left.errorbar(
                [p[0] for p in pts],
                [p[1]["mean"] for p in pts],
                yerr=[[_err(p[1])[0][0] for p in pts], [_err(p[1])[1][0] for p in pts]],
                marker="o",
                capsize=3,
                label=label,
            )
    for key, label in (("em_start", "SFT-1&2&3 (start)"), ("em", "after RL (recipe schedule)")):
        ss = [r.get(key) for r in rows]
        pts = [(x, s) for x, s in zip(xs, ss, strict=True) if s]
        if pts:
            right.errorbar(
                [p[0] for p in pts],
                [p[1]["mean"] for p in pts],
                yerr=[[_err(p[1])[0][0] for p in pts], [_err(p[1])[1][0] for p in pts]],
                marker="o",
                capsize=3,
                label=label,
            )
    left.set_title("world-model fidelity (imagined results stating the fact)", fontsize=9)
    right.set_title("held-out EM, real environment", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("world-model budget: copies of the RL pool in SFT-3")
        ax.set_ylim(-0.02, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_rows(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Horizontal bars: EM avg per row, min-max as error bars."""
    rows = [r for r in rows if r.get("em")]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 0.4 * len(rows) + 1.2))
    ys = list(range(len(rows)))[::-1]
    means = [r["em"]["mean"] for r in rows]
    err = [[_err(r["em"])[0][0] for r in rows], [_err(r["em"])[1][0] for r in rows]]
    ax.barh(ys, means, xerr=err, capsize=3, color="#6a8fbf")
    ax.set_yticks(ys, [r["name"] for r in rows], fontsize=8)
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("held-out EM (mean over seeds, bars: min-max)")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


def code_version() -> str | None:
    """The commit the code runs from (``+dirty`` with uncommitted changes), None outside git."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def seed_scope(config: dict[str, Any] | None) -> str:
    """What a study's seed varied, in words, from the recipe it ran (older results files: both).

    >>> seed_scope({"seeds_vary_world": False})
    'training seeds; one world and base model'
    >>> seed_scope(None)
    'world seed and training seed'
    """
    if config is not None and config.get("seeds_vary_world") is False:
        return "training seeds; one world and base model"
    return "world seed and training seed"


def heldout_table(curves: dict[str, list[dict[str, Any]]]) -> str:
    """Held-out EM at each step of the curves (run label -> :func:`heldout_rows`), one row a run.

    >>> print(heldout_table({"seed 0": [{"step": 0, "em": 0.2, "n": 30}, {"step": 6, "em": 0.3, "n": 30}]}))
    | run | step 0 | step 6 |
    |---|---:|---:|
    | seed 0 | 0.200 | 0.300 |
    """
    steps = sorted({r["step"] for rows in curves.values() for r in rows})
    lines = ["| run | " + " | ".join(f"step {s}" for s in steps) + " |", "|---|" + "---:|" * len(steps)]
    for label, rows in curves.items():
        at = {r["step"]: r["em"] for r in rows}
        lines.append(f"| {label} | " + " | ".join(f"{at[s]:.3f}" if s in at else "-" for s in steps) + " |")
    return "\n".join(lines)


def heldout_section(curves: dict[str, list[dict[str, Any]]]) -> str:
    """:func:`heldout_table` under a line saying what was measured."""
    n = next(iter(curves.values()))[0]["n"]
    return f"Held-out EM during the recipe's RL ({n} dev questions, greedy, real search):\n\n{heldout_table(curves)}"


def stage_times(roots: Sequence[Path], names: Sequence[str]) -> dict[str, Any]:
    """Seconds per stage over the seed directories ``roots`` (each one's ``timings.json``, which
    keeps the time of the run that made a stage: a reused stage keeps its first time), for the
    stages ``names`` in order, with each seed's total; a stage a seed has no time for is None.

    >>> import tempfile, json
    >>> d = Path(tempfile.mkdtemp())
    >>> for s, t in ((0, {"sft1": 10.0, "rl": 30.0}), (1, {"sft1": 14.0})):
    ...     (d / f"seed{s}").mkdir()
    ...     _ = (d / f"seed{s}" / "timings.json").write_text(json.dumps(t))
    >>> st = stage_times([d / "seed0", d / "seed1"], ["sft1", "rl"])
    >>> st["stages"]["sft1"]["per_seed"], st["stages"]["sft1"]["mean"], st["stages"]["rl"]["per_seed"]
    ([10.0, 14.0], 12.0, [30.0, None])
    >>> st["total"]["per_seed"]
    [40.0, None]
    """

    def summary(values: list[float | None]) -> dict[str, Any]:
        return {"per_seed": values, **(spread(values) or {})}

    per_root = [json.loads(t.read_text()) if (t := r / "timings.json").exists() else {} for r in roots]
    stages = {n: summary([t.get(n) for t in per_root]) for n in names}
    totals = [
        None if any(stages[n]["per_seed"][i] is None for n in names) else sum(stages[n]["per_seed"][i] for n in names)
        for i in range(len(roots))
    ]
    return {"stages": stages, "total": summary(totals)}


def timings_table(times: dict[str, Any], seeds: Sequence[int]) -> str:
    """:func:`stage_times` as a table of minutes: mean (min-max) over seeds, and each seed's.

    >>> t = {"stages": {"rl": {"per_seed": [60.0, None], "mean": 60.0, "min": 60.0, "max": 60.0}},
    ...      "total": {"per_seed": [60.0, None], "mean": 60.0, "min": 60.0, "max": 60.0}}
    >>> print(timings_table(t, [0, 1]))
    | stage | minutes, mean (min-max) | seed 0 / 1 |
    |---|---:|---|
    | rl | 1.0 | 1.0 / - |
    | **all** | 1.0 | 1.0 / - |
    """

    def minutes(s: dict[str, Any]) -> str:
        scaled = {k: round(s[k] / 60, 1) for k in ("mean", "min", "max") if k in s}
        return fmt(scaled, 1) if scaled else "-"

    def each(s: dict[str, Any]) -> str:
        return " / ".join("-" if v is None else f"{v / 60:.1f}" for v in s["per_seed"])

    lines = [f"| stage | minutes, mean (min-max) | seed {' / '.join(map(str, seeds))} |", "|---|---:|---|"]
    for name, s in [*times["stages"].items(), ("**all**", times["total"])]:
        lines.append(f"| {name} | {minutes(s)} | {each(s)} |")
    return "\n".join(lines)


TIMINGS_NOTE = "Stage times (each stage's run; on a shared 2-core CPU they vary with the load):"


def study_plots(study: str, rows: Sequence[dict[str, Any]], out: Path, rl_runs: dict[str, Path]) -> dict[str, Path]:
    """The study's plots that apply to it (module docstring), by key; ``rl_runs``: RL curves of these."""
    plots = {
        "frontier": plot_cost(rows, out / "frontier.png", "sim:real frontier at equal total GRPO steps")
        if study == "frontier"
        else None,
        "fidelity": plot_fidelity(rows, out / "fidelity.png") if study == "fidelity" else None,
        "fidelity_curve": _fidelity_curve_plot(rows, out) if study == "fidelity-curve" else None,
        "rows": plot_rows(rows, out / f"{study}_rows.png"),
        "cost": plot_cost(rows, out / "accuracy_vs_train_calls.png", "accuracy vs real calls spent in training"),
        "rl": plot_rl_curves(list(rl_runs.values()), out / "rl_curves.png", list(rl_runs)) if rl_runs else None,
    }
    return {k: v for k, v in plots.items() if v is not None}


def _fidelity_curve_plot(rows: Sequence[dict[str, Any]], out: Path) -> Path | None:
    from autocoa.recipe.study import ALL_REAL, REAL_ALONE

    diffs = paired(rows, PAIRS["fidelity-curve"])
    all_real = next((d for d in diffs if d["row"] == ALL_REAL and d["baseline"] == REAL_ALONE), None)
    return plot_fidelity_curve(curve_points(rows, diffs), all_real, out / "fidelity_curve.png")


def curve_summary(rows: Sequence[dict[str, Any]], diffs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The fidelity curve's points and its break-even fidelity (on the mean gains), for results.json
    and the report; None outside that study."""
    points = curve_points(rows, diffs)
    if not points:
        return None
    be = break_even([(p["fidelity"]["mean"], p["gain"]["mean"]) for p in points])
    every = [p["fidelity"]["mean"] for p in points if p["gain"]["min"] > 0]
    return {"points": points, "break_even": be, "positive_on_every_seed_from": min(every) if every else None}


def curve_note(curve: dict[str, Any]) -> str:
    be = curve["break_even"]
    where = (
        f"at a measured fidelity of {be:.3f}"
        if be is not None
        else "nowhere on the curve (every mean gain is negative)"
    )
    every = curve.get("positive_on_every_seed_from")
    seeds = (
        f"; the lowest measured fidelity whose gain is positive on every seed is {every:.3f}"
        if every is not None
        else "; no fidelity's gain is positive on every seed"
    )
    return (
        "The simulated steps break even against their real steps alone (mean paired gain crosses 0) "
        f"{where}: linear between the two measured points around the crossing{seeds}."
    )


def shared_sections(
    diffs: Sequence[dict[str, Any]],
    curves: dict[str, list[dict[str, Any]]] | None,
    timings: dict[str, Any] | None,
    seeds: Sequence[int],
) -> list[str]:
    """The sections after the table that a study's report and a page's results block both show:
    the paired differences, the held-out curves and the stage times, each where there is one."""
    sections = []
    if diffs:
        sections.append(f"Paired differences of held-out EM (the same seed's rows):\n\n{paired_table(diffs)}")
    if curves:
        sections.append(heldout_section(curves))
    if timings:
        sections.append(f"{TIMINGS_NOTE}\n\n{timings_table(timings, seeds)}")
    return sections


def report_lines(
    study: str,
    rows: Sequence[dict[str, Any]],
    seeds: Sequence[int],
    config: dict[str, Any] | None,
    diffs: Sequence[dict[str, Any]],
    curves: dict[str, list[dict[str, Any]]],
    timings: dict[str, Any] | None,
    collapse: Sequence[dict[str, Any]],
    notes: str,
    paths: dict[str, Path],
) -> list[str]:
    """The lines of a study's ``report.md``: the table, the paired differences, the held-out
    curves, the stage times, the SFT-1 monitor, ``notes`` and the plots (``paths``)."""
    lines = [
        f"# Study: {study}",
        "",
        f"Seeds {', '.join(map(str, seeds))} ({seed_scope(config)}). Each cell: mean (min-max) over the seeds.",
        "",
        markdown_table(study, rows),
        "",
    ]
    for section in shared_sections(diffs, curves, timings, seeds):
        lines += [section, ""]
    if collapse:
        lines += ["## SFT-1 contrastive-collapse monitor", "", collapse_table(collapse), ""]
    if notes:
        lines += [notes, ""]
    for key, p in paths.items():
        if p.suffix == ".png":
            lines += [f"![{key}]({p.name})", ""]
    return lines


def write_study_report(
    study: str,
    rows: Sequence[dict[str, Any]],
    collapse: Sequence[dict[str, Any]],
    seeds: Sequence[int],
    out: Path,
    notes: str = "",
    config: dict[str, Any] | None = None,
    rl_runs: dict[str, Path] | None = None,
    timings: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """The study's ``results.json`` (rows, seeds, the commit and the recipe it ran), its
    ``report.md`` and plots; ``rl_runs`` (label -> the recipe's RL directory of a seed): their
    training and held-out curves; ``timings``: the stage times (:func:`stage_times`)."""
    out.mkdir(parents=True, exist_ok=True)
    rl_runs = rl_runs or {}
    curves = {label: c for label, d in rl_runs.items() if (c := heldout_rows(d))}
    paths = study_plots(study, rows, out, rl_runs if curves else {})
    diffs = paired(rows, PAIRS.get(study, []))
    curve = curve_summary(rows, diffs) if study == "fidelity-curve" else None
    if curve is not None:
        notes = f"{curve_note(curve)}\n\n{notes}" if notes else curve_note(curve)
    (out / "results.json").write_text(
        json.dumps(
            {
                "study": study,
                "seeds": list(seeds),
                "commit": code_version(),
                "config": config,
                "rows": list(rows),
                "paired": diffs,
                "collapse": list(collapse),
                "heldout": curves,
                "timings": timings,
                **({"fidelity_curve": curve} if curve is not None else {}),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    paths["results"] = out / "results.json"
    lines = report_lines(study, rows, seeds, config, diffs, curves, timings, collapse, notes, paths)
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    paths["report"] = out / "report.md"
    return paths


def run_study(study: str, cfg: Any, out: Path, seeds: Sequence[int], console: Any = None) -> dict[str, Any]:
    """Run (or resume) study ``study`` over ``seeds``; write ``out/<study>/``; return its results."""
    from rich.console import Console

    from autocoa.progress import live, live_display
    from autocoa.recipe.config import for_seed
    from autocoa.recipe.stages import run_stages
    from autocoa.recipe.study import aggregate_rows, collapse_rows, seed_stages

    console = console or Console()
    out = Path(out)
    grids = {s: seed_stages(study, for_seed(cfg, s), out / f"seed{s}") for s in seeds}
    total = sum(len(g.stages) for g in grids.values())
    with live_display(console) as bar, live(bar):
        task = bar.add_task(f"study {study}", total=total)
        for s, grid in grids.items():
            root = out / f"seed{s}"
            root.mkdir(parents=True, exist_ok=True)
            for_seed(cfg, s).save(root / "demo_config.yaml")

            def start(st, s=s):
                bar.update(task, description=f"study {study}: seed {s} {st.name}")

            def end(st, summary, seconds, s=s):
                if seconds is not None:
                    console.log(f"seed {s} {st.name}: {seconds} s")
                bar.advance(task)

            run_stages(
                grid.stages,
                root / "timings.json",
                on_start=start,
                on_end=end,
                keep_checkpoints=cfg.keep_checkpoints,
                weights_on_disk=cfg.weights_on_disk,
            )
    roots = [out / f"seed{s}" for s in seeds]
    first = next(iter(grids.values()))
    rows = aggregate_rows(roots, first.rows)
    collapse = collapse_rows(roots, first.sft1)
    rl_runs = {f"seed {s}": out / f"seed{s}" / "rl" for s in seeds}
    times = stage_times(roots, [st.name for st in first.stages])
    paths = write_study_report(
        study, rows, collapse, seeds, out / study, config=cfg.model_dump(mode="json"), rl_runs=rl_runs, timings=times
    )
    console.print(f"study {study}: {paths['report']}")
    return {"rows": rows, "collapse": collapse, "report": str(paths["report"])}


# A README or docs page shows a study's table between these markers; the block is rendered from
# the named results file (its rows, seeds and commit), so the page cannot drift from the file.
# Options after the path narrow it: ``columns=em,em_1hop,...`` (result keys of the study's
# :data:`COLUMNS`) and ``sections=paired,heldout,timings`` (which sections follow the table).
_BLOCK = re.compile(
    r"(<!-- results: (?P<path>[^ ]+)(?P<opts>(?: [a-z]+=[^ ]+)*) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S
)
SECTIONS = ("paired", "heldout", "timings")


def block_options(opts: str) -> dict[str, list[str]]:
    """A block marker's options: ``columns`` and ``sections``, each a comma-separated list.

    >>> block_options(" columns=em,calls_per_q sections=paired")
    {'columns': ['em', 'calls_per_q'], 'sections': ['paired']}
    >>> block_options("")
    {}
    """
    out = {}
    for opt in opts.split():
        name, _, value = opt.partition("=")
        if name not in ("columns", "sections"):
            raise ValueError(f"results block: unknown option {name!r} (columns=..., sections=...)")
        out[name] = value.split(",")
    if unknown := [s for s in out.get("sections", []) if s not in SECTIONS]:
        raise ValueError(f"results block: unknown sections {unknown}: {', '.join(SECTIONS)}")
    return out


def results_block(
    results_path: Path,
    shown: str | None = None,
    columns: Sequence[str] | None = None,
    sections: Sequence[str] = SECTIONS,
) -> str:
    """The Markdown a results block holds: the study's table and where its numbers come from
    (``shown``: the file's path as the page names it); ``columns``: only these result keys'
    columns; ``sections``: which of the paired differences, held-out curves and stage times follow."""
    data = json.loads(Path(results_path).read_text(encoding="utf-8"))
    seeds = data.get("seeds", [])
    commit = data.get("commit") or "unrecorded"
    diffs = (data.get("paired") or []) if "paired" in sections else []
    curves = data.get("heldout") if "heldout" in sections else None
    timings = data.get("timings") if "timings" in sections else None
    parts = shared_sections(diffs, curves, timings, seeds)
    return (
        markdown_table(data["study"], data["rows"], columns)
        + f"\n\nSeeds {', '.join(map(str, seeds))} ({seed_scope(data.get('config'))}); "
        + f"each cell mean (min-max) over them; code {commit}; "
        + f"rendered from `{shown or results_path}`.\n"
        + "".join(f"\n{section}\n" for section in parts)
    )


def render_results_blocks(text: str, root: Path) -> str:
    """``text`` with every results block re-rendered from its file (paths relative to ``root``)."""

    def render(m: re.Match) -> str:
        opts = block_options(m.group("opts"))
        block = results_block(
            root / m.group("path"), m.group("path"), opts.get("columns"), opts.get("sections", SECTIONS)
        )
        return m.group(1) + block + m.group(5)

    return _BLOCK.sub(render, text)
