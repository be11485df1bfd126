"""GrowingCache: the engine's in-place KV cache equals transformers' DynamicCache."""

from __future__ import annotations

import pytest
import torch
from transformers import MistralConfig
from transformers.cache_utils import DynamicCache, DynamicSlidingWindowLayer

from autocoa.agent.cache import GrowingCache, GrowingLayer
from autocoa.agent.engine import Engine
from tests.agent_helpers import ScriptedLM, tiny_llama


def _decode(model, cache, ids, steps):
    """Prefill ``ids`` then greedy-decode ``steps`` tokens; return every step's logits."""
    out, seen = [], []
    with torch.inference_mode():
        o = model(input_ids=ids, past_key_values=cache, use_cache=True)
        for _ in range(steps):
            nxt = o.logits[:, -1].argmax(-1, keepdim=True)
            seen.append(o.logits[:, -1])
            o = model(input_ids=nxt, past_key_values=o.past_key_values, use_cache=True)
        out.append(o.logits[:, -1])
    return torch.stack(seen + out), o.past_key_values


@pytest.mark.parametrize("chunk", [1, 3, 256])
def test_growing_cache_decodes_like_the_dynamic_cache(tokenizer, chunk):
    model = tiny_llama(tokenizer)
    ids = torch.randint(5, len(tokenizer), (3, 7), generator=torch.Generator().manual_seed(0))
    ref, ref_cache = _decode(model, DynamicCache(), ids, 9)
    got, cache = _decode(model, GrowingCache(model.config, chunk=chunk), ids, 9)
    assert torch.allclose(ref, got, atol=1e-5)
    assert cache.get_seq_length() == ref_cache.get_seq_length() == 16
    layer = cache.layers[0]
    assert isinstance(layer, GrowingLayer) and layer._k.shape[-2] <= 16 + chunk  # bounded over-allocation
    assert torch.equal(layer.keys, ref_cache.layers[0].keys)


def test_rows_leave_and_crop_keep_the_views_consistent(tokenizer):
    model = tiny_llama(tokenizer)
    ids = torch.randint(5, len(tokenizer), (4, 5), generator=torch.Generator().manual_seed(1))
    _, ref = _decode(model, DynamicCache(), ids, 3)
    _, got = _decode(model, GrowingCache(model.config, chunk=2), ids, 3)
    keep = torch.tensor([3, 1])
    ref.batch_select_indices(keep)
    got.batch_select_indices(keep)
    assert torch.equal(got.layers[1].values, ref.layers[1].values)
    ref.crop(-2)
    got.crop(-2)
    assert got.get_seq_length() == ref.get_seq_length() == 6
    # decoding continues from the cropped, selected cache exactly as transformers' does
    nxt = torch.tensor([[7], [9]])
    with torch.inference_mode():
        a = model(input_ids=nxt, past_key_values=ref, use_cache=True).logits
        b = model(input_ids=nxt, past_key_values=got, use_cache=True).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_only_full_attention_layers_are_replaced():
    cfg = MistralConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, sliding_window=16
    )
    cache = GrowingCache(cfg)
    assert all(isinstance(layer, DynamicSlidingWindowLayer) for layer in cache.layers)
    cfg.sliding_window = None
    assert all(isinstance(layer, GrowingLayer) for layer in GrowingCache(cfg).layers)


def test_engine_falls_back_for_models_without_a_layer_config(tokenizer):
    assert Engine(ScriptedLM(len(tokenizer), lambda h: 0), tokenizer)._new_cache() is None
    assert isinstance(Engine(tiny_llama(tokenizer), tokenizer)._new_cache(), GrowingCache)


def test_compact_drops_holes_and_changes_no_logits(tokenizer):
    model = tiny_llama(tokenizer)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, len(tokenizer), (3, 10), generator=g)
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[0, :4] = 0  # left padding
    mask[1, 3:8] = 0  # a hole in the middle (a row that waited)
    mask[2, [1, 5, 9]] = 0
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    nxt, nxt_pos = torch.tensor([[11], [12], [13]]), mask.sum(1, keepdim=True)
    with torch.inference_mode():
        cache = GrowingCache(model.config, chunk=4)
        model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
        ref_cache = GrowingCache(model.config, chunk=4)
        model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=ref_cache, use_cache=True)
        compacted = cache.compact(mask)
        assert compacted.shape == (3, 7) and compacted.sum(1).tolist() == mask.sum(1).tolist()
        assert compacted[:, -1].all() and cache.get_seq_length() == 7  # right-aligned
        one = torch.ones(3, 1, dtype=torch.long)
        a = model(
            input_ids=nxt, attention_mask=torch.cat([mask, one], 1), position_ids=nxt_pos, past_key_values=ref_cache
        ).logits
        b = model(
            input_ids=nxt, attention_mask=torch.cat([compacted, one], 1), position_ids=nxt_pos, past_key_values=cache
        ).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_a_cache_with_sliding_layers_is_not_compacted():
    cfg = MistralConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, sliding_window=16
    )
    cache = GrowingCache(cfg)
    assert not cache.compactable
    with pytest.raises(TypeError, match="GrowingLayers"):
        cache.compact(torch.ones(1, 3, dtype=torch.long))
