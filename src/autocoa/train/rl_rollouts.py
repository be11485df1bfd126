"""The RL stage's rollouts: TRL's ``rollout_func`` as our agent loop (:class:`AgentRollouts`), and
the questions it is asked (:func:`load_questions`). See :mod:`autocoa.train.rl` for how they
meet TRL's ``GRPOTrainer``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autocoa.agent.config import answer_deadline
from autocoa.train.rl_config import RLConfig
from autocoa.train.rl_monitor import RunState


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
        simulator: Any = None,
    ):
        from autocoa.train.rewards import make_reward

        self.tokenizer, self.cfg, self.toolbox, self.golds, self.out_dir = tokenizer, cfg, toolbox, golds, out_dir
        self.state, self.logits_hook, self.chains = state, logits_hook, chains or {}
        self.simulator = simulator  # who answers simulated actions besides the world model
        self.reward = make_reward(cfg.reward_metric, cfg.require_well_formed, cfg.format_weight)

    # long: one TRL rollout step in order: engine, rollouts, the step's counters reduced over processes, metrics, dump
    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list]:
        import torch

        from autocoa.agent.engine import Engine

        step = trainer.state.global_step
        env = self.cfg.env_at(step)
        acc = trainer.accelerator
        model = acc.unwrap_model(trainer.model)
        toolbox = self.toolbox if env == "real" else None
        simulator = self.simulator if env == "simulated" else None
        engine = Engine(
            model, self.tokenizer, toolbox, tags=self._tags(), logits_hook=self.logits_hook, simulator=simulator
        )
        seed = self.cfg.seed * 1_000_003 + step * 101 + acc.process_index
        rollouts = engine.generate(list(prompts), self.cfg.agent_config(env, seed))
        cap = answer_deadline(self.cfg.max_new_tokens, self.cfg.max_answer_tokens)
        checked, fact, chained, past, checked_model, fact_model = self._observation_check(rollouts)
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
                chained,
                past,
                checked_model,
                fact_model,
                sum(s == "model" for r in rollouts for s in r.obs_sources),
                sum(s not in ("model", "tool", "error") for r in rollouts for s in r.obs_sources),
            ],
            dtype=torch.float64,
            device=acc.device,
        )
        reduced = acc.reduce(local, reduction="sum").tolist()
        n, calls, actions, forced, capped, tokens, checked, fact, chained, past = reduced[:10]
        checked_model, fact_model, by_model, by_simulator = reduced[10:]
        self.state.real_calls_total += int(calls)
        metrics = [
            ("rl/real_calls", calls),
            ("rl/actions", actions / n),
            ("rl/forced_answer", forced / n),
            ("rl/capped", capped / n),
            ("rl/response_tokens", tokens / n),
            ("rl/env_real", float(env == "real")),
        ]
        if env == "simulated":  # results per rollout written by the world model and by an external simulator
            metrics += [("rl/sim_model", by_model / n), ("rl/sim_external", by_simulator / n)]
        if self.chains:
            metrics += [("rl/obs_checked", checked)] + ([("rl/obs_fact", fact / checked)] if checked else [])
            if env == "simulated" and checked_model:  # the world model's own fidelity
                metrics += [("rl/obs_fact_model", fact_model / checked_model)]
            metrics += [("rl/past_last_hop", past / chained)] if chained else []
            for h, sig in self._hop_signal(rollouts, acc).items():
                metrics += [(f"rl/reward_{h}hop", sig["reward"]), (f"rl/zero_spread_{h}hop", sig["zero_spread"])]
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

    def _observation_check(self, rollouts: list) -> tuple[int, int, int, int, int, int]:
        """(search results matched to a hop, of those stating its true object, rollouts whose
        question has a gold chain, of those going past its last hop, and the first two over the
        results the world model wrote) (:func:`autocoa.analysis.check_observations`,
        :func:`autocoa.analysis.past_last_hop`, :func:`autocoa.analysis.search_observation_sources`)."""
        from autocoa.analysis import check_observations, past_last_hop, search_observation_sources

        checked = fact = chained = past = checked_model = fact_model = 0
        for r in rollouts:
            chain = self.chains.get(r.prompt)
            if chain and r.trajectory is not None:
                chained += 1
                past += past_last_hop(r.trajectory, chain)
                sources = search_observation_sources(r.trajectory, r.obs_sources)
                for c, source in zip(check_observations(r.trajectory, chain), sources, strict=True):
                    checked += c["hop"] is not None
                    fact += bool(c["states_fact"])
                    checked_model += c["hop"] is not None and source == "model"
                    fact_model += bool(c["states_fact"]) and source == "model"
        return checked, fact, chained, past, checked_model, fact_model

    def _hop_signal(self, rollouts: list, acc: Any) -> dict[int, dict[str, float]]:
        """The step's reward and zero-spread groups by hop count, over every process's rollouts
        (:func:`autocoa.train.rewards.reward_by_hops`; a collective call on every process)."""
        from autocoa.train.rewards import reward_by_hops

        samples = []
        for r in rollouts:
            chain, reward = self.chains.get(r.prompt), self._reward(r)
            if chain and reward is not None:
                samples.append((r.prompt, len(chain), reward))
        if acc.num_processes > 1:
            from accelerate.utils import gather_object

            samples = gather_object(samples)
        return reward_by_hops(samples)

    def _reward(self, rollout: Any) -> float | None:
        """The trained reward of one rollout (as TRL will score it); None without gold answers."""
        golds = self.golds.get(rollout.prompt)
        if not golds:
            return None
        return self.reward(completions=[_response(rollout)], golden_answers=[golds])[0]

    def _tags(self):
        from autocoa.tags import DEFAULT_TAGS

        return self.toolbox.tags if self.toolbox is not None else DEFAULT_TAGS

    def _dump(self, step: int, env: str, rollouts: list) -> None:
        from autocoa.jsonl import write_jsonl

        rows = []
        for r in rollouts:
            rows.append(
                {
                    "step": step,
                    "env": env,
                    "prompt": r.prompt,
                    "response": _response(r),
                    "answer": r.trajectory.answer if r.trajectory is not None else None,
                    "golden_answers": self.golds.get(r.prompt, []),
                    "reward": self._reward(r),
                    "n_actions": r.n_actions,
                    "n_tool_calls": r.n_tool_calls,
                    "forced_answer": r.forced_answer,
                    "finish": r.finish,
                    "n_tokens": len(r.ids),
                    "n_trained_tokens": sum(r.mask),
                }
            )
        write_jsonl(self.out_dir / "rollouts.jsonl", rows, append=True)


def _response(rollout: Any) -> str:
    """The rollout's response text (empty when it has no trajectory)."""
    return rollout.trajectory.response if rollout.trajectory is not None else ""


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
        row = {
            "prompt": format_prompt(r.question, tokenizer),
            "question": r.question,
            "golden_answers": list(r.golden_answers),
        }
        if isinstance(r.meta.get("chain"), list):
            row["chain"] = r.meta["chain"]
        if isinstance(r.meta.get("supporting"), list):  # a dataset's supporting documents (the oracle's)
            row["supporting"] = r.meta["supporting"]
        rows.append(row)
    return rows
