"""`autocoa pretrain`: tokenizer + tiny Llama on the common facts, saved like a real checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from autocoa.cli import app
from autocoa.models import load_model
from autocoa.train.common import OutputExistsError
from autocoa.train.pretrain import CLOZE, PretrainConfig, common_facts, evaluate_facts, pack, pretrain
from autocoa.trajectory import check_tags
from tests.pretrain_helpers import TINY


@pytest.fixture(scope="module")
def pretrained(small_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("pt")
    return out, pretrain(small_world, out, PretrainConfig(**TINY), progress=False)


def test_saves_a_loadable_checkpoint_with_the_tags(pretrained):
    out, summary = pretrained
    model, tok = load_model(out, device="cpu")
    check_tags(tok)
    assert model.config.vocab_size == len(tok) == summary["vocab"]
    assert summary["params"] == sum(p.numel() for p in model.parameters())
    assert 0.0 <= summary["common_facts"]["accuracy"] <= 1.0 and summary["common_facts"]["n"] == 20
    assert (out / "DONE").exists() and (out / "pretrain_config.yaml").exists()
    losses = [row["loss"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert len(losses) >= 2  # (one tiny epoch: the loss barely moves; the weights must)
    from autocoa.train.pretrain import build_model

    init = build_model(PretrainConfig(**TINY), tok)  # the same seed: the initial weights
    trained = model.state_dict()
    assert any(not torch.equal(v, trained[k]) for k, v in init.state_dict().items())  # fails at lr 0


def test_refuses_a_finished_run(pretrained, small_world):
    out, _ = pretrained
    with pytest.raises(OutputExistsError):
        pretrain(small_world, out, PretrainConfig(**TINY), progress=False)


def test_common_facts_and_cloze(small_world):
    facts = common_facts(small_world)
    assert facts and all(rel in CLOZE for _, rel, _ in facts)
    entities = [json.loads(line) for line in (small_world / "entities.jsonl").open()]
    assert len(facts) == sum(len(e["facts"]) for e in entities if e["pool"] == "common")


def test_evaluate_facts_counts_correct_completions(tokenizer, monkeypatch):
    """The probe says which facts a model recalls (tests/test_knowledge.py); evaluate_facts
    aggregates them overall and per relation."""
    from autocoa import knowledge

    monkeypatch.setattr(knowledge, "recall", lambda m, t, facts, b: [(f.object == "Varnelo", 0.5) for f in facts])
    facts = [("Kesh", "born_in", "Varnelo"), ("Mo", "born_in", "Osmira"), ("Lu", "country", "Varnelo")]
    res = evaluate_facts(None, tokenizer, facts)
    assert res["accuracy"] == pytest.approx(2 / 3) and res["by_relation"] == {"born_in": 0.5, "country": 1.0}


def test_pack_joins_lines_with_eos(tokenizer):
    blocks = pack(["a b", "c d"] * 50, tokenizer, 16)
    assert all(len(b) == 16 for b in blocks) and tokenizer.eos_token_id in blocks[0]


def test_cli_errors(tmp_path):
    res = CliRunner().invoke(app, ["pretrain", "--world", str(tmp_path), "--out", str(tmp_path / "m")])
    assert isinstance(res.exception, FileNotFoundError) and "pretrain.txt" in str(res.exception)


def test_one_owner_of_precision_training_keeps_fp32_master_weights(monkeypatch):
    import doctest

    import torch

    from autocoa import models

    assert doctest.testmod(models).failed == 0
    # on a bf16 GPU: inference weights bf16, training weights fp32 (the trainers autocast)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cuda = torch.device("cuda")
    assert models.pick_dtype("auto", cuda) == torch.bfloat16
    assert models.pick_dtype("auto", cuda, for_training=True) == torch.float32
    assert models.trainer_precision(None) == {"bf16": True, "use_cpu": False}
    assert models.trainer_precision(False) == {"bf16": False, "use_cpu": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.trainer_precision(None) == {"bf16": False, "use_cpu": True}  # fp32 on every CPU


def test_rl_and_sft_trainers_take_their_precision_from_models(tokenizer, tmp_path):
    from autocoa.train.common import trainer_args
    from autocoa.train.rl import build_trainer
    from autocoa.train.rl_config import RLConfig
    from autocoa.train.stage_config import MaskedSFTConfig
    from tests.rl_helpers import save_tiny_model

    args = trainer_args(MaskedSFTConfig(bf16=False), tmp_path, progress=False)
    assert (args["bf16"], args["use_cpu"]) == (False, True)
    from autocoa.models import load_model

    model, tok = load_model(save_tiny_model(tokenizer, tmp_path / "m"), for_training=True)
    assert next(model.parameters()).dtype == torch.float32
    trainer = build_trainer(
        model,
        tok,
        [{"prompt": "Q", "golden_answers": ["a"]}] * 4,
        RLConfig(prompts_per_step=2, num_generations=2),
        tmp_path / "rl",
    )
    assert not trainer.args.bf16 and trainer.args.use_cpu


def test_a_killed_pretraining_resumes_from_its_last_checkpoint_to_the_same_model(small_world, tmp_path):
    from safetensors.torch import load_file

    from autocoa.jsonl import read_logged
    from autocoa.train.checkpoints import RunMismatchError

    cfg = PretrainConfig(**{**TINY, "epochs": 3.0, "save_steps": 2, "save_total_limit": 10})
    full = pretrain(small_world, tmp_path / "full", cfg, progress=False)
    steps = full["steps"]
    assert steps >= 5
    ckpts = sorted((tmp_path / "full" / "checkpoints").iterdir(), key=lambda p: int(p.name.split("-")[1]))
    # the state a kill after checkpoint-2 leaves: that checkpoint, a torn later one, logs past it
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in ("run.json", "metrics.jsonl"):
        (killed / name).write_bytes((tmp_path / "full" / name).read_bytes())
    shutil.copytree(tmp_path / "full" / "checkpoints" / "checkpoint-2", killed / "checkpoints" / "checkpoint-2")
    shutil.copytree(ckpts[-1], killed / "checkpoints" / ckpts[-1].name)
    (killed / "checkpoints" / ckpts[-1].name / "trainer_state.json").unlink()
    with (killed / "metrics.jsonl").open("a") as f:
        f.write('{"step": 99, "lo')
    resumed = pretrain(small_world, killed, cfg, progress=False)
    assert resumed["resumed_from_step"] == 2 and full["resumed_from_step"] is None
    a, b = read_logged(tmp_path / "full" / "metrics.jsonl"), read_logged(killed / "metrics.jsonl")
    assert [r["step"] for r in b] == [r["step"] for r in a]  # none lost, none doubled, the torn line gone
    assert [r["loss"] for r in b if "loss" in r] == pytest.approx([r["loss"] for r in a if "loss" in r], rel=1e-5)
    assert resumed["mean_loss"] == pytest.approx(full["mean_loss"], rel=1e-4)
    wa, wb = load_file(tmp_path / "full" / "model.safetensors"), load_file(killed / "model.safetensors")
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], atol=1e-6, rtol=0, msg=k)
    # another config is another run: refused while a checkpoint of this one is there
    (killed / "DONE").unlink()
    with pytest.raises(RunMismatchError, match="config"):
        pretrain(
            small_world, killed, PretrainConfig(**{**TINY, "epochs": 3.0, "save_steps": 2, "lr": 1e-2}), progress=False
        )
