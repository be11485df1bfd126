"""``lm_head: trained`` (autocoa.train.common.lm_head_positions): TRL's fused LM head projects
only the labelled positions on CPU, with the same log-probs and gradients as projecting all."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import trl.trainer.utils as trl_utils
from trl.trainer.utils import add_fused_lm_head

from autocoa.train.common import lm_head_positions
from tests.agent_helpers import tiny_llama

KERNEL = trl_utils._ChunkedLogProbFunction


def _batch(vocab: int):
    torch.manual_seed(0)
    ids = torch.randint(5, vocab, (3, 20))
    attn = torch.ones_like(ids)
    attn[0, 15:] = 0  # right padding
    labels = ids.masked_fill(attn == 0, -100)
    labels[:, :8] = -100  # the prompt
    return ids, attn, labels


def _run(model, which, monkeypatch, rows_seen):
    original = KERNEL.apply

    def spy(hidden, *args):
        rows_seen.append(hidden.shape[0])
        return original(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", SimpleNamespace(apply=spy))
    ids, attn, labels = _batch(model.config.vocab_size)
    model.zero_grad(set_to_none=True)
    with lm_head_positions(which):
        out = model(input_ids=ids, attention_mask=attn, labels=labels, fused_lm_head=True)
        out.loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    return out.log_probs.detach(), grads, int((labels[:, 1:] != -100).sum())


def test_trained_projects_only_labelled_rows_with_the_same_result(tokenizer, monkeypatch):
    model = tiny_llama(tokenizer, seed=0, hidden=32, layers=1)
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    seen_all, seen_trained = [], []
    lp_all, g_all, labelled = _run(model, "all", monkeypatch, seen_all)
    lp_trained, g_trained, _ = _run(model, "trained", monkeypatch, seen_trained)
    assert seen_all == [3 * 19] and seen_trained == [labelled] and labelled < 3 * 19
    torch.testing.assert_close(lp_trained, lp_all, rtol=0, atol=1e-6)
    for a, b in zip(g_all, g_trained, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_the_switch_is_restored_after_training_even_on_error():
    original = trl_utils._use_triton
    with pytest.raises(RuntimeError), lm_head_positions("trained"):
        assert trl_utils._use_triton(torch.device("cpu"))
        raise RuntimeError("a failed step")
    assert trl_utils._use_triton is original
    with lm_head_positions("all"):
        assert trl_utils._use_triton is original
