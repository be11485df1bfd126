"""``autocoa synth``: the training data of every stage, from a synthetic world.

Writes to the output directory:

- ``coa.jsonl``   chain-of-action trajectories (SFT-stage2 and -stage3, RL prompts);
- ``cot.jsonl``   pure chain-of-thought trajectories (every hop known, no action);
- ``pairs.jsonl`` contrastive pairs for SFT-stage1 (``kind``: action / no_action);
- ``rl_pool.jsonl`` (with ``rl_pool > 0``) the RL question pool: the first ``rl_pool`` CoA rows,
  which stay in ``coa.jsonl`` as well. SFT-stage3 trains the world model on them (``autocoa
  train sft3 --pool-data``) and RL draws its questions from them, so that the simulated
  environment imagines documents the world model has learned, as the paper's 7B world model
  knows the Wikipedia documents of its RL questions;
- ``train_unseen.jsonl`` (with ``holdout > 0``) training-pool CoA rows held apart from every
  SFT file: questions about training entities that no stage trained on (world-model fidelity
  on "training questions SFT-3 never saw");
- ``summary.json`` counts (kept, dropped and why, pairs of each kind, hops, actions).

Each row holds ``id``, ``question``, ``golden_answers``, ``hops``, ``n_search``, the gold ``chain``
(for the fidelity check of :mod:`autocoa.analysis`) and the trajectory as
``prompt`` + ``segments`` (pairs: ``chosen`` / ``rejected``); the prompt is the plain one,
and training re-formats it for the student's tokenizer. Observations come from a BM25 index
over the *training* corpus only (common and train-pool documents), so no dev or test entity
ever appears in training data.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from autocoa.agent.prompts import PLAIN_TEMPLATE
from autocoa.config import Config
from autocoa.jsonl import DataError, read_jsonl, write_jsonl
from autocoa.knowledge import read_knowledge
from autocoa.runlock import holds_lock
from autocoa.synth.oracle import Hop, build_trajectory, garble, pair_at, plan


class SynthConfig(Config):
    topk: int = Field(2, ge=1, le=20, description="documents per search (use the same k at inference)")
    max_obs_chars: int = Field(600, ge=50, description="observation budget in characters (visible truncation marker)")
    unneeded_search_rate: float = Field(
        0.1, ge=0, le=1, description="teacher imperfection: probability of searching a fact it knows"
    )
    bad_query_rate: float = Field(
        0.1, ge=0, le=1, description="teacher imperfection: probability that a search first uses a garbled name"
    )
    max_teacher_hops: int = Field(4, ge=1, description="teacher imperfection: questions with more hops are not covered")
    max_questions: int | None = Field(None, ge=1, description="use at most this many training questions")
    pairs_per_question: float = Field(0.25, ge=0, description="contrastive pairs per kept question (at random hops)")
    seed: int = Field(0, description="seed of the teacher's choices")
    batch: int = Field(2048, ge=1, description="questions whose searches run as one batch")
    rl_pool: int = Field(
        0, ge=0, description="CoA rows also written to rl_pool.jsonl: the questions the world model learns and RL uses"
    )
    holdout: int = Field(
        0, ge=0, description="CoA rows written to train_unseen.jsonl instead of coa.jsonl (no SFT stage sees them)"
    )
    known_from: Literal["world", "model"] = Field(
        "world",
        description="which hops the teacher states from memory: 'world' = those whose subject is common; 'model' = "
        "those the base model recalls closed-book (its knowledge.jsonl; the recipe passes it)",
    )


def train_corpus_index(world_dir: Path):
    """BM25 over the common and train-pool documents (dev/test entities stay unseen)."""
    from autocoa.data.corpus import iter_corpus
    from autocoa.tools.index import BM25Index

    pools = {row["id"]: row["pool"] for _, row in read_jsonl(world_dir / "entities.jsonl")}
    docs = [d for d in iter_corpus(world_dir / "corpus.jsonl") if pools.get(d.id) in ("common", "train")]
    return BM25Index.build(docs)


def _rows(world_dir: Path, cfg: SynthConfig) -> list[dict[str, Any]]:
    path = world_dir / "train.jsonl"
    rows = []
    for n, row in read_jsonl(path):
        for key in ("id", "question", "golden_answers", "chain"):
            if key not in row:
                raise DataError(path, n, key, "missing (not a synthetic-world question file?)")
        rows.append(row)
        if cfg.max_questions and len(rows) >= cfg.max_questions:
            break
    return rows


def _with_knowledge(row: dict[str, Any], known: dict[tuple[str, str], bool]) -> dict[str, Any]:
    """The row with each hop's ``known`` (and ``n_search``) from a model's recall probe; a fact
    the probe does not cover counts as unknown (search it)."""
    chain = [{**h, "known": known.get((h["subject_id"], h["relation"]), False)} for h in row["chain"]]
    return {**row, "chain": chain, "n_search": sum(not h["known"] for h in chain)}


def _name_tables(world_dir: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Common entities' names by type (wrong guesses of the right type), and the type of
    every common or training entity's name."""
    names_by_type: dict[str, list[str]] = {}
    type_of: dict[str, str] = {}
    for _, e in read_jsonl(world_dir / "entities.jsonl"):
        if e["pool"] == "common":
            names_by_type.setdefault(e["type"], []).append(e["name"])
        if e["pool"] in ("common", "train"):
            type_of[e["name"]] = e["type"]
    return names_by_type, type_of


