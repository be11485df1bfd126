"""Loading and creating causal LMs: any Hugging Face checkpoint directory, or the tiny
from-scratch model of the embedded default. Everything saves with ``save_pretrained``
(safetensors), so every stage loads its input exactly like a real checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from autocoa.tags import DEFAULT_TAGS, Tags


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device, for_training: bool = False) -> torch.dtype:
    """The weights' dtype. ``auto``: for training always fp32 (master weights: the trainers
    autocast to bf16, see :func:`bf16_autocast`; AdamW on bf16 weights rounds small updates,
    such as the paper's lr 7e-7, away); for inference bf16 on a GPU that supports it, else fp32.

    >>> pick_dtype("auto", torch.device("cuda"), for_training=True), pick_dtype("auto", torch.device("cpu"))
    (torch.float32, torch.float32)
    """
    if dtype == "auto":
        if for_training:
            return torch.float32
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]


def bf16_autocast() -> bool:
    """Whether training autocasts to bf16 here: on a GPU that supports it; never on CPU. The
    one owner of that choice for every trainer.

    On CPU, fp32: a CPU without native bf16 (AVX2 only, as this project's machines now are)
    emulates it, measured 18x slower than fp32 on the tiny model's training step (3.7 s vs 0.20 s);
    with native bf16 (AVX512-BF16/AMX) it was 1.15-1.9x faster. fp32 on every CPU also gives
    the same seed the same numerics on either kind, where autocast would not."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return False


def trainer_precision(bf16: bool | None) -> dict[str, bool]:
    """The precision and device fields of ``TrainingArguments`` every stage passes: ``bf16``
    autocast (None = :func:`bf16_autocast`) over fp32 weights, and ``use_cpu`` without CUDA."""
    return {"bf16": bf16_autocast() if bf16 is None else bf16, "use_cpu": not torch.cuda.is_available()}


def load_model(
    path: str | Path, device: str = "auto", dtype: str = "auto", tags: Tags = DEFAULT_TAGS, for_training: bool = False
) -> tuple[Any, Any]:
    """(model, tokenizer) from a checkpoint directory or a named model
    (:func:`autocoa.named_models.resolve_model`). Missing tags are added to the tokenizer, the
    embeddings resized and each new row initialised from its tag's own text
    (:func:`init_tag_embeddings`), so a real checkpoint can enter the recipe at any stage."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from autocoa.named_models import resolve_model
    from autocoa.tokenizer import add_tags

    path = resolve_model(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{path}: not a model directory (no config.json); train one with "
            "`autocoa pretrain` or give a Hugging Face checkpoint path"
        )
    dev = pick_device(device)
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=pick_dtype(dtype, dev, for_training))
    pieces = {t: tok.encode(t, add_special_tokens=False) for t in tags.strings if t not in tok.get_vocab()}
    if add_tags(tok, tags):
        model.resize_token_embeddings(len(tok), mean_resizing=False)  # every new row is set just below
        init_tag_embeddings(model, {tok.convert_tokens_to_ids(t): ids for t, ids in pieces.items()})
    if tok.pad_token_id is not None and model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    model.to(dev)
    model.train(for_training)
    return model, tok


def init_tag_embeddings(model: Any, pieces: dict[int, list[int]]) -> None:
    """Set each new tag's embedding row (and output row, when they are not tied) to the mean of
    the rows of the pieces its text had before it was added (``<think>``: ``<``, ``think``,
    ``>``). Measured by hand on SmolLM2-135M-Instruct (the probe that opened issue #15: 60 SFT-2
    steps, lr 1e-4): with the rows ``resize_token_embeddings`` gives (the mean of all rows, every
    tag alike) P(``<think>`` | prompt) stays 0.0001 and no reply is well formed; from their pieces
    it reaches 0.92 and 97% well formed."""
    with torch.no_grad():
        tables = [model.get_input_embeddings().weight]
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != tables[0].data_ptr():
            tables.append(out.weight)
        for new_id, ids in pieces.items():
            if ids:
                for w in tables:
                    w[new_id] = w[ids].mean(dim=0)
