"""A try against the default, paired by seed: for each seed directory of a try (an ``autocoa study
demo`` run with a ``--config`` override, from the 5-seed study's SFT-1) and the study's directory
of the same seed, the held-out EM of SFT-1&2&3 and of the recipe (all hops and 4-hop), copy
accuracy, the world model's fidelity on test questions, the test-pool facts recalled closed-book
after SFT-2, and the stage seconds. Prints a markdown table (the try's values, then the paired
difference try - default) and writes the numbers as JSON.

Usage, from the repository root:
python docs/results/scale_seeds/compare_try.py runs/study runs/try_x 0,1,2 docs/results/scale_seeds/tries/x.compare.json
"""

import json
import sys
from pathlib import Path

from seed_files import metrics, recalled_share

from autocoa.knowledge import world_facts


def measure(root: Path) -> dict:
    sft, rl = metrics(root, "sft123"), metrics(root, "rl")
    facts = world_facts(root / "world", pools=("test",))
    timings = json.loads((root / "timings.json").read_text())
    return {
        "sft123": sft["em"],
        "recipe": rl["em"],
        "recipe_4hop": rl["by"]["hops"]["4"]["em"],
        "copy_sft123": sft["copy_accuracy"],
        "fidelity_test": metrics(root, "sft123_sim_test")["fidelity"],
        "recalled_after_sft2": recalled_share(root / "sft12", facts),
        "sft2_seconds": timings.get("sft12", timings.get("sft2")),
    }


base_root, try_root, seeds, out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","), Path(sys.argv[4])
result = {s: {"try": measure(try_root / f"seed{s}"), "default": measure(base_root / f"seed{s}")} for s in seeds}
out.write_text(json.dumps(result, indent=1) + "\n")
keys = list(next(iter(result.values()))["try"])
print("| seed | " + " | ".join(keys) + " |")
print("|---|" + "---:|" * len(keys))
for s, r in result.items():
    cells = [f"{r['try'][k]:.3f} ({r['try'][k] - r['default'][k]:+.3f})" for k in keys[:-1]]
    cells.append(f"{r['try'][keys[-1]]:.0f} ({r['default'][keys[-1]]:.0f})")
    print(f"| {s} | " + " | ".join(cells) + " |")
for k in keys[:-1]:
    d = [r["try"][k] - r["default"][k] for r in result.values()]
    print(f"{k}: paired mean {sum(d) / len(d):+.3f} (min {min(d):+.3f}, max {max(d):+.3f})")
