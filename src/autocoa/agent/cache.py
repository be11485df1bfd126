"""A key/value cache that grows in place instead of by concatenation.

transformers' ``DynamicLayer`` appends with ``torch.cat``: every decoding step copies the
whole cache, so a step reads the cache twice (copy + attention) and the copy grows with the
context. The engine keeps one cache for a whole multi-turn rollout (hundreds of tokens per
row, 32+ rows), where that copy is a large share of a step on CPU. ``GrowingLayer`` keeps
keys/values in a preallocated buffer with room for ``chunk`` more tokens and exposes views of
its filled part; it reallocates (one copy) only every ``chunk`` tokens, so it over-allocates
at most ``chunk`` positions per row.

Written here because transformers has no such layer: ``StaticLayer`` needs the final length
up front and attends over all of it every step. Only full-attention layers are replaced;
sliding-window, linear-attention and other layers keep transformers' own classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers.cache_utils import DYNAMIC_LAYER_TYPE_MAPPING, DynamicCache, DynamicLayer, get_layer_types_and_kwargs

CHUNK = 256


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``keys``/``values`` are views of a buffer grown by chunks."""

    def __init__(self, chunk: int = CHUNK, **kwargs: Any):
        super().__init__(**kwargs)
        self.chunk = chunk
        self._k: torch.Tensor | None = None  # [batch, heads, capacity, head_dim]
        self._v: torch.Tensor | None = None
        self._n = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        if self._k is None or self._n + new > self._k.shape[-2]:  # one copy every chunk tokens
            filled = (self.keys, self.values) if self._n else (key_states[:, :, :0], value_states[:, :, :0])
            self._k, self._v = (self._room(part, new + self.chunk) for part in filled)
        self._k[:, :, self._n : self._n + new] = key_states
        self._v[:, :, self._n : self._n + new] = value_states
        self._set_n(self._n + new)
        return self.keys, self.values

    @staticmethod
    def _room(part: torch.Tensor, extra: int) -> torch.Tensor:
        """A new buffer holding ``part`` with room for ``extra`` more positions."""
        b, h, n, d = part.shape
        out = part.new_empty((b, h, n + extra, d))
        out[:, :, :n] = part
        return out

    def _set_n(self, n: int) -> None:
        """``n`` positions are filled: ``keys``/``values`` are views of them."""
        self._n = n
        self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]

    def _rows(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Apply ``fn`` to both buffers along the batch dimension (rows leave, repeat, join)."""
        if self._n:
            self._k, self._v = fn(self._k), fn(self._v)
            self._set_n(self._n)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._rows(lambda buf: buf[indices.to(buf.device)])

    def select_positions(self, index: torch.Tensor) -> None:
        """Keep, for each row ``b``, the positions ``index[b]`` (``[batch, width]``), in that
        order; room for ``chunk`` more positions follows."""
        if not self._n:
            return
        b, h, _, d = self._k.shape
        gather = index[:, None, :, None].expand(b, h, index.shape[1], d)
        self._k, self._v = (self._room(part.gather(2, gather), self.chunk) for part in (self.keys, self.values))
        self._set_n(index.shape[1])

    def add_rows(self, n: int) -> None:
        """Append ``n`` rows whose every position is empty (to be hidden by the mask)."""
        self._rows(lambda buf: torch.cat([buf, buf.new_zeros((n, *buf.shape[1:]))]))

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._rows(lambda buf: buf.repeat_interleave(repeats, 0))

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        if self.is_initialized and self.keys is not None and self.keys.dim() == 4:
            self._n = self.keys.shape[-2]

    def reset(self) -> None:
        self._k = self._v = None
        self._n = 0
        super().reset()


class GrowingCache(DynamicCache):
    """``DynamicCache`` with :class:`GrowingLayer` for its full-attention layers."""

    def __init__(self, config: Any, chunk: int = CHUNK):
        types, kwargs = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
        layers = [
            GrowingLayer(chunk=chunk) if t == "full_attention" else DYNAMIC_LAYER_TYPE_MAPPING[t](**kw)
            for t, kw in zip(types, kwargs, strict=True)
        ]
        super(DynamicCache, self).__init__(layers=layers)

    @property
    def compactable(self) -> bool:
        return all(isinstance(layer, GrowingLayer) for layer in self.layers)

    def add_rows(self, n: int) -> None:
        """``n`` more rows (new slots) with nothing in them yet: their mask hides every position."""
        if not self.compactable:
            raise TypeError("only a cache of GrowingLayers can take new rows")
        for layer in self.layers:
            layer.add_rows(n)

    def compact(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """Drop the positions that ``attention_mask`` (``[batch, length]``, 1 = attended) hides
        from every row: each row keeps its attended positions in order, right-aligned, in a
        cache as wide as the row with the most. Returns the mask of the compacted cache.
        Keys carry their rotary position already, so moving them changes no attention score.
        """
        if not self.compactable:
            raise TypeError("only a cache of GrowingLayers can be compacted")
        keep = attention_mask.bool()
        length = keep.shape[1]
        width = int(keep.sum(1).max())
        # hidden positions sort first, attended ones last, each in their original order
        key = keep.long() * length + torch.arange(length, device=keep.device)
        index = key.argsort(dim=1)[:, length - width :]
        for layer in self.layers:
            layer.select_positions(index)
        return keep.gather(1, index).to(attention_mask.dtype)
