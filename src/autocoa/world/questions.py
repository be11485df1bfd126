"""Multi-hop questions: random relation chains, nested phrasing, validation.

A question names one start entity and asks for the end of a chain of 1..H functional
relations ("In which country is the city where the director of Vorano was born?"). A hop is
*known* iff its subject is common (its fact is in pretrain.txt); the others must be searched.
Every candidate is checked by :func:`check_question` and rejected (and counted) if its answer
does not follow from the chain, it names any entity but the start, its answer or an entity
repeats, or it would duplicate or contradict another question of the world.

The held-out splits are drawn first (test, then dev, then train) so that the few chains that
start from a common entity go to them first; no chain is used twice across splits.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from autocoa.metrics import names
from autocoa.world.model import SPLITS, Entity, World
from autocoa.world.schema import ENTITY_TYPES, RELATIONS_BY_SUBJECT, Relation

MAX_TRIES = 200  # random walks per question before a slot is given up (counted as "gave_up")


def walk(world: World, start: Entity, hops: int, rng: random.Random) -> list[tuple[Entity, Relation, Entity]] | None:
    """A random chain of ``hops`` relations from ``start`` visiting no entity twice, or None."""
    chain, seen, cur = [], {start.id}, start
    for _ in range(hops):
        rels = [r for r in RELATIONS_BY_SUBJECT[cur.type] if cur.facts.get(r.name) not in seen]
        if not rels:
            return None
        rel = rng.choice(rels)
        obj = world.by_id[cur.facts[rel.name]]
        chain.append((cur, rel, obj))
        seen.add(obj.id)
        cur = obj
    return chain


def phrase(chain: list[tuple[Entity, Relation, Entity]], rng: random.Random) -> str:
    """Nest the chain: the start's mention inside each hop's noun phrase, the last as a question."""
    start = chain[0][0]
    x = rng.choice(ENTITY_TYPES[start.type].mentions).format(n=start.name)
    for _, rel, _ in chain[:-1]:
        x = rng.choice(rel.np).format(x=x)
    q = rng.choice(chain[-1][1].question).format(x=x)
    return q[0].upper() + q[1:]


def make_row(qid: str, pool: str, question: str, chain: list[tuple[Entity, Relation, Entity]]) -> dict[str, Any]:
    hops = [
        {
            "subject": s.name,
            "subject_id": s.id,
            "relation": r.name,
            "object": o.name,
            "object_id": o.id,
            "known": s.common,
        }
        for s, r, o in chain
    ]
    return {
        "id": qid,
        "question": question,
        "golden_answers": [chain[-1][2].name],
        "hops": len(hops),
        "chain": hops,
        "n_search": sum(not h["known"] for h in hops),
        "pool": pool,
    }


def check_question(world: World, row: dict[str, Any]) -> str | None:
    """Why ``row`` is not a valid question of ``world`` (a short reason), or None if it is."""
    chain = row["chain"]
    if not chain or row["hops"] != len(chain):
        return "bad_hops"
    ids = [chain[0]["subject_id"]] + [h["object_id"] for h in chain]
    if len(set(ids)) != len(ids):
        return "repeated_entity"
    for i, h in enumerate(chain):
        subject = world.by_id.get(h["subject_id"])
        if subject is None or (i and h["subject_id"] != chain[i - 1]["object_id"]):
            return "chain_broken"
        if subject.facts.get(h["relation"]) != h["object_id"]:
            return "chain_broken"
        if h["subject"] != subject.name or h["object"] != world.by_id[h["object_id"]].name:
            return "chain_broken"
        if h["known"] != subject.common:
            return "known_mismatch"
        if not subject.common and subject.pool != row["pool"]:
            return "pool_leak"
    if row["n_search"] != sum(not h["known"] for h in chain):
        return "n_search_mismatch"
    answer = chain[-1]["object"]
    if row["golden_answers"] != [answer]:
        return "wrong_answer"
    if names(row["question"], answer):
        return "answer_in_question"
    if world.mentioned(row["question"]) != {ids[0]}:
        return "other_entity_named"
    return None


def generate_questions(world: World) -> tuple[dict[str, list[dict[str, Any]]], Counter]:
    """Questions for every split, balanced over hop counts 1..max_hops, and the reject counts."""
    cfg = world.config
    drawer = _Drawer(world, random.Random(f"{cfg.seed}/questions"))
    sizes = {"train": cfg.train_questions, "dev": cfg.dev_questions, "test": cfg.test_questions}
    out: dict[str, list[dict[str, Any]]] = {}
    for split in ("test", "dev", "train"):
        rows: list[dict[str, Any]] = []
        n, H = sizes[split], cfg.max_hops
        for hops in range(1, H + 1):
            for _ in range(n // H + (1 if hops <= n % H else 0)):
                row = drawer.draw(split, len(rows), hops)
                if row is not None:
                    rows.append(row)
        out[split] = rows
    return {s: out[s] for s in SPLITS}, drawer.rejected


class _Drawer:
    """Draws valid questions one at a time; remembers every chain and text already used."""

    def __init__(self, world: World, rng: random.Random):
        self.world, self.rng = world, rng
        self.common = world.pool("common")
        self.rare = {split: world.pool(split) for split in SPLITS}
        self.used_chains: set[tuple] = set()
        self.answers_by_text: dict[str, str] = {}
        self.rejected: Counter = Counter()

    def draw(self, split: str, index: int, hops: int) -> dict[str, Any] | None:
        rng = self.rng
        # Decide once per slot whether it starts from a common entity, so that retries do not
        # shift the mix; common chains are few, so such a slot falls back to a rare start.
        from_common = rng.random() < self.world.config.common_question_fraction
        for attempt in range(MAX_TRIES):
            pool = self.common if from_common and attempt < MAX_TRIES // 2 else self.rare[split]
            chain = walk(self.world, rng.choice(pool), hops, rng)
            if chain is None:
                continue  # a dead end (a city has only 2 hops ahead of it): a retry, not a reject
            key = (chain[0][0].id, *(r.name for _, r, _ in chain))
            if key in self.used_chains:
                self.rejected["duplicate_chain"] += 1
                continue
            row = make_row(f"{split}-{index:06d}", split, phrase(chain, rng), chain)
            reason = check_question(self.world, row)
            answer = row["golden_answers"][0]
            if reason is None and self.answers_by_text.get(row["question"], answer) != answer:
                reason = "ambiguous"
            if reason is not None:
                self.rejected[reason] += 1
                continue
            self.used_chains.add(key)
            self.answers_by_text[row["question"]] = answer
            return row
        self.rejected["gave_up"] += 1
        return None


def check_questions(world: World, rows: list[dict[str, Any]]) -> Counter:
    """Every failed check over ``rows`` (one world's questions, all splits together): per-row
    reasons plus "ambiguous" (one text, two answers) and "duplicate_chain"."""
    problems: Counter = Counter()
    answers: dict[str, str] = {}
    chains: set[tuple] = set()
    for row in rows:
        reason = check_question(world, row)
        if reason:
            problems[reason] += 1
        answer = row["golden_answers"][0]
        if answers.setdefault(row["question"], answer) != answer:
            problems["ambiguous"] += 1
        key = (row["chain"][0]["subject_id"], *(h["relation"] for h in row["chain"]))
        if key in chains:
            problems["duplicate_chain"] += 1
        chains.add(key)
    return problems
