"""What watches an RL run: the collapse detector (pure), the run counters that must survive a
resume (:class:`RunState`), the Trainer callback that feeds the detector and keeps the best
weights in ``best/``, and the one that draws the held-out curve (:func:`heldout_monitor`)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autocoa.atomic import save_model
from autocoa.train.rl_config import RLConfig

RUN_STATE = "autocoa_rl_state.json"  # RunState, inside each checkpoint-N (see autocoa.train.rl)


@dataclass
class CollapseDetector:
    """Watches one number per evaluation window and says when training has collapsed.

    >>> d = CollapseDetector(patience=2)
    >>> d.update(5, reward=0.2, entropy=1.0)
    (True, None)
    >>> d.update(10, reward=0.1, entropy=1.1)
    (False, None)
    >>> d.update(15, reward=0.05, entropy=1.0)
    (False, 'reward fell for 2 evaluations in a row (0.2 -> 0.05)')
    >>> d.update(20, reward=0.3, entropy=3.5)
    (True, 'entropy blew up: 3.5 vs 1 in the first window (x3 allowed)')
    >>> d = CollapseDetector()
    >>> d.update(5, reward=0.0, capped=0.1) and d.update(10, reward=0.0, capped=0.8)
    (False, 'length blew up: 80% of rollouts hit the token budget (limit 50%)')
    """

    patience: int = 3
    entropy_factor: float = 3.0
    max_capped: float = 0.5
    baseline_entropy: float | None = None
    baseline_capped: float | None = None
    rewards: list[float] = field(default_factory=list)
    best_reward: float | None = None
    best_step: int = -1

    def update(
        self, step: int, reward: float, entropy: float | None = None, capped: float = 0.0
    ) -> tuple[bool, str | None]:
        """Record one window; return (new best reward?, collapse reason or None)."""
        if self.baseline_entropy is None and entropy is not None:
            self.baseline_entropy = entropy
        if self.baseline_capped is None:
            self.baseline_capped = capped
        self.rewards.append(reward)
        improved = self.best_reward is None or reward > self.best_reward
        if improved:
            self.best_reward, self.best_step = reward, step
        if entropy is not None and self.baseline_entropy and entropy > self.entropy_factor * self.baseline_entropy:
            return improved, (
                f"entropy blew up: {entropy:.3g} vs {self.baseline_entropy:.3g} in the first window "
                f"(x{self.entropy_factor:g} allowed)"
            )
        limit = max(self.max_capped, self.baseline_capped + 0.25)
        if capped > limit:
            return improved, f"length blew up: {capped:.0%} of rollouts hit the token budget (limit {limit:.0%})"
        tail = self.rewards[-(self.patience + 1) :]
        if len(tail) == self.patience + 1 and all(b < a for a, b in itertools.pairwise(tail)):
            return improved, (f"reward fell for {self.patience} evaluations in a row ({tail[0]:.3g} -> {tail[-1]:.3g})")
        return improved, None


@dataclass
class RunState:
    """What a resumed run must remember beyond TRL's own state."""

    real_calls_total: int = 0
    detector: CollapseDetector = field(default_factory=CollapseDetector)
    stopped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunState:
        return cls(d["real_calls_total"], CollapseDetector(**d["detector"]), d.get("stopped"))


def detector_for(cfg: RLConfig) -> CollapseDetector:
    return CollapseDetector(
        patience=cfg.collapse_patience, entropy_factor=cfg.collapse_entropy_factor, max_capped=cfg.collapse_capped
    )


def monitor(cfg: RLConfig, state: RunState, out_dir: Path):
    from transformers import TrainerCallback

    class RLMonitor(TrainerCallback):
        """Every ``eval_every`` steps: window means -> collapse check, best model to ``best/``."""

        def __init__(self) -> None:
            self.window: list[tuple[float, float | None, float]] = []

        def on_log(self, args, state_, control, logs=None, model=None, processing_class=None, **_):
            if not logs or "reward" not in logs:
                return
            self.window.append((logs["reward"], logs.get("entropy"), logs.get("rl/capped", 0.0)))
            if state_.global_step % cfg.eval_every:
                return
            rewards, ents, caps = zip(*self.window, strict=True)
            self.window = []
            ents = [e for e in ents if e is not None]
            improved, reason = state.detector.update(
                state_.global_step,
                sum(rewards) / len(rewards),
                sum(ents) / len(ents) if ents else None,
                sum(caps) / len(caps),
            )
            if improved and state_.is_world_process_zero and model is not None:
                save_model(getattr(model, "module", model), processing_class, out_dir / "best")
            if reason is not None and cfg.stop_on_collapse:
                state.stopped = f"collapse at step {state_.global_step}: {reason}"
                control.should_training_stop = True

    return RLMonitor()


def heldout_monitor(cfg: RLConfig, curve: Any, state: RunState, path: Path):
    """A callback that calls ``curve(model, tokenizer)`` (:func:`autocoa.eval.heldout.heldout_curve`:
    held-out questions answered greedily with real search) before the first step and every
    ``cfg.heldout_every`` steps, and appends ``{step, em, f1, n, real_calls_total,
    eval_tool_calls}`` to ``path``: held-out EM against the real calls training has spent. A step
    already in ``path`` (a resumed run) is not evaluated again. Only the main process evaluates;
    the others wait for it at the next collective."""
    from transformers import TrainerCallback

    from autocoa.jsonl import read_jsonl, write_jsonl

    class HeldOut(TrainerCallback):
        def _evaluate(self, step: int, state_, model, tokenizer) -> None:
            if not state_.is_world_process_zero or model is None:
                return
            if path.exists() and any(r.get("step") == step for _, r in read_jsonl(path)):
                return
            m = curve(getattr(model, "module", model), tokenizer)
            row = {
                "step": step,
                "em": m["em"],
                "f1": m["f1"],
                "n": m["n"],
                "real_calls_total": state.real_calls_total,
                "eval_tool_calls": m["eval_tool_calls"],
            }
            write_jsonl(path, [row], append=True)

        def on_train_begin(self, args, state_, control, model=None, processing_class=None, **_):
            if state_.global_step == 0:
                self._evaluate(0, state_, model, processing_class)

        def on_step_end(self, args, state_, control, model=None, processing_class=None, **_):
            if state_.global_step % cfg.heldout_every == 0 or state_.global_step == state_.max_steps:
                self._evaluate(state_.global_step, state_, model, processing_class)

    return HeldOut()
