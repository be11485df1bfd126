"""Benchmark: SFT-2's training speed against a bare compiled loop, and where a step's time goes.

Times ``autocoa train sft2`` as the recipe runs it (TRL's SFTTrainer, the default recipe's SFT-2
settings, the CoT mix) for ``--steps`` optimizer steps, once per *arm* (the default, then each
speed lever of docs/benchmarks.md#training on top of it, and ``batch_splits=1``: the default
before its batches were split), against a bare loop
over the same model: the same examples' tokens packed into rows with no padding, a plain
``model(input_ids, labels=input_ids)`` loss, AdamW and gradient clipping, eager and
``torch.compile``d. Both count real tokens only (no padding), over the steady steps (after
``--warmup`` steps, so the compile of the compiled arms is reported apart, as a one-off cost),
and print the ratio to the compiled bare loop, measured in the same run.

Each arm's step is split into its parts, timed around the trainer's own calls: data (fetching
and collating the batch), forward (the backbone), LM head (the fused head's projection and loss,
forward only), backward, optimizer (clipping, AdamW, the schedule), logging and checkpointing
(metric lines and the checkpoint every ``save_steps``, amortised per step), and the rest (the
trainer's own per-step work: metrics, callbacks). A compiled arm's forward is timed whole (the
backbone cannot be timed inside a compiled graph).

With no arguments it makes the default recipe's seed-0 base model and data in a temporary
directory (~30 s); ``--data`` takes a demo's ``data/coa.jsonl`` (its ``cot.jsonl`` beside it is
mixed in as the recipe does) and ``--model`` its base.

    python bench/bench_train.py                        # default arms, 120 steps each
    python bench/bench_train.py --arms default,lm_head=trained --steps 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARTS = ("data", "forward", "lm_head", "backward", "optimizer", "log_save", "rest")
# the levers, each a change of the SFT-2 config (docs/benchmarks.md#training)
LEVERS = {
    "lm_head=trained": {"lm_head": "trained"},
    "adamw_fused": {"optimizer": "adamw_fused"},
    "padding_mask=causal": {"padding_mask": "causal"},
    "padding_free": {"padding_free": True, "batch_splits": 1},  # the other way to drop padding
    "compile": {"compile": True},
}
# the default preset as it is (batch_splits 3), as it was before batch_splits, then each lever
DEFAULT_ARMS = ("default", "batch_splits=1", *LEVERS)


def arm_config(name: str) -> dict[str, Any]:
    """The SFT-2 config fields an arm changes: ``default`` none, ``a+b`` both levers' fields.

    >>> arm_config("lm_head=trained+compile")
    {'lm_head': 'trained', 'compile': True}
    """
    if name == "default":
        return {}
    update: dict[str, Any] = {}
    for lever in name.split("+"):
        if lever in LEVERS:
            update |= LEVERS[lever]
        elif "=" in lever:  # any SFT-2 field: batch_splits=4
            key, value = lever.split("=", 1)
            update[key] = int(value) if value.isdigit() else value
        else:
            raise SystemExit(f"--arms: unknown lever {lever!r}; levers: {', '.join(LEVERS)}, FIELD=VALUE (or default)")
    return update


class StepClock:
    """Times the parts of each optimizer step of a transformers ``Trainer`` by wrapping the calls
    the training loop makes (``get_batch_samples``, the model's forward, ``accelerator.backward``,
    ``_clip_grad_norm`` and ``optimizer.step``, ``_maybe_log_save_evaluate``), and counts each
    step's real (non-padding) tokens."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.current: dict[str, float] = defaultdict(float)
        self.step_start = 0.0

    def attach(self, trainer: Any) -> None:
        from transformers import TrainerCallback

        clock = self

        def timed(part: str, fn: Callable) -> Callable:
            def wrapper(*a, **k):
                t = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    clock.current[part] += time.perf_counter() - t

            return wrapper

        fetch = trainer.get_batch_samples

        def get_batch_samples(*a, **k):
            t = time.perf_counter()
            clock.step_start = clock.step_start or t
            batches, n = fetch(*a, **k)
            clock.current["data"] += time.perf_counter() - t
            for b in batches:
                mask = b.get("attention_mask")
                clock.current["tokens"] += int(mask.sum()) if mask is not None else b["input_ids"].numel()
                clock.current["fetched"] += 1
            return batches, n

        trainer.get_batch_samples = get_batch_samples
        trainer.accelerator.backward = timed("backward", trainer.accelerator.backward)
        trainer._clip_grad_norm = timed("optimizer", trainer._clip_grad_norm)
        trainer._maybe_log_save_evaluate = timed("log_save", trainer._maybe_log_save_evaluate)
        model = trainer.model
        compiled = bool(trainer.args.torch_compile)
        self._hook_forward(model, "model_forward")
        if not compiled:  # inside a compiled graph the backbone cannot be timed apart
            self._hook_forward(model.get_base_model() if hasattr(model, "get_base_model") else model.model, "forward")

        class Steps(TrainerCallback):
            def on_pre_optimizer_step(self, args, state, control, **kwargs):
                clock.t_opt = time.perf_counter()

            def on_optimizer_step(self, args, state, control, **kwargs):
                clock.current["optimizer"] += time.perf_counter() - clock.t_opt

        trainer.add_callback(Steps())
        # a step ends after its logging and checkpointing: close it there
        log_save = trainer._maybe_log_save_evaluate

        def close_step(*a, **k):
            out = log_save(*a, **k)
            clock.close()
            return out

        trainer._maybe_log_save_evaluate = close_step

    def _hook_forward(self, module: Any, part: str) -> None:
        def pre(mod, args, kwargs):
            self._t_fwd = getattr(self, "_t_fwd", {}) | {part: time.perf_counter()}
            if part == "model_forward":  # the tokens the forward computes, padding included
                self.current["computed_tokens"] += kwargs["input_ids"].numel()

        def post(mod, args, kwargs, out):
            self.current[part] += time.perf_counter() - self._t_fwd[part]

        module.register_forward_pre_hook(pre, with_kwargs=True)
        module.register_forward_hook(post, with_kwargs=True)

    def close(self) -> None:
        now = time.perf_counter()
        if not self.current.get("fetched"):  # the epoch's closing log, after the last step
            self.current, self.step_start = defaultdict(float), now
            return
        c = dict(self.current)
        c["total"] = now - self.step_start
        whole = c.pop("model_forward", 0.0)
        if "forward" in c:
            c["lm_head"] = whole - c["forward"]
        else:  # compiled: the forward timed whole
            c["forward"], c["lm_head"] = whole, 0.0
        c["rest"] = c["total"] - sum(c.get(p, 0.0) for p in PARTS if p != "rest")
        self.steps.append(c)
        self.current = defaultdict(float)
        self.step_start = now

    def summary(self, warmup: int) -> dict[str, Any]:
        """Real tokens/s over the steady steps, and each part's share of their time; the warm-up
        steps' time beyond a steady step's (the compile, the first allocations) as ``one_off_s``."""
        steady = self.steps[warmup:]
        if not steady:
            raise SystemExit(f"--steps must exceed --warmup ({warmup}): no steady step was timed")
        total = sum(s["total"] for s in steady)
        per_step = total / len(steady)
        parts = {p: round(sum(s.get(p, 0.0) for s in steady) / total, 3) for p in PARTS}
        return {
            "tokens_per_s": round(sum(s["tokens"] for s in steady) / total, 1),
            "s_per_step": round(per_step, 4),
            "padding": round(1 - sum(s["tokens"] for s in steady) / sum(s["computed_tokens"] for s in steady), 3),
            "one_off_s": round(sum(s["total"] for s in self.steps[:warmup]) - warmup * per_step, 1),
            "parts": parts,
        }


