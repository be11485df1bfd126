"""The default recipe's base model, shipped with the package (autocoa.shipped): it applies exactly
to the default world and pretraining config, installs as a loadable base, and anything else
pretrains."""

from __future__ import annotations

import json
import shutil

import pytest

from autocoa.recipe.config import preset
from autocoa.shipped import ASSET, RECORD, install, mismatch


@pytest.fixture(scope="module")
def default_world(tmp_path_factory):
    """The default preset's world (seed 0), as the demo generates it (a few seconds)."""
    from autocoa.world import generate_world, write_world

    out = tmp_path_factory.mktemp("default") / "world"
    write_world(generate_world(preset("default").world), out)
    return out


def test_the_shipped_base_applies_to_the_default_world(default_world):
    # fails when world generation or the default preset's pretraining changes: re-make the base
    # (autocoa ship-base) so that the demo does not silently pretrain for 10 minutes
    assert mismatch(default_world, preset("default").pretrain) is None
    assert mismatch(default_world, preset("short").pretrain) is None


def test_a_seed_keeps_the_shipped_base_and_a_world_seed_does_not(default_world):
    from autocoa.recipe.config import for_seed, for_world_seed

    assert mismatch(default_world, for_seed(preset("default"), 4).pretrain) is None
    why = mismatch(default_world, for_world_seed(preset("default"), 4).pretrain)
    assert why == "pretrain.seed is 4, the shipped base's 0"


def test_installed_base_loads_generates_and_carries_its_probe(default_world, tmp_path):
    from autocoa.knowledge import read_knowledge
    from autocoa.models import load_model

    summary = install(default_world, tmp_path / "base", preset("default").pretrain)
    assert summary is not None and summary["base"] == "shipped" and summary["made_by"]["command"]
    assert json.loads((tmp_path / "base" / "DONE").read_text())["base"] == "shipped"
    known = read_knowledge(tmp_path / "base" / "knowledge.jsonl")
    assert len(known) > 10000 and any(known.values()) and not all(known.values())
    model, tok = load_model(tmp_path / "base")
    ids = tok("The capital of", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 4
    # the base reads: the reading test recorded when it was made
    assert summary["recall_by_exposure"]["reading"]["accuracy"] >= 0.5


def test_mismatch_names_the_field_or_the_file(default_world, tmp_path):
    cfg = preset("default").pretrain
    assert mismatch(default_world, cfg.model_copy(update={"lr": 1e-3})) == (
        f"pretrain.lr is 0.001, the shipped base's {cfg.lr!r}"
    )
    # fields that do not change the model do not matter
    assert mismatch(default_world, cfg.model_copy(update={"save_steps": 7, "report_to": ["tensorboard"]})) is None
    other = tmp_path / "world"
    shutil.copytree(default_world, other)
    with (other / "pretrain.txt").open("a") as f:
        f.write("One more line.\n")
    assert "pretrain.txt is not the world the shipped base read" in mismatch(other, cfg)
    assert install(other, tmp_path / "base", cfg) is None and not (tmp_path / "base").exists()
    assert mismatch(default_world, cfg, asset=tmp_path / "none") == f"no shipped base at {tmp_path / 'none'}"


def test_an_incomplete_asset_is_named(default_world, tmp_path):
    asset = tmp_path / "asset"
    asset.mkdir()
    shutil.copyfile(ASSET / RECORD, asset / RECORD)
    assert "lacks config.json" in mismatch(default_world, preset("default").pretrain, asset=asset)


def test_the_pretrain_stage_installs_it_and_says_why_not(default_world, tmp_path):
    from autocoa.recipe.stages import pretrain_stage

    shutil.copytree(default_world, tmp_path / "world")
    summary = pretrain_stage(preset("default"), tmp_path).run()
    assert summary["base"] == "shipped" and "why_pretrained" not in summary and summary["reading"] >= 0.5
    assert (tmp_path / "base" / "model.safetensors").exists()


def test_make_then_install_round_trips_on_the_fast_preset(tmp_path):
    """What `autocoa ship-base` does, on the fast preset's world and model: the record it writes
    matches the world and config it was made from, and the base installs from it."""
    from autocoa.shipped import make

    fast = preset("fast")
    asset = tmp_path / "asset"
    record = make(fast.world, fast.pretrain, tmp_path / "work", asset=asset)
    assert set(record["world"]) == {"pretrain.txt", "corpus.jsonl", "entities.jsonl", "train.jsonl"}
    world = tmp_path / "work" / "world"
    assert mismatch(world, fast.pretrain, asset=asset) is None
    assert mismatch(world, preset("default").pretrain, asset=asset).startswith("pretrain.")
    summary = install(world, tmp_path / "installed", fast.pretrain, asset=asset)
    assert summary["base"] == "shipped" and summary["made_by"]["command"].startswith("autocoa ship-base")
    assert (tmp_path / "installed" / "model.safetensors").read_bytes() == (asset / "model.safetensors").read_bytes()
