"""One owner of ``"module:attribute"`` names: what the tool and method registries store for
their built-ins, so that importing a registry does not import what it lists."""

from __future__ import annotations

from importlib import import_module
from typing import Any


def resolve(obj: Any) -> Any:
    """``obj`` itself, or, for a ``"module:attribute"`` string, that attribute imported.

    >>> resolve("json:dumps")([1])
    '[1]'
    >>> resolve(len) is len
    True
    """
    if not isinstance(obj, str):
        return obj
    module, sep, attr = obj.partition(":")
    if not sep or not module or not attr or ":" in attr:
        raise ValueError(f"{obj!r}: expected 'module:attribute'")
    try:
        return getattr(import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{obj!r}: cannot import it ({e})") from None
