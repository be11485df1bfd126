"""The preset's own RL stage (``rl``, as `autocoa study demo --model` runs it) on real-model seeds
laid out by `python sft_stages.py OUT SEEDS`, and the agent on the demo's 100 held-out questions
into seed<s>/eval/rl: its numbers before the study's full evaluation (the study then reuses the
stage). Usage: python recipe_rl.py OUT SEEDS (e.g. runs/smol27 1,2)"""

import sys
from pathlib import Path

from sft_stages import run, seed_recipe, with_eval

from autocoa.recipe.stages import recipe_stages
from autocoa.recipe.study import _rl

if __name__ == "__main__":
    out = Path(sys.argv[1])
    for seed in (int(s) for s in sys.argv[2].split(",")):
        cfg, root = seed_recipe(seed), out / f"seed{seed}"
        rl = _rl(cfg, root, "sft123", cfg.rl.sim_steps, cfg.rl.real_steps)
        run(with_eval([*recipe_stages(cfg, root), rl], cfg, root, "rl"), root, cfg)
