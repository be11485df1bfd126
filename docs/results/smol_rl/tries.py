"""The real-model RL tries (#27): for each seed directory and try, held-out EM and the share past
the last hop by hop count (re-derived by autocoa.analysis.past_last_hop), searches per question,
the RL stage's seconds and its held-out curve; paired against the seed's SFT-1&2&3.
A try is `docs/results/smol_rl/try_rl.py OUT SEED NAME configs/NAME.yaml` (rl fields over the pretrained preset):
its RL in seed<s>/rl_<name>/, its evaluation in seed<s>/eval/rl_<name>/; `rl` is the preset's own RL
(`recipe_rl.py`, or the study), where it was evaluated.
Usage: python tries.py OUT.json SEED_DIR [SEED_DIR ...] (writes OUT.json and OUT.md)"""

import json
import sys
from pathlib import Path

from past_hops import table

from autocoa.eval.report import heldout_rows

RUN_MEANS = {"entropy": "entropy", "zero_spread": "frac_reward_zero_std", "past_last_hop": "rl/past_last_hop"}


def hop_signal(metrics: Path) -> dict:
    """Over an RL run's steps, by hop count: the mean of the step's reward (rl/reward_<h>hop) and of
    its share of zero-spread groups (rl/zero_spread_<h>hop), where the run logged them; under "all",
    the means of the sampled tokens' entropy, the share of zero-spread groups and the share of
    rollouts past the last hop."""
    rows = [json.loads(line) for line in metrics.open(encoding="utf-8")]

    def mean(key: str) -> tuple[float, int] | None:
        xs = [r[key] for r in rows if key in r]
        return (round(sum(xs) / len(xs), 3), len(xs)) if xs else None

    out = {"all": {name: m[0] for name, key in RUN_MEANS.items() if (m := mean(key))}}
    for h in "1234":
        for name in ("reward", "zero_spread"):
            if m := mean(f"rl/{name}_{h}hop"):
                out.setdefault(h, {})[name] = m[0]
                out[h]["steps"] = m[1]
    return out


def one(root: Path, label: str) -> dict | None:
    preds = root / "eval" / label / "predictions.jsonl"
    if not preds.exists():
        return None
    out = {"by_hops": table(str(root / "world" / "test.jsonl"), str(preds))}
    out["em"] = out["by_hops"]["all"]["em"]
    out["past_last_hop"] = out["by_hops"]["all"]["past_last_hop"]
    out["searches_per_q"] = out["by_hops"]["all"]["searches"]
    rl = root / label
    if (rl / "rl_config.yaml").exists():
        import yaml

        out["rl"] = {
            k: v
            for k, v in yaml.safe_load((rl / "rl_config.yaml").read_text()).items()
            if k
            in (
                "sim_steps",
                "real_steps",
                "lr",
                "kl_coef",
                "temperature",
                "prompts_per_step",
                "num_generations",
                "heldout_every",
                "heldout_questions",
            )
        }
        questions = json.loads((rl / "run.json").read_text())["questions"]
        out["questions"] = Path(next(iter(questions))).name  # rl_pool.jsonl or train.jsonl
        timings = json.loads((root / "timings.json").read_text())
        out["rl_seconds"] = timings.get(label)
        out["signal"] = hop_signal(rl / "metrics.jsonl")
        if curve := heldout_rows(rl):
            out["heldout"] = [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in curve]
    return out


