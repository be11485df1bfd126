"""Rules of the house that the code itself can be checked against."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "autocoa"
LONG = 60  # lines, def to end


def long_functions() -> list[tuple[str, int, int, str | None]]:
    """(file, line, length, reason) of every function over LONG lines; the reason is the
    ``# long: ...`` comment on the line above its ``def`` (or above its decorators)."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > LONG:
                    top = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    above = lines[top - 2].strip() if top >= 2 else ""
                    reason = above.removeprefix("# long:").strip() if above.startswith("# long:") else None
                    out.append((str(path.relative_to(SRC)), node.lineno, length, reason))
    return out


def test_every_function_over_60_lines_says_why():
    missing = [f"{f}:{line} ({n} lines)" for f, line, n, reason in long_functions() if not reason]
    assert not missing, "add a '# long: <reason>' comment above these, or split them: " + ", ".join(missing)


def test_the_rule_sees_long_functions():
    assert len(long_functions()) >= 5  # the scan works (they exist, each with its reason)


# -- one source per setting ------------------------------------------------------------------
# A field name declared by more than one config class is allowed only as one of these, each
# with its reason; a new one fails the test until it is one of them or moved to one owner.
# 1. Protocol bodies: the fields a wire format names (OpenAI chat requests, Search-R1's
#    /retrieve, server limits, the CLI's evaluation request), whatever our configs call them.
PROTOCOL = {"ChatRequest", "RetrieveRequest", "ServeLimits", "ServerLimits", "EvalRequest"}
# 2. Each training stage's own value of a knob every trainer has (the paper sets them per stage).
PER_STAGE = {
    "lr": "each stage has its own learning rate (paper: SFT 1e-5/5e-6, RL 7e-7)",
    "seed": "each stage's own seed; the recipe derives them all from one (for_seed)",
    "batch_size": "a trainer's batch of examples, or the agent's batch of questions",
    "epochs": "pretraining and each SFT stage run their own number of passes",
    "bf16": "each trainer's precision switch",
    "gradient_checkpointing": "each trainer's memory-for-compute switch",
    "lm_head": "each trainer's positions for TRL's fused LM head (SFT-2/3 and GRPO)",
    "report_to": "each trainer's trackers",
    "save_steps": "each trainer's checkpoint interval",
    "save_total_limit": "each trainer's checkpoints kept",
    "warmup_steps": "each trainer's warm-up",
    "weight_decay": "each trainer's AdamW decay",
    "max_grad_norm": "each trainer's clipping",
    "keep_checkpoints": "RL's number of resume checkpoints, the recipe's keep-or-compact switch for finished stages",
}


def config_classes() -> list[type]:
    """Every pydantic model class defined in autocoa."""
    import importlib
    import inspect
    import pkgutil

    from pydantic import BaseModel

    import autocoa

    found = set()
    for info in pkgutil.walk_packages(autocoa.__path__, "autocoa."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, c in inspect.getmembers(module, inspect.isclass):
            if issubclass(c, BaseModel) and c.__module__ == info.name:
                found.add(c)
    return sorted(found, key=lambda c: c.__name__)


def unexplained_duplicates(classes: list[type]) -> list[str]:
    """Field names declared (not inherited) by two or more config classes that none of the rules
    above explains: mirrored from AgentConfig (RL's rollout fields), set by the recipe for both
    stages (SET_BY_RECIPE), a protocol's field, or a per-stage knob."""
    import inspect
    from collections import defaultdict

    from autocoa.recipe.config import SET_BY_RECIPE
    from autocoa.train.rl_config import ROLLOUT_FIELDS

    recipe_set = {d.split(".")[-1] for d in SET_BY_RECIPE}
    owners = defaultdict(set)
    for c in classes:
        for name in inspect.get_annotations(c):
            if name in c.model_fields and c.__name__ not in PROTOCOL:
                owners[name].add(c.__name__)
    out = []
    for name, cs in sorted(owners.items()):
        if name in ROLLOUT_FIELDS:
            cs = cs - {"RLConfig"}  # declared from AgentConfig's field (train/rl_config._agent_field)
        if name in recipe_set:
            cs = cs - {"SynthConfig", "RLConfig"}  # refused in a recipe file; the recipe sets them
        if len(cs) > 1 and name not in PER_STAGE:
            out.append(f"{name}: {', '.join(sorted(cs))}")
    return out


def test_every_setting_has_one_declaration():
    classes = config_classes()
    assert {"RecipeConfig", "RLConfig", "AgentConfig", "SynthConfig", "WorldConfig"} <= {c.__name__ for c in classes}
    assert not unexplained_duplicates(classes), (
        "declared twice: give it one owner, or explain it in tests/test_house.py: "
        + "; ".join(unexplained_duplicates(classes))
    )


def test_the_rule_sees_a_second_declaration():
    from autocoa.config import Config

    class A(Config):
        depth: int = 1
        lr: float = 1.0

    class B(Config):
        depth: int = 2
        lr: float = 2.0

    assert unexplained_duplicates([A, B]) == ["depth: A, B"]


def test_rl_rollout_fields_are_agent_configs():
    """RL's rollout fields keep AgentConfig's constraints (their one declaration), with RL's defaults."""
    from autocoa.agent.config import AgentConfig
    from autocoa.train.rl_config import ROLLOUT_FIELDS, RLConfig

    for name in ROLLOUT_FIELDS:
        agent = {type(m).__name__: m for m in AgentConfig.model_fields[name].metadata}
        rl = {type(m).__name__: m for m in RLConfig.model_fields[name].metadata}
        assert set(agent) <= set(rl), name
