"""The recipe's stages as one table of resumable steps, shared by ``autocoa demo`` and ``autocoa study``.

A :class:`Stage` is a name, an output directory, the configuration it depends on and a
function that runs it. :func:`run_stages` runs a list in order and writes ``DONE`` (the
stage's summary and its *fingerprint*: a hash of its own configuration and of the
fingerprints of the stages it reads) into the stage's directory. Run again, it skips a stage
whose ``DONE`` has the same fingerprint and refuses one whose fingerprint differs (another
configuration wrote that directory), so a study can share one seed's stages between many
rows, and a killed run resumes: the training stages themselves resume from their last
complete checkpoint (they are called without ``overwrite``).

The constructors (:func:`world_stage`, :func:`sft_stage`, :func:`rl_stage`, :func:`eval_stage`,
...) each build one kind of stage over a seed directory laid out as ``autocoa demo`` lays it
out: ``world/``, ``index/`` (the whole corpus: evaluation), ``index_train/`` (common and
training entities only: synthesis and RL), ``base/``, ``data/``, one directory per checkpoint
and ``eval/<label>/`` per evaluated run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocoa.progress import verbose
from autocoa.recipe.config import RecipeConfig
from autocoa.runlock import run_lock
from autocoa.train.checkpoints import compact_weights, prune_finished
from autocoa.train.common import DONE_MARKER, mark_done, read_done


class StageMismatchError(RuntimeError):
    pass


@dataclass
class Stage:
    name: str
    out: Path
    run: Callable[[], dict[str, Any]]
    config: Any = None  # JSON-able: what the stage's result depends on besides its inputs
    deps: tuple[str, ...] = ()  # names of the stages whose outputs it reads
    # whether the recipe's weights_on_disk applies to its final weights: not for RL, whose updates
    # fall below bf16's resolution (rl_stage)
    compact: bool = True
    fingerprint: str = field(default="", init=False)


def fingerprint(config: Any, dep_prints: Sequence[str]) -> str:
    """A short hash of a stage's configuration and of its inputs' fingerprints.

    >>> fingerprint({"a": 1}, []) == fingerprint({"a": 1}, []) != fingerprint({"a": 2}, [])
    True
    """
    blob = json.dumps({"config": config, "deps": list(dep_prints)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stamp_done(path: Path, summary: dict[str, Any], print_: str) -> None:
    """The stage's ``DONE`` marker: its summary with its fingerprint (atomic)."""
    mark_done(path, {**summary, "fingerprint": print_})


def run_stages(
    stages: Sequence[Stage],
    timings_path: Path | None = None,
    on_start: Callable[[Stage], None] | None = None,
    on_end: Callable[[Stage, dict[str, Any], float | None], None] | None = None,
    keep_checkpoints: bool = False,
    weights_on_disk: str = "float32",
) -> dict[str, Any]:
    """Run (or skip, when done with the same fingerprint) every stage in order; return
    ``{name: summary}``. Stage seconds are added to ``timings_path`` (JSON). A stage's
    intermediate checkpoints are deleted once it is done, unless ``keep_checkpoints``; its final
    weights are then stored in ``weights_on_disk`` (:func:`autocoa.train.checkpoints.compact_weights`),
    where the stage allows it (``compact``)."""
    prints: dict[str, str] = {}
    results: dict[str, Any] = {}
    timings = json.loads(timings_path.read_text()) if timings_path is not None and timings_path.exists() else {}
    for st in stages:
        missing = [d for d in st.deps if d not in prints]
        if missing:
            raise ValueError(f"stage {st.name!r} reads {missing}, which do not run before it")
        st.fingerprint = prints[st.name] = fingerprint(st.config, [prints[d] for d in st.deps])
        prior = read_done(st.out)
        if prior is not None and "fingerprint" not in prior:
            # the marker a stage's trainer writes when its run ends, not yet stamped here (a
            # kill came in between): run the stage again; a trainer resumes from its last
            # checkpoint (its manifest guards the inputs) and ends with the same result
            (st.out / DONE_MARKER).unlink()
            prior = None
        if prior is not None and prior.get("fingerprint") == st.fingerprint:
            summary = {k: v for k, v in prior.items() if k != "fingerprint"}  # as when it ran
            results[st.name] = {**summary, "skipped": "already done"}
            if on_end is not None:
                on_end(st, results[st.name], None)
            continue
        if prior is not None:
            raise StageMismatchError(
                f"{st.out} holds stage {st.name!r} done with another configuration or other inputs "
                f"(fingerprint {prior.get('fingerprint')} vs {st.fingerprint}); use another --out, or delete it "
                "(see docs/troubleshooting.md#fingerprint)"
            )
        if on_start is not None:
            on_start(st)
        t0 = time.perf_counter()
        with run_lock(st.out):  # a second run on this directory is refused, naming this one
            summary = st.run()
            seconds = round(time.perf_counter() - t0, 1)
            stamp_done(st.out, summary, st.fingerprint)
        if not keep_checkpoints:  # after the stamp: a kill before it resumes from the checkpoints
            prune_finished(st.out)
        if weights_on_disk != "float32" and st.compact:
            compact_weights(st.out, weights_on_disk)
        results[st.name] = summary
        if timings_path is not None:
            timings[st.name] = seconds
            timings_path.write_text(json.dumps(timings, indent=2) + "\n", encoding="utf-8")
        if on_end is not None:
            on_end(st, summary, seconds)
    return results


