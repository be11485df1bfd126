"""RL stages 1 and 2: GRPO with the agent loop as the rollout, in the simulated then the real world.

``autocoa train rl --model IN --questions FILE --env simulated|real --out DIR`` runs one stage;
``--sim-steps 80 --real-steps 16`` runs RL-stage1 then RL-stage2 in one command (one Trainer
run whose environment is a function of the step, so a resumed run lands in the right stage).
In-process: :func:`train_rl`.

How it is built on TRL's ``GRPOTrainer``:

- ``rollout_func`` = :class:`AgentRollouts`. TRL hands it the prompts already repeated
  ``num_generations`` times; it decodes one rollout per prompt with our engine
  (:mod:`autocoa.agent.engine`) on the unwrapped policy, in the step's environment, and returns
  prompt and completion ids (token ids end to end, never re-tokenized), the sampling log-probs
  and ``env_mask`` = :attr:`Rollout.mask` (0 on every observation token, real or simulated,
  and on every token the environment inserted).
- What TRL 1.16 already does with ``env_mask`` (read in ``grpo_trainer.py``): it becomes
  ``tool_mask``, and ``_compute_loss`` uses ``mask = completion_mask * tool_mask`` for the
  clipped policy term, the k3 KL term (added per token *before* masking), the loss normaliser
  (per sequence for ``grpo``, per batch for ``bnpo``/``dapo``, where ``num_items_in_batch`` is
  the masked token count), the entropy bonus (``entropy_coef``, also averaged over the mask)
  and the logged entropy/KL. The original release masked only the advantage;
  ``tests/test_rl_masking.py`` checks that observation tokens get exactly zero gradient.
  So the loss needed no change.
- Sampling log-probs: TRL uses the ones a rollout function returns only for vLLM importance
  sampling. Our rollouts come from the same weights in the same process, so with one
  optimisation pass per batch (``num_iterations=1``) the "old" log-probs are the current ones
  detached, exactly as TRL assumes; we return ours for completeness and test that they equal
  TRL's recomputation (the check that the trained tokens are the sampled ones).
- The one subclass, :class:`AgentGRPOTrainer`, adds what TRL does not keep: run counters
  that must survive a resume (real tool calls spent, the collapse detector's history), saved
  into each ``checkpoint-N`` *before* TRL writes its ``trainer_state.json``, so a checkpoint
  with both files is complete; and the running total in every log line.

Departures from the paper, and why: the learning rate (7e-7 for a 7B model) is 1e-4 for the
tiny model trained from scratch; 8 prompts per step instead of 48 (2 CPU cores); the action
budget is 6 (questions have at most 4 hops) instead of 10 searches; the advantage divides by
``std + 1e-4`` (TRL) instead of ``1e-6``; the loss is token-mean over the batch (``dapo`` in
TRL's names, verl's ``token-mean``), with per-sequence ``grpo`` as an option.

Logs (``metrics.jsonl``, one line per step): ``reward``, ``rewards/accuracy/mean`` (EM,
format ignored), ``entropy``, ``kl``, ``completions/mean_length`` (model-written tokens),
``rl/response_tokens`` (all), ``rl/actions``, ``rl/real_calls`` (this step),
``real_calls_total``, ``rl/forced_answer``, ``rl/capped`` (share of rollouts cut by the token
budget), ``rl/env_real`` (0 simulated, 1 real), and, when the questions carry their gold
``chain`` (synth's files do), ``rl/obs_fact`` (share of the step's search results that state
the searched hop's true object: the world model's fidelity in a simulated step, the retriever's
hit rate in a real one) and ``rl/obs_checked``. The summary (``rl.json``) has the mean reward
of the simulated and of the real steps and the simulated steps' fidelity. Every ``rollouts_every`` steps a few decoded
rollouts go to ``rollouts.jsonl``. Collapse (entropy or length blow-up, reward falling for
``collapse_patience`` evaluations) stops the run with a message; the best weights (by the
mean reward of an evaluation window) are kept in ``best/`` and become the output.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from autocoa.config import Config
from autocoa.train.rewards import Metric

RUN_STATE = "autocoa_rl_state.json"
CONFIG_NAME = "rl_config.yaml"
Env = Literal["simulated", "real"]


class RLConfig(Config):
    # schedule
    sim_steps: int = Field(80, ge=0, description="RL-stage1: GRPO steps in the simulated environment (run first)")
    real_steps: int = Field(16, ge=0, description="RL-stage2: GRPO steps in the real environment (run after)")
    prompts_per_step: int = Field(8, ge=1, description="questions per GRPO step (paper: 48)")
    num_generations: int = Field(5, ge=2, description="group size: rollouts per question (paper: 5)")
    # GRPO loss
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate, constant (paper: 7e-7 for a 7B model)")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping")
    clip_epsilon: float = Field(0.2, gt=0, description="PPO clip range (paper: 0.2)")
    kl_coef: float = Field(0.001, ge=0, description="k3 KL to the initial policy (paper: 0.001); 0 = no ref model")
    entropy_coef: float = Field(0.001, ge=0, description="entropy bonus (paper: 0.001)")
    loss_type: Literal["dapo", "grpo", "bnpo", "dr_grpo"] = Field(
        "dapo", description="loss normaliser (TRL names): dapo = token mean over the batch; grpo = per sequence"
    )
    # rollouts
    temperature: float = Field(0.6, gt=0, description="sampling temperature (paper: 0.6)")
    top_p: float = Field(1.0, gt=0, le=1.0, description="nucleus sampling mass")
    max_actions: int = Field(6, ge=0, description="action budget per rollout; then an answer is forced")
    max_new_tokens: int = Field(512, ge=8, description="token budget per response, observations included")
    max_obs_tokens: int = Field(256, ge=8, description="observations (real or simulated) are cut here")
    max_answer_tokens: int = Field(32, ge=1, description="a forced answer is closed after this many tokens")
    topk: int = Field(3, ge=1, description="documents per real search")
    # reward
    reward_metric: Metric = Field("em", description="em: exact match (paper); f1: token F1 (partial credit)")
    require_well_formed: bool = Field(True, description="a malformed trajectory scores 0 (paper)")
    format_weight: float = Field(0.0, ge=0, description="subtracted from a trajectory that breaks a format rule")
    # logging, checkpoints, collapse
    rollouts_every: int = Field(5, ge=1, description="dump decoded rollouts every N steps")
    rollouts_per_dump: int = Field(4, ge=0, description="rollouts dumped each time")
    save_every: int = Field(10, ge=1, description="checkpoint every N steps (resume point)")
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept")
    eval_every: int = Field(5, ge=1, description="collapse check and best-model selection every N steps")
    stop_on_collapse: bool = Field(True, description="stop when a collapse is detected (keep the best model)")
    collapse_patience: int = Field(3, ge=1, description="collapse: window reward fell this many evaluations in a row")
    collapse_entropy_factor: float = Field(3.0, gt=1, description="collapse: entropy above this x the first window's")
    collapse_capped: float = Field(0.5, gt=0, le=1, description="collapse: this share of rollouts hit the token budget")
    seed: int = Field(0, description="data order, sampling and initialisation seed")
    bf16: bool | None = Field(None, description="bf16 autocast for the update; None = when supported (CPU too)")

    @model_validator(mode="after")
    def _check(self) -> RLConfig:
        if self.total_steps == 0:
            raise ValueError("sim_steps + real_steps must be at least 1")
        if self.max_answer_tokens + 3 >= self.max_new_tokens:
            raise ValueError("max_new_tokens must leave room for a forced answer (max_answer_tokens + 3)")
        return self

    @property
    def total_steps(self) -> int:
        return self.sim_steps + self.real_steps

    def env_at(self, step: int) -> Env:
        """The environment of (0-based) step ``step``: simulated first, then real."""
        return "simulated" if step < self.sim_steps else "real"

    def agent_config(self, env: Env, seed: int) -> Any:
        from autocoa.agent.config import AgentConfig

        return AgentConfig(
            env=env,
            n=1,  # TRL already repeated each prompt num_generations times
            temperature=self.temperature,
            top_p=self.top_p,
            seed=seed,
            max_actions=self.max_actions,
            max_new_tokens=self.max_new_tokens,
            max_obs_tokens=self.max_obs_tokens,
            max_answer_tokens=self.max_answer_tokens,
            batch_size=max(1, self.prompts_per_step * self.num_generations),
        )


# ---------------------------------------------------------------------------------------
# Collapse detection (pure)


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


# ---------------------------------------------------------------------------------------
# The rollout function


class AgentRollouts:
    """TRL ``rollout_func``: one agent-loop rollout per (already repeated) prompt."""

    def __init__(
        self,
        tokenizer: Any,
        cfg: RLConfig,
        toolbox: Any,
        golds: dict[str, list[str]],
        out_dir: Path,
        state: RunState,
        logits_hook: Any = None,
        chains: dict[str, list[dict]] | None = None,
    ):
        from autocoa.train.rewards import make_reward

        self.tokenizer, self.cfg, self.toolbox, self.golds, self.out_dir = tokenizer, cfg, toolbox, golds, out_dir
        self.state, self.logits_hook, self.chains = state, logits_hook, chains or {}
        self.reward = make_reward(cfg.reward_metric, cfg.require_well_formed, cfg.format_weight)

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list]:
        import torch

        from autocoa.agent.engine import Engine

        step = trainer.state.global_step
        env = self.cfg.env_at(step)
        acc = trainer.accelerator
        model = acc.unwrap_model(trainer.model)
        toolbox = self.toolbox if env == "real" else None
        engine = Engine(model, self.tokenizer, toolbox, tags=self._tags(), logits_hook=self.logits_hook)
        seed = self.cfg.seed * 1_000_003 + step * 101 + acc.process_index
        rollouts = engine.generate(list(prompts), self.cfg.agent_config(env, seed))
        cap = self.cfg.max_new_tokens - self.cfg.max_answer_tokens - 3
        checked, fact = self._observation_check(rollouts)
        local = torch.tensor(
            [
                len(rollouts),
                sum(r.n_tool_calls for r in rollouts),
                sum(r.n_actions for r in rollouts),
                sum(r.forced_answer for r in rollouts),
                sum(len(r.ids) >= cap for r in rollouts),
                sum(len(r.ids) for r in rollouts),
                checked,
                fact,
            ],
            dtype=torch.float64,
            device=acc.device,
        )
        n, calls, actions, forced, capped, tokens, checked, fact = acc.reduce(local, reduction="sum").tolist()
        self.state.real_calls_total += int(calls)
        metrics = [
            ("rl/real_calls", calls),
            ("rl/actions", actions / n),
            ("rl/forced_answer", forced / n),
            ("rl/capped", capped / n),
            ("rl/response_tokens", tokens / n),
            ("rl/env_real", float(env == "real")),
        ]
        if self.chains:
            metrics += [("rl/obs_checked", checked)] + ([("rl/obs_fact", fact / checked)] if checked else [])
        for name, value in metrics:
            trainer._log_metric(name, value)  # TRL's per-step metric buffer (the `log_metric` of reward functions)
        if acc.is_main_process and step % self.cfg.rollouts_every == 0 and self.cfg.rollouts_per_dump:
            self._dump(step, env, rollouts[: self.cfg.rollouts_per_dump])
        return {
            "prompt_ids": [r.prompt_ids for r in rollouts],
            "completion_ids": [r.ids for r in rollouts],
            "logprobs": [r.logprobs for r in rollouts],
            "env_mask": [r.mask for r in rollouts],
        }

    def _observation_check(self, rollouts: list) -> tuple[int, int]:
        """(search results matched to a hop, of those stating its true object) over the rollouts
        whose question has a gold chain (:func:`autocoa.eval.analysis.check_observations`)."""
        from autocoa.eval.analysis import check_observations

        checked = fact = 0
        for r in rollouts:
            chain = self.chains.get(r.prompt)
            if chain and r.trajectory is not None:
                for c in check_observations(r.trajectory, chain):
                    checked += c["hop"] is not None
                    fact += bool(c["states_fact"])
        return checked, fact

    def _tags(self):
        from autocoa.tags import DEFAULT_TAGS

        return self.toolbox.tags if self.toolbox is not None else DEFAULT_TAGS

    def _dump(self, step: int, env: str, rollouts: list) -> None:
        from autocoa.jsonl import write_jsonl

        rows = []
        for r in rollouts:
            golds = self.golds.get(r.prompt, [])
            text = r.trajectory.response if r.trajectory is not None else ""
            reward = self.reward(completions=[text], golden_answers=[golds])[0] if golds else None
            rows.append(
                {
                    "step": step,
                    "env": env,
                    "prompt": r.prompt,
                    "response": text,
                    "answer": r.trajectory.answer if r.trajectory is not None else None,
                    "golden_answers": golds,
                    "reward": reward,
                    "n_actions": r.n_actions,
                    "n_tool_calls": r.n_tool_calls,
                    "forced_answer": r.forced_answer,
                    "finish": r.finish,
                    "n_tokens": len(r.ids),
                    "n_trained_tokens": sum(r.mask),
                }
            )
        write_jsonl(self.out_dir / "rollouts.jsonl", rows, append=True)


# ---------------------------------------------------------------------------------------
# Trainer subclass and monitor


def _trainer_class():
    """``AgentGRPOTrainer``, built lazily so that importing this module stays light."""
    from trl import GRPOTrainer

    class AgentGRPOTrainer(GRPOTrainer):
        """GRPOTrainer + run counters saved with each checkpoint (see the module docstring)."""

        run_state: RunState

        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if not inputs["advantages"].abs().gt(0).any():
                # Every group scored alike: no policy signal. Without this, Adam scales the tiny
                # KL/entropy gradients up to lr-sized steps and the policy drifts (measured: KL
                # 0.4-1.4 after all-zero-reward steps). A zero loss keeps the step a no-op.
                loss = loss * 0.0
            return loss

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "loss" in logs:
                logs["real_calls_total"] = self.run_state.real_calls_total
            super().log(logs, start_time)

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            # Written before TRL's trainer_state.json, which therefore marks a complete checkpoint.
            if self.args.should_save:
                ckpt = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
                ckpt.mkdir(parents=True, exist_ok=True)
                (ckpt / RUN_STATE).write_text(json.dumps(self.run_state.to_dict()), encoding="utf-8")
            super()._save_checkpoint(model, trial)

    return AgentGRPOTrainer


def _monitor(cfg: RLConfig, state: RunState, out_dir: Path):
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
                _save_atomic(getattr(model, "module", model), processing_class, out_dir / "best")
            if reason is not None and cfg.stop_on_collapse:
                state.stopped = f"collapse at step {state_.global_step}: {reason}"
                control.should_training_stop = True

    return RLMonitor()


def _save_atomic(model: Any, tokenizer: Any, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


# ---------------------------------------------------------------------------------------
# Resume helpers


def last_complete_checkpoint(run_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` holding both our state and TRL's ``trainer_state.json``
    (a checkpoint cut short by a kill lacks the latter)."""
    if not run_dir.is_dir():
        return None
    done = [
        p
        for p in run_dir.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / RUN_STATE).exists() and (p / "trainer_state.json").exists()
    ]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


