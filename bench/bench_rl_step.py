"""Benchmark: where one GRPO step's time goes on CPU, and what the KL reference pass costs.

Runs real-environment GRPO steps (the trainer ``train_rl`` builds: TRL's GRPOTrainer with the
agent loop as its ``rollout_func``) from ``--model`` on held-out questions of a small synthetic
world (the fast preset's, generated into a temporary directory and searched with BM25), with the
real-model preset's RL settings, and times the parts of each step by wrapping them:

- rollouts: the agent loop's generation and tool calls (autocoa's engine);
- reference: the frozen KL reference's forward pass (TRL runs it when ``kl_coef`` > 0);
- policy forward: the policy's log-probs for the loss (with gradients);
- the rest: backward, optimizer, TRL's bookkeeping.

Three times in the same run, on the same questions and seeds, each printed with its step-time
ratio to the first:

- before: the defaults (TRL's fused LM head projects every position on CPU, the prompt's and the
  padding's included);
- ``lm_head: trained``: only the positions with a label, the completions' (the same log-probs);
- and without the KL term as well: ``kl_coef`` 0 (TRL then builds no reference model).

A step that is not counted runs first (the first run in a process pays one-time costs).

    python bench/bench_rl_step.py --model smollm2-135m-instruct --steps 2
    python bench/bench_rl_step.py --model runs/demo/sft123 --preset default   # the tiny model
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def world(root: Path) -> tuple[Path, Path]:
    """The fast preset's world and its BM25 index: (questions file, index directory)."""
    from autocoa.data.corpus import read_corpus
    from autocoa.recipe.config import preset
    from autocoa.tools.index import BM25Index
    from autocoa.world import generate_world, write_world

    write_world(generate_world(preset("fast").world), root / "world")
    BM25Index.build(read_corpus(root / "world" / "corpus.jsonl")).save(root / "index")
    return root / "world" / "dev.jsonl", root / "index"


def run(model_path: str, questions: Path, index: Path, out: Path, cfg, n_questions: int) -> dict[str, float]:
    """Seconds per part over ``cfg.real_steps`` steps, and the steps' total."""
    import torch
    from accelerate import PartialState

    from autocoa.models import load_model
    from autocoa.named_models import resolve_model
    from autocoa.tools.search import Retrieval
    from autocoa.train.common import lm_head_positions
    from autocoa.train.rl import _point_reference_at, build_trainer
    from autocoa.train.rl_rollouts import load_questions

    torch.manual_seed(0)
    path = resolve_model(model_path)
    model, tok = load_model(path, for_training=True)
    _point_reference_at(model, tok, Path(path), out, PartialState(cpu=True))
    rows = load_questions(questions, tok, n_questions)
    trainer = build_trainer(model, tok, rows, cfg, out, Retrieval(index).toolbox(cfg.topk))
    parts: dict[str, float] = defaultdict(float)

    rollout = trainer.rollout_func

    def timed_rollout(*args, **kwargs):
        t = time.perf_counter()
        try:
            return rollout(*args, **kwargs)
        finally:
            parts["rollouts"] += time.perf_counter() - t

    logps = trainer._get_per_token_logps_and_entropies

    def timed_logps(m, *args, **kwargs):
        t = time.perf_counter()
        try:
            return logps(m, *args, **kwargs)
        finally:
            ref = getattr(trainer, "ref_model", None)
            key = (
                "reference"
                if ref is not None and m is ref
                else "policy forward"
                if torch.is_grad_enabled()
                else "policy no-grad"
            )
            parts[key] += time.perf_counter() - t

    trainer.rollout_func = timed_rollout
    trainer._get_per_token_logps_and_entropies = timed_logps
    t0 = time.perf_counter()
    with lm_head_positions(cfg.lm_head):
        trainer.train()
    parts["step total"] = time.perf_counter() - t0
    parts["the rest"] = parts["step total"] - sum(v for k, v in parts.items() if k != "step total")
    return {k: v / cfg.real_steps for k, v in parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--preset", default="pretrained", help="whose RL settings: pretrained (real model) or default")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--questions", type=int, default=16)
    args = ap.parse_args()

    from autocoa.recipe.config import preset

    base = preset(args.preset).rl.model_copy(
        update={
            "sim_steps": 0,
            "real_steps": args.steps,
            "save_every": 10_000,
            "eval_every": 10_000,
            "heldout_every": 0,
            "topk": preset(args.preset).topk,
        }
    )
    arms = {
        "before": {},
        "lm_head trained": {"lm_head": "trained"},
        "+ kl_coef 0": {"lm_head": "trained", "kl_coef": 0.0},
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        questions, index = world(Path(tmp))
        # a step not counted first: the first run in a process pays one-time costs (imports, allocator)
        run(args.model, questions, index, Path(tmp) / "warm", base.model_copy(update={"real_steps": 1}), args.questions)
        for i, (name, update) in enumerate(arms.items()):
            cfg = base.model_copy(update=update)
            results[name] = run(args.model, questions, index, Path(tmp) / f"arm{i}", cfg, args.questions)
    names = list(results)
    keys = ["rollouts", "reference", "policy no-grad", "policy forward", "the rest", "step total"]
    print(
        f"model {args.model}, {args.steps} real steps of {base.prompts_per_step} prompts x "
        f"{base.num_generations} rollouts, kl_coef {base.kl_coef} unless said (seconds a step)"
    )
    print(f"  {'part':16s}" + "".join(f"{n:>18s}" for n in names))
    for k in keys:
        print(f"  {k:16s}" + "".join(f"{results[n].get(k, 0.0):18.2f}" for n in names))
    first = results[names[0]]["step total"]
    for n in names[1:]:
        print(f"step time, {n} / {names[0]}: {results[n]['step total'] / first:.2f}x")


if __name__ == "__main__":
    main()