# ---------------------------------------------------------------------------------------
# Stage constructors over one seed directory


def world_stage(cfg: RecipeConfig, root: Path) -> Stage:
    def run() -> dict[str, Any]:
        from autocoa.world import generate_world, write_world

        w = generate_world(cfg.world)
        write_world(w, root / "world")
        return {"entities": len(w.entities), "questions": {k: len(v) for k, v in w.questions.items()}}

    return Stage("world", root / "world", run, cfg.world.model_dump(mode="json"))


def index_stage(root: Path) -> Stage:
    def run() -> dict[str, Any]:
        from autocoa.data.corpus import read_corpus
        from autocoa.synth.run import train_corpus_index
        from autocoa.tools.index import BM25Index

        docs = read_corpus(root / "world" / "corpus.jsonl")
        BM25Index.build(docs).save(root / "index")  # evaluation: the whole corpus
        train_index = train_corpus_index(root / "world")  # training (RL): no dev/test entity ever seen
        train_index.save(root / "index_train")
        return {"documents": len(docs), "training_documents": len(train_index)}

    return Stage("index", root / "index", run, "bm25", deps=("world",))


def pretrain_stage(cfg: RecipeConfig, root: Path) -> Stage:
    def run() -> dict[str, Any]:
        from autocoa.shipped import install, mismatch
        from autocoa.train.pretrain import pretrain

        world, base = root / "world", root / "base"
        s = install(world, base, cfg.pretrain) if cfg.shipped_base else None  # checks (hashes) the world once
        why = None if s is not None else mismatch(world, cfg.pretrain) if cfg.shipped_base else "shipped_base is off"
        if s is None:
            s = pretrain(world, base, cfg.pretrain, progress=verbose())
        reading = s.get("recall_by_exposure", {}).get("reading", {}).get("accuracy")
        return {
            "base": "shipped" if why is None else "pretrained",
            "params": s["params"],
            "common_facts_known": s["common_facts"].get("accuracy"),
            "reading": reading,
            **({"why_pretrained": why} if why is not None else {}),
        }

    # how often it checkpoints or logs the reading curve does not change the model (unless the
    # curve decides when the decay starts: reading_target): left out, so that a demo directory
    # from before either existed keeps its fingerprints
    unused = {"save_steps", "save_total_limit"}
    if cfg.pretrain.reading_target is None:  # (and the fields newer than those directories, at their defaults)
        unused |= {"reading_eval_steps", "reading_target", "decay_steps"}
    config = cfg.pretrain.model_dump(mode="json", exclude=unused)
    return Stage("base", root / "base", run, config, deps=("world",))


def base_model_stage(cfg: RecipeConfig, root: Path) -> Stage:
    """The base model, pretrained from scratch (:func:`pretrain_stage`) or, with ``cfg.model``,
    a real checkpoint: a named model is converted into the cache here (once per machine)."""
    if cfg.model is None:
        return pretrain_stage(cfg, root)

    def run() -> dict[str, Any]:
        from autocoa.named_models import resolve_model

        path = resolve_model(cfg.model)
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        keys = ("model_type", "num_hidden_layers", "hidden_size", "vocab_size")
        return {"model": str(path), **{k: config.get(k) for k in keys}}

    return Stage("base_model", root / "base_model", run, {"model": cfg.model})


