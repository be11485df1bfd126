"""Every docstring example in the package runs (pure functions document themselves with them)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import autocoa

MODULES = sorted(m.name for m in pkgutil.walk_packages(autocoa.__path__, "autocoa.") if m.name != "autocoa.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    try:
        module = importlib.import_module(name)
    except ImportError as e:  # an optional extra (dense retrieval) that is not installed
        pytest.skip(f"{name}: {e}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
