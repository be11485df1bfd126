"""autocoa.atomic: a kill while a file or a model directory is written leaves a whole version."""

from __future__ import annotations

import doctest

import pytest

from autocoa import atomic


def test_doctests():
    result = doctest.testmod(atomic)
    assert result.attempted > 0 and result.failed == 0


def test_a_write_that_dies_leaves_the_old_version(tmp_path):
    atomic.write_text(tmp_path / "f", "old")
    atomic.replace(tmp_path / "d", lambda t: (t.mkdir(), (t / "w").write_text("old")))

    def dies(tmp):
        tmp.mkdir(exist_ok=True)
        (tmp / "w").write_text("half")
        raise KeyboardInterrupt

    for dest in (tmp_path / "f", tmp_path / "d"):
        with pytest.raises(KeyboardInterrupt):
            atomic.replace(dest, dies)
    assert (tmp_path / "f").read_text() == "old" and (tmp_path / "d" / "w").read_text() == "old"
    atomic.write_text(tmp_path / "f", "new")  # the torn .tmp of the dead write is cleared
    assert (tmp_path / "f").read_text() == "new" and not (tmp_path / "f.tmp").exists()


def test_the_model_directory_is_saved_whole(tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    from tests.rl_helpers import save_tiny_model

    src = save_tiny_model(tokenizer, tmp_path / "m")
    model = AutoModelForCausalLM.from_pretrained(src)
    atomic.save_model(model, tokenizer, tmp_path / "best")
    atomic.save_model(model, tokenizer, tmp_path / "best")
    assert (tmp_path / "best" / "config.json").exists() and (tmp_path / "best" / "tokenizer.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "m"]
