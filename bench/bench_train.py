"""Benchmark: SFT training speed with LoRA, and with the LM head on trained positions only, vs full
fine-tuning as it is by default, on the same model and data.

Runs ``autocoa train sft2`` (the whole stage as a user runs it: TRL's SFTTrainer, bf16 autocast
on CPU, pre-tokenized chat-template examples) for ``--steps`` optimizer steps, with full
fine-tuning, with ``lora_rank`` (peft, every linear layer, tag rows trainable) and with
``lm_head: trained`` (TRL's fused LM head projects only the labelled positions on CPU, not the
prompt's and padding's too), and prints the training tokens/s of each (the summary's
``tokens_per_s``: the examples' tokens over the training seconds) and their ratios to full,
measured in the same run. The data are synthetic-world CoA trajectories (``--data``, e.g. a
demo's ``data/coa.jsonl``).

    python bench/bench_train.py --model smollm2-135m-instruct --data runs/smol/data/coa.jsonl
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from autocoa.train.sft import train_sft
from autocoa.train.stage_config import MaskedSFTConfig


def run(model: str, data: Path, steps: int, rank: int, out: Path, lm_head: str = "all") -> float:
    cfg = MaskedSFTConfig(
        max_steps=steps,
        batch_size=4,
        lr=1e-4,
        cot_ratio=0.0,
        max_examples=4 * steps,
        save_steps=10_000,
        lora_rank=rank,
        lm_head=lm_head,
    )
    return train_sft("sft2", model, data, out, cfg, progress=False)["tokens_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    arms = {"full": (0, "all"), f"lora r={args.rank}": (args.rank, "all"), "lm_head trained": (0, "trained")}
    rates: dict[str, list[float]] = {name: [] for name in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for name, (rank, lm_head) in arms.items():
                out = Path(tmp) / f"run{i}_{rank}_{lm_head}"
                rates[name].append(run(args.model, args.data, args.steps, rank, out, lm_head))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"model {args.model}, {args.steps} steps of batch 4, median of {args.repeats}")
    for k, v in med.items():
        print(f"  {k:16s} {v:7.1f} training tokens/s  ({', '.join(f'{x:.1f}' for x in rates[k])})")
    for k in list(arms)[1:]:
        print(f"{k} / full: {med[k] / med['full']:.2f}x")


if __name__ == "__main__":
    main()
