"""Run real-model seeds' shared stages (world .. SFT-1&2&3) as `autocoa study demo --model` lays
them out (OUT/seed<s>/), then evaluate SFT-1&2&3 (agent, the demo's 100 held-out questions) into
eval/sft123. Usage: python sft_stages.py OUT SEEDS (e.g. runs/smol27 0,1,2)"""

import sys
from pathlib import Path

from autocoa.cli.demo import recipe_for
from autocoa.recipe.config import RecipeConfig, for_seed
from autocoa.recipe.stages import EvalSpec, Stage, eval_stage, recipe_stages, run_stages


def seed_recipe(seed: int) -> RecipeConfig:
    return for_seed(recipe_for("smollm2-135m-instruct", False, None), seed)


def run(stages: list[Stage], root: Path, cfg: RecipeConfig) -> None:
    def end(st, summary, seconds):
        print(st.name, seconds, {k: v for k, v in summary.items() if k in ("em", "skipped", "real_steps_done")})

    run_stages(stages, timings_path=root / "timings.json", weights_on_disk=cfg.weights_on_disk, on_end=end)


def with_eval(stages: list[Stage], cfg: RecipeConfig, root: Path, label: str) -> list[Stage]:
    """The stages and, after them, the agent's held-out evaluation of checkpoint ``label``."""
    spec = EvalSpec(label, label, ("agent",))
    return [*stages, eval_stage(f"{label}_only", cfg, root, [spec], deps=(label,), report=False)]


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for seed in (int(s) for s in sys.argv[2].split(",")):
        cfg, root = seed_recipe(seed), out / f"seed{seed}"
        run(with_eval(recipe_stages(cfg, root), cfg, root, "sft123"), root, cfg)
