"""The RL stage leans on three private parts of TRL / transformers, so TRL is pinned to the
minor version they were read in (pyproject.toml). When an upgrade moves them, this fails first,
naming what moved, instead of a run failing at its first checkpoint or losing its metrics.

- ``GRPOTrainer._log_metric(name, value)``: the per-step metric buffer reward functions write
  to (``rl/real_calls``, ``rl/obs_fact``, ... in ``autocoa.train.rl_rollouts``);
- ``Trainer._save_checkpoint(model, trial)`` and ``Trainer._get_output_dir(trial=...)``: the
  run counters are written into ``checkpoint-N`` before TRL's ``trainer_state.json``, which so
  marks a complete checkpoint (``autocoa.train.rl``);
- ``SFTTrainer._total_train_tokens``: the ``num_tokens`` count, which a resumed SFT run sets
  from its metrics (``autocoa.train.sft.restore_token_count``).
"""

from __future__ import annotations

import inspect

import trl


def test_trl_is_the_minor_version_the_rl_stage_was_read_in():
    assert trl.__version__.startswith("1.16."), f"TRL {trl.__version__}: re-read the private API below, then re-pin"


def test_the_private_methods_exist_with_the_signatures_used():
    from trl import GRPOTrainer

    for name, params in (
        ("_log_metric", ["self", "name", "value"]),
        ("_save_checkpoint", ["self", "model", "trial"]),
        ("_get_output_dir", ["self", "trial"]),
    ):
        method = getattr(GRPOTrainer, name, None)
        assert method is not None, f"GRPOTrainer.{name} is gone"
        got = list(inspect.signature(method).parameters)
        assert got[: len(params)] == params, f"GRPOTrainer.{name}{inspect.signature(method)}: expected {params}"


def test_the_sft_token_count_is_the_attribute_a_resumed_run_sets():
    from trl import SFTTrainer

    source = inspect.getsource(SFTTrainer)
    assert "self._total_train_tokens = 0" in source, "SFTTrainer no longer starts a _total_train_tokens count"
    assert '["num_tokens"] = [self._total_train_tokens]' in source, "num_tokens is no longer _total_train_tokens"