def base_dir(cfg: RecipeConfig) -> str:
    """The base model's directory, relative to a seed directory (absolute for ``cfg.model``)."""
    from autocoa.named_models import model_dir

    return "base" if cfg.model is None else str(model_dir(cfg.model).resolve())


def base_stage(cfg: RecipeConfig) -> str:
    """The base model stage's name (its directory): ``base``, or ``base_model`` (the marker of a
    real checkpoint, which lives in the cache: :func:`base_dir`)."""
    return "base" if cfg.model is None else "base_model"


def synth_stage(cfg: RecipeConfig, root: Path) -> Stage:
    synth_cfg = cfg.synth.model_copy(
        update={"topk": cfg.topk, "rl_pool": cfg.world_model.rl_pool, "holdout": cfg.world_model.holdout}
    )

    by_model = synth_cfg.known_from == "model"
    if by_model and cfg.model is not None:
        raise ValueError("synth.known_from: model needs the pretrained base model's probe; a --model has none")

    def run() -> dict[str, Any]:
        from autocoa.synth.run import synthesize
        from autocoa.tools.index import BM25Index

        knowledge = root / "base" / "knowledge.jsonl" if by_model else None
        index = BM25Index.load(root / "index_train")  # the index stage's, built once a seed
        s = synthesize(root / "world", root / "data", synth_cfg, index=index, knowledge=knowledge)
        return {k: s[k] for k in ("coa", "cot", "pairs", "rl_pool", "train_unseen")}

    deps = ("world", "index", "base") if by_model else ("world", "index")
    return Stage("data", root / "data", run, synth_cfg.model_dump(mode="json"), deps=deps)


NEWER_SFT_FIELDS = {
    "batches": "random",
    "compile": False,
    "optimizer": "adamw",
    "padding_free": False,
    "padding_mask": "kept",
    "batch_splits": 1,
}


def sft_stage(
    stage: str, src: str, dst: str, stage_cfg: Any, root: Path, pool: bool = False, reads: str | None = None
) -> Stage:
    """SFT ``stage`` (sft1, sft2 or sft3) from checkpoint directory ``src`` into ``dst``, the
    stage's name; it reads the stage ``reads`` (default: ``src``; the base model's stage where
    ``src`` is a real checkpoint's own directory) and ``data``. ``pool``: add the RL pool
    (``data/rl_pool.jsonl``, ``stage_cfg.pool_repeats`` times)."""
    data_file = "pairs.jsonl" if stage == "sft1" else "coa.jsonl"

    def run() -> dict[str, Any]:
        from autocoa.train.sft import train_sft

        s = train_sft(
            stage,
            root / src,
            root / "data" / data_file,
            root / dst,
            stage_cfg,
            cot_path=root / "data" / "cot.jsonl" if stage != "sft1" else None,
            pool_path=root / "data" / "rl_pool.jsonl" if pool else None,
            replay_path=root / "world" / "pretrain.txt" if replay else None,
            progress=verbose(),
        )
        keys = ("examples", "pool_rows", "replay_rows", "steps", "first", "last", "train_seconds", "collapse")
        return {k: s[k] for k in keys if k in s}

    # the base's own pretraining text replayed (the world's pretrain.txt); left out of the
    # fingerprint when off, so that directories from before the option keep theirs
    replay = bool(getattr(stage_cfg, "replay_ratio", 0))
    unused = set() if replay else {"replay_ratio", "replay_block"}
    # fields newer than the studies' directories, at the value that means "as before the field":
    # left out, so that those directories keep their fingerprints
    unused |= {f for f, before in NEWER_SFT_FIELDS.items() if getattr(stage_cfg, f, before) == before}
    config = {"stage": stage, "cfg": stage_cfg.model_dump(mode="json", exclude=unused), "pool": pool}
    return Stage(dst, root / dst, run, config, deps=(reads or src, "data"))


