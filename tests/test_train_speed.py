"""The SFT speed levers (docs/benchmarks.md#training) change how fast a step runs, not what it
computes: padding-free rows give the padded batch's loss and gradients, the fused AdamW the loop's
update, and ``compile`` without a C++ compiler trains eager with a notice."""

from __future__ import annotations

import pytest
import torch

from autocoa.train.common import can_compile, causal_padding, trainer_args
from autocoa.train.examples import masked_example
from autocoa.train.sft import build_sft_trainer
from autocoa.train.stage_config import MaskedSFTConfig
from tests.agent_helpers import tiny_llama
from tests.sft_helpers import PEOPLE, coa_traj

FAST = {"bf16": False, "logging_steps": 1, "warmup_ratio": 0.0}


def _examples(tokenizer) -> list[dict]:
    """Three examples of different lengths (so the padded batch pads), observations masked."""
    exs = [masked_example(coa_traj(*p), tokenizer, True, 4096) for p in PEOPLE[:3]]
    exs[1] = {k: v[:-7] for k, v in exs[1].items()}  # a shorter one
    assert len({len(e["input_ids"]) for e in exs}) > 1
    return exs


def _loss_and_grads(tokenizer, tmp_path, examples, **cfg):
    model = tiny_llama(tokenizer, seed=0)
    trainer = build_sft_trainer(
        model, tokenizer, examples, MaskedSFTConfig(**FAST, batch_size=3, **cfg), tmp_path, progress=False
    )
    batch = trainer._prepare_inputs(trainer.data_collator(examples))
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return batch, loss.item(), {n: p.grad.clone() for n, p in trainer.model.named_parameters()}


