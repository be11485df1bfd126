"""Experiment tracking on every stage: ``report_to: [tensorboard]`` writes event files with the
metrics of metrics.jsonl under the same names, for pretrain, SFT and RL alike."""

from __future__ import annotations

import json

from tests.rl_helpers import save_tiny_model, scripted_hook, write_questions
from tests.sft_helpers import write_data, write_model


def logged_tags(out):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(out.rglob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event file under {out}"
    tags = set()
    for f in files:
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


def jsonl_keys(out):
    return {k for line in (out / "metrics.jsonl").read_text().splitlines() for k in json.loads(line)}


def test_pretrain_logs_to_tensorboard(small_world, tmp_path):
    from autocoa.train.pretrain import PretrainConfig, pretrain
    from tests.pretrain_helpers import TINY

    out = tmp_path / "pt"
    pretrain(small_world, out, PretrainConfig(**TINY, report_to=["tensorboard"]), progress=False)
    assert "train/loss" in logged_tags(out) and "loss" in jsonl_keys(out)


def test_sft_logs_to_tensorboard(tokenizer, tmp_path):
    from autocoa.train.sft import train_sft
    from autocoa.train.stage_config import MaskedSFTConfig

    data = write_data(tmp_path / "data")
    model = write_model(tokenizer, tmp_path / "init")
    cfg = MaskedSFTConfig(max_steps=2, batch_size=2, logging_steps=1, cot_ratio=0.0, report_to=["tensorboard"])
    train_sft("sft2", model, data["coa"], tmp_path / "sft2", cfg, progress=False)
    assert "train/loss" in logged_tags(tmp_path / "sft2")


def test_rl_logs_to_tensorboard(tokenizer, tmp_path):
    from autocoa.train.rl import train_rl
    from autocoa.train.rl_config import RLConfig

    model = save_tiny_model(tokenizer, tmp_path / "model")
    questions = write_questions(tmp_path / "q.jsonl", n=2)
    cfg = RLConfig(
        sim_steps=1,
        real_steps=0,
        prompts_per_step=1,
        num_generations=2,
        max_new_tokens=48,
        max_answer_tokens=8,
        report_to=["tensorboard"],
    )
    hook = scripted_hook(tokenizer, ["<think>x</think><search>Varnelo</search>", "<answer>Varnelo</answer>"])
    train_rl(model, questions, tmp_path / "rl", cfg, progress=False, logits_hook=hook)
    tags = logged_tags(tmp_path / "rl")
    assert {"train/reward", "train/rl/env_real"} <= tags, sorted(tags)
    assert {"reward", "rl/env_real"} <= jsonl_keys(tmp_path / "rl")  # the same names, without train/