def unused_simulator_fields(rl_cfg: Any) -> set[str]:
    """The simulator fields an RL stage's fingerprint leaves out: all of them with the world model
    (the default) or without simulated steps, so that directories from before the option keep
    their fingerprints; the oracle's its fidelity only.

    >>> from autocoa.train.rl_config import RLConfig
    >>> len(unused_simulator_fields(RLConfig())), sorted(unused_simulator_fields(RLConfig(simulator="oracle")))
    (5, ['simulator_gold', 'simulator_model', 'simulator_url'])
    """
    from autocoa.train.rl_config import SIMULATOR_FIELDS

    fields = set(SIMULATOR_FIELDS)
    if rl_cfg.simulator == "model" or not rl_cfg.sim_steps:  # no simulated step: no simulator runs
        return fields
    return fields - {"simulator", "simulator_fidelity"} if rl_cfg.simulator == "oracle" else {"simulator_fidelity"}


def rl_stage(dst: str, cfg: RecipeConfig, root: Path, src: str, sim_steps: int, real_steps: int) -> Stage:
    """RL from checkpoint directory ``src`` into ``dst`` (the stage's name): ``sim_steps``
    simulated then ``real_steps`` real GRPO steps."""
    rl_cfg = cfg.rl.model_copy(update={"topk": cfg.topk, "sim_steps": sim_steps, "real_steps": real_steps})
    questions = "rl_pool.jsonl" if cfg.world_model.rl_pool and cfg.world_model.rl_questions == "pool" else None

    def run() -> dict[str, Any]:
        from autocoa.eval.heldout import heldout_curve
        from autocoa.tools.search import Retrieval
        from autocoa.train.rl import train_rl

        # the dev split (the curve must not select on test), searched in the full index, where
        # alone the held-out entities' documents are
        dev = root / "world" / "dev.jsonl"
        curve = heldout_curve(rl_cfg, dev, Retrieval(root / "index")) if rl_cfg.heldout_every else None
        s = train_rl(
            root / src,
            root / "data" / questions if questions else root / "world" / "train.jsonl",
            root / dst,
            rl_cfg,
            retrieval=Retrieval(root / "index_train"),
            progress=verbose(),
            heldout=curve,
        )
        keys = (
            "sim_steps_done",
            "real_steps_done",
            "real_calls_total",
            "reward_sim",
            "reward_real",
            "fidelity_sim",
            "best_window_reward",
            "stopped",
        )
        return {k: s.get(k) for k in keys}

    config = {"rl": rl_cfg.model_dump(mode="json", exclude=unused_simulator_fields(rl_cfg)), "questions": questions}
    # RL's final weights stay fp32 whatever weights_on_disk says: a few GRPO steps at lr 1e-5 move
    # a weight by ~1e-4, under half a bf16 step for most of SmolLM2's weights. Measured: rounded to
    # bf16, 95% of them were back at their SFT-1&2&3 values and test EM was SFT-1&2&3's (0.29 vs
    # 0.28), while the fp32 policy's held-out curve had risen 0.23 -> 0.43
    return Stage(dst, root / dst, run, config, deps=(src, "data", "index"), compact=False)


@dataclass(frozen=True)
class EvalSpec:
    """One evaluated run: ``label`` (its directory under ``eval/``), the checkpoint directory,
    methods, question set (``test``: held-out, ``pool``: the RL pool, ``unseen``: training
    questions no SFT stage saw) and environment."""

    label: str
    ckpt: str
    methods: tuple[str, ...] = ("agent",)
    questions: str = "test"
    env: str = "real"


# The recipe's own run ("rl") is evaluated with its baselines wherever it appears (the demo and
# every study), so that all write the same eval/rl and none overwrites another's methods.
RECIPE_RUN_METHODS = ("agent", "direct", "rag", "react")


def run_spec(name: str) -> EvalSpec:
    """The held-out evaluation of the checkpoint in directory ``name`` (label = name); the
    recipe's own run also with the baselines."""
    return EvalSpec(name, name, RECIPE_RUN_METHODS if name == "rl" else ("agent",))


QUESTION_FILES = {
    "test": ("world", "test.jsonl"),
    "pool": ("data", "rl_pool.jsonl"),
    "unseen": ("data", "train_unseen.jsonl"),
}


