"""SFT with batch_splits 3 (this study) against the same seeds' stages with the batch whole, on
the same machine: the fidelity-curve study's SFT-1&2&3 and all-real RL rows (code f4acd3c), which
ran the default recipe as it was before (every other setting equal). Paired by seed: held-out EM
of SFT-1&2&3 and of the recipe, and SFT-2's and the demo's minutes.

    python docs/results/demo/compare_speed.py   # writes paired_with_before.json, prints a table
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
BEFORE = HERE.parent / "fidelity_curve"
ROWS = {"SFT-1&2&3": ("SFT-1&2&3", "SFT-1&2&3 (no RL)"), "recipe": ("SFT-1&2&3 + RL (the recipe)", "all real")}
DEMO_STAGES = ("world", "index", "base", "data", "sft1", "sft12", "sft123", "rl")


def values(results: dict, name: str) -> dict[int, float]:
    row = next(r for r in results["rows"] if r["name"] == name)
    return dict(zip(results["seeds"], row["em"]["values"], strict=True))


def minutes(folder: Path, seed: int, stages: tuple[str, ...]) -> float:
    t = json.loads((folder / f"timings_seed{seed}.json").read_text(encoding="utf-8"))
    return round(sum(t[s] for s in stages if s in t) / 60, 1)


def main() -> None:
    after = json.loads((HERE / "results.json").read_text(encoding="utf-8"))
    before = json.loads((BEFORE / "results.json").read_text(encoding="utf-8"))
    seeds = [s for s in after["seeds"] if s in before["seeds"]]
    out: dict[str, dict] = {}
    for key, (new, old) in ROWS.items():
        a, b = values(after, new), values(before, old)
        d = [round(a[s] - b[s], 4) for s in seeds]
        out[key] = {
            "after": [a[s] for s in seeds],
            "before": [b[s] for s in seeds],
            "per_seed": d,
            "mean": round(sum(d) / len(d), 4),
            "min": min(d),
            "max": max(d),
        }
    for name, stages in (("sft2_minutes", ("sft12",)), ("training_minutes", DEMO_STAGES)):
        a = [minutes(HERE, s, stages) for s in seeds]
        b = [minutes(BEFORE, s, stages) for s in seeds]
        out[name] = {"after": a, "before": b, "ratio": [round(x / y, 2) for x, y in zip(a, b, strict=True)]}
    (HERE / "paired_with_before.json").write_text(json.dumps({"seeds": seeds, **out}, indent=1) + "\n")
    print("| measure | batch whole | batch_splits 3 | paired difference, mean (min to max) | per seed |")
    print("|---|---|---|---|---|")
    for key in ROWS:
        r = out[key]
        per = " / ".join(f"{x:+.3f}" for x in r["per_seed"])
        mb, ma = sum(r["before"]) / len(seeds), sum(r["after"]) / len(seeds)
        print(f"| {key} EM | {mb:.3f} | {ma:.3f} | {r['mean']:+.3f} ({r['min']:+.3f} to {r['max']:+.3f}) | {per} |")
    for name in ("sft2_minutes", "training_minutes"):
        r = out[name]
        per = " / ".join(f"{a} vs {b}" for a, b in zip(r["after"], r["before"], strict=True))
        print(f"| {name} | {sum(r['before']) / len(seeds):.1f} | {sum(r['after']) / len(seeds):.1f} | | {per} |")


if __name__ == "__main__":
    main()