def run_arm(
    model: Path, data: Path, cot: Path | None, steps: int, update: dict, out: Path, warmup: int
) -> tuple[dict, list[list[int]]]:
    """One arm: the default recipe's SFT-2 for ``steps`` steps with ``update`` applied, timed;
    and the token ids of the examples its trainer saw (the bare loop packs them)."""
    from autocoa.recipe.config import preset
    from autocoa.train.sft import train_sft

    base = preset("default").sft2
    # validated: an arm that sets a field wrongly, or two that exclude each other, is refused by name
    cfg = type(base).model_validate(
        {**base.model_dump(), "max_steps": steps, **update, **({"cot_ratio": 0.0} if cot is None else {})}
    )
    clock, seen = StepClock(), []

    def instrument(trainer: Any) -> None:
        clock.attach(trainer)
        seen.extend(trainer.train_dataset["input_ids"])

    summary = train_sft("sft2", model, data, out, cfg, cot_path=cot, progress=False, instrument=instrument)
    timed = {**clock.summary(warmup), "train_seconds": summary["train_seconds"], "loss_last": summary["last"]}
    return timed, seen


def bare_loop(
    model_dir: Path, examples: list[list[int]], steps: int, batch: int, row_len: int, compiled: bool, warmup: int
):
    """The ceiling: the same model trained on the same tokens packed ``batch`` x ``row_len`` with
    no padding, a plain full-logits loss, AdamW (the recipe's peak lr) and clipping; real tokens/s
    over the steady steps."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.train()
    stream = torch.tensor([t for ids in examples for t in ids])
    n_rows = len(stream) // row_len
    rows = stream[: n_rows * row_len].view(n_rows, row_len)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    fwd = torch.compile(model) if compiled else model
    times = []
    for i in range(steps):
        x = rows[(i * batch) % (n_rows - batch) :][:batch]
        t = time.perf_counter()
        loss = fwd(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    steady = times[warmup:]
    per_step = sum(steady) / len(steady)
    return {
        "tokens_per_s": round(batch * row_len / per_step, 1),
        "s_per_step": round(per_step, 4),
        "one_off_s": round(sum(times[:warmup]) - warmup * per_step, 1),
    }


def default_inputs(root: Path) -> tuple[Path, Path, Path]:
    """The default recipe's seed-0 base model and SFT-2 data, made under ``root``."""
    from autocoa.recipe.config import for_seed, preset
    from autocoa.recipe.stages import recipe_stages, run_stages

    cfg = for_seed(preset("default"), 0)
    run_stages([s for s in recipe_stages(cfg, root) if s.name in ("world", "index", "base", "data")])
    return root / "base", root / "data" / "coa.jsonl", root / "data" / "cot.jsonl"


