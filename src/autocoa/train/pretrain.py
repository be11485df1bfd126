"""Pretraining the embedded default's base model: a BPE tokenizer and a tiny Llama from scratch.

The model reads only ``pretrain.txt``: the *common* facts of the synthetic world and, in the
scale-model world, the long tail of rare entities' facts (each as often as its exposure count)
and reading-comprehension passages. What it then recalls closed-book, and what it must search
for, is what makes "when to act" measurable. The tokenizer is trained on the pretraining
text, the corpus and the training questions (so that names, documents and questions all
segment into known pieces) with the tags added as single, non-special tokens.

Training uses transformers' ``Trainer`` on packed blocks (lines joined by EOS); the result
is saved with ``save_pretrained`` (safetensors) and loads like any Hugging Face checkpoint.
A run keeps checkpoints (``OUT/checkpoints``, with its tokenizer) and a manifest
(``OUT/run.json``: config, init, hashes of the world's files), so that the same command after a
kill resumes from the last complete checkpoint (:mod:`autocoa.train.checkpoints`).
``probe_knowledge`` measures what the model learned (:mod:`autocoa.knowledge`): every fact of
the world is probed closed-book, greedily, into ``OUT/knowledge.jsonl``, and the recall by
exposure count goes into the summary.

Run: ``autocoa pretrain --world DIR --out DIR [--config pretrain.yaml]``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from autocoa.config import Config
from autocoa.knowledge import CLOZE, Fact  # noqa: F401  (CLOZE: the prompts, re-exported)
from autocoa.runlock import holds_lock
from autocoa.train.tracking import REPORT_TO_HELP, trackers
from autocoa.world.phrases import teacher_phrases


class PretrainConfig(Config):
    vocab_size: int = Field(1000, ge=300, description="BPE vocabulary (bytes + merges; tags come on top)")
    syllables: bool = Field(
        False, description="cut names into syllables before BPE, so unseen names are sequences of known tokens"
    )
    hidden_size: int = Field(128, ge=16, description="model width")
    num_layers: int = Field(4, ge=1, description="transformer blocks")
    num_heads: int = Field(4, ge=1, description="attention heads")
    intermediate_size: int = Field(512, ge=16, description="MLP width")
    max_position_embeddings: int = Field(2048, ge=128, description="longest sequence the model can take")
    block_size: int = Field(128, ge=16, description="packed training sequence length")
    batch_size: int = Field(16, ge=1, description="sequences per optimizer step")
    lr: float = Field(3e-3, gt=0, description="peak learning rate (AdamW, cosine decay)")
    warmup_steps: int = Field(30, ge=0, description="linear warm-up steps")
    epochs: float = Field(12.0, gt=0, description="passes over pretrain.txt")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    seed: int = Field(0, description="initialisation and data-order seed")
    bf16: bool | None = Field(
        None, description="bf16 autocast; None = on a GPU that supports it (fp32 on CPU: models.bf16_autocast)"
    )
    save_steps: int = Field(100, ge=1, description="steps between checkpoints (a killed run resumes from the last)")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept")
    report_to: list[str] = Field(default_factory=list, description=REPORT_TO_HELP)
    eval_facts: int = Field(
        480,
        ge=0,
        description="0 = no closed-book probe; else every fact of the world is probed (knowledge.jsonl, recall by "
        "exposure) and the summary states the accuracy on the first N common facts",
    )
    reading_eval_steps: int = Field(
        0,
        ge=0,
        description="0 = off; else every N steps the reading test (knowledge.reading_accuracy) is logged to "
        "metrics.jsonl as `reading`: the curve on which the copying skill emerges",
    )
    reading_target: float | None = Field(
        None,
        gt=0,
        le=1,
        description="None = cosine decay over `epochs`; else pretrain until the base reads: the peak lr is held "
        "until the reading test reaches this share, then decays linearly over `decay_steps` and training stops "
        "(`epochs` caps the run; autocoa.train.reading_schedule)",
    )
    decay_steps: int = Field(300, ge=1, description="with reading_target: steps of the final linear decay")

    @model_validator(mode="after")
    def _target_needs_the_test(self) -> PretrainConfig:
        if self.reading_target is not None and not self.reading_eval_steps:
            raise ValueError("reading_target needs reading_eval_steps > 0 (the test that decides when to decay)")
        return self


def tokenizer_texts(world_dir: Path, max_questions: int = 20000):
    """Text the tokenizer learns its merges from: pretraining lines, documents, questions."""
    from autocoa.data.corpus import iter_corpus
    from autocoa.jsonl import read_jsonl

    yield from (world_dir / "pretrain.txt").read_text(encoding="utf-8").splitlines()
    for doc in iter_corpus(world_dir / "corpus.jsonl"):
        yield doc.contents
    for n, row in read_jsonl(world_dir / "train.jsonl"):
        if n > max_questions:
            break
        yield row["question"]
        yield from teacher_phrases(row.get("chain", []))


def build_model(cfg: PretrainConfig, tokenizer: Any):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def pack(lines: list[str], tokenizer: Any, block: int) -> list[list[int]]:
    """Token ids of all lines, each followed by EOS, cut into blocks of ``block`` tokens."""
    ids: list[int] = []
    for enc in tokenizer(lines, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tokenizer.eos_token_id)
    return [ids[i : i + block] for i in range(0, len(ids) - block + 1, block)]


def common_facts(world_dir: Path) -> list[tuple[str, str, str]]:
    """(subject name, relation, object name) of every common entity's facts."""
    from autocoa.knowledge import world_facts

    return [(f.subject, f.relation, f.object) for f in world_facts(world_dir, pools=("common",))]


