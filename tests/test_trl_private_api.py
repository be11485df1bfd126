"""The RL stage leans on three private parts of TRL / transformers, so TRL is pinned to the
minor version they were read in (pyproject.toml). When an upgrade moves them, this fails first,
naming what moved, instead of a run failing at its first checkpoint or losing its metrics.

- ``GRPOTrainer._log_metric(name, value)``: the per-step metric buffer reward functions write
  to (``rl/real_calls``, ``rl/obs_fact``, ... in ``autocoa.train.rl_rollouts``);
- ``Trainer._save_checkpoint(model, trial)`` and ``Trainer._get_output_dir(trial=...)``: the
  run counters are written into ``checkpoint-N`` before TRL's ``trainer_state.json``, which so
  marks a complete checkpoint (``autocoa.train.rl``);
- ``SFTTrainer._total_train_tokens``: the ``num_tokens`` count, which a resumed SFT run sets
  from its metrics (``autocoa.train.sft.restore_token_count``);
- ``trl.trainer.utils._use_triton(device)``: what the fused LM head asks before projecting only the
  labelled rows (``lm_head: trained``, ``autocoa.train.common.lm_head_positions``).
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


def test_the_fused_lm_head_asks_use_triton_whether_to_project_only_labelled_rows():
    import trl.trainer.utils as trl_utils

    assert callable(getattr(trl_utils, "_use_triton", None)), "trl.trainer.utils._use_triton is gone"
    source = inspect.getsource(trl_utils.add_fused_lm_head)
    assert "compact = _use_triton(hidden_states.device)" in source, "the fused head no longer asks _use_triton"
    assert "hidden_states[mask] if compact" in source, "compact no longer selects the labelled rows"
