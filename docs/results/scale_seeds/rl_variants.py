"""RL variants from one seed directory's SFT-1&2&3, each evaluated on the demo's 300 held-out test
questions: the control the paper lacks (the recipe's 3 real steps alone, no simulated steps) and
all-real RL at lr 1e-4, beside the recipe's 15 simulated + 3 real (the seed's own rl/). Prints one
JSON line per variant (rl_variants_seed<S>.jsonl). Usage: python rl_variants.py SEED_DIR OUT_DIR"""

import json
import sys
import time
from pathlib import Path

import yaml

from autocoa.eval.runner import evaluate_checkpoint
from autocoa.jsonl import read_logged
from autocoa.recipe.config import RecipeConfig
from autocoa.train.rl import train_rl

root, out_root = Path(sys.argv[1]), Path(sys.argv[2])
cfg = RecipeConfig.model_validate(yaml.safe_load((root / "demo_config.yaml").read_text()))
VARIANTS = {
    "3 real steps alone (no simulated steps)": {"sim_steps": 0, "real_steps": 3},
    "18 real steps, lr 1e-4": {"sim_steps": 0, "real_steps": 18, "lr": 1e-4},
}
for i, (name, upd) in enumerate(VARIANTS.items()):
    out = out_root / f"v{i}"
    t = time.time()
    # the held-out curve (50 seeded dev questions, real search) every 6 steps of the longer run
    curve = {"heldout_every": 6 if upd["real_steps"] > 6 else 0}
    rl_cfg = cfg.rl.model_copy(update={"topk": cfg.topk, "save_every": 100, **curve, **upd})
    s = train_rl(
        root / "sft123",
        root / "data" / "rl_pool.jsonl",
        out,
        rl_cfg,
        index=root / "index_train",
        progress=False,
        overwrite=True,
        heldout=root / "world" / "dev.jsonl",
        heldout_index=root / "index",
    )
    m = evaluate_checkpoint(
        out,
        root / "world" / "test.jsonl",
        out / "eval",
        methods=["agent"],
        index=root / "index",
        k=cfg.topk,
        cfg=cfg.agent,
        limit=cfg.eval_questions,
        shuffle_seed=0,
        label=name,
        progress=False,
    )
    a = m["methods"]["agent"]
    steps = [r for r in read_logged(out / "metrics.jsonl") if "frac_reward_zero_std" in r]
    print(
        json.dumps(
            {
                "name": name,
                "em": a["em"],
                "by_hops": {h: g["em"] for h, g in a["by"]["hops"].items()},
                "unneeded": a.get("unneeded_searches"),
                "missed": a.get("missed_searches"),
                "copy": a.get("copy_accuracy"),
                "reward_real": s.get("reward_real"),
                "real_calls": s.get("real_calls_total"),
                "seconds": round(time.time() - t),
                "kl_last": steps[-1]["kl"] if steps else None,
                "zero_spread": round(sum(r["frac_reward_zero_std"] for r in steps) / len(steps), 3) if steps else None,
                "heldout_curve": [
                    {k: r[k] for k in ("step", "em")} for r in map(json.loads, (out / "heldout.jsonl").open())
                ]
                if (out / "heldout.jsonl").exists()
                else [],
            }
        ),
        flush=True,
    )