def evaluate_facts(model: Any, tokenizer: Any, facts: list[tuple[str, str, str]], batch_size: int = 64) -> dict:
    """Greedy cloze completion of each fact (:func:`autocoa.knowledge.recall`); accuracy
    overall and per relation."""
    from autocoa.knowledge import recall

    results = recall(model, tokenizer, [Fact("", s, rel, o) for s, rel, o in facts], batch_size)
    correct = [known for known, _ in results]
    per_rel: dict[str, list[bool]] = {}
    for (_, rel, _), ok in zip(facts, correct, strict=True):
        per_rel.setdefault(rel, []).append(ok)
    return {
        "accuracy": sum(correct) / max(1, len(correct)),
        "n": len(correct),
        "by_relation": {r: round(sum(v) / len(v), 4) for r, v in sorted(per_rel.items())},
    }


def probe_knowledge(model: Any, tokenizer: Any, world_dir: Path, out_dir: Path) -> dict:
    """Probe every fact of the world closed-book: ``out_dir/knowledge.jsonl`` and the recall
    by exposure count, over all pools and over the held-out (test) pool."""
    from autocoa.jsonl import write_jsonl
    from autocoa.knowledge import knowledge_rows, reading_accuracy, recall, recall_by_exposure, world_facts

    facts = world_facts(world_dir)
    rows = knowledge_rows(facts, recall(model, tokenizer, facts))
    write_jsonl(out_dir / "knowledge.jsonl", rows)
    return {
        "all": recall_by_exposure(rows),
        "test": recall_by_exposure(rows, pools=("test",)),
        "reading": reading_accuracy(model, tokenizer, world_dir),
    }


def reading_callback(tokenizer: Any, world_dir: Path, every: int, path: Path, n: int = 100, decay: Any = None):
    """A ``TrainerCallback`` that every ``every`` steps runs the reading test on ``n`` prompts
    (built once) and appends ``{"step", "reading"}`` to ``path``; the model goes back to train mode.
    ``decay`` (a :class:`~autocoa.train.reading_schedule.DecayStart`): a result at or over its
    target starts the decay, and training stops when the decay ends."""
    from transformers import TrainerCallback

    from autocoa.jsonl import write_jsonl
    from autocoa.knowledge import reading_prompts, reading_share

    facts, prompts = reading_prompts(world_dir, n)

    class _Reading(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if decay is not None and state.global_step >= decay.end:
                control.should_training_stop = True
            if not facts or state.global_step % every or not state.is_world_process_zero:
                return
            acc = reading_share(model, tokenizer, facts, prompts)
            model.train()
            write_jsonl(path, [{"step": state.global_step, "reading": acc}], append=True)
            if decay is not None:
                decay.reached(state.global_step, acc)

    return _Reading()


def _trainer_class(decay: Any, warmup: int):
    """transformers' ``Trainer``, or with ``decay`` (a :class:`~autocoa.train.reading_schedule.DecayStart`)
    one whose learning rate follows :func:`~autocoa.train.reading_schedule.lr_factor`."""
    from transformers import Trainer

    if decay is None:
        return Trainer

    class _ReadingTrainer(Trainer):
        def create_scheduler(self, num_training_steps, optimizer=None):
            from torch.optim.lr_scheduler import LambdaLR

            from autocoa.train.reading_schedule import lr_factor

            if self.lr_scheduler is None:
                self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lambda s: lr_factor(s, warmup, decay))
                self._created_lr_scheduler = True
            return self.lr_scheduler

    return _ReadingTrainer


