"""The scale-model demo's measurements beyond the study table, per seed and over seeds: the base
model (reading test, closed-book recall by exposure on the test pool, common facts), copy
accuracy, when-to-act counts, the world model's fidelity, what the RL steps could learn from
(groups with zero reward spread, KL), the RL variants from each seed's SFT-1&2&3
(rl_variants_seed<S>.jsonl, written by rl_variants.py), what the ablations' simulated RL steps
could learn from (where a seed ran them) and the stage times. Reads the study's results.json and
writes measurements.json and measurements.md in --out (this file's directory by default). Usage,
from the repository root: python docs/results/scale_seeds/aggregate.py [--out DIR] runs/study/seed0
runs/study/seed1 ..."""

import argparse
import json
from pathlib import Path

from seed_files import metrics, recalled_share

from autocoa.eval.report import read_recall
from autocoa.jsonl import read_logged
from autocoa.recipe.study import RECIPE, spread
from autocoa.recipe.study_report import code_version, fmt
from autocoa.train.rl import schedule_means

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="the study's results directory")
ap.add_argument("roots", nargs="+", type=Path, help="the study's seed directories")
args = ap.parse_args()
here, roots = args.out, args.roots


def rl_signal(root: Path) -> dict:
    """The demo's RL signal (autocoa.train.rl.schedule_means: groups without reward spread of
    each kind of step, KL at the last step) and the mean gradient norm of its simulated steps."""
    sig = schedule_means(root / "rl" / "metrics.jsonl")
    rows = [r for r in read_logged(root / "rl" / "metrics.jsonl") if "grad_norm" in r and "rl/env_real" in r]
    sim = [r["grad_norm"] for r in rows if not r["rl/env_real"]]
    return {
        **{k: sig[k] for k in ("zero_spread_sim", "zero_spread_real", "kl_last")},
        "grad_norm_sim": sum(sim) / len(sim) if sim else None,
    }


# the ablations' RL runs with simulated steps (autocoa study ablations), by stage directory
SIM_RUNS = {
    "rl_sft123_s18_r0": "18 simulated steps (RL-1)",
    "rl_sft123_s15_r3": "the paper's 15 simulated + 3 real",
}


def sim_signal(root: Path, run: str) -> dict | None:
    """What a run's simulated steps could learn from: their mean reward, the world model's
    fidelity during them (rl.json), the share of their groups with no reward spread; and the
    missed and unneeded searches a question of the policy they left (eval/<run>)."""
    if not (root / run / "rl.json").exists():
        return None
    sig = schedule_means(root / run / "metrics.jsonl")
    ev = metrics(root, run)
    return {
        **{k: sig[k] for k in ("reward_sim", "fidelity_sim", "zero_spread_sim")},
        "missed": ev["missed_searches"],
        "unneeded": ev["unneeded_searches"],
    }


def reading(root: Path, recorded: dict | None) -> float | None:
    """The base model's reading test: from pretrain.json, else measured now (pretraining wrote
    it only from commit b4c643e on)."""
    if recorded:
        return recorded["accuracy"]
    from autocoa.knowledge import reading_accuracy
    from autocoa.models import load_model

    model, tok = load_model(root / "base", device="cpu")
    return reading_accuracy(model, tok, root / "world")["accuracy"]


def emerged(curve: list[dict]) -> int | None:
    """The first pretraining step whose reading test is at least half the curve's last value."""
    if not curve or not curve[-1]["reading"]:
        return None
    return next(r["step"] for r in curve if r["reading"] >= curve[-1]["reading"] / 2)


MEMORY_STAGES = ("base", "sft1", "sft12", "sft123", "rl")


def kept_memory(root: Path) -> dict[str, float]:
    """The share of the test pool's facts each checkpoint recalls closed-book (the probe pretraining
    runs, autocoa.knowledge.recall): how much of what the base read survives fine-tuning."""
    from autocoa.knowledge import world_facts

    facts = world_facts(root / "world", pools=("test",))
    return {stage: round(recalled_share(root / stage, facts), 4) for stage in MEMORY_STAGES}


