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

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocoa.atomic import current, save_model
from autocoa.runlock import holds_lock
from autocoa.train.checkpoints import MANIFEST, last_checkpoint
from autocoa.train.common import lm_head_positions, quiet_libraries, quiet_trainer
from autocoa.train.rl_config import RLConfig
from autocoa.train.rl_monitor import RUN_STATE, RunState, detector_for, heldout_monitor, monitor
from autocoa.train.rl_rollouts import AgentRollouts, load_questions
from autocoa.train.tracking import trackers

if TYPE_CHECKING:
    from autocoa.tools.search import Retrieval

CONFIG_NAME = "rl_config.yaml"


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


HELDOUT = "heldout.jsonl"  # the held-out curve (cfg.heldout_every)


# ---------------------------------------------------------------------------------------
# The stage


def schedule_means(metrics_path: Path) -> dict[str, float | None]:
    """What a run's steps had to learn from, from its ``metrics.jsonl``: the mean reward of the
    simulated and of the real steps, the mean ``rl/obs_fact`` of the simulated steps (the
    environment's fidelity during RL-stage1) and ``rl/obs_fact_model`` (over the results the
    world model wrote: they differ where an external simulator wrote some), the share of GRPO
    groups with no reward spread in each kind of step (``frac_reward_zero_std``: such a group's
    advantages are all zero, so it teaches nothing) and the KL to the reference at the last step."""
    from autocoa.jsonl import read_jsonl

    sim, real, fid, fid_model, flat_sim, flat_real, kl = [], [], [], [], [], [], None
    if metrics_path.exists():
        for _, row in read_jsonl(metrics_path):
            if "reward" not in row or "rl/env_real" not in row:
                continue
            is_real = bool(row["rl/env_real"])
            (real if is_real else sim).append(row["reward"])
            if "frac_reward_zero_std" in row:
                (flat_real if is_real else flat_sim).append(row["frac_reward_zero_std"])
            if not is_real and "rl/obs_fact" in row:
                fid.append(row["rl/obs_fact"])
            if not is_real and "rl/obs_fact_model" in row:
                fid_model.append(row["rl/obs_fact_model"])
            kl = row.get("kl", kl)

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    return {
        "reward_sim": mean(sim),
        "reward_real": mean(real),
        "fidelity_sim": mean(fid),
        "fidelity_sim_model": mean(fid_model),
        "zero_spread_sim": mean(flat_sim),
        "zero_spread_real": mean(flat_real),
        "kl_last": None if kl is None else round(kl, 6),
    }


