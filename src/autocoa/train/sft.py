"""SFT stages 2 and 3 on TRL's ``SFTTrainer``, and :func:`train_sft`, the runner of all three.

- **SFT-stage2 (CoT+CoA, "how to act")**: next-token cross-entropy on the tokens the model
  writes; every observation span (its tags included) is excluded from the loss.
- **SFT-stage3 (the internal world model)**: the same data with observations trained, so the
  model also learns what the tool returns for its query.

Examples are pre-tokenized by :func:`autocoa.trajectory.render` — the one loss-mask rule —
into ``{"input_ids", "labels"}`` (label -100 where the mask is 0), which ``SFTTrainer`` takes
as they are. Pure-CoT rows (``--cot-data``) are mixed in at ``cot_ratio`` CoT rows per CoA
row (the paper: 5k CoA + 1k CoT), drawn with the run's seed. ``--pool-data`` rows are added
``pool_repeats`` times each (SFT-stage3 on synth's ``rl_pool.jsonl``: the world model learns the
documents of the questions RL-stage1 will imagine results for). Prompts are re-formatted for the
student's tokenizer (:func:`autocoa.agent.prompts.format_prompt`), so a chat model trains on
its chat template, exactly as the agent loop will prompt it. No EOS is appended: the agent
loop stops at ``</answer>``.

Stage 1 (the contrastive "when to act" stage) lives in :mod:`autocoa.train.contrastive`.
Departures from the paper: none in the losses; the defaults of
:mod:`autocoa.train.stage_config` suit the tiny CPU model (the paper's 7B values are in
``configs/paper/``).

Run: ``autocoa train sft2 --model IN --data coa.jsonl --cot-data cot.jsonl --out DIR``
(``sft3`` alike; resumes by itself; ``accelerate launch`` for several processes or GPUs).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autocoa.runlock import holds_lock
from autocoa.train.common import causal_padding, lm_head_positions, quiet_libraries, quiet_trainer, trainer_args
from autocoa.train.examples import check_rows, masked_example, mix_rows, read_rows, replay_examples, trajectory_of
from autocoa.train.stage_config import SFTConfig, config_for


def sft_examples(
    data_path: Path,
    tokenizer: Any,
    cfg: SFTConfig,
    mask_observations: bool,
    cot_path: Path | None = None,
    pool_path: Path | None = None,
    replay_path: Path | None = None,
) -> tuple[list[dict], dict]:
    """Pre-tokenized examples of stage 2/3 (CoA rows + the CoT mix + ``pool_repeats`` copies of
    the pool rows + ``replay_ratio`` blocks of ``replay_path``'s text per CoA row) and counts
    for the summary."""
    coa = read_rows(data_path, ("question", "segments"), cfg.max_examples)
    # an empty CoT file is data, not an error: a teacher calibrated to a base model that recalls
    # no whole chain writes no pure-CoT row (synth known_from: model)
    cot = read_rows(cot_path, ("question", "segments"), allow_empty=True) if cot_path is not None else []
    pool = read_rows(pool_path, ("question", "segments")) if pool_path is not None else []
    repeats = getattr(cfg, "pool_repeats", 0)
    # observations of the non-pool rows stay masked when only the pool's are to be learned
    mask_rest = mask_observations or getattr(cfg, "observations_in", "all") == "pool"
    pool_only_obs = getattr(cfg, "pool_loss", "all") == "observations"
    mixed = (
        [(data_path, n, r, mask_rest, False) for n, r in coa]
        + [
            (cot_path, n, r, mask_rest, False)
            for n, r in mix_rows(len(coa), cot, getattr(cfg, "cot_ratio", 0.0), cfg.seed)
        ]
        + [(pool_path, n, r, mask_observations, pool_only_obs) for n, r in pool] * repeats
    )
    examples, dropped, truncated = [], 0, 0
    for path, n, row, mask, only_obs in mixed:
        traj = trajectory_of(row, tokenizer, (path, n))
        ex = masked_example(traj, tokenizer, mask, cfg.max_length, only_observations=only_obs)
        if ex is None:
            dropped += 1
            continue
        truncated += len(ex["input_ids"]) == cfg.max_length
        examples.append(ex)
    replay = []
    if replay_path is not None:
        replay = replay_examples(replay_path, tokenizer, len(coa), cfg.replay_ratio, cfg.replay_block, cfg.seed)
        examples += replay
    stats = {
        "rows": len(coa),
        "cot_rows": len(mixed) - len(coa) - len(pool) * repeats,
        "pool_rows": len(pool) * repeats,
        "replay_rows": len(replay),
        "examples": len(examples),
        "dropped_no_trained_tokens": dropped,
        "truncated": truncated,
        "tokens": sum(len(e["input_ids"]) for e in examples),
        "trained_tokens": sum(sum(t != -100 for t in e["labels"]) for e in examples),
    }
    return examples, stats


def build_sft_trainer(
    model: Any,
    tokenizer: Any,
    examples: list[dict],
    cfg: SFTConfig,
    out_dir: Path,
    progress: bool = True,
    callbacks: list | None = None,
):
    """TRL ``SFTTrainer`` over pre-tokenized ``{"input_ids", "labels"}`` examples."""
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig

    from autocoa.train.batch_split import sft_trainer_class

    padding_free = getattr(cfg, "padding_free", False)
    sampling = "group_by_length" if getattr(cfg, "batches", "random") == "by_length" else "random"
    args = TRLSFTConfig(
        **trainer_args(cfg, out_dir, progress),
        # examples are truncated to max_length when tokenized (masked_example); TRL refuses padding-free
        # rows with a max_length it would not enforce
        max_length=None if padding_free else cfg.max_length,
        packing=False,
        padding_free=padding_free,
        train_sampling_strategy=sampling,
    )
    trainer = sft_trainer_class(getattr(cfg, "batch_splits", 1))(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if getattr(cfg, "padding_mask", "kept") == "causal":
        causal_padding(trainer.model.get_decoder())
    return trainer


# long: the runner of the three SFT stages in order: inputs checked, resume, trainer, train, save, summary
@holds_lock()
def train_sft(
    stage: str,
    model_path: str | Path,
    data_path: str | Path,
    out_dir: str | Path,
    cfg: SFTConfig | None = None,
    cot_path: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    pool_path: str | Path | None = None,
    replay_path: str | Path | None = None,
    instrument: Callable[[Any], None] | None = None,
) -> dict:
    """Train one SFT stage (``sft1``, ``sft2`` or ``sft3``) from ``model_path`` on ``data_path``.

    Saves the model and tokenizer to ``out_dir`` with ``sft_config.yaml``, ``sft.json`` (the
    summary, also returned) and the DONE marker. An unfinished run in ``out_dir`` is resumed from
    its last complete checkpoint; a finished one is refused unless ``overwrite``. Works the same
    under ``accelerate launch`` (every process calls it; rank 0 writes). ``instrument`` is called
    with the trainer before it trains (bench/bench_train.py times its steps' parts through it).
    """
    from accelerate import PartialState

    from autocoa.models import load_model
    from autocoa.train.common import mark_done, metrics_callback

    cfg = _check_inputs(stage, cfg, cot_path, pool_path, replay_path)
    from autocoa.named_models import resolve_model

    model_path, data_path, out_dir = resolve_model(model_path), Path(data_path), Path(out_dir)
    cot_path = Path(cot_path) if cot_path is not None else None
    pool_path = Path(pool_path) if pool_path is not None else None
    replay_path = Path(replay_path) if replay_path is not None else None
    state = PartialState()
    files = (data_path, cot_path, pool_path, replay_path)
    ckpt = _prepare_run(stage, cfg, model_path, out_dir, files, overwrite, state)

    quiet_libraries(progress)
    t0 = time.perf_counter()
    model, tok = load_model(model_path, device="cpu", dtype="fp32", for_training=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if cfg.prompt is not None:  # saved with the tokenizer: every later stage, eval and serve prompt alike
        from autocoa.agent.prompts import set_prompt_style

        set_prompt_style(tok, cfg.prompt)
    if cfg.lora_rank:
        model = with_lora(model, tok, cfg.lora_rank)
    callbacks = [metrics_callback(out_dir / "metrics.jsonl")]
    if stage == "sft1":
        from autocoa.train.contrastive import build_cpo_trainer, pair_examples

        examples, stats = pair_examples(data_path, tok, cfg)
        trainer = build_cpo_trainer(model, tok, examples, cfg, out_dir, progress, callbacks)
    else:
        examples, stats = sft_examples(
            data_path,
            tok,
            cfg,
            mask_observations=stage == "sft2",
            cot_path=cot_path,
            pool_path=pool_path,
            replay_path=replay_path,
        )
        trainer = build_sft_trainer(model, tok, examples, cfg, out_dir, progress, callbacks)
    quiet_trainer(trainer, progress)
    restore_token_count(trainer, out_dir / "metrics.jsonl", ckpt)
    prepare_seconds = time.perf_counter() - t0
    if instrument is not None:
        instrument(trainer)

    t1 = time.perf_counter()
    with lm_head_positions(getattr(cfg, "lm_head", "all")):  # SFT-1's CPO trainer has no fused head
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
    train_seconds = time.perf_counter() - t1
    if cfg.lora_rank:  # the adapters merged in: the stage's output is a plain checkpoint like any other
        trainer.model = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
    trainer.save_model(str(out_dir))  # gathers sharded (FSDP / ZeRO-3) weights; saves the tokenizer too

    summary = run_summary(stage, trainer, stats, train_seconds, prepare_seconds, ckpt)
    if state.is_main_process:
        _warn_on_collapse(summary, cfg)
        cfg.save(out_dir / "sft_config.yaml")
        (out_dir / "sft.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        mark_done(out_dir, summary)
    state.wait_for_everyone()
    return summary


def restore_token_count(trainer: Any, metrics: Path, ckpt: Path | None) -> None:
    """TRL's SFT trainer counts the trained tokens (the ``num_tokens`` metric) in the trainer
    object, not in its checkpoints, so a resumed run would count from 0. Continue from the
    metric line at the checkpoint's step (there is one: save_steps is a multiple of
    logging_steps); every process reads it (the count is global)."""
    from autocoa.jsonl import read_logged
    from autocoa.train.checkpoints import step_of

    if ckpt is None or not hasattr(trainer, "_total_train_tokens"):
        return
    at = [r for r in read_logged(metrics) if r.get("step") == step_of(ckpt) and "num_tokens" in r]
    if at:
        trainer._total_train_tokens = int(at[-1]["num_tokens"])


def with_lora(model: Any, tokenizer: Any, rank: int) -> Any:
    """``model`` with LoRA adapters of ``rank`` on every linear layer (alpha = 2 x rank) and the
    tag tokens' embedding rows trainable (the tags are new tokens, so the model must learn them;
    the other rows stay frozen). The rows are trained through a gradient mask on the embedding,
    not peft's ``trainable_token_indices``: on a model with tied embeddings that wraps the LM
    head in a module without ``bias``, which TRL's fused LM head reads."""
    import torch
    from peft import LoraConfig, get_peft_model

    from autocoa.trajectory import check_tags

    peft_model = get_peft_model(
        model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    emb = peft_model.get_input_embeddings().weight
    rows = torch.zeros(emb.shape[0], 1, dtype=emb.dtype, device=emb.device)
    rows[sorted(check_tags(tokenizer).values())] = 1.0
    emb.requires_grad_(True)
    emb.register_hook(lambda grad: grad * rows)
    return peft_model


def _check_inputs(
    stage: str, cfg: SFTConfig | None, cot_path: Any, pool_path: Any, replay_path: Any = None
) -> SFTConfig:
    """The stage's config (its default when None), checked against the inputs given."""
    cfg_type = config_for(stage)
    cfg = cfg if cfg is not None else cfg_type()
    if not isinstance(cfg, cfg_type):
        raise TypeError(f"{stage} takes a {cfg_type.__name__}, got {type(cfg).__name__}")
    if stage == "sft1" and (cot_path is not None or pool_path is not None):
        raise ValueError("--cot-data and --pool-data are for sft2/sft3; sft1 trains on pairs only")
    if (pool_path is not None) != bool(getattr(cfg, "pool_repeats", 0)):
        raise ValueError("--pool-data and pool_repeats >= 1 go together (pool rows are added pool_repeats times)")
    if (replay_path is not None) != bool(getattr(cfg, "replay_ratio", 0)):
        raise ValueError("--replay-text and replay_ratio > 0 go together (blocks of the text per CoA row)")
    return cfg


def _prepare_run(
    stage: str, cfg: SFTConfig, model_path: Path, out_dir: Path, files: tuple, overwrite: bool, state: Any
) -> Path | None:
    """Check the data and the output directory; return the checkpoint to resume from (None:
    a fresh start, the directory cleared and the run's manifest written)."""
    from autocoa.train.checkpoints import file_hash, resume_point, start_run
    from autocoa.train.common import check_out_dir

    data_path = files[0]
    for p in files:
        if p is not None and not p.exists():
            raise FileNotFoundError(f"{p}: no such data file (write it with `autocoa synth`)")
    manifest = {
        "stage": stage,
        "model": str(model_path.resolve()),
        "config": cfg.model_dump(mode="json"),
        "data": {str(p.resolve()): file_hash(p) for p in files if p is not None},
    }
    # read every data file before anything is deleted: a bad row fails with its place and the
    # previous run (with --overwrite) is left as it was
    for p in files[:3]:  # the JSONL files (files[3], replayed text, is plain text)
        if p is not None:
            check_rows(p, pairs=stage == "sft1" and p == data_path, allow_empty=p == files[1])  # CoT may be empty
    check_out_dir(out_dir, overwrite)
    ckpt = resume_point(out_dir, manifest, overwrite)
    state.wait_for_everyone()
    if state.is_main_process:
        start_run(out_dir, manifest, ckpt)
    state.wait_for_everyone()
    return ckpt


def _warn_on_collapse(summary: dict, cfg: SFTConfig) -> None:
    c = summary.get("collapse") or {}
    if c.get("collapsed"):
        warnings.warn(
            f"sft1: chosen and rejected log-probs both fell (chosen {c['chosen_first']} -> {c['chosen_last']}, "
            f"rejected {c['rejected_first']} -> {c['rejected_last']}): a contrastive collapse; raise alpha "
            f"(the NLL weight, now {getattr(cfg, 'alpha', '?')})",
            stacklevel=3,
        )


def run_summary(
    stage: str, trainer: Any, stats: dict, train_seconds: float, prepare_seconds: float, resumed_from: Path | None
) -> dict:
    """What the run did: data counts, steps, speed, first and last logged metrics."""
    from autocoa.train.checkpoints import step_of

    st = trainer.state
    logs = [h for h in st.log_history if "loss" in h]
    world = trainer.args.world_size
    start = step_of(resumed_from)
    batch = trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps * world
    sequences = (st.global_step - start) * batch  # a last partial batch counts as full
    per_seq = stats["tokens"] / max(1, stats["examples"])
    keys = ("loss", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected", "nll_loss")
    extra = {}
    if stage == "sft1":
        from autocoa.train.contrastive import contrastive_collapse

        extra["collapse"] = contrastive_collapse(logs)
    return {
        "stage": stage,
        **stats,
        "steps": st.global_step,
        "epochs": round(st.epoch or 0.0, 3),
        "processes": world,
        "resumed_from_step": start or None,
        "first": {k: round(logs[0][k], 4) for k in keys if logs and k in logs[0]},
        "last": {k: round(logs[-1][k], 4) for k in keys if logs and k in logs[-1]},
        "train_seconds": round(train_seconds, 2),
        "prepare_seconds": round(prepare_seconds, 2),
        # mean tokens per example x examples run this session / time: padding not counted
        "tokens_per_s": round(per_seq * sequences / max(train_seconds, 1e-9), 1),
        **extra,
    }