# ---------------------------------------------------------------------------------------
# The stage


def load_questions(path: str | Path, tokenizer: Any, max_questions: int | None = None) -> list[dict[str, Any]]:
    """QA rows (any supported format, e.g. synth's ``coa.jsonl``) -> ``{"prompt", "golden_answers"}``,
    plus ``chain`` when the row carries the synthetic world's gold chain."""
    from autocoa.agent.prompts import format_prompt
    from autocoa.data.qa import load_qa

    records = load_qa(path)[:max_questions]
    if not records:
        raise ValueError(f"{path}: no questions")
    rows = []
    for r in records:
        row = {"prompt": format_prompt(r.question, tokenizer), "golden_answers": list(r.golden_answers)}
        if isinstance(r.meta.get("chain"), list):
            row["chain"] = r.meta["chain"]
        rows.append(row)
    return rows


def schedule_means(metrics_path: Path) -> dict[str, float | None]:
    """Mean reward of the simulated and of the real steps, and the mean ``rl/obs_fact`` of the
    simulated steps (the world model's fidelity during RL-stage1), from ``metrics.jsonl``."""
    from autocoa.jsonl import read_jsonl

    sim, real, fid = [], [], []
    if metrics_path.exists():
        for _, row in read_jsonl(metrics_path):
            if "reward" not in row or "rl/env_real" not in row:
                continue
            (real if row["rl/env_real"] else sim).append(row["reward"])
            if not row["rl/env_real"] and "rl/obs_fact" in row:
                fid.append(row["rl/obs_fact"])

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    return {"reward_sim": mean(sim), "reward_real": mean(real), "fidelity_sim": mean(fid)}