def _training_args(cfg: PretrainConfig, out_dir: Path, steps: int, precision: dict, progress: bool):
    """transformers' ``TrainingArguments`` of pretraining (checkpoints in ``OUT/checkpoints``)."""
    from transformers import TrainingArguments

    from autocoa.train.checkpoints import CHECKPOINTS

    return TrainingArguments(
        output_dir=str(out_dir / CHECKPOINTS),
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        max_steps=steps,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type="cosine",
        weight_decay=cfg.weight_decay,
        # checkpoints on metric lines: a resumed run then logs the losses an uninterrupted one does
        logging_steps=math.gcd(cfg.save_steps, max(1, min(10, steps // 5))),
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        report_to=trackers(cfg.report_to),
        seed=cfg.seed,
        **precision,
        dataloader_num_workers=0,
        disable_tqdm=not progress,
    )


# long: the stage in order (tokenizer, data, model, resume, reading schedule, train, save, probe)
@holds_lock()
def pretrain(
    world_dir: str | Path,
    out_dir: str | Path,
    cfg: PretrainConfig,
    init: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Train (or, with ``init``, continue training) the base model; save it and its tokenizer
    to ``out_dir``; return the summary also written to ``out_dir/pretrain.json``."""
    from datasets import Dataset
    from transformers import AutoTokenizer, default_data_collator

    from autocoa.jsonl import read_logged
    from autocoa.models import load_model, trainer_precision
    from autocoa.tokenizer import train_tokenizer
    from autocoa.train.checkpoints import file_hash, resume_point, start_run, step_of
    from autocoa.train.common import check_out_dir, mark_done, metrics_callback, quiet_libraries, quiet_trainer

    world_dir, out_dir = Path(world_dir), Path(out_dir)
    files = [world_dir / name for name in ("pretrain.txt", "corpus.jsonl", "entities.jsonl", "train.jsonl")]
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"{f}: missing; generate the world with `autocoa world`")
    manifest = {
        "stage": "pretrain",
        "init": str(Path(init).resolve()) if init is not None else None,
        "config": cfg.model_dump(mode="json"),
        "data": {str(f.resolve()): file_hash(f) for f in files},
    }
    check_out_dir(out_dir, overwrite)
    ckpt = resume_point(out_dir, manifest, overwrite)
    quiet_libraries(progress)
    t0 = time.perf_counter()
    if init is not None:
        model, tok = load_model(init, for_training=True)
    else:
        # resuming: the tokenizer the run was trained with (saved in every checkpoint)
        tok = (
            AutoTokenizer.from_pretrained(str(ckpt))
            if ckpt is not None
            else train_tokenizer(tokenizer_texts(world_dir), vocab_size=cfg.vocab_size, syllables=cfg.syllables)
        )
        model = build_model(cfg, tok)
    lines = (world_dir / "pretrain.txt").read_text(encoding="utf-8").splitlines()
    blocks = pack(lines, tok, cfg.block_size)
    if not blocks:
        raise ValueError(f"{world_dir / 'pretrain.txt'}: too little text for one block of {cfg.block_size} tokens")
    start_run(out_dir, manifest, ckpt)  # the new inputs read: a bad world left the previous run as it was
    ds = Dataset.from_dict({"input_ids": blocks, "labels": blocks})
    steps = math.ceil(len(blocks) / cfg.batch_size * cfg.epochs)
    precision = trainer_precision(cfg.bf16)
    bf16 = precision["bf16"]
    args = _training_args(cfg, out_dir, steps, precision, progress)
    every = cfg.reading_eval_steps
    decay = None
    if cfg.reading_target is not None:  # pretrain until the base reads (a resumed run: as far as it got)
        from autocoa.train.reading_schedule import initial_decay

        rows = read_logged(out_dir / "metrics.jsonl") if ckpt is not None else []
        decay = initial_decay(steps, cfg.decay_steps, rows, cfg.reading_target, upto=step_of(ckpt) or 0)
    curve = [reading_callback(tok, world_dir, every, out_dir / "metrics.jsonl", decay=decay)] if every else []
    trainer = _trainer_class(decay, cfg.warmup_steps)(
        model=model,
        args=args,
        train_dataset=ds,
        data_collator=default_data_collator,
        processing_class=tok,  # saved into each checkpoint: a resumed run reads the same tokenizer
        callbacks=[metrics_callback(out_dir / "metrics.jsonl"), *curve],
    )
    quiet_trainer(trainer, progress)
    trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
    train_seconds = time.perf_counter() - t0
    # the logged losses (a resumed run's own mean would cover only the steps after its checkpoint)
    losses = [r["loss"] for r in read_logged(out_dir / "metrics.jsonl") if "loss" in r]
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    cfg.save(out_dir / "pretrain_config.yaml")
    facts = common_facts(world_dir)[: cfg.eval_facts] if cfg.eval_facts else []
    fact_eval = evaluate_facts(model, tok, facts) if facts else {}
    recall_table = probe_knowledge(model, tok, world_dir, out_dir) if cfg.eval_facts else {}
    summary = {
        "params": sum(p.numel() for p in model.parameters()),
        "vocab": len(tok),
        "blocks": len(blocks),
        "tokens_per_epoch": len(blocks) * cfg.block_size,
        "steps": trainer.state.global_step,
        "max_steps": steps,
        "decay_from_step": decay.step if decay is not None else None,
        "resumed_from_step": step_of(ckpt) or None,
        "mean_loss": round(sum(losses) / len(losses), 4) if losses else None,
        "train_seconds": round(train_seconds, 1),
        "bf16": bf16,
        "common_facts": fact_eval,
        "recall_by_exposure": recall_table,
    }
    (out_dir / "pretrain.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    mark_done(out_dir, summary)
    return summary
