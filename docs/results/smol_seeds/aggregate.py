"""The real-model demo's table over seeds 0, 1, 2: seed 0 is runs/smol (the earlier code, commit
47155f3), seeds 1 and 2 are `autocoa demo --model smollm2-135m-instruct --seed S` (commits f8a5ec4, 637a793).
Rows and aggregation are `autocoa study demo`'s own (aggregate_rows, write_study_report).
Usage: python aggregate.py OUT SEED0_DIR SEED1_DIR SEED2_DIR"""

import json
import sys
from pathlib import Path

from autocoa.recipe.config import load_recipe
from autocoa.recipe.study import aggregate_rows, demo_grid
from autocoa.recipe.study_report import write_study_report

roots = [Path(p) for p in sys.argv[2:]]
out = Path(sys.argv[1])
cfg = load_recipe("pretrained").model_copy(update={"model": "smollm2-135m-instruct"})
rows = aggregate_rows(roots, demo_grid(cfg, roots[0]).rows)
write_study_report(
    "demo",
    rows,
    [],
    [0, 1, 2],
    out,
    notes="Seed 0: runs/smol (commit 47155f3); seed 1: commit f8a5ec4; seed 2: commit 637a793.",
)
timings = {str(r): json.loads((r / "timings.json").read_text()) for r in roots}
(out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
print((out / "report.md").read_text())
