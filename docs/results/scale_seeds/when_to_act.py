"""When each checkpoint acts, against what the base model recalls: the measurement behind "SFT-1's
effect is inside the spread". SFT-1's pairs are calibrated to the *base* model's closed-book
recall (base/knowledge.jsonl: the chosen side states a hop from memory exactly where the base
recalls it, and searches elsewhere); this counts, on the 300 held-out questions each study row
was evaluated on, every hop of every question by

- whether the base recalled it (``recalled``) or not,
- whether the trajectory searched it (a search query naming the hop's subject) or stated it
  without a search (``skipped``),
- for a skipped hop, whether a thought or the answer names the hop's object (``right``).

Writes when_to_act.json and when_to_act.md beside this file (``--out STEM``: STEM.json and
STEM.md); a checkpoint some seed directory has no evaluation of (a demo study evaluates only
SFT-1&2&3 and the recipe) is left out. Usage, from the repository root:
python docs/results/scale_seeds/when_to_act.py [--out STEM] runs/study/seed0 runs/study/seed1 ..."""

import json
import sys
from pathlib import Path

from autocoa.analysis import match_hop
from autocoa.jsonl import read_jsonl
from autocoa.metrics import names

here = Path(__file__).resolve().parent
LABELS = {"sft2": "SFT-2", "sft12": "SFT-1&2", "sft123": "SFT-1&2&3", "rl": "the recipe"}


GROUPS = {
    ("test", True): "rare, recalled",
    ("test", False): "rare, not recalled",
    ("common", True): "common, recalled",
    ("common", False): "common, not recalled",
}


def seed_counts(root: Path, labels: list[str]) -> dict[str, dict]:
    """``hop_counts`` of each checkpoint of one seed directory, its world and probe read once."""
    facts = {(r["subject_id"], r["relation"]): r for _, r in read_jsonl(root / "base" / "knowledge.jsonl")}
    chains = {r["id"]: r["chain"] for _, r in read_jsonl(root / "world" / "test.jsonl")}
    return {lab: hop_counts(root / "eval" / lab / "predictions.jsonl", facts, chains) for lab in labels}


def hop_counts(predictions: Path, facts: dict, chains: dict) -> dict:
    c = {g: {"hops": 0, "skipped": 0, "right": 0} for g in GROUPS.values()}
    questions = em = 0
    for _, r in read_jsonl(predictions):
        if r["method"] != "agent":
            continue
        chain, segs = chains[r["id"]], r["trajectory"]["segments"]
        searched = {match_hop(s["text"].strip(), chain) for s in segs if s["kind"] == "action"}
        said = " ".join(s["text"] for s in segs if s["kind"] in ("think", "answer"))
        questions, em = questions + 1, em + int(r["em"])
        for i, hop in enumerate(chain):
            fact = facts[(hop["subject_id"], hop["relation"])]
            g = c[GROUPS[(fact["pool"], fact["known"])]]
            g["hops"] += 1
            if i not in searched:
                g["skipped"] += 1
                g["right"] += int(names(said, hop["object"]))
    return {"em": em / questions, "questions": questions, "groups": c}


def share(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "-"


def row(seed: str, lab: str, c: dict) -> str:
    cells = [
        f"{g['skipped']}/{g['hops']} ({share(g['skipped'], g['hops'])}), {share(g['right'], g['skipped'])}"
        for g in c["groups"].values()
    ]
    return f"| {seed} | {LABELS[lab]} | {c['em']:.3f} | " + " | ".join(cells) + " |"


args = sys.argv[1:]
stem = here / "when_to_act"
if args[:1] == ["--out"]:
    stem, args = Path(args[1]), args[2:]
roots = [Path(a) for a in args]
labels = [lab for lab in LABELS if all((root / "eval" / lab / "predictions.jsonl").exists() for root in roots)]
per_seed = {root.name: seed_counts(root, labels) for root in roots}
stem.with_suffix(".json").write_text(json.dumps(per_seed, indent=1) + "\n")
lines = [
    "# When each checkpoint acts, against what the base model recalls",
    "",
    "Every hop of the 300 held-out questions, by its fact's pool (rare: a test entity's, stated in "
    "pretraining 0-60 times; common) and whether the shipped base recalls it closed-book (SFT-1's pairs "
    "state a hop from memory exactly where it does). Each cell: hops *skipped* (no search names the hop's "
    "subject) / hops (share), then the share of the skipped hops stated *right* (a thought or the answer "
    "names the hop's object). Rendered by when_to_act.py from the study's seed directories.",
    "",
    "| seed | checkpoint | EM | " + " | ".join(GROUPS.values()) + " |",
    "|---|---|---:|" + "---:|" * len(GROUPS),
]
lines += [row(seed[4:], lab, c) for seed, rows in per_seed.items() for lab, c in rows.items()]
for lab in labels:
    runs = [per_seed[s][lab] for s in per_seed]
    summed = {
        "em": sum(r["em"] for r in runs) / len(runs),
        "groups": {
            g: {k: sum(r["groups"][g][k] for r in runs) for k in ("hops", "skipped", "right")} for g in GROUPS.values()
        },
    }
    lines.append(row("**all**", lab, summed))
stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
