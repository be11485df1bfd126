from __future__ import annotations

import pytest
from pydantic import Field

from autocoa.config import Config, ConfigError


class Demo(Config):
    lr: float = Field(1e-3, gt=0, description="learning rate")
    steps: int = Field(10, ge=1, description="optimizer steps")


def test_defaults_file_overrides_and_save(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 0.5\n")
    c = Demo.load(p, steps=3, lr=None)
    assert (c.lr, c.steps) == (0.5, 3)
    c.save(tmp_path / "out" / "config.yaml")
    assert Demo.load(tmp_path / "out" / "config.yaml") == c


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("lr: -1\n", r"c\.yaml: invalid Demo: lr:"),
        ("nope: 1\n", "nope"),
        ("lr: [\n", r"c\.yaml:\d+: invalid YAML"),
        ("- 1\n", "mapping"),
        ("steps: false\n", r"c\.yaml: invalid Demo: steps: Input should be a valid integer"),  # not coerced to 0
        ('steps: "3"\n', r"c\.yaml: invalid Demo: steps"),
        ("lr: yes\n", r"c\.yaml: invalid Demo: lr"),
    ],
)
def test_errors_name_file_and_field(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Demo.load(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Demo.load(tmp_path / "x.yaml")


def test_rl_rollout_fields_are_the_agent_loops_with_rl_defaults():
    from autocoa.agent.config import AgentConfig
    from autocoa.train.rl_config import ROLLOUT_FIELDS, RLConfig

    rl, agent = RLConfig.model_fields, AgentConfig.model_fields
    for name in set(ROLLOUT_FIELDS) - {"temperature"}:
        assert rl[name].description == agent[name].description, name  # declared once, in AgentConfig
    assert rl["temperature"].default == 0.6 and agent["temperature"].default == 0.0
    cfg = RLConfig(max_actions=3, top_p=0.9)
    a = cfg.agent_config("simulated", seed=7)
    assert (a.env, a.max_actions, a.top_p, a.temperature, a.seed, a.n) == ("simulated", 3, 0.9, 0.6, 7, 1)
    for bad in ({"temperature": 0.0}, {"temperature": 1e-5}, {"top_p": 1.5}, {"max_obs_tokens": 4}):
        with pytest.raises(ValueError):
            RLConfig(**bad)


def test_prompt_styles_are_validated():
    import pytest as _pytest

    from autocoa.agent.prompts import set_prompt_style
    from autocoa.train.stage_config import MaskedSFTConfig

    with _pytest.raises(ValueError, match="prompt"):
        MaskedSFTConfig(prompt="long")

    class Tok:
        def __init__(self):
            self.init_kwargs = {}

    with _pytest.raises(ValueError, match="unknown prompt style 'long'"):
        set_prompt_style(Tok(), "long")
