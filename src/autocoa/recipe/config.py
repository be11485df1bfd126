"""The recipe's configuration: every stage's config in one validated object, and its presets.

``default`` is the README's main job (``autocoa demo``: ~20 minutes on 2 CPU cores), the scale
model of the paper's setting (:func:`scale_preset`); ``short`` is it with SFT-2 half as long (the
previous default, ~12-13 minutes, undertrained); ``legacy`` is the world before
it (rare facts only in the corpus, copying learned in SFT-2, the world model trained on 20 copies
of the RL pool); ``fast`` runs every stage for a few steps on a tiny world and model (tests; its
accuracy means nothing).
``pretrained`` (``autocoa demo --model NAME|DIR``) starts from a real pretrained chat model instead
of the from-scratch tokenizer and base model, with sizes for a 135M-parameter model on 2 CPU cores;
``pretrained-fast`` is its smoke test.
:func:`for_seed` sets every training seed (and the world's, where ``seeds_vary_world``), for multi-seed studies.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PrivateAttr

from autocoa.agent.config import AgentConfig
from autocoa.config import Config
from autocoa.synth.run import SynthConfig
from autocoa.train.pretrain import PretrainConfig
from autocoa.train.rl_config import RLConfig
from autocoa.train.stage_config import ContrastiveConfig, MaskedSFTConfig
from autocoa.world.config import WorldConfig


class WorldModelConfig(Config):
    """How the internal world model meets the questions RL-stage1 imagines results for.

    The paper's world model (a 7B LM that has read Wikipedia, then SFT-stage3) knows most
    documents of its RL questions, which come from the same training sets as its SFT data. In
    the miniature a 1M-parameter model cannot recall a document it saw once, so the relation is
    made explicit: RL draws its questions from a pool whose trajectories SFT-stage3 trains on
    ``sft3.pool_repeats`` times (observations unmasked). Evaluation stays held-out.
    """

    rl_pool: int = Field(
        120,
        ge=0,
        description="training questions in the RL pool (synth's rl_pool.jsonl): RL's questions, learned by SFT-3; "
        "0 = RL on every training question and no pool (the world model knows nothing it simulates)",
    )
    holdout: int = Field(
        200, ge=0, description="training questions kept out of every SFT file (fidelity on unseen training questions)"
    )
    rl_questions: Literal["pool", "train"] = Field(
        "pool",
        description="the questions RL draws: pool = the RL pool (SFT-2 trained on its trajectories and SFT-3 on "
        "pool_repeats copies: the world model knows them, which the simulated steps need); train = every training "
        "question, nearly all of them unseen by SFT, so that the real steps meet the policy's errors on new "
        "questions, not trajectories it has memorised (used without a pool too)",
    )
    fidelity_questions: int = Field(200, ge=1, description="questions per fidelity set (pool, unseen) in evaluation")


# Fields of a stage's config that the recipe sets from its own (``recipe/stages.py``), so that the
# stages agree (training search and evaluation retrieve the same top-k; synthesis writes the pool
# the world model and RL read): one source each. A recipe file that sets one is refused naming
# the field to set instead, and a saved recipe leaves them out (it would show values never used).
# A preset's rollout budget, written once: RL's rollouts and evaluation's share it (a policy is
# evaluated within the budget it was trained in; a test checks every preset)
BUDGET = {"max_new_tokens": 600, "max_obs_tokens": 160}
FAST_BUDGET = {"max_new_tokens": 120, "max_obs_tokens": 60, "max_answer_tokens": 8}

SET_BY_RECIPE = {
    "synth.topk": "topk",
    "rl.topk": "topk",
    "synth.rl_pool": "world_model.rl_pool",
    "synth.holdout": "world_model.holdout",
}


class RecipeConfig(Config):
    """Every stage's config of one recipe run. Its field defaults are the ``legacy`` preset's;
    commands start from :func:`preset` (``default`` = :func:`scale_preset`), never from bare defaults."""

    # the dotted section fields that the recipe's file set (section.field -> the file), so that a
    # seed option that would overwrite one is refused (check_seeds); not part of the config
    _file_fields: dict[str, str] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:  # the same settings, wherever they were read from
        return type(other) is type(self) and self.model_dump() == other.model_dump()  # type: ignore[union-attr]

    __hash__ = None  # type: ignore[assignment]  (mutable, as pydantic models are)

    def saved_fields(self) -> dict:
        """Every field but the stage fields the recipe sets itself (:data:`SET_BY_RECIPE`)."""
        data = super().saved_fields()
        for dotted in SET_BY_RECIPE:
            section, name = dotted.split(".")
            data[section].pop(name, None)
        return data

    size: Literal["default", "fast", "short", "legacy", "pretrained", "pretrained-fast"] = Field(
        "default", description="preset the other fields start from"
    )
    model: str | None = Field(
        None,
        description="a pretrained checkpoint (directory or named model, e.g. smollm2-135m-instruct) to start from "
        "instead of pretraining the tiny model (the pretrain section is then unused)",
    )
    world: WorldConfig = Field(default_factory=WorldConfig, description="the synthetic world")
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig, description="tokenizer and base model")
    synth: SynthConfig = Field(default_factory=SynthConfig, description="the oracle teacher")
    topk: int = Field(
        1,
        ge=1,
        description="documents per search, in synthesis, training and evaluation alike (top-1 recall is 0.95 on the "
        "world's corpus, and shorter observations make every stage faster)",
    )
    world_model: WorldModelConfig = Field(default_factory=WorldModelConfig, description="the RL pool")
    sft1: ContrastiveConfig = Field(
        default_factory=lambda: ContrastiveConfig(epochs=1.0, max_examples=2000, save_steps=50),
        description="SFT-stage1 (pairs)",
    )
    sft2: MaskedSFTConfig = Field(
        # Copying unseen names from the question and the observations emerges abruptly after
        # ~1200-1500 steps of batch 8 (measured: held-out EM 0.07 after 900 steps, 0.73-0.80
        # after 1800-2000).
        default_factory=lambda: MaskedSFTConfig(
            max_steps=1800,
            batch_size=8,
            lr=2e-3,
            cot_ratio=0.1,
            max_examples=16000,
            save_steps=300,
            logging_steps=50,
            warmup_ratio=0.01,
        ),
        description="SFT-stage2 (observations masked)",
    )
    sft3: MaskedSFTConfig = Field(
        # The world model learns the RL pool: 20 copies of its 120 trajectories with only their
        # observations trained (the policy must not memorise the answers RL will ask for), beside
        # 2,000 fresh rows that keep their observations masked. Measured (whole pool rows trained) from one SFT-1&2
        # checkpoint (pool fidelity / held-out real EM): this, 0.86 / 0.63; lr 1e-3 and 1,000 fresh
        # rows, 0.98 / 0.55; 8 copies of a 240-question pool at 5e-4 or 1e-3, 0.03-0.07 / 0.64-0.67;
        # the start, SFT-1&2, - / 0.80. The fidelity study measures the trade-off over seeds.
        default_factory=lambda: MaskedSFTConfig(
            epochs=1.0,
            batch_size=8,
            lr=5e-4,
            cot_ratio=0.1,
            max_examples=2000,
            save_steps=100,
            logging_steps=25,
            pool_repeats=20,
            observations_in="pool",
            pool_loss="observations",
        ),
        description="SFT-stage3 (observations trained: the world model); pool_repeats copies of the RL pool",
    )
    rl: RLConfig = Field(
        default_factory=lambda: RLConfig(
            sim_steps=15,
            real_steps=3,
            lr=3e-5,
            entropy_coef=0.0,
            **BUDGET,
            save_every=6,
            eval_every=3,
            heldout_every=6,  # the held-out EM curve: steps 0, 6, 12, 18 on 50 dev questions
            heldout_questions=50,
            # schedules are compared at equal steps: a stop would turn 15 + 3 into 15 + 0 (seen: a
            # noisy 3-step window of 8 prompts "fell" three times in a row)
            stop_on_collapse=False,
        ),
        description="RL: GRPO steps in the simulated environment, then in the real one (paper: 80 + 16)",
    )
    agent: AgentConfig = Field(
        default_factory=lambda: AgentConfig(**BUDGET, batch_size=64),
        description="the agent loop's budget and sampling in evaluation (greedy)",
    )
    ablations: bool = Field(
        False,
        description="also the ablations study's rows on this directory (autocoa.recipe.study.ablations_grid): SFT-2 "
        "alone, + RL-1 (simulated only), the paper's 5:1 schedule, RL-2 (all real), its real steps alone, SFT-1&2 + "
        "RL-2, SFT-1 without its NLL term; their report in OUT/ablations/",
    )
    eval_questions: int | None = Field(300, ge=1, description="held-out test questions evaluated (shuffled sample)")
    coa_baseline: bool = Field(
        False,
        description="also evaluate a pretrained chat model (--model) as Chain-of-Action (Pan et al.); "
        "off by default: on SmolLM2 it costs 12-15 of the demo's minutes on 2 CPU cores",
    )
    shipped_base: bool = Field(
        True,
        description="install the base model shipped with the package (autocoa.shipped) where it was pretrained with "
        "this pretrain config on this very world (its files' hashes), instead of pretraining; False: always pretrain",
    )
    seeds_vary_world: bool = Field(
        True,
        description="a seed (demo --seed, a study's --seeds) also sets the world seed and the pretraining seed; "
        "False (the default preset): the training seeds only (the teacher's sampling, SFT, RL), so that every seed "
        "starts from the same world and the same base model, as the paper's runs start from one pretrained LM",
    )
    keep_checkpoints: bool = Field(
        False,
        description="keep a finished stage's intermediate checkpoints (optimizer state included); by default "
        "they are deleted once the stage is done: its final model, metrics and summary stay",
    )
    weights_on_disk: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="the dtype of each finished SFT stage's final weights on disk: bfloat16 halves a real model's "
        "run directory (a 135M model: 540 -> 270 MB a stage); trainers load them as fp32 either way. "
        "RL's stay fp32 (its small updates would round away), and so do intermediate checkpoints, which a "
        "killed stage resumes from",
    )


# SFT-2's steps. At 1,200 (the previous default, now `--preset short`) SFT-2 is undertrained: 2,400
# (1.2 epochs of the CoA rows) took the 5 seeds' SFT-1&2&3 from 0.747 to 0.848 and the recipe from
# 0.809 to 0.931, paired gain positive on every seed, and copy accuracy to 0.946-0.981
# (docs/scale-model.md), at twice SFT-2's time: a demo of ~20 minutes on 2 cores, not ~12-13.
SFT2_STEPS = 2400
SHORT_SFT2_STEPS = 1200


# long: a data literal: the default recipe's values, with the measurements behind them as comments
def scale_preset() -> RecipeConfig:
    """The scale model of the paper's setting: a base model that has *read* the encyclopedia,
    partially (every pool's rare entities stated in pretraining, long-tailed: 30% never, a few
    30 times), and that reads (reading-comprehension passages about freshly named entities, so
    that copying a name just read is a pretraining skill, not something SFT-2 must teach); a
    teacher that searches exactly what this base model cannot recall; SFT-2 long enough to copy
    (:data:`SFT2_STEPS`); SFT-3 as the paper's (every row's observations trained, no RL-pool
    copies). The default preset (``autocoa demo``)."""
    return RecipeConfig(
        size="default",
        world=WorldConfig(
            train_entities=20000,
            read_train_entities=1000,
            dev_entities=200,
            test_entities=400,
            rare_exposure_max=60,
            rare_exposure_alpha=1.0,
            reading_passages=6000,
            train_questions=16000,
            dev_questions=200,
            test_questions=500,
        ),
        # reading (copying a name just read) emerges abruptly, at a step that depends on the seed
        # (docs/scale-model.md); so the peak lr is held until the reading test reaches 0.8, then
        # decays over 300 steps (seed 0: 0.10 at step 1,300, 0.80 at 2,500, 0.88 at the end,
        # 2,800). This is the base shipped with the package (autocoa.shipped): every seed of the
        # demo and the studies starts from it, as the paper's runs start from one pretrained LM
        pretrain=PretrainConfig(
            syllables=True, epochs=10.0, reading_eval_steps=100, reading_target=0.8, decay_steps=300
        ),
        synth=SynthConfig(known_from="model"),
        world_model=WorldModelConfig(rl_pool=120, holdout=200, fidelity_questions=200),
        seeds_vary_world=False,
        sft1=ContrastiveConfig(epochs=1.0, max_examples=1000, save_steps=50),
        # a base that reads copies sooner (SFT-2's loss 0.10 at step 400; the non-reading base's
        # at ~680), but SFT-2 is undertrained well past that: on seed 0, 800 steps gave
        # SFT-1&2&3 0.627, 1,200 0.730, 2,400 0.890 (SFT2_STEPS). Batches stay random: by length
        # (batches: by_length) halves SFT-2's step time but took seed 0's SFT-1&2&3 from 0.730 to
        # 0.387 (missed searches 0.08 -> 0.29 a question: the short, search-free CoT rows fill
        # whole batches)
        # batch_splits: each batch of 8 runs as up to 3 groups sorted by length (the same examples,
        # loss and gradient; 44% of a whole batch's tokens were padding): SFT-2 1.49-1.58x the real
        # tokens/s (bench/bench_train.py, docs/benchmarks.md#training)
        sft2=MaskedSFTConfig(
            max_steps=SFT2_STEPS,
            batch_size=8,
            lr=2e-3,
            cot_ratio=0.1,
            save_steps=100,
            logging_steps=25,
            warmup_ratio=0.02,
            batch_splits=3,
        ),
        sft3=MaskedSFTConfig(
            epochs=1.0,
            batch_size=8,
            lr=5e-4,
            cot_ratio=0.1,
            max_examples=1000,
            save_steps=50,
            logging_steps=25,
            observations_in="all",
            batch_splits=3,
        ),
        # RL in the real environment only, at a learning rate that moves the policy. Measured from
        # seeds 0-2's SFT-1&2&3 (docs/scale-model.md): the paper's 15 simulated + 3 real steps at
        # lr 3e-5 gave -0.007 / +0.013 / -0.003 held-out EM; 18 real steps at lr 1e-4 +0.200 /
        # +0.040 / +0.113. The world model states the searched fact in ~2% of its imagined results,
        # so a simulated rollout is rewarded by chance. The paper's schedule stays a row of
        # `autocoa study ablations` (and `--config` can set rl.sim_steps).
        # Sampling at temperature 1.0, not the paper's 0.6: SFT leaves the tiny policy nearly
        # deterministic (entropy 0.02-0.04 a token), so at 0.6 53% of the groups had no reward
        # spread and nothing to learn from; at 1.0 33%. Measured from the shipped base's seed-0
        # SFT-1&2&3 (0.730 held-out EM): 18 steps at 0.6 0.747, at 1.0 0.780; 36 steps at 1.0 0.790;
        # lr 3e-4 0.660 (0.6) / 0.717 (1.0).
        rl=RecipeConfig.model_fields["rl"]
        .default_factory()
        .model_copy(update={"sim_steps": 0, "real_steps": 18, "lr": 1e-4, "temperature": 1.0}),
    )


TINY_PRESETS = ("default", "short", "legacy")  # the from-scratch model's presets a user names (--preset)
PRESETS = (*TINY_PRESETS, "fast", "pretrained", "pretrained-fast")


def preset(size: str) -> RecipeConfig:
    if size == "default":
        return scale_preset()
    if size == "short":  # the previous default: SFT-2 half as long (SHORT_SFT2_STEPS), ~12-13 minutes a seed
        d = scale_preset()
        return d.model_copy(update={"size": size, "sft2": d.sft2.model_copy(update={"max_steps": SHORT_SFT2_STEPS})})
    if size == "legacy":
        return RecipeConfig(size="legacy")
    if size == "fast":
        return RecipeConfig(
            size="fast",
            world=WorldConfig(
                common_countries=4,
                common_cities=8,
                common_universities=4,
                common_people=6,
                common_companies=4,
                common_films=4,
                train_entities=600,
                dev_entities=60,
                test_entities=120,
                train_questions=400,
                dev_questions=20,
                test_questions=40,
                pretrain_repeats=4,
                rare_exposure_max=6,
                reading_passages=200,
            ),
            pretrain=PretrainConfig(
                hidden_size=48,
                num_layers=2,
                num_heads=2,
                intermediate_size=96,
                epochs=2.0,
                vocab_size=500,
                eval_facts=40,
                syllables=True,
            ),
            synth=SynthConfig(known_from="model"),
            world_model=WorldModelConfig(rl_pool=24, holdout=16, fidelity_questions=12),
            sft1=ContrastiveConfig(max_steps=4, batch_size=8, save_steps=1000, logging_steps=1),
            sft2=MaskedSFTConfig(max_steps=8, batch_size=8, save_steps=1000, logging_steps=1),
            sft3=MaskedSFTConfig(max_steps=4, batch_size=8, save_steps=1000, logging_steps=1, observations_in="all"),
            rl=RLConfig(
                sim_steps=2,
                real_steps=1,
                prompts_per_step=2,
                num_generations=2,
                **FAST_BUDGET,
                save_every=100,
                eval_every=100,
                heldout_every=3,
                heldout_questions=4,
            ),
            agent=AgentConfig(**FAST_BUDGET, batch_size=32),
            eval_questions=20,
        )
    if size in ("pretrained", "pretrained-fast"):
        return pretrained_preset(size == "pretrained-fast")
    raise ValueError(f"unknown recipe size {size!r}: {', '.join(PRESETS)}")


def pretrained_rl(fast: bool, budget: dict[str, int]) -> RLConfig:
    """The real-model presets' RL (#27, docs/real-model.md "RL against the overshoot"): real steps
    only, as on the tiny default (this world model simulates nothing: fidelity 0.00-0.02, simulated
    reward 0.00-0.02); 12 of them, on every training question (the 48-question pool is SFT's own);
    temperature 1.0 (at 0.6 the 1-hop groups had no reward spread) and no KL (no reference pass);
    lr 1e-5 (5e-5 made it stop after one search on every question); the held-out curve at steps
    0, 6 and 12."""
    return RLConfig(
        sim_steps=1 if fast else 0,
        real_steps=1 if fast else 12,
        prompts_per_step=2 if fast else 4,
        num_generations=2 if fast else 4,
        lr=1e-5,
        temperature=1.0,
        kl_coef=0.0,
        entropy_coef=0.0,
        save_every=4,
        eval_every=4,
        heldout_every=1 if fast else 6,
        heldout_questions=4 if fast else 30,
        stop_on_collapse=False,
        lm_head="trained",
        **budget,
    )


def pretrained_preset(fast: bool = False) -> RecipeConfig:
    """Sizes for a real ~135M-parameter chat model on 2 CPU cores (SmolLM2-135M-Instruct trains
    at ~180 tokens/s there, a CoA example being ~280 tokens with its chat template): the same
    world and teacher as the default, far fewer steps, small learning rates; ``fast``: every
    stage for a step or two (the slow test). SFT-2/3 and RL project only the trained positions
    onto the 49k-token vocabulary (``lm_head: trained``: the same log-probs; SFT-2 1.51x the
    tokens a second, a GRPO step 0.73x the time, docs/benchmarks.md)."""
    steps = (lambda n: 2) if fast else (lambda n: n)
    budget = (
        dict(max_new_tokens=160, max_obs_tokens=60, max_answer_tokens=8)
        if fast
        else dict(max_new_tokens=320, max_obs_tokens=120, max_answer_tokens=16)
    )
    return RecipeConfig(
        size="pretrained-fast" if fast else "pretrained",
        weights_on_disk="bfloat16",  # the 3 SFT stages of a 135M model: 0.8 GB instead of 1.6 (RL stays fp32)
        world_model=WorldModelConfig(
            rl_pool=8 if fast else 48,
            holdout=4 if fast else 50,
            fidelity_questions=4 if fast else 50,
            rl_questions="train",
        ),
        sft1=ContrastiveConfig(max_steps=steps(30), batch_size=4, lr=1e-4, save_steps=15, logging_steps=5),
        sft2=MaskedSFTConfig(
            max_steps=steps(120),
            batch_size=4,
            lr=3e-4,
            cot_ratio=0.1,
            max_examples=480,
            save_steps=40,
            logging_steps=10,
            warmup_ratio=0.05,
            lm_head="trained",
        ),
        sft3=MaskedSFTConfig(
            max_steps=steps(40),
            batch_size=4,
            lr=1e-4,
            cot_ratio=0.1,
            max_examples=100,
            save_steps=20,
            logging_steps=5,
            pool_repeats=3,
            observations_in="pool",
            pool_loss="observations",
            lm_head="trained",
        ),
        rl=pretrained_rl(fast, budget),
        agent=AgentConfig(batch_size=32, **budget),
        eval_questions=4 if fast else 100,
    )


TRAINING_SEEDS = ("synth", "sft1", "sft2", "sft3", "rl")  # the sections whose seed for_seed sets
WORLD_SEEDS = ("world", "pretrain")  # and, where seeds vary the world, these (for_world_seed)


def for_seed(cfg: RecipeConfig, seed: int, world: bool | None = None) -> RecipeConfig:
    """The same recipe with every training seed ``seed`` (the teacher's sampling, SFT-1/2/3, RL)
    and, where ``world`` (default: ``cfg.seeds_vary_world``), world seed ``seed`` (the rare
    entities, questions and documents; the common entities stay) and pretraining seed ``seed``.
    A seed that the recipe's file set to another value is refused (:func:`check_seeds`), not
    overwritten."""
    world = cfg.seeds_vary_world if world is None else world
    check_seeds(cfg, seed, TRAINING_SEEDS, "--seed")
    update = {st: getattr(cfg, st).model_copy(update={"seed": seed}) for st in TRAINING_SEEDS}
    out = cfg.model_copy(update=update)
    return for_world_seed(out, seed) if world else out


def for_world_seed(cfg: RecipeConfig, seed: int) -> RecipeConfig:
    """The same recipe on world seed ``seed``, its base pretrained with seed ``seed`` (the shipped
    base model applies to world 0 only)."""
    check_seeds(cfg, seed, WORLD_SEEDS, "the world seed")
    return cfg.model_copy(
        update={
            "world": cfg.world.model_copy(update={"seed": seed}),
            "pretrain": cfg.pretrain.model_copy(update={"seed": seed}),
        }
    )


def check_seeds(cfg: RecipeConfig, seed: int, sections: tuple[str, ...], option: str) -> None:
    """Refuse ``seed`` where the recipe's file set one of these sections' seeds to another value:
    a setting has one source, and the file's would otherwise be overwritten without a word."""
    from autocoa.config import ConfigError

    for section in sections:
        if f"{section}.seed" in cfg._file_fields and getattr(cfg, section).seed != seed:
            raise ConfigError(
                f"{cfg._file_fields[f'{section}.seed']}: {section}.seed is {getattr(cfg, section).seed}, but "
                f"{option} is {seed}: give the seed once (remove {section}.seed from the file, or use its value; "
                "see docs/troubleshooting.md#config)"
            )


def load_recipe(size: str, path: str | None = None) -> RecipeConfig:
    """The preset ``size`` with the fields of the YAML file ``path`` over it (nested sections
    field by field); errors name the file and the field."""
    cfg = preset(size)
    if path is None:
        return cfg
    from autocoa.config import ConfigError, read_yaml, validated

    loaded = read_yaml(path)
    for dotted, owner in SET_BY_RECIPE.items():
        section, name = dotted.split(".")
        if isinstance(loaded.get(section), dict) and name in loaded[section]:
            raise ConfigError(
                f"{path}: {dotted}: set by the recipe from its {owner}, so that the stages agree; set {owner} "
                "(see docs/troubleshooting.md#config)"
            )
    merged = cfg.model_dump()
    for key, value in loaded.items():
        merged[key] = (
            {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    out = validated(RecipeConfig, merged, str(path))
    sections = {k: v for k, v in loaded.items() if isinstance(v, dict)}
    out._file_fields = {f"{k}.{name}": str(path) for k, v in sections.items() for name in v}
    return out