def copy_failures(root: Path, label: str = "rl") -> dict[str, int]:
    """Of the recipe's search observations that state the searched fact, what the next thought or
    answer does: restates it (``copied``), restates *another* fact of the same document (a wrong
    sentence read: another entity of the observation named instead), or neither (a garbled name,
    or a claim from memory)."""
    from autocoa.analysis import match_hop
    from autocoa.jsonl import read_jsonl
    from autocoa.metrics import names

    entities = [row["name"] for _, row in read_jsonl(root / "world" / "entities.jsonl")]
    chains = {row["id"]: row["chain"] for _, row in read_jsonl(root / "world" / "test.jsonl")}
    out = {"copied": 0, "another fact of the document": 0, "garbled or from memory": 0}
    for _, r in read_jsonl(root / "eval" / label / "predictions.jsonl"):
        if r["method"] != "agent":
            continue
        segs, chain = r["trajectory"]["segments"], chains[r["id"]]
        for i, seg in enumerate(segs[:-1]):
            if seg["kind"] != "action" or segs[i + 1]["kind"] != "observation":
                continue
            hop, obs = match_hop(seg["text"].strip(), chain), segs[i + 1]["text"]
            if hop is None or not names(obs, chain[hop]["object"]):
                continue
            after = next((x["text"] for x in segs[i + 2 :] if x["kind"] in ("think", "answer")), "")
            if names(after, chain[hop]["object"]):
                out["copied"] += 1
            elif any(
                e in obs and e in after for e in entities if e not in (chain[hop]["object"], chain[hop]["subject"])
            ):
                out["another fact of the document"] += 1
            else:
                out["garbled or from memory"] += 1
    return out


def demo_seconds(root: Path) -> dict[str, float]:
    """The demo's stage seconds of a seed: the copy recorded beside this script (timings_seed<S>.json)
    when there is one, since the seed directory's timings.json also collects the stages of every
    study run on it later (the ablations'), which are not the demo's cost."""
    recorded = here / f"timings_{root.name}.json"
    return json.loads((recorded if recorded.exists() else root / "timings.json").read_text())


def variants(root: Path) -> list[dict]:
    path = here / f"rl_variants_{root.name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


per_seed = {}
for root in roots:
    pre = json.loads((root / "base" / "pretrain.json").read_text())
    rec = read_recall(root / "base")  # the buckets of this code, from knowledge.jsonl
    sft, rl = metrics(root, "sft123"), metrics(root, "rl")
    per_seed[root.name] = {
        "reading_test": reading(root, rec.get("reading")),
        "reading_emerged_step": emerged(rec.get("reading_curve", [])),
        "common_facts": pre["common_facts"]["accuracy"],
        "test_recall_by_exposure": {k: v["recall"] for k, v in rec["test"].items()},
        "direct_em_base": metrics(root, "base", "direct")["em"],
        "direct_em_recipe": metrics(root, "rl", "direct")["em"],
        "copy_sft123": sft.get("copy_accuracy"),
        "copy_recipe": rl.get("copy_accuracy"),
        "unneeded_sft123": sft.get("unneeded_searches"),
        "missed_sft123": sft.get("missed_searches"),
        "unneeded_recipe": rl.get("unneeded_searches"),
        "missed_recipe": rl.get("missed_searches"),
        "fidelity_test": metrics(root, "sft123_sim_test").get("fidelity"),
        "fidelity_pool": metrics(root, "sft123_sim_pool").get("fidelity"),
        "memory": kept_memory(root),
        "copy_failures": copy_failures(root),
        **rl_signal(root),
        **{f"variant_{i}": v["em"] - sft["em"] for i, v in enumerate(variants(root))},
        "seconds": demo_seconds(root),
        "sim_runs": {run: sig for run in SIM_RUNS if (sig := sim_signal(root, run)) is not None},
    }
keys = [k for k in next(iter(per_seed.values())) if not isinstance(next(iter(per_seed.values()))[k], dict)]
over = {k: spread([s.get(k) for s in per_seed.values()]) for k in keys}
stage_names = list(dict.fromkeys(st for s in per_seed.values() for st in s["seconds"]))
times = {st: spread([s["seconds"].get(st) for s in per_seed.values()]) for st in stage_names}
# a seed whose early stages ran outside the study (reused) has no time for them: the total is over
# the seeds that timed every stage
whole = [s for s in per_seed.values() if set(stage_names) <= set(s["seconds"])]
total = spread([sum(s["seconds"].values()) for s in whole])
by_variant = {root.name: variants(root) for root in roots}
out = {
    "commit": code_version(),
    "seeds": list(per_seed),
    "per_seed": per_seed,
    "over_seeds": over,
    "stage_seconds": times,
    "total_seconds": total,
    "rl_variants": by_variant,
}
(here / "measurements.json").write_text(json.dumps(out, indent=2) + "\n")


