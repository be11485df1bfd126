import doctest
import re

import pytest

from autocoa import lazy
from autocoa.eval.methods import Method


def test_doctests():
    assert doctest.testmod(lazy).failed == 0


@pytest.mark.parametrize("spec", ["json", "json:", ":dumps", "json:dumps:x"])
def test_a_malformed_name_is_refused_naming_it(spec):
    with pytest.raises(ValueError, match=r"expected 'module:attribute'"):
        lazy.resolve(spec)


@pytest.mark.parametrize("spec", ["no_such_module_xyz:f", "json:no_such_attribute"])
def test_a_name_that_does_not_import_says_so(spec):
    with pytest.raises(ValueError, match="cannot import it"):
        lazy.resolve(spec)


def test_registries_resolve_through_it():
    from autocoa.tools import create_tool

    assert create_tool("calculate").name == "calculate"
    m = Method("m", "a method by name", engine="autocoa.eval.baselines:agent_setup")
    from autocoa.eval.baselines import agent_setup

    assert m.resolve() is agent_setup
    with pytest.raises(ValueError, match=re.escape("'autocoa.eval.baselines:nope': cannot import it")):
        Method("m2", "a bad name", engine="autocoa.eval.baselines:nope").resolve()
