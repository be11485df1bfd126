"""Every config of the paper-scale path loads into its validated config object, and holds the
paper's values where the paper states them (a typo or a renamed field fails here, not after an
hour of GPU time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autocoa.agent.config import AgentConfig
from autocoa.train.rl_config import RLConfig
from autocoa.train.stage_config import ContrastiveConfig, MaskedSFTConfig

PAPER = Path(__file__).resolve().parents[1] / "configs" / "paper"
CLASSES = {
    "sft1": ContrastiveConfig,
    "sft2": MaskedSFTConfig,
    "sft3": MaskedSFTConfig,
    "rl": RLConfig,
    "eval": AgentConfig,
}


def test_every_paper_config_is_one_of_ours():
    assert {p.stem for p in PAPER.glob("*.yaml")} == set(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_paper_config_loads(name):
    cfg = CLASSES[name].load(PAPER / f"{name}.yaml")
    assert cfg is not None


def test_the_paper_values():
    sft1 = ContrastiveConfig.load(PAPER / "sft1.yaml")
    assert (sft1.lr, sft1.epochs, sft1.alpha, sft1.batch_size * sft1.grad_accum * 8) == (5e-6, 2, 0.2, 16)
    for stage in ("sft2", "sft3"):
        c = MaskedSFTConfig.load(PAPER / f"{stage}.yaml")
        assert (c.lr, c.epochs, c.batch_size * c.grad_accum * 8, c.cot_ratio) == (5e-5, 2, 32, 0.2)
    rl = RLConfig.load(PAPER / "rl.yaml")
    assert (rl.sim_steps, rl.real_steps, rl.prompts_per_step, rl.num_generations) == (80, 16, 48, 5)
    assert (rl.lr, rl.clip_epsilon, rl.kl_coef, rl.entropy_coef, rl.temperature, rl.max_actions) == (
        7e-7,
        0.2,
        0.001,
        0.001,
        0.6,
        10,
    )
    assert AgentConfig.load(PAPER / "eval.yaml").max_actions == rl.max_actions


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_one_gpu_config_loads(name):
    """configs/gpu/ (docs/gpu.md: a 1.5-3B model on one GPU): each file one of ours, fields valid."""
    gpu = PAPER.parent / "gpu"
    assert {p.stem for p in gpu.glob("*.yaml")} == set(CLASSES)
    assert CLASSES[name].load(gpu / f"{name}.yaml") is not None