def train_rl(
    model_path: str | Path,
    questions_path: str | Path,
    out_dir: str | Path,
    cfg: RLConfig | None = None,
    index: str | Path | None = None,
    url: str | None = None,
    toolbox: Any = None,
    max_questions: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    logits_hook: Any = None,
) -> dict[str, Any]:
    """Run the RL schedule (``cfg.sim_steps`` simulated, then ``cfg.real_steps`` real steps) from
    the checkpoint ``model_path`` on the questions of ``questions_path``; save the model to
    ``out_dir`` and return the summary (also in ``out_dir/rl.json`` and ``DONE``).

    The real environment searches ``index`` (a local index directory) or ``url`` (a retrieval
    server), or uses ``toolbox``. Re-running with the same ``out_dir`` resumes from the last
    complete checkpoint; a finished ``out_dir`` is refused unless ``overwrite``.
    ``logits_hook`` is passed to the engine (constrained decoding; scripted tests).
    """
    import torch
    from accelerate import PartialState

    from autocoa.data.qa import load_qa
    from autocoa.models import load_model
    from autocoa.train.checkpoints import MANIFEST, check_resumable, file_hash, trim_jsonl
    from autocoa.train.common import check_out_dir, mark_done

    cfg = cfg or RLConfig()
    out_dir, questions_path = Path(out_dir), Path(questions_path)
    if not load_qa(questions_path):  # a bad row fails here, before anything is deleted or written
        raise ValueError(f"{questions_path}: no questions")
    manifest = {
        "stage": "rl",
        "model": str(Path(model_path).resolve()),
        "config": cfg.model_dump(mode="json"),
        "questions": {str(questions_path.resolve()): file_hash(questions_path)},
        "max_questions": max_questions,
    }
    dist = PartialState(cpu=not torch.cuda.is_available())  # as Trainer(use_cpu=...) will: gloo DDP on CPU
    if dist.is_main_process:
        check_out_dir(out_dir, overwrite)
        if overwrite:
            for name in ("trainer", "best", "metrics.jsonl", "rollouts.jsonl", "DONE", CONFIG_NAME, MANIFEST):
                p = out_dir / name
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    dist.wait_for_everyone()
    saved_cfg = out_dir / CONFIG_NAME
    resumable = last_complete_checkpoint(out_dir / "trainer") is not None  # else a fresh start, whatever was there
    # something to resume: only the same run (questions hashed); runs from before the manifest: same config
    if resumable and not check_resumable(out_dir, manifest) and saved_cfg.exists() and RLConfig.load(saved_cfg) != cfg:
        raise ValueError(f"{out_dir} holds a run with another config ({saved_cfg}); use another --out or --overwrite")
    if cfg.real_steps and toolbox is None:
        if (index is None) == (url is None):
            raise ValueError("the real environment (real_steps > 0) needs exactly one of index or url")
        from autocoa.tools import open_toolbox

        toolbox = open_toolbox(index=str(index) if index is not None else None, url=url, k=cfg.topk)

    batch = cfg.prompts_per_step * cfg.num_generations
    if batch % dist.num_processes:
        raise ValueError(
            f"prompts_per_step x num_generations = {batch} rollouts must split evenly "
            f"over {dist.num_processes} processes"
        )
    t0 = time.perf_counter()
    model, tok = load_model(model_path, for_training=True)
    # TRL builds the KL reference from config._name_or_path: point it at a checkpoint holding
    # exactly these weights (a copy when load_model had to add the tags to the vocabulary).
    ref_path = Path(model_path)
    if model.get_input_embeddings().weight.shape[0] != _saved_vocab(ref_path):
        ref_path = out_dir / "init"
        if dist.is_main_process and not (ref_path / "config.json").exists():
            _save_atomic(model, tok, ref_path)
        dist.wait_for_everyone()
    model.config._name_or_path = str(ref_path)

    rows = load_questions(questions_path, tok, max_questions)
    ckpt = last_complete_checkpoint(out_dir / "trainer")
    state = RunState(detector=_detector(cfg))
    if ckpt is not None:
        state = RunState.from_dict(json.loads((ckpt / RUN_STATE).read_text(encoding="utf-8")))
        done_steps = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
        if dist.is_main_process:
            trim_jsonl(out_dir / "metrics.jsonl", lambda r: r.get("step", 0) <= done_steps)
            trim_jsonl(out_dir / "rollouts.jsonl", lambda r: r.get("step", 0) < done_steps)
    elif dist.is_main_process:
        for name in ("metrics.jsonl", "rollouts.jsonl"):
            (out_dir / name).unlink(missing_ok=True)
    if dist.is_main_process:
        cfg.save(saved_cfg)
        (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    dist.wait_for_everyone()

    trainer = build_trainer(
        model, tok, rows, cfg, out_dir, toolbox, state, dist.num_processes, progress=progress, logits_hook=logits_hook
    )
    calls_before = state.real_calls_total
    step_before = trainer.state.global_step if ckpt is None else int(ckpt.name.split("-")[-1])
    t_train = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
    t_end = time.perf_counter()
    seconds, train_seconds = t_end - t0, t_end - t_train
    steps = trainer.state.global_step

    if dist.is_main_process:
        final = trainer.accelerator.unwrap_model(trainer.model)
        if state.stopped and (out_dir / "best" / "config.json").exists():
            shutil.copytree(out_dir / "best", out_dir, dirs_exist_ok=True)
        else:
            final.save_pretrained(out_dir)
            tok.save_pretrained(out_dir)
    summary = {
        "steps": steps,
        "sim_steps_done": min(steps, cfg.sim_steps),
        "real_steps_done": max(0, steps - cfg.sim_steps),
        "real_calls_total": state.real_calls_total,
        "real_calls_this_run": state.real_calls_total - calls_before,
        "stopped": state.stopped,
        "best_window_reward": state.detector.best_reward,
        "best_step": state.detector.best_step,
        "window_rewards": state.detector.rewards,
        "resumed_from_step": step_before if ckpt is not None else None,
        "seconds": round(seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "steps_per_second": round((steps - step_before) / train_seconds, 4) if train_seconds else None,
        "bf16": trainer.args.bf16,
        "num_processes": dist.num_processes,
        "output": "best" if state.stopped else "last",
        **schedule_means(out_dir / "metrics.jsonl"),
    }
    if dist.is_main_process:
        (out_dir / "rl.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        mark_done(out_dir, summary)
    dist.wait_for_everyone()
    return summary


def build_trainer(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    cfg: RLConfig,
    out_dir: Path,
    toolbox: Any = None,
    state: RunState | None = None,
    num_processes: int = 1,
    progress: bool = False,
    logits_hook: Any = None,
):
    """The configured :class:`AgentGRPOTrainer` (without training it)."""
    from datasets import Dataset
    from trl import GRPOConfig

    from autocoa.models import trainer_precision
    from autocoa.train.common import metrics_callback
    from autocoa.train.rewards import accuracy, make_reward

    state = state or RunState(detector=_detector(cfg))
    golds = {r["prompt"]: r["golden_answers"] for r in rows}
    chains = {r["prompt"]: r["chain"] for r in rows if "chain" in r}
    rows = [{k: r[k] for k in ("prompt", "golden_answers")} for r in rows]
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    precision = trainer_precision(cfg.bf16)
    args = GRPOConfig(
        output_dir=str(out_dir / "trainer"),
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations // num_processes,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        beta=cfg.kl_coef,
        epsilon=cfg.clip_epsilon,
        entropy_coef=cfg.entropy_coef,
        loss_type=cfg.loss_type,
        scale_rewards="group",
        reward_weights=[1.0, 0.0],  # the answer reward; accuracy is only logged
        learning_rate=cfg.lr,
        lr_scheduler_type="constant_with_warmup" if cfg.warmup_steps else "constant",
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        max_steps=cfg.total_steps,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_every,
        save_total_limit=cfg.keep_checkpoints,
        report_to=[],
        seed=cfg.seed,
        **precision,
        dataloader_num_workers=0,
        disable_tqdm=not progress,
        remove_unused_columns=False,
        disable_dropout=True,
        log_completions=False,
    )
    rollout_func = AgentRollouts(tokenizer, cfg, toolbox, golds, out_dir, state, logits_hook, chains)
    trainer = _trainer_class()(
        model=model,
        reward_funcs=[make_reward(cfg.reward_metric, cfg.require_well_formed, cfg.format_weight), accuracy],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        rollout_func=rollout_func,
        callbacks=[metrics_callback(out_dir / "metrics.jsonl"), _monitor(cfg, state, out_dir)],
    )
    trainer.run_state = state
    return trainer


def _detector(cfg: RLConfig) -> CollapseDetector:
    return CollapseDetector(
        patience=cfg.collapse_patience, entropy_factor=cfg.collapse_entropy_factor, max_capped=cfg.collapse_capped
    )


def _saved_vocab(path: Path) -> int | None:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("vocab_size")
    except (OSError, ValueError):
        return None