def table(results: dict[str, dict], ceiling: float) -> str:
    head = "| arm | real tokens/s | / compiled loop | s a step | padding | one-off s | " + " | ".join(PARTS) + " |"
    lines = [head, "|" + "---|" * (6 + len(PARTS))]
    for name, r in results.items():
        parts = r.get("parts", {})
        cells = " | ".join(f"{parts[p]:.2f}" if p in parts else "" for p in PARTS)
        pad = f"{r['padding']:.2f}" if "padding" in r else "0"
        lines.append(
            f"| {name} | {r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / ceiling:.2f} | {r['s_per_step']:.3f} | "
            f"{pad} | {r['one_off_s']} | {cells} |"
        )
    return "\n".join(lines)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, help="base model directory (default: the default recipe's, made here)")
    ap.add_argument("--data", type=Path, help="a demo's data/coa.jsonl (its cot.jsonl is mixed in when present)")
    ap.add_argument("--steps", type=int, default=120, help="optimizer steps an arm (the default recipe saves at 100)")
    ap.add_argument("--warmup", type=int, default=10, help="first steps left out of the rates (compile, allocation)")
    ap.add_argument("--arms", default=",".join(DEFAULT_ARMS), help="comma-separated: default, levers joined by +")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    arms = {name: arm_config(name) for name in args.arms.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.data is None:
            model, data, cot = default_inputs(root / "inputs")
        else:
            data = args.data
            cot = data.parent / "cot.jsonl" if (data.parent / "cot.jsonl").exists() else None
            model = args.model or data.parent.parent / "base"
        model = args.model or model
        results: dict[str, dict] = {}
        for name, update in arms.items():
            results[name], examples = run_arm(
                model, data, cot, args.steps, update, root / name.replace("+", "_"), args.warmup
            )
            print(f"{name}: {results[name]['tokens_per_s']:,.0f} real tokens/s", flush=True)
        batch = preset_batch()
        row_len = round(sum(len(ids) for ids in examples) / len(examples))
        for compiled in (False, True):
            name = f"bare loop ({'compiled' if compiled else 'eager'}, {batch} x {row_len})"
            results[name] = bare_loop(model, examples, args.steps, batch, row_len, compiled, args.warmup)
            print(f"{name}: {results[name]['tokens_per_s']:,.0f} real tokens/s", flush=True)
    ceiling = results[f"bare loop (compiled, {batch} x {row_len})"]["tokens_per_s"]
    print(f"\nSFT-2 steps {args.steps} (steady from {args.warmup}), torch threads {torch.get_num_threads()}")
    print(table(results, ceiling))
    print(f"\ndefault / compiled bare loop: {results.get('default', {}).get('tokens_per_s', 0) / ceiling:.2f}")
    if args.out is not None:
        args.out.write_text(json.dumps({"steps": args.steps, "arms": results}, indent=2) + "\n", encoding="utf-8")


def preset_batch() -> int:
    from autocoa.recipe.config import preset

    return preset("default").sft2.batch_size


if __name__ == "__main__":
    main()
