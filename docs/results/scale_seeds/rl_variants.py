"""RL variants from one seed directory's SFT-1&2&3, each evaluated on the demo's 300 held-out test
questions, one JSON line per variant (rl_variants_seed<S>.jsonl).

Usage:
  python rl_variants.py SEED_DIR OUT_DIR [VARIANTS.yaml]
                                                     train and evaluate the variants below (or
                                                     those of the file: name -> rl fields)
  python rl_variants.py SEED_DIR --summarize NAME RL_DIR SECONDS
                                                     the line of a run already trained and
                                                     evaluated (RL_DIR and RL_DIR/../eval/rl)

The variants: the control the paper lacks (the paper schedule's 3 real steps alone, no simulated
steps) at the previous default's lr 3e-5; and all-real RL at lr 1e-4, which became the default
(the seed's own rl/ is then the same run: a reproduction check)."""

import json
import sys
import time
from pathlib import Path

import yaml

from autocoa.jsonl import read_logged
from autocoa.recipe.config import RecipeConfig

VARIANTS = {
    "3 real steps alone (no simulated steps), lr 3e-5": {"sim_steps": 0, "real_steps": 3, "lr": 3e-5},
    "18 real steps, lr 1e-4": {"sim_steps": 0, "real_steps": 18, "lr": 1e-4},
}


def line(name: str, rl_dir: Path, agent: dict, seconds: int) -> dict:
    """A variant's line: its held-out evaluation (``agent``: the agent method's metrics) and what
    its RL run logged (rl.json's summary, the steps' KL and zero-spread groups, the held-out curve)."""
    s = json.loads((rl_dir / "rl.json").read_text()) if (rl_dir / "rl.json").exists() else {}
    steps = [r for r in read_logged(rl_dir / "metrics.jsonl") if "frac_reward_zero_std" in r]
    heldout = rl_dir / "heldout.jsonl"
    return {
        "name": name,
        "em": agent["em"],
        "by_hops": {h: g["em"] for h, g in agent["by"]["hops"].items()},
        "unneeded": agent.get("unneeded_searches"),
        "missed": agent.get("missed_searches"),
        "copy": agent.get("copy_accuracy"),
        "reward_real": s.get("reward_real"),
        "real_calls": s.get("real_calls_total"),
        "seconds": seconds,
        "kl_last": steps[-1]["kl"] if steps else None,
        "zero_spread": round(sum(r["frac_reward_zero_std"] for r in steps) / len(steps), 3) if steps else None,
        "heldout_curve": [{k: r[k] for k in ("step", "em")} for r in map(json.loads, heldout.open())]
        if heldout.exists()
        else [],
    }


def train_variants(root: Path, out_root: Path, variants: dict[str, dict] = VARIANTS) -> None:
    from autocoa.eval.heldout import heldout_curve
    from autocoa.eval.request import EvalRequest
    from autocoa.eval.runner import evaluate_checkpoint
    from autocoa.tools.search import Retrieval
    from autocoa.train.rl import train_rl

    cfg = RecipeConfig.model_validate(yaml.safe_load((root / "demo_config.yaml").read_text()))
    for i, (name, upd) in enumerate(variants.items()):
        out = out_root / f"v{i}"
        t = time.time()
        # the held-out curve (50 seeded dev questions, real search) every 6 steps of the longer run
        curve = {"heldout_every": 6 if upd.get("real_steps", cfg.rl.real_steps) > 6 else 0}
        rl_cfg = cfg.rl.model_copy(update={"topk": cfg.topk, "save_every": 100, **curve, **upd})
        train_rl(
            root / "sft123",
            root / "data" / "rl_pool.jsonl",
            out,
            rl_cfg,
            retrieval=Retrieval(root / "index_train"),
            progress=False,
            overwrite=True,
            heldout=heldout_curve(rl_cfg, root / "world" / "dev.jsonl", Retrieval(root / "index"))
            if rl_cfg.heldout_every
            else None,
        )
        request = EvalRequest.of(
            model=out,
            data=root / "world" / "test.jsonl",
            out=out / "eval",
            retrieval=Retrieval(root / "index"),
            k=cfg.topk,
            agent=cfg.agent,
            limit=cfg.eval_questions,
            shuffle_seed=0,
            label=name,
        )
        m = evaluate_checkpoint(request, progress=False)
        print(json.dumps(line(name, out, m["methods"]["agent"], round(time.time() - t))), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[2] == "--summarize":
        name, rl_dir, seconds = sys.argv[3], Path(sys.argv[4]), int(sys.argv[5])
        agent = json.loads((rl_dir.parent / "eval" / "rl" / "metrics.json").read_text())["methods"]["agent"]
        print(json.dumps(line(name, rl_dir, agent, seconds)))
    elif len(sys.argv) in (3, 4):
        chosen = yaml.safe_load(Path(sys.argv[3]).read_text()) if len(sys.argv) == 4 else VARIANTS
        train_variants(Path(sys.argv[1]), Path(sys.argv[2]), chosen)
    else:
        sys.exit(__doc__)