def test_padding_free_rows_give_the_padded_batchs_loss_and_gradients(tokenizer, tmp_path):
    """One row with no padding, each example attending only to itself (position ids restart), is
    the same loss and gradients as the padded batch: an example that saw its neighbour would not."""
    examples = _examples(tokenizer)
    padded, loss, grads = _loss_and_grads(tokenizer, tmp_path / "a", examples)
    flat, loss_free, grads_free = _loss_and_grads(tokenizer, tmp_path / "b", examples, padding_free=True)
    lengths = [len(e["input_ids"]) for e in examples]
    assert padded["input_ids"].shape == (3, max(lengths))
    assert flat["input_ids"].shape == (1, sum(lengths)) and "attention_mask" not in flat
    assert flat["position_ids"][0].tolist() == [i for n in lengths for i in range(n)]
    assert loss_free == pytest.approx(loss, rel=1e-5)
    for name, g in grads.items():
        torch.testing.assert_close(grads_free[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_causal_only_attention_gives_the_masked_batchs_loss_and_gradients(tokenizer, tmp_path):
    """Dropping a right-padded batch's mask changes no real position's result (the padding comes
    after them); the hook really drops it (the padded positions' hidden states change)."""
    examples = _examples(tokenizer)
    _, loss, grads = _loss_and_grads(tokenizer, tmp_path / "a", examples)
    batch, loss_causal, grads_causal = _loss_and_grads(tokenizer, tmp_path / "b", examples, padding_mask="causal")
    assert (batch["attention_mask"] == 0).any()  # the batch is padded, and counted by its mask
    assert loss_causal == pytest.approx(loss, rel=1e-5)
    for name, g in grads.items():
        torch.testing.assert_close(grads_causal[name], g, rtol=1e-4, atol=1e-6, msg=name)
    model = tiny_llama(tokenizer, seed=0)
    mask = batch["attention_mask"]
    with torch.no_grad():
        kept = model.model(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        causal_padding(model.model)
        dropped = model.model(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        left = mask.flip(1)  # a left-padded batch keeps its mask
        left_ids = batch["input_ids"].flip(1)
        hooked_left = model.model(input_ids=left_ids, attention_mask=left).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(dropped[real], kept[real], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(dropped[~real], kept[~real])
    plain = tiny_llama(tokenizer, seed=0)
    with torch.no_grad():
        unhooked_left = plain.model(input_ids=left_ids, attention_mask=left).last_hidden_state
    torch.testing.assert_close(hooked_left, unhooked_left)


def test_a_leak_across_examples_would_show(tokenizer, tmp_path):
    """The check above can fail: the same row with one position sequence (0..n, no restart: every
    token attends to the examples before it) has another loss."""
    examples = _examples(tokenizer)
    _, loss, _ = _loss_and_grads(tokenizer, tmp_path / "a", examples)
    model = tiny_llama(tokenizer, seed=0)
    trainer = build_sft_trainer(
        model, tokenizer, examples, MaskedSFTConfig(**FAST, batch_size=3, padding_free=True), tmp_path, progress=False
    )
    flat = trainer._prepare_inputs(trainer.data_collator(examples))
    flat["position_ids"] = torch.arange(flat["input_ids"].shape[1])[None]
    for k in [k for k in flat if k.startswith(("cu_seq", "max_length"))]:
        del flat[k]
    with torch.no_grad():
        leaked = trainer.compute_loss(trainer.model, flat).item()
    assert abs(leaked - loss) > 1e-4


def test_the_fused_adamw_is_the_loops_update(tokenizer, tmp_path):
    examples = _examples(tokenizer)
    params = {}
    for opt in ("adamw", "adamw_fused"):
        model = tiny_llama(tokenizer, seed=0)
        cfg = MaskedSFTConfig(**FAST, batch_size=3, optimizer=opt)
        trainer = build_sft_trainer(model, tokenizer, examples, cfg, tmp_path / opt, progress=False)
        optimizer = trainer.create_optimizer()
        assert bool(optimizer.defaults.get("fused")) == (opt == "adamw_fused")
        batch = trainer._prepare_inputs(trainer.data_collator(examples))
        trainer.compute_loss(trainer.model, batch).backward()
        optimizer.step()
        params[opt] = [p.detach().clone() for p in trainer.model.parameters()]
    for a, b in zip(params["adamw"], params["adamw_fused"], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_compile_without_a_cxx_compiler_trains_eager_with_a_notice(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        assert not can_compile()
    with pytest.warns(UserWarning, match="training eager"):
        args = trainer_args(MaskedSFTConfig(compile=True), tmp_path, progress=False)
    assert args["torch_compile"] is False
    assert trainer_args(MaskedSFTConfig(), tmp_path, progress=False)["torch_compile"] is False
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    assert trainer_args(MaskedSFTConfig(compile=True), tmp_path, progress=False)["torch_compile"] is True


def _one_step(tokenizer, tmp_path, examples, **cfg):
    """One trainer step as the training loop runs it (training_step with num_items_in_batch):
    the loss it returns, the gradients, and the entropy and accuracy it logs."""
    model = tiny_llama(tokenizer, seed=0)
    trainer = build_sft_trainer(
        model, tokenizer, examples, MaskedSFTConfig(**FAST, batch_size=len(examples), **cfg), tmp_path, progress=False
    )
    trainer.create_optimizer()
    batch = trainer.data_collator(examples)
    n_items = (batch["labels"][:, 1:] != -100).sum()
    loss = trainer.training_step(trainer.model, batch, num_items_in_batch=n_items).item()
    metrics = {k: list(v) for k, v in trainer._metrics["train"].items()}
    return loss, {n: p.grad.clone() for n, p in trainer.model.named_parameters()}, metrics


def test_a_batch_split_by_length_has_the_whole_batchs_loss_gradients_and_metrics(tokenizer, tmp_path, monkeypatch):
    """batch_splits: the same step as the whole batch (loss, every gradient, the logged entropy,
    accuracy and token count), run as groups padded less (the forward sees fewer padded tokens)."""
    from autocoa.train import batch_split

    examples = [masked_example(coa_traj(*p), tokenizer, True, 4096) for p in PEOPLE[:4]]
    examples[1] = {k: v[: len(v) // 2] for k, v in examples[1].items()}
    examples[3] = {k: v[: len(v) // 2 + 3] for k, v in examples[3].items()}
    loss, grads, metrics = _one_step(tokenizer, tmp_path / "a", examples)
    seen = []
    rows_of = batch_split.rows_of
    monkeypatch.setattr(batch_split, "rows_of", lambda inputs, rows: seen.append(rows_of(inputs, rows)) or seen[-1])
    loss_split, grads_split, metrics_split = _one_step(tokenizer, tmp_path / "b", examples, batch_splits=2)
    assert len(seen) == 2 and sorted(r for part in seen for r in part["input_ids"].shape[:1]) == [2, 2]
    lengths = sorted(len(e["input_ids"]) for e in examples)
    assert sum(p["input_ids"].numel() for p in seen) < 4 * lengths[-1]  # less padding than the whole batch
    assert loss_split == pytest.approx(loss, rel=1e-5)
    for name, g in grads.items():
        torch.testing.assert_close(grads_split[name], g, rtol=1e-4, atol=1e-6, msg=name)
    for key in ("entropy", "mean_token_accuracy"):
        assert len(metrics_split[key]) == 1 and metrics_split[key][0] == pytest.approx(metrics[key][0], rel=1e-5)
    assert metrics_split["num_tokens"] == metrics["num_tokens"]


def test_length_groups_pad_least():
    from autocoa.train.batch_split import length_groups

    lengths = [30, 100, 31, 99, 60, 29]
    groups = length_groups(lengths, 3)
    assert sorted(i for g in groups for i in g) == list(range(6))
    area = sum(len(g) * max(lengths[i] for i in g) for g in groups)
    assert area == 3 * 31 + 60 + 2 * 100  # the three clusters
    assert length_groups(lengths, 1) == [sorted(range(6), key=lambda i: lengths[i])]


def test_padding_free_and_batch_splits_are_one_choice():
    with pytest.raises(ValueError, match="choose one"):
        MaskedSFTConfig(padding_free=True, batch_splits=2)
