"""What every training stage shares: output-directory rules, metrics logging and the trainer arguments."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocoa.atomic import write_text
from autocoa.jsonl import write_jsonl
from autocoa.train.tracking import trackers

if TYPE_CHECKING:
    from autocoa.train.stage_config import SFTConfig

DONE_MARKER = "DONE"


class OutputExistsError(FileExistsError):
    pass


def check_out_dir(out_dir: Path, overwrite: bool = False) -> None:
    """Refuse to write over a finished run (one whose directory holds the DONE marker)."""
    if (out_dir / DONE_MARKER).exists() and not overwrite:
        raise OutputExistsError(
            f"{out_dir} holds a finished run; choose another --out or pass --overwrite to replace it "
            "(see docs/troubleshooting.md#overwrite)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)


def mark_done(out_dir: Path, summary: dict) -> None:
    """The finished run's marker, with its summary; atomic (a kill leaves none or all of it).
    The one writer of ``DONE``: a trainer writes it when its run ends, and the recipe's stage
    runner writes it again with the stage's fingerprint added (:mod:`autocoa.recipe.stages`)."""
    write_text(out_dir / DONE_MARKER, json.dumps(summary, indent=2, default=str) + "\n")


def read_done(out_dir: Path) -> dict | None:
    """The summary in ``out_dir``'s ``DONE`` marker; None when there is none, or when it does not
    parse (a marker torn by a kill before writes were atomic: the run is not finished)."""
    marker = out_dir / DONE_MARKER
    if not marker.exists():
        return None
    try:
        return json.loads(marker.read_text(encoding="utf-8") or "{}")
    except ValueError:
        return None


def metrics_callback(path: Path):
    """A transformers ``TrainerCallback`` that appends every log (loss, lr, ...) as a JSON line."""
    from transformers import TrainerCallback

    class _JsonlMetrics(TrainerCallback):
        def __init__(self) -> None:
            self.t0 = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            row = {
                "step": state.global_step,
                "epoch": state.epoch,
                "time": round(time.perf_counter() - self.t0, 2),
                **{k: v for k, v in logs.items() if isinstance(v, int | float)},
            }
            write_jsonl(path, [row], append=True)

    return _JsonlMetrics()