def _write_files(out_dir: Path, coa: list, cot: list, pairs: list, cfg: SynthConfig) -> tuple[list, list]:
    """Write the stage files: the holdout (the last ``cfg.holdout`` CoA rows) leaves
    ``coa.jsonl`` for ``train_unseen.jsonl``; the RL pool (its first ``cfg.rl_pool``) stays in
    it and is also ``rl_pool.jsonl``. Returns (CoA rows written, holdout rows)."""
    if cfg.rl_pool + cfg.holdout > len(coa):
        raise ValueError(f"rl_pool + holdout = {cfg.rl_pool + cfg.holdout} exceeds the {len(coa)} CoA rows")
    unseen, coa = coa[len(coa) - cfg.holdout :], coa[: len(coa) - cfg.holdout]
    write_jsonl(out_dir / "coa.jsonl", coa)
    for name, part in (("rl_pool.jsonl", coa[: cfg.rl_pool]), ("train_unseen.jsonl", unseen)):
        if part:
            write_jsonl(out_dir / name, part)
        else:
            (out_dir / name).unlink(missing_ok=True)
    write_jsonl(out_dir / "cot.jsonl", cot)
    write_jsonl(out_dir / "pairs.jsonl", pairs)
    return coa, unseen


def _plan_chunk(chunk: list[dict], rng: random.Random, cfg: SynthConfig) -> tuple[list, list, list]:
    """The teacher's plan for each question of a chunk, its garbled first queries, and the
    searches it will make (in order: the rng draws are the teacher's choices)."""
    plans, bad_names, calls = [], [], []
    for row in chunk:
        hops = Hop.from_chain(row["chain"])
        p = plan(hops, rng, cfg.unneeded_search_rate, cfg.bad_query_rate)
        bad = [garble(h.subject, rng) if p.bad_first[i] else None for i, h in enumerate(hops)]
        plans.append(p)
        bad_names.append(bad)
        calls.append(p.queries(bad))
    return plans, bad_names, calls


# long: one pass over the questions in chunks, writing three files with shared counters and one batched search a chunk
@holds_lock()
def synthesize(
    world_dir: str | Path,
    out_dir: str | Path,
    cfg: SynthConfig,
    index: Any = None,
    progress: Callable[[int, int], None] | None = None,
    knowledge: str | Path | None = None,
) -> dict[str, Any]:
    """Write coa/cot/pairs files for the world's training questions; return the summary.

    ``knowledge``: a base model's closed-book probe (``knowledge.jsonl``, written by pretraining,
    :mod:`autocoa.knowledge`): a hop is then *known* exactly when that model recalls its fact,
    so the teacher searches what the student cannot recall and SFT-1's pairs choose acting
    where its own memory fails; without it, a hop is known when its subject is common."""
    from autocoa.tools.base import Toolbox
    from autocoa.tools.search import SearchTool

    world_dir, out_dir = Path(world_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)
    rows = _rows(world_dir, cfg)
    if knowledge is not None:
        rows = [_with_knowledge(row, known) for known in (read_knowledge(Path(knowledge)),) for row in rows]
    index = index if index is not None else train_corpus_index(world_dir)
    box = Toolbox([SearchTool(index, cfg.topk)], max_chars=cfg.max_obs_chars)
    names_by_type, type_of = _name_tables(world_dir)

    counts: Counter[str] = Counter()
    coa, cot, pairs = [], [], []
    for start in range(0, len(rows), cfg.batch):
        chunk = rows[start : start + cfg.batch]
        plans, bad_names, calls = _plan_chunk(chunk, rng, cfg)
        flat = [("search", q) for c in calls for _, q in c]
        results = iter(box.run(flat))
        for row, p, bad, c in zip(chunk, plans, bad_names, calls, strict=True):
            obs = {(i, q): next(results) for i, q in c}
            base = {
                "id": row["id"],
                "question": row["question"],
                "golden_answers": row["golden_answers"],
                "hops": row.get("hops", len(p.hops)),
                "n_search": row.get("n_search"),
                "chain": row["chain"],
            }
            if len(p.hops) > cfg.max_teacher_hops:
                counts["dropped: beyond the teacher's hops"] += 1
                continue
            prompt = PLAIN_TEMPLATE.format(question=row["question"])
            traj, why = build_trajectory(prompt, p, obs, bad)
            if traj is None:
                counts[f"dropped: {why}"] += 1
                continue
            assert traj.well_formed, traj.problems
            counts["kept"] += 1
            out = {**base, **traj.to_dict(), "n_actions": traj.n_actions}
            (cot if traj.n_actions == 0 else coa).append(out)
            n_pairs = int(cfg.pairs_per_question) + (rng.random() < cfg.pairs_per_question % 1)
            for hop in rng.sample(range(len(p.hops)), min(n_pairs, len(p.hops))):
                h = p.hops[hop]
                candidates = [n for n in names_by_type.get(type_of.get(h.object, ""), []) if n != h.object]
                if not candidates:
                    continue
                pair = pair_at(prompt, traj, p, hop, rng.choice(candidates))
                pairs.append({**base, **pair})
                counts[f"pairs: {pair['kind']}"] += 1
        if progress is not None:
            progress(min(start + cfg.batch, len(rows)), len(rows))
    # The world's splits are ordered by hop count; shuffle (seeded) so that any prefix of a file
    # (SFT's max_examples) is a sample across hop counts.
    for rows_ in (coa, cot, pairs):
        rng.shuffle(rows_)
    coa, unseen = _write_files(out_dir, coa, cot, pairs, cfg)
    summary = {
        "questions": len(rows),
        "coa": len(coa),
        "cot": len(cot),
        "pairs": len(pairs),
        "rl_pool": min(cfg.rl_pool, len(coa)),
        "train_unseen": len(unseen),
        "counts": dict(sorted(counts.items())),
        "actions": dict(sorted(Counter(r["n_actions"] for r in coa + cot).items())),
        "hops": dict(sorted(Counter(r["hops"] for r in coa + cot).items())),
        "tool_stats": box.stats.as_dict(),
        "config": cfg.model_dump(),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