def plot_reading_curves() -> None:
    """Every seed's reading curve during pretraining, in one plot (reading_curves.png)."""
    from autocoa.eval.report import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    for root in roots:
        curve = (read_recall(root / "base") or {}).get("reading_curve", [])
        if curve:
            ax.plot([r["step"] for r in curve], [r["reading"] for r in curve], marker=".", label=root.name)
    ax.set_xlabel("pretraining step")
    ax.set_ylabel("reading test (greedy)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("The base model's reading test during pretraining, by seed", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, here / "reading_curves.png")


plot_reading_curves()

names = {
    "reading_test": "base model: reading test (answer from a passage it never read)",
    "reading_emerged_step": "pretraining step where the reading test first reaches half its last value",
    "common_facts": "base model: common facts recalled (cloze)",
    "direct_em_base": "base model: closed-book (direct) held-out EM",
    "direct_em_recipe": "recipe model: closed-book (direct) held-out EM",
    "copy_sft123": "copy accuracy, SFT-1&2&3",
    "copy_recipe": "copy accuracy, the recipe",
    "unneeded_sft123": "unneeded searches / q, SFT-1&2&3",
    "missed_sft123": "missed searches / q, SFT-1&2&3",
    "unneeded_recipe": "unneeded searches / q, the recipe",
    "missed_recipe": "missed searches / q, the recipe",
    "fidelity_test": "world-model fidelity, held-out test questions",
    "fidelity_pool": "world-model fidelity, the RL pool",
    "zero_spread_sim": "RL: share of groups with zero reward spread, simulated steps",
    "zero_spread_real": "RL: share of groups with zero reward spread, real steps",
    "grad_norm_sim": "RL: mean gradient norm of the simulated steps",
    "kl_last": "RL: KL at the last step",
}
lines = [
    f"# Scale-model demo: measurements over seeds {', '.join(s[4:] for s in per_seed)}",
    "",
    f"Code {out['commit']}; generated by `aggregate.py` from the seed directories into `measurements.json`.",
    "",
    "| measure | mean (min-max) | per seed |",
    "|---|---:|---|",
]
for k, label in names.items():
    vals = " / ".join("-" if s[k] is None else f"{s[k]:.3f}" for s in per_seed.values())
    lines.append(f"| {label} | {fmt(over[k])} | {vals} |")


def seed_table(title: str, columns: list[str], cell) -> list[str]:
    """A table with a row per seed and a column per ``columns`` entry, ``cell(seed_values, column)``."""
    head = ["", title, "", "| seed | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    return head + [f"| {n[4:]} | " + " | ".join(cell(s, c) for c in columns) + " |" for n, s in per_seed.items()]


first = next(iter(per_seed.values()))
lines += seed_table(
    "Closed-book recall of the base model on the test pool's facts, by times pretrain.txt states them (exposure):",
    list(first["test_recall_by_exposure"]),
    lambda s, b: f"{s['test_recall_by_exposure'].get(b, 0):.3f}",
)
lines += seed_table(
    "Closed-book recall of the test pool's facts after each stage (what fine-tuning keeps of what the base read):",
    list(MEMORY_STAGES),
    lambda s, st: f"{s['memory'][st]:.3f}",
)
lines += seed_table(
    "The recipe's search observations that state the searched fact, by what the next thought or answer does "
    "(another fact: it restates another entity of the same document, a wrong sentence read):",
    list(first["copy_failures"]),
    lambda s, k: str(s["copy_failures"][k]),
)
lines += [
    "",
    "The held-out curve during the demo's RL (EM on 50 seeded dev questions, real search, at RL steps):",
    "",
    "| seed | held-out EM by RL step |",
    "|---|---|",
]
for root in roots:
    path = root / "rl" / "heldout.jsonl"
    curve = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    lines.append(f"| {root.name[4:]} | " + (", ".join(f"{c['step']}: {c['em']:.2f}" for c in curve) or "-") + " |")
sim_rows = [(n, run, s["sim_runs"][run]) for run in SIM_RUNS for n, s in per_seed.items() if run in s["sim_runs"]]
if sim_rows:
    lines += [
        "",
        "What the ablations' simulated RL steps could learn from (rl.json, metrics.jsonl: the world model's "
        "fidelity and the mean reward during the simulated steps, their groups with no reward spread), and the "
        "searches of the policy they left (held-out; SFT-1&2&3's and the recipe's are in the first table):",
        "",
        "| RL run | seed | reward, simulated steps | fidelity during them | groups with no reward spread "
        "| missed searches / q | unneeded / q |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, run, sig in sim_rows:
        lines.append(
            f"| {SIM_RUNS[run]} | {name[4:]} | {sig['reward_sim']:.4f} | {sig['fidelity_sim']:.4f} | "
            f"{sig['zero_spread_sim']:.2f} | {sig['missed']:.2f} | {sig['unneeded']:.2f} |"
        )
timed = ", ".join(name[4:] for name, s in per_seed.items() if set(stage_names) <= set(s["seconds"]))
lines += [
    "",
    f"Stage seconds on 2 CPU cores (mean (min-max) over the seeds that timed the stage; the total over seeds {timed}):",
    "",
    "| stage | seconds |",
    "|---|---:|",
]
lines += [f"| {st} | {fmt(v, 0)} |" for st, v in times.items()] + [f"| **total** | **{fmt(total, 0)}** |"]
names_v = [v["name"] for v in next((vs for vs in by_variant.values() if vs), [])]
if names_v:
    lines += [
        "",
        "RL variants from each seed's SFT-1&2&3, on the same 300 held-out questions (paired: the variant's EM "
        "minus SFT-1&2&3's on that seed; the demo's own rl/ is the study table's row; rl_variants.py):",
        "",
        "| variant | seed | EM | paired vs SFT-1&2&3 | 1 / 2 / 3 / 4 hops | unneeded/q | missed/q | copy acc "
        "| zero-spread groups | KL last | held-out curve (dev 50: step EM) | seconds |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for root in roots:
        for v in by_variant[root.name]:
            hops = " / ".join(f"{v['by_hops'][h]:.2f}" for h in sorted(v["by_hops"]))
            curve = ", ".join(f"{c['step']}: {c['em']:.2f}" for c in v.get("heldout_curve", [])) or "-"
            d = v["em"] - metrics(root, "sft123")["em"]
            lines.append(
                f"| {v['name']} | {root.name[4:]} | {v['em']:.3f} | {d:+.3f} | {hops} | {v['unneeded']:.2f} | "
                f"{v['missed']:.2f} | {v['copy']:.3f} | {v.get('zero_spread')} | {v.get('kl_last') or 0:.4f} | "
                f"{curve} | {v['seconds']} |"
            )
    for i, name in enumerate(names_v):
        k = f"variant_{i}"
        if all(k in s for s in per_seed.values()):
            lines.append(f"| **{name}, paired over seeds** | | | **{fmt(over[k])}** | | | | | | | | |")
study = json.loads((here / "results.json").read_text())
rows = {r["name"]: r for r in study["rows"]}
paired = {(d["row"], d["baseline"]): d for d in study.get("paired", [])}
sft, recipe = rows["SFT-1&2&3"], rows[RECIPE]
rl_gain = paired[(RECIPE, "SFT-1&2&3")]
rl_cfg = study["config"]["rl"]
rl_steps = f"{rl_cfg['sim_steps']} simulated + {rl_cfg['real_steps']} real steps at lr {rl_cfg['lr']:g}"
total_min = total["mean"] / 60


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


targets = [
    ("base model's reading test (no target; issue: 'a base model that reads')", fmt(over["reading_test"]), ""),
    *(
        (f"copy accuracy >= 0.97 on every seed: {who}", fmt(over[k]), met(over[k]["min"] >= 0.97))
        for who, k in (("SFT-1&2&3", "copy_sft123"), ("the recipe", "copy_recipe"))
    ),
    (
        "closed-book (direct) held-out EM 0.10-0.40",
        fmt(over["direct_em_recipe"]),
        met(0.10 <= over["direct_em_recipe"]["mean"] <= 0.40),
    ),
    (
        "world-model fidelity on held-out questions >= 0.5, no pool copies",
        fmt(over["fidelity_test"]),
        met(over["fidelity_test"]["mean"] >= 0.5),
    ),
    (
        "SFT-1&2&3 max - min <= 0.06",
        f"{sft['em']['max'] - sft['em']['min']:.3f}",
        met(sft["em"]["max"] - sft["em"]["min"] <= 0.06),
    ),
    ("the recipe's held-out EM >= 0.85 on average", fmt(recipe["em"]), met(recipe["em"]["mean"] >= 0.85)),
    ("the recipe's 4-hop EM >= 0.80", fmt(recipe["em_4hop"]), met(recipe["em_4hop"]["mean"] >= 0.80)),
    (
        f"all-real RL's paired gain >= +0.05 on every seed (the demo's RL, {rl_steps})",
        fmt(rl_gain),
        met(rl_gain["min"] >= 0.05),
    ),
    ("`autocoa demo` <= 12 minutes on 2 cores", f"{total_min:.1f} min", met(total_min <= 12)),
]
lines += [
    "",
    "The scale-model issue's targets against these measurements:",
    "",
    "| target | measured | |",
    "|---|---:|---|",
] + [f"| {t} | {m} | {v} |" for t, m, v in targets]
(here / "measurements.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