# long: the RL stage in order: output directory, toolbox, model, KL reference, resume, trainer, train, save, summary
@holds_lock()
def train_rl(
    model_path: str | Path,
    questions_path: str | Path,
    out_dir: str | Path,
    cfg: RLConfig | None = None,
    retrieval: Retrieval | None = None,
    toolbox: Any = None,
    max_questions: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    logits_hook: Any = None,
    heldout: Any = None,
) -> dict[str, Any]:
    """Run the RL schedule (``cfg.sim_steps`` simulated, then ``cfg.real_steps`` real steps) from
    the checkpoint ``model_path`` on the questions of ``questions_path``; save the model to
    ``out_dir`` and return the summary (also in ``out_dir/rl.json`` and ``DONE``).

    The real environment searches ``retrieval`` (:class:`autocoa.tools.search.Retrieval`: a
    local index directory or a retrieval server), or uses ``toolbox``. Re-running with the same
    ``out_dir`` resumes from the last complete checkpoint; a finished ``out_dir`` is refused unless ``overwrite``.
    ``logits_hook`` is passed to the engine (constrained decoding; scripted tests).
    With ``cfg.heldout_every``, ``heldout`` (:func:`autocoa.eval.heldout.heldout_curve`: held-out
    questions answered greedily with real search) is called before the first step and every
    ``heldout_every`` steps, into ``heldout.jsonl`` (step, EM, F1, the real calls training had
    spent; the evaluation's own calls are counted apart).
    """
    import torch
    from accelerate import PartialState

    from autocoa.models import load_model
    from autocoa.named_models import resolve_model

    cfg = cfg or RLConfig()
    if cfg.heldout_every and heldout is None:
        raise ValueError("heldout_every needs held-out questions: heldout=heldout_curve(cfg, FILE, Retrieval(INDEX))")
    if heldout is not None and not callable(heldout):
        raise TypeError("heldout is the curve to call: autocoa.eval.heldout.heldout_curve(cfg, FILE, Retrieval(INDEX))")
    out_dir, questions_path, model_path = Path(out_dir), Path(questions_path), resolve_model(model_path)
    manifest = _manifest(model_path, questions_path, cfg, max_questions)  # reads every row first
    dist = PartialState(cpu=not torch.cuda.is_available())  # as Trainer(use_cpu=...) will: gloo DDP on CPU
    _prepare_out_dir(out_dir, cfg, manifest, overwrite, dist)
    toolbox = _real_toolbox(cfg, toolbox, retrieval)
    batch = cfg.prompts_per_step * cfg.num_generations
    if batch % dist.num_processes:
        raise ValueError(
            f"prompts_per_step x num_generations = {batch} rollouts must split evenly "
            f"over {dist.num_processes} processes"
        )
    quiet_libraries(progress)
    t0 = time.perf_counter()
    model, tok = load_model(model_path, for_training=True)
    _point_reference_at(model, tok, Path(model_path), out_dir, dist)
    rows = load_questions(questions_path, tok, max_questions)
    ckpt, state = _resume_state(out_dir, cfg, dist)
    if dist.is_main_process:
        cfg.save(out_dir / CONFIG_NAME)
        (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    dist.wait_for_everyone()

    simulator = make_simulator(cfg, rows, retrieval, out_dir)
    trainer = build_trainer(
        model,
        tok,
        rows,
        cfg,
        out_dir,
        toolbox,
        state,
        dist.num_processes,
        progress=progress,
        logits_hook=logits_hook,
        simulator=simulator,
    )
    if cfg.heldout_every:
        trainer.add_callback(heldout_monitor(cfg, heldout, state, out_dir / HELDOUT))
    calls_before = state.real_calls_total
    step_before = trainer.state.global_step if ckpt is None else int(ckpt.name.split("-")[-1])
    t_train = time.perf_counter()
    with lm_head_positions(cfg.lm_head):
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
    t_end = time.perf_counter()
    if dist.is_main_process:
        _save_output(trainer, tok, state, out_dir)
    summary = _summary(trainer, cfg, state, calls_before, step_before, ckpt, (t0, t_train, t_end), out_dir)
    if dist.is_main_process:
        from autocoa.train.common import mark_done

        (out_dir / "rl.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        mark_done(out_dir, summary)
    dist.wait_for_everyone()
    return summary


def make_simulator(cfg: RLConfig, rows: list[dict[str, Any]], retrieval: Retrieval | None, out_dir: Path) -> Any:
    """The external simulator of the simulated steps (:mod:`autocoa.agent.simulators`); None for
    the world model (``simulator: model``) or a run without simulated steps. The oracle reads
    each question's gold chain (its hops' documents from ``retrieval``'s local index) or its
    supporting documents; the endpoint caches its replies in ``out_dir/simulator_cache.jsonl``."""
    from autocoa.agent.simulators import EndpointSimulator, OracleSimulator, world_evidence

    if cfg.simulator == "model" or cfg.sim_steps == 0:
        return None
    if cfg.simulator == "endpoint":
        import os

        golds = {r["prompt"]: r["golden_answers"] for r in rows} if cfg.simulator_gold else None
        questions = {r["prompt"]: r.get("question", "") for r in rows}
        return EndpointSimulator(
            str(cfg.simulator_url),
            cfg.simulator_model,
            out_dir / "simulator_cache.jsonl",
            golds=golds,
            questions=questions,
            api_key=os.environ.get("AUTOCOA_SIMULATOR_API_KEY"),
        )
    docs = {}
    if any(r.get("chain") for r in rows):
        if retrieval is None or retrieval.index is None:
            raise ValueError("simulator: oracle reads the gold chains' documents from a local index (--index)")
        from autocoa.tools.index import DocStore

        wanted = {h["subject_id"] for r in rows for h in r.get("chain") or ()}
        docs = {d.id: d for d in DocStore(Path(retrieval.index)) if d.id in wanted}
    evidence = world_evidence(rows, docs)
    if not evidence:
        raise ValueError(
            "simulator: oracle needs questions with a gold chain (the synthetic world's) or supporting "
            "documents (HotpotQA/2Wiki rows with supporting_facts and context)"
        )
    return OracleSimulator(evidence, cfg.simulator_fidelity)


def _summary(
    trainer: Any,
    cfg: RLConfig,
    state: RunState,
    calls_before: int,
    step_before: int,
    ckpt: Path | None,
    times: tuple[float, float, float],
    out_dir: Path,
) -> dict[str, Any]:
    """What the run did (``rl.json``): steps of each environment, real calls, the collapse
    detector's windows, speed, and the mean rewards of the simulated and the real steps."""
    t0, t_train, t_end = times
    steps = trainer.state.global_step
    return {
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
        "seconds": round(t_end - t0, 1),
        "train_seconds": round(t_end - t_train, 1),
        "steps_per_second": round((steps - step_before) / (t_end - t_train), 4) if t_end > t_train else None,
        "bf16": trainer.args.bf16,
        "num_processes": trainer.accelerator.num_processes,
        "output": "best" if state.stopped else "last",
        **schedule_means(out_dir / "metrics.jsonl"),
    }


def _manifest(model_path: str | Path, questions: Path, cfg: RLConfig, max_questions: int | None) -> dict[str, Any]:
    """What makes two runs the same run (resume only those); the questions file is read whole
    first, so a bad row fails before anything is deleted or written."""
    from autocoa.data.qa import load_qa
    from autocoa.train.checkpoints import file_hash

    if not load_qa(questions):
        raise ValueError(f"{questions}: no questions")
    return {
        "stage": "rl",
        "model": str(Path(model_path).resolve()),
        "config": cfg.model_dump(mode="json"),
        "questions": {str(questions.resolve()): file_hash(questions)},
        "max_questions": max_questions,
    }


def _prepare_out_dir(out_dir: Path, cfg: RLConfig, manifest: dict[str, Any], overwrite: bool, dist: Any) -> None:
    """Refuse a finished run (unless ``overwrite``, which clears it) and an unfinished run of
    another manifest; a directory without a complete checkpoint is a fresh start."""
    from autocoa.train.checkpoints import check_resumable, clear_run
    from autocoa.train.common import check_out_dir

    if dist.is_main_process:
        check_out_dir(out_dir, overwrite)
        if overwrite:
            clear_run(out_dir, also=("trainer", "best", "rollouts.jsonl", HELDOUT, CONFIG_NAME))
    dist.wait_for_everyone()
    saved_cfg = out_dir / CONFIG_NAME
    resumable = last_checkpoint(out_dir, "trainer", (RUN_STATE,)) is not None
    # something to resume: only the same run (questions hashed); runs from before the manifest: same config
    if resumable and not check_resumable(out_dir, manifest) and saved_cfg.exists() and RLConfig.load(saved_cfg) != cfg:
        raise ValueError(
            f"{out_dir} holds a run with another config ({saved_cfg}); use another --out or --overwrite "
            "(see docs/troubleshooting.md#resume-mismatch)"
        )


def _real_toolbox(cfg: RLConfig, toolbox: Any, retrieval: Retrieval | None) -> Any:
    if not cfg.real_steps or toolbox is not None:
        return toolbox
    if retrieval is None:
        raise ValueError("the real environment (real_steps > 0) needs a retrieval (an index or a server) or a toolbox")
    return retrieval.toolbox(cfg.topk)


def _point_reference_at(model: Any, tok: Any, model_path: Path, out_dir: Path, dist: Any) -> None:
    """TRL builds the KL reference from ``config._name_or_path``: point it at a checkpoint
    holding exactly these weights (a copy when load_model had to add the tags to the vocabulary)."""
    ref_path = model_path
    if model.get_input_embeddings().weight.shape[0] != _saved_vocab(ref_path):
        ref_path = out_dir / "init"
        if dist.is_main_process and not (ref_path / "config.json").exists():
            save_model(model, tok, ref_path)
        dist.wait_for_everyone()
    model.config._name_or_path = str(ref_path)


def _resume_state(out_dir: Path, cfg: RLConfig, dist: Any) -> tuple[Path | None, RunState]:
    """The last complete checkpoint (None: a fresh start) and the run state to continue from;
    the logs are cut back to that checkpoint (a line torn by a kill is dropped)."""
    from autocoa.jsonl import trim_jsonl
    from autocoa.train.checkpoints import trim_metrics

    ckpt = last_checkpoint(out_dir, "trainer", (RUN_STATE,))
    if ckpt is None:
        if dist.is_main_process:
            for name in ("metrics.jsonl", "rollouts.jsonl", HELDOUT):
                (out_dir / name).unlink(missing_ok=True)
        return None, RunState(detector=detector_for(cfg))
    state = RunState.from_dict(json.loads((ckpt / RUN_STATE).read_text(encoding="utf-8")))
    done_steps = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    if dist.is_main_process:
        trim_metrics(out_dir / "metrics.jsonl", ckpt)
        trim_jsonl(out_dir / "rollouts.jsonl", lambda r: r.get("step", 0) < done_steps)
        trim_jsonl(out_dir / HELDOUT, lambda r: r.get("step", 0) <= done_steps)
    return ckpt, state


def _save_output(trainer: Any, tok: Any, state: RunState, out_dir: Path) -> None:
    """The run's model in ``out_dir``: the best window's after a collapse stop, else the last."""
    best = current(out_dir / "best")
    if state.stopped and (best / "config.json").exists():
        shutil.copytree(best, out_dir, dirs_exist_ok=True)
    else:
        trainer.accelerator.unwrap_model(trainer.model).save_pretrained(out_dir)
        tok.save_pretrained(out_dir)


# long: TRL's GRPOConfig is ~40 arguments set from RLConfig: a literal, mostly
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
    simulator: Any = None,
):
    """The configured :class:`AgentGRPOTrainer` (without training it)."""
    from datasets import Dataset
    from trl import GRPOConfig

    from autocoa.models import trainer_precision
    from autocoa.train.common import metrics_callback
    from autocoa.train.rewards import accuracy

    state = state or RunState(detector=detector_for(cfg))
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
        report_to=trackers(cfg.report_to),
        seed=cfg.seed,
        **precision,
        activation_checkpointing=cfg.gradient_checkpointing,  # TRL's GRPOConfig defaults to on
        dataloader_num_workers=0,
        disable_tqdm=not progress,
        remove_unused_columns=False,
        disable_dropout=True,
        log_completions=False,
    )
    rollout_func = AgentRollouts(tokenizer, cfg, toolbox, golds, out_dir, state, logits_hook, chains, simulator)
    trainer = _trainer_class()(
        model=model,
        reward_funcs=[rollout_func.reward, accuracy],  # the reward the rollouts log is the one trained on
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        rollout_func=rollout_func,
        callbacks=[metrics_callback(out_dir / "metrics.jsonl"), monitor(cfg, state, out_dir)],
    )
    trainer.run_state = state
    return quiet_trainer(trainer, progress)


def _saved_vocab(path: Path) -> int | None:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("vocab_size")
    except (OSError, ValueError):
        return None
