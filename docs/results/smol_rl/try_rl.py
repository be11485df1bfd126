"""One RL try on a real-model seed's SFT-1&2&3 (laid out by `python sft_stages.py OUT SEEDS`): the
pretrained preset with the YAML's rl fields (and those of its `world_model:` section) over it, into
seed<s>/rl_<name>/, then the agent on the demo's 100 held-out questions into seed<s>/eval/rl_<name>/.
Usage: python try_rl.py OUT SEED NAME configs/NAME.yaml"""

import sys
from pathlib import Path

import yaml
from sft_stages import run, seed_recipe, with_eval

from autocoa.recipe.stages import recipe_stages, rl_stage

out, seed, name, file = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
cfg = seed_recipe(seed)
fields = yaml.safe_load(file.read_text())
world_model = cfg.world_model.model_validate({**cfg.world_model.model_dump(), **fields.pop("world_model", {})})
rl = cfg.rl.model_validate({**cfg.rl.model_dump(), **fields})
cfg = cfg.model_copy(update={"rl": rl, "world_model": world_model})
root, dst = out / f"seed{seed}", f"rl_{name}"
run(
    with_eval(
        [*recipe_stages(cfg, root), rl_stage(dst, cfg, root, "sft123", rl.sim_steps, rl.real_steps)], cfg, root, dst
    ),
    root,
    cfg,
)