def preset_rows(result: dict) -> list[str]:
    """The preset's own RL (``rl``) against SFT-1&2&3 on every seed that has both, and the mean
    (min-max) over them: EM, 1-hop EM, 3-4-hop EM and the share past the last hop, before -> after."""
    pairs = {s: (seed["sft123"], seed["rl"]) for s, seed in result.items() if seed.get("sft123") and seed.get("rl")}
    if not pairs:
        return []

    def cells(get) -> list[str]:
        return [f"{get(b):.2f} -> {get(a):.2f}" for b, a in pairs.values()]

    cols = {
        "EM": lambda r: r["em"],
        "1 hop": lambda r: r["by_hops"]["1"]["em"],
        "3-4 hops": lambda r: (
            (r["by_hops"]["3"]["em"] * r["by_hops"]["3"]["n"] + r["by_hops"]["4"]["em"] * r["by_hops"]["4"]["n"])
            / (r["by_hops"]["3"]["n"] + r["by_hops"]["4"]["n"])
        ),
        "past last hop": lambda r: r["past_last_hop"],
    }
    table = {name: cells(get) for name, get in cols.items()}
    diffs = [a["em"] - b["em"] for b, a in pairs.values()]
    seconds = [a.get("rl_seconds") for _, a in pairs.values()]
    lines = [
        "## the preset's RL (rl) over SFT-1&2&3",
        "",
        "| seed | " + " | ".join(cols) + " | paired EM | RL s | held-out |",
        "|---|" + "---|" * len(cols) + "---:|---:|---|",
    ]
    for i, (s, (_, a)) in enumerate(pairs.items()):
        curve = ", ".join(f"{p['step']}: {p['em']:.2f}" for p in a.get("heldout", []))
        row = " | ".join(table[c][i] for c in cols)
        lines.append(f"| {s} | {row} | {diffs[i]:+.2f} | {seconds[i] or '-'} | {curve} |")
    mean = sum(diffs) / len(diffs)
    lines += [
        "",
        f"Paired EM: mean {mean:+.3f} (min {min(diffs):+.2f}, max {max(diffs):+.2f}) over {len(diffs)} seeds.",
        "",
    ]
    return lines


def main() -> None:
    out, roots = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    result = {}
    for root in roots:
        own = ["rl"] if (root / "eval" / "rl" / "predictions.jsonl").exists() else []  # the preset's own RL
        labels = ["sft123", *own, *sorted(p.parent.name for p in (root / "eval").glob("rl_*/predictions.jsonl"))]
        seed = {label: one(root, label) for label in labels}
        base = seed.get("sft123")
        for label, r in seed.items():
            if r and base and label != "sft123":
                r["paired_em"] = round(r["em"] - base["em"], 3)
                r["paired_1hop"] = round(r["by_hops"]["1"]["em"] - base["by_hops"]["1"]["em"], 3)
        result[root.name] = seed
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = []
    for s, seed in result.items():
        head = "| run | EM | 1 / 2 / 3 / 4 hops | past last hop (1 / 2 / 3 / 4) | search/q | paired | RL s | held-out |"
        lines += [f"## {s}", "", head]
        lines.append("|---|---:|---|---|---:|---:|---:|---|")
        for label, r in seed.items():
            if not r:
                continue
            hops = " / ".join(f"{r['by_hops'][h]['em']:.2f}" for h in "1234")
            past = (
                f"{r['past_last_hop']:.2f} ("
                + " / ".join(f"{r['by_hops'][h]['past_last_hop']:.2f}" for h in "1234")
                + ")"
            )
            curve = ", ".join(f"{p['step']}: {p['em']:.2f}" for p in r.get("heldout", []))
            lines.append(
                f"| {label} | {r['em']:.2f} | {hops} | {past} | {r['searches_per_q']} | "
                f"{r.get('paired_em', 0):+.2f} | {r.get('rl_seconds') or '-'} | {curve} |"
            )
        signal = {label: r["signal"] for label, r in seed.items() if r and r.get("signal")}
        if signal:
            lines += [
                "",
                "| run | questions | T | lr | RL reward by hop count (1 / 2 / 3 / 4) | zero-spread groups "
                "(1 / 2 / 3 / 4) | zero-spread, all | entropy | rollouts past last hop |",
            ]
            lines.append("|---|---|---:|---:|---|---|---:|---:|---:|")
            for label, sig in signal.items():
                cells = [
                    " / ".join(f"{sig[h][k]:.2f}" if h in sig and k in sig[h] else "-" for h in "1234")
                    for k in ("reward", "zero_spread")
                ]
                run, means = seed[label], [f"{sig['all'].get(k, float('nan')):.2f}" for k in RUN_MEANS]
                lines.append(
                    f"| {label} | {run['questions']} | {run['rl']['temperature']} | {run['rl']['lr']:g} | "
                    f"{cells[0]} | {cells[1]} | {' | '.join(means[1:2] + means[:1] + means[2:])} |"
                )

    lines = preset_rows(result) + lines
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
