"""Configuration of the SFT stages: one validated object per stage, defaults for the tiny model.

``SFTConfig`` holds what every stage shares (optimiser, schedule, batch, checkpoints);
``MaskedSFTConfig`` adds the CoT mixing ratio of stages 2 and 3, ``ContrastiveConfig`` the
SimPO/CPO loss weights of stage 1. The defaults suit the embedded tiny model (a 1M-parameter
Llama trained on CPU, where large learning rates and many steps pay off); the paper's values for
a 7B model are in ``configs/paper/*.yaml``. The resolved config is saved next to every checkpoint.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from autocoa.config import Config
from autocoa.train.tracking import REPORT_TO_HELP

Stage = Literal["sft1", "sft2", "sft3"]
STAGES: tuple[str, ...] = ("sft1", "sft2", "sft3")


class SFTConfig(Config):
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW, cosine decay after warm-up)")
    epochs: float = Field(2.0, gt=0, description="passes over the data (ignored when max_steps is set)")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (overrides epochs)")
    batch_size: int = Field(16, ge=1, description="examples (sft1: pairs) per device per forward pass")
    grad_accum: int = Field(
        1, ge=1, description="forward passes per optimizer step; global batch = batch_size * grad_accum * processes"
    )
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="fraction of the steps spent in linear warm-up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    max_length: int = Field(
        1024, ge=8, description="longest sequence in tokens; longer examples are truncated (counted in the summary)"
    )
    max_examples: int | None = Field(None, ge=1, description="use at most this many rows of --data (first N)")
    seed: int = Field(0, description="seed of the data order, the CoT sample and the trainer")
    bf16: bool | None = Field(
        None, description="bf16 autocast; None = on a GPU that supports it (fp32 on CPU: models.bf16_autocast)"
    )
    gradient_checkpointing: bool = Field(False, description="recompute activations (real checkpoints on GPU)")
    logging_steps: int = Field(10, ge=1, description="optimizer steps between metric lines in metrics.jsonl")
    save_steps: int = Field(100, ge=1, description="optimizer steps between resumable checkpoints")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept in OUT/checkpoints (oldest deleted)")
    report_to: list[str] = Field(default_factory=list, description=REPORT_TO_HELP)
    lora_rank: int = Field(
        0,
        ge=0,
        description="LoRA (peft) of this rank on every linear layer, plus the tag tokens' embedding rows, merged "
        "into the saved model; 0 = full fine-tuning",
    )
    compile: bool = Field(
        False,
        description="torch.compile the model (inductor; the compile time counts in the stage's); without a C++ "
        "compiler the stage runs eager, with a one-line notice (docs/benchmarks.md#training)",
    )
    optimizer: Literal["adamw", "adamw_fused"] = Field(
        "adamw",
        description="AdamW's update: adamw = a loop over the parameters (torch's choice off a GPU), adamw_fused = one "
        "fused kernel for all of them (the same update; docs/benchmarks.md#training)",
    )
    prompt: Literal["system", "short"] | None = Field(
        None,
        description="a chat model's prompt from this stage on, saved with the checkpoint: system (a system "
        "message names the tags and tools) or short (the question alone, ~100 fewer tokens a row); unset = "
        "the input checkpoint's own (system unless an earlier stage chose short)",
    )

    @model_validator(mode="after")
    def _lora_without_decay(self) -> SFTConfig:
        if self.lora_rank and self.weight_decay:
            raise ValueError("lora_rank with weight_decay > 0 would decay the embedding rows LoRA keeps frozen")
        return self

    @model_validator(mode="after")
    def _checkpoints_on_log_steps(self) -> SFTConfig:
        # transformers averages a metric line's loss over the steps since the last line *of this
        # process*: a run resumed between two lines would log another loss than an uninterrupted one
        if self.save_steps % self.logging_steps:
            raise ValueError(
                f"save_steps ({self.save_steps}) must be a multiple of logging_steps ({self.logging_steps}), "
                "so that a resumed run logs the losses an uninterrupted one does"
            )
        return self


LM_HEAD_HELP = (
    "positions TRL's fused LM head projects off a GPU: all (TRL's choice on CPU: every position, prompt and "
    "padding included, to keep tile shapes fixed for compiling backends) or trained (only the positions with a "
    "label, as TRL does on a GPU: the same log-probs; on CPU a forward and backward of SmolLM2 1.3x faster, "
    "docs/benchmarks.md)"
)


class MaskedSFTConfig(SFTConfig):
    """SFT-stage2 (observations masked) and -stage3 (observations trained)."""

    lm_head: Literal["all", "trained"] = Field("all", description=LM_HEAD_HELP)
    batch_splits: int = Field(
        1,
        ge=1,
        le=64,
        description="each batch run as up to this many groups of its examples sorted by length, each padded only to "
        "its own longest: the same examples, loss and gradient, less padding (autocoa.train.batch_split; "
        "docs/benchmarks.md#training); 1 = the batch whole",
    )
    padding_mask: Literal["kept", "causal"] = Field(
        "kept",
        description="a right-padded batch's attention: kept = SDPA with the padding mask; causal = the mask dropped "
        "(causal-only attention: the same result at every real position, since padding follows them; "
        "docs/benchmarks.md#training)",
    )
    padding_free: bool = Field(
        False,
        description="a batch's examples concatenated into one row without padding, each attending only to itself "
        "(position ids restart per example: the same loss as padded rows; docs/benchmarks.md#training)",
    )

    cot_ratio: float = Field(
        0.2,
        ge=0,
        description="pure-CoT rows mixed in per CoA row (paper: 1k CoT per 5k CoA = 0.2); needs --cot-data when > 0",
    )
    pool_repeats: int = Field(
        0,
        ge=0,
        description="copies of every --pool-data row added to the data: with sft3, the world model learns the "
        "documents of the RL question pool (synth's rl_pool.jsonl) as the paper's world model knows its RL "
        "questions' documents; 0 = no pool",
    )
    pool_loss: Literal["all", "observations"] = Field(
        "all",
        description="tokens trained in the --pool-data rows: all = the whole trajectory; observations = only the "
        "observations (the world model learns the pool's documents; the policy does not learn the pool's "
        "questions and answers, which RL then asks)",
    )
    replay_ratio: float = Field(
        0.0,
        ge=0,
        description="blocks of the base model's pretraining text (--replay-text) mixed in per CoA row, every token "
        "trained: fine-tuning at a high learning rate otherwise erases what the base read (the tiny default's "
        "test-pool recall 245 -> 37 of 660 facts over SFT-2); 0 = none",
    )
    replay_block: int = Field(128, ge=8, description="tokens per replayed pretraining block")
    batches: Literal["random", "by_length"] = Field(
        "random",
        description="how examples are drawn into batches: random, or by_length (batches of similar length, drawn "
        "in a random order: less padding, so faster steps, where rows differ in length as 1- to 4-hop chains do)",
    )
    observations_in: Literal["all", "pool"] = Field(
        "all",
        description="sft3: rows whose observation tokens are trained; all = every row (the paper's SFT-3), pool = only "
        "the --pool-data rows (the others keep them masked, as in sft2: a world model trained to state facts it "
        "cannot know learns only to invent them)",
    )

    @model_validator(mode="after")
    def _one_way_to_drop_padding(self) -> MaskedSFTConfig:
        if self.padding_free and self.batch_splits > 1:
            raise ValueError("padding_free and batch_splits > 1 each remove the padding; choose one")
        return self


class ContrastiveConfig(SFTConfig):
    """SFT-stage1: L = -log sigmoid(beta * (P(chosen) - P(rejected)) - gamma) + alpha * NLL(chosen)."""

    lr: float = Field(5e-4, gt=0, description="peak learning rate (AdamW, cosine decay after warm-up)")
    alpha: float = Field(0.2, ge=0, description="weight of the auxiliary NLL on the chosen continuation")
    beta: float = Field(1.0, gt=0, description="scale of the length-normalised log-prob difference")
    gamma: float = Field(0.0, ge=0, description="SimPO target margin (0 = the paper's loss)")


CONFIGS: dict[str, type[SFTConfig]] = {"sft1": ContrastiveConfig, "sft2": MaskedSFTConfig, "sft3": MaskedSFTConfig}


def config_for(stage: str) -> type[SFTConfig]:
    if stage not in CONFIGS:
        raise ValueError(f"unknown SFT stage {stage!r}; one of {STAGES}")
    return CONFIGS[stage]
