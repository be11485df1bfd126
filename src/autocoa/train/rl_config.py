"""The RL stage's configuration (:class:`RLConfig`): schedule, GRPO loss, rollouts, reward,
logging and collapse detection, with the departures from the paper in the help texts. The
stage itself is :mod:`autocoa.train.rl`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from autocoa.config import Config
from autocoa.train.rewards import Metric
from autocoa.train.stage_config import LM_HEAD_HELP
from autocoa.train.tracking import REPORT_TO_HELP

Env = Literal["simulated", "real"]
# the fields that choose and set the simulated steps' simulator (autocoa.agent.simulators)
SIMULATOR_FIELDS = ("simulator", "simulator_fidelity", "simulator_url", "simulator_model", "simulator_gold")
# The rollouts' budget and sampling fields are AgentConfig's (constraints and help texts declared
# there, once); RL only sets its own defaults. Sampling must be stochastic in GRPO: temperature > 0.
ROLLOUT_FIELDS = ("max_actions", "max_new_tokens", "max_obs_tokens", "max_answer_tokens", "temperature", "top_p")


def _agent_field(name: str, default: Any, description: str | None = None, **constraints: Any) -> Any:
    """AgentConfig's field ``name`` with RL's ``default`` (and extra constraints)."""
    from autocoa.agent.config import AgentConfig

    info = AgentConfig.model_fields[name]
    bounds = {k: getattr(m, k) for m in info.metadata for k in ("ge", "gt", "le", "lt") if hasattr(m, k)}
    return Field(default, description=description or info.description, **{**bounds, **constraints})


class RLConfig(Config):
    # schedule
    sim_steps: int = Field(80, ge=0, description="RL-stage1: GRPO steps in the simulated environment (run first)")
    real_steps: int = Field(16, ge=0, description="RL-stage2: GRPO steps in the real environment (run after)")
    prompts_per_step: int = Field(8, ge=1, description="questions per GRPO step (paper: 48)")
    num_generations: int = Field(5, ge=2, description="group size: rollouts per question (paper: 5)")
    # who writes the simulated steps' search results (autocoa.agent.simulators)
    simulator: Literal["model", "oracle", "endpoint"] = Field(
        "model",
        description="simulated steps' results: model = the policy's own world model (the paper); oracle = with "
        "probability simulator_fidelity the searched hop's true document (gold chain or a dataset's supporting "
        "facts), else the world model; endpoint = an external LLM at simulator_url (ZeroSearch style)",
    )
    simulator_fidelity: float = Field(
        1.0, ge=0, le=1, description="oracle: the probability that an action's result is the true document"
    )
    simulator_url: str | None = Field(
        None, description="endpoint: the OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1)"
    )
    simulator_model: str = Field("default", description="endpoint: the model name sent with each request")
    simulator_gold: bool = Field(False, description="endpoint: show the simulator the question and its gold answer")
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
    # rollouts (AgentConfig's fields, RL's defaults)
    temperature: float = _agent_field("temperature", 0.6, "sampling temperature (paper: 0.6); > 0 in GRPO", gt=0)
    top_p: float = _agent_field("top_p", 1.0)
    max_actions: int = _agent_field("max_actions", 6)
    max_new_tokens: int = _agent_field("max_new_tokens", 512, ge=8)
    max_obs_tokens: int = _agent_field("max_obs_tokens", 256)
    max_answer_tokens: int = _agent_field("max_answer_tokens", 32)
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
    heldout_every: int = Field(
        0,
        ge=0,
        description="evaluate greedily on held-out questions (real search) before the first step and every N "
        "steps, into heldout.jsonl: the curve of held-out EM against real calls spent; 0 = never",
    )
    heldout_questions: int = Field(
        50,
        ge=1,
        description="held-out questions per evaluation (a seeded sample of the file, as evaluation takes them)",
    )
    stop_on_collapse: bool = Field(True, description="stop when a collapse is detected (keep the best model)")
    collapse_patience: int = Field(3, ge=1, description="collapse: window reward fell this many evaluations in a row")
    collapse_entropy_factor: float = Field(3.0, gt=1, description="collapse: entropy above this x the first window's")
    collapse_capped: float = Field(0.5, gt=0, le=1, description="collapse: this share of rollouts hit the token budget")
    seed: int = Field(0, description="data order, sampling and initialisation seed")
    bf16: bool | None = Field(
        None, description="bf16 autocast for the update; None = on a GPU that supports it (fp32 on CPU)"
    )
    gradient_checkpointing: bool = Field(
        True,
        description="recompute activations in the backward pass (TRL's GRPO default): less memory; on CPU "
        "turning it off did not make SmolLM2's step faster (docs/benchmarks.md)",
    )
    lm_head: Literal["all", "trained"] = Field("all", description=LM_HEAD_HELP)
    report_to: list[str] = Field(default_factory=list, description=REPORT_TO_HELP)

    @model_validator(mode="after")
    def _check(self) -> RLConfig:
        if self.total_steps == 0:
            raise ValueError("sim_steps + real_steps must be at least 1")
        from autocoa.agent.config import MIN_TEMPERATURE, check_answer_room

        check_answer_room(self.max_new_tokens, self.max_answer_tokens)
        if self.simulator == "endpoint" and not self.simulator_url:
            raise ValueError("simulator: endpoint needs simulator_url (an OpenAI-compatible base URL)")
        # a simulator's setting under another simulator would be silently ignored: refused instead
        if self.simulator != "oracle" and self.simulator_fidelity != 1.0:
            raise ValueError("simulator_fidelity is the oracle's: set simulator: oracle")
        endpoint_set = self.simulator_url or self.simulator_gold or self.simulator_model != "default"
        if self.simulator != "endpoint" and endpoint_set:
            raise ValueError(
                "simulator_url, simulator_model and simulator_gold are the endpoint's: set simulator: endpoint"
            )
        if self.temperature < MIN_TEMPERATURE:  # the rollouts' AgentConfig would refuse it mid-run
            raise ValueError(f"temperature must be at least {MIN_TEMPERATURE:g} (GRPO samples)")
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
            seed=seed,
            batch_size=max(1, self.prompts_per_step * self.num_generations),
            **{name: getattr(self, name) for name in ROLLOUT_FIELDS},
        )