def trainer_args(cfg: SFTConfig, out_dir: Path, progress: bool) -> dict[str, Any]:
    """The ``TrainingArguments`` fields every stage shares (TRL's configs extend them)."""

    from autocoa.models import trainer_precision

    return dict(
        output_dir=str(out_dir / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a fraction of the steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        data_seed=cfg.seed,
        **trainer_precision(cfg.bf16),
        activation_checkpointing=cfg.gradient_checkpointing,
        report_to=trackers(cfg.report_to),
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every parameter gets a gradient; skips a graph traversal per step
        disable_tqdm=not progress,
        optim="adamw_torch_fused" if cfg.optimizer == "adamw_fused" else "adamw_torch",
        torch_compile=cfg.compile and can_compile(),
    )


def can_compile() -> bool:
    """Whether ``torch.compile``'s CPU backend can build here (it needs a C++ compiler); when it
    cannot, say so in one line and train eager."""
    import shutil

    import torch

    if torch.cuda.is_available() or any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        return True
    warnings.warn("compile: no C++ compiler (c++, g++ or clang++) on PATH; training eager", stacklevel=3)
    return False


def quiet_libraries(progress: bool) -> None:
    """Without our progress display, the libraries' own bars (datasets' "Map:", transformers'
    weight loading) are noise in a pipeline's log: turn them off (process-wide)."""
    # deprecations raised inside TRL and transformers by their own calls (not ours): by message
    for pattern in (
        r"`(is_)?gradient_checkpointing(_enable|_disable)?` is"
        r" deprecated",
        r"`past_key_values` is deprecated",
    ):
        warnings.filterwarnings("ignore", message=pattern, category=FutureWarning, module=r"(trl|transformers)\.")
    if progress:
        return
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


def quiet_trainer(trainer: Any, progress: bool) -> Any:
    """Without a progress bar transformers prints every log dictionary (``PrinterCallback``);
    those lines already go to ``metrics.jsonl``, so the printer goes. Under a live display
    (:func:`autocoa.progress.live`) the stage shows its own bar there (:func:`live_steps`)."""
    from autocoa.progress import active

    if not progress:
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    if active() is not None:
        trainer.add_callback(live_steps(active(), type(trainer).__name__.removesuffix("Trainer") or "train"))
    return trainer


# The numbers a stage's live bar shows, when its logs have them: the loss (every stage), pair
# accuracy (SFT-1), the step's reward, its environment and the real calls spent (RL).
LIVE_KEYS = (
    ("loss", "loss"),
    ("rewards/accuracies", "pair acc"),
    ("reward", "reward"),
    ("rl/env_real", "real env"),
    ("real_calls_total", "real calls"),
)


def live_fields(logs: dict[str, Any]) -> str:
    """The live bar's text for one log dictionary.

    >>> live_fields({"loss": 0.41234, "reward": 0.5, "rl/env_real": 1.0, "real_calls_total": 12, "lr": 1e-4})
    'loss 0.412  reward 0.500  real env 1  real calls 12'
    """
    parts = []
    for key, name in LIVE_KEYS:
        v = logs.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            parts.append(f"{name} {v:.3f}" if isinstance(v, float) and not float(v).is_integer() else f"{name} {v:g}")
    return "  ".join(parts)


def live_steps(display: Any, name: str) -> Any:
    """A training stage's bar on the live display (a ``TrainerCallback``): steps done of the
    total (with rich's ETA) and :func:`live_fields` of the last log."""
    from transformers import TrainerCallback

    class LiveSteps(TrainerCallback):
        task = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.task = display.add_task(f"  {name}", total=state.max_steps or None)

        def on_step_end(self, args, state, control, **kwargs):
            if self.task is not None:
                display.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            text = live_fields(logs or {})
            if self.task is not None and text:
                display.update(self.task, description=f"  {name}: {text}")

        def on_train_end(self, args, state, control, **kwargs):
            if self.task is not None:
                display.remove_task(self.task)
                self.task = None

    return LiveSteps()


@contextmanager
def lm_head_positions(which: str) -> Iterator[None]:
    """While training, make TRL's fused LM head (``add_fused_lm_head``, which SFT-2/3 and GRPO use)
    project only the positions with a label on CPU too, when ``which`` is ``"trained"``.

    TRL decides per call with ``trl.trainer.utils._use_triton(device)``: true on a Triton GPU, where
    it projects the labelled rows; false elsewhere, where it projects every row. The kernel's own
    choice (Triton or torch) is a separate lookup in ``trl.kernels.chunked_logprob`` and stays as
    it is, so on CPU the labelled rows go through the torch kernel. A private name of a pinned TRL
    (tests/test_trl_private_api.py); restored on exit, so other stages in the process are untouched.
    """
    if which == "all":
        yield
        return
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


def right_padded(mask: Any) -> bool:
    """Whether every row of a 2-D attention mask is ones then zeros (padding on the right only).

    >>> import torch
    >>> right_padded(torch.tensor([[1, 1, 0], [1, 1, 1]])), right_padded(torch.tensor([[0, 1, 1]]))
    (True, False)
    """
    return bool((mask[:, 1:] <= mask[:, :-1]).all())


def causal_padding(backbone: Any) -> Any:
    """Let ``backbone`` (a decoder's stack, as the LM head calls it) drop the attention mask of a
    right-padded batch, so attention runs causal-only (SDPA's ``is_causal`` path, no mask tensor).

    The same result at every real position: a real token attends only to the tokens before it,
    all real when the padding is on the right, and position ids count from 0 either way. Padded
    positions compute something else, but carry no label, so no loss and no gradient. A batch
    padded elsewhere (left, or packed) keeps its mask. Returns the hook's handle."""

    def drop_right_padding_mask(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2 and kwargs.get("position_ids") is None and right_padded(mask):
            kwargs = {**kwargs, "attention_mask": None}
        return args, kwargs

    return backbone.register_forward_pre_hook(drop_right_padding_mask, with_kwargs=True)
