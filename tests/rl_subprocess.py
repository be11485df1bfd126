"""Run a tiny scripted RL schedule in its own process (SIGKILL-resume and 2-process tests).

``python tests/rl_subprocess.py MODEL QUESTIONS OUT [KILL_AT_STEP]``: with KILL_AT_STEP, the
process SIGKILLs itself when the rollout of that step starts (after earlier checkpoints).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)

from autocoa.models import load_model  # noqa: E402
from autocoa.tools.base import Toolbox  # noqa: E402
from autocoa.train import rl, rl_config, rl_rollouts  # noqa: E402
from tests.agent_helpers import FakeSearch  # noqa: E402
from tests.rl_helpers import scripted_hook  # noqa: E402

TURNS = ["<think>need it</think><search>Varnelo</search>", "<answer>Varnelo</answer>"]
CFG = dict(
    sim_steps=3,
    real_steps=3,
    prompts_per_step=2,
    num_generations=2,
    max_new_tokens=64,
    max_obs_tokens=12,
    max_answer_tokens=8,
    save_every=2,
    eval_every=2,
    rollouts_every=1,
)


def main() -> None:
    model, questions, out = sys.argv[1:4]
    kill_at = int(sys.argv[4]) if len(sys.argv) > 4 else None
    if kill_at is not None:
        original = rl_rollouts.AgentRollouts.__call__

        def call(self, prompts, trainer):
            if trainer.state.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, prompts, trainer)

        rl_rollouts.AgentRollouts.__call__ = call
    _, tok = load_model(model)
    summary = rl.train_rl(
        model,
        questions,
        out,
        rl_config.RLConfig(**CFG),
        toolbox=Toolbox([FakeSearch()]),
        progress=False,
        logits_hook=scripted_hook(tok, TURNS),
    )
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main()