def eval_stage(
    name: str, cfg: RecipeConfig, root: Path, specs: Sequence[EvalSpec], deps: Sequence[str], report: bool = True
) -> Stage:
    """Evaluate every spec (``cfg.eval_questions`` shuffled questions, greedy; the fidelity
    sets ``pool``/``unseen`` with ``cfg.world_model.fidelity_questions``), then (re)write the
    seed's report over all of ``eval/*``."""

    def run() -> dict[str, Any]:
        from autocoa.eval.request import EvalRequest
        from autocoa.eval.runner import evaluate_checkpoint
        from autocoa.tools.search import Retrieval

        summary: dict[str, Any] = {}
        for sp in specs:
            folder, file = QUESTION_FILES[sp.questions]
            limit = cfg.eval_questions if sp.questions == "test" else cfg.world_model.fidelity_questions
            request = EvalRequest.of(
                model=root / sp.ckpt,
                data=root / folder / file,
                out=root / "eval" / sp.label,
                methods=sp.methods,
                retrieval=Retrieval(root / "index"),
                k=cfg.topk,
                agent=cfg.agent.model_copy(update={"env": sp.env}),
                limit=limit,
                shuffle_seed=0,
                label=sp.label,
            )
            m = evaluate_checkpoint(request, progress=verbose())
            summary[sp.label] = {meth: round(mm["em"], 3) for meth, mm in m["methods"].items()}
        if report:
            write_seed_report(root)
        return {"em": summary}

    config = {"specs": [vars(s) for s in specs], "agent": cfg.agent.model_dump(mode="json"), "n": cfg.eval_questions}
    config["fidelity_questions"] = cfg.world_model.fidelity_questions
    return Stage(f"eval/{name}", root / "eval" / name, run, config, deps=tuple(deps))


def write_seed_report(root: Path) -> Path:
    """The report over every evaluation of one seed directory (``report/``)."""
    from autocoa.eval.report import load_run, read_recall, write_report

    runs = [load_run(p.parent) for p in sorted((root / "eval").glob("*/metrics.json"))]
    rl_runs = sorted(p.parent for p in root.glob("rl*/rl.json"))
    write_report(runs, root / "report", rl_runs=rl_runs, knowledge=read_recall(root / "base"))
    return root / "report" / "report.md"


def recipe_stages(cfg: RecipeConfig, root: Path) -> list[Stage]:
    """The stages every run of one seed shares: world, indexes, base model (pretrained here, or
    ``cfg.model``), data, SFT-1, -1&2, -1&2&3."""
    pool = bool(cfg.world_model.rl_pool and cfg.sft3.pool_repeats)
    return [
        world_stage(cfg, root),
        index_stage(root),
        base_model_stage(cfg, root),
        synth_stage(cfg, root),
        sft_stage("sft1", base_dir(cfg), "sft1", cfg.sft1, root, reads=base_stage(cfg)),
        sft_stage("sft2", "sft1", "sft12", cfg.sft2, root),
        sft_stage("sft3", "sft12", "sft123", cfg.sft3, root, pool=pool),
    ]


def fidelity_specs(prefix: str, ckpt: str, cfg: RecipeConfig) -> list[EvalSpec]:
    """The world model's fidelity of checkpoint ``ckpt``: the agent in the simulated
    environment on the RL pool, on unseen training questions and on held-out test questions."""
    sets = [("pool", cfg.world_model.rl_pool), ("unseen", cfg.world_model.holdout), ("test", 1)]
    return [EvalSpec(f"{prefix}_sim_{q}", ckpt, ("agent",), q, "simulated") for q, n in sets if n]


def base_methods(cfg: RecipeConfig) -> tuple[str, ...]:
    """How the base model is evaluated: a real chat model also as the prompted workflows (the
    paper's Table 1 comparison; with ``coa_baseline`` also Chain-of-Action, the second seed
    system); the tiny pretrained one (it cannot follow a prompt) by direct answering only."""
    if cfg.model is None:
        return ("direct",)
    return ("agent", "direct", "rag", "react", *(("coa",) if cfg.coa_baseline else ()))


def main_eval_stage(cfg: RecipeConfig, root: Path) -> Stage:
    """The demo's table (stage ``main``): the base model, SFT-1&2&3, and the full recipe
    (SFT-1&2&3 + RL-1&2) deciding by itself and driven by the baselines; and what the world
    model knows of what it simulates."""
    specs = [
        EvalSpec("base", base_dir(cfg), base_methods(cfg)),
        EvalSpec("sft123", "sft123", ("agent",)),
        run_spec("rl"),
        *fidelity_specs("sft123", "sft123", cfg),
    ]
    return eval_stage("main", cfg, root, specs, deps=(base_stage(cfg), "sft123", "rl"))
