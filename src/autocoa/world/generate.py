"""Build the world: the entity graph, one document per entity, the pretraining text.

Knowledge split: a fixed set of *common* entities, drawn
from ``common_seed``, whose facts pretrain.txt states many times in varied paraphrases (the
model's memory); and many fresh *rare* entities, drawn from ``seed``, whose facts are only in
the corpus. Every rare entity belongs to one pool (train, dev or test) and links only to rare
entities of its own pool or to common entities; common entities link only to common ones.
So a chain is a run of rare hops followed by a run of common hops, and the dev/test chains
never touch a train-pool entity. Countries are all common.

Each stage draws from its own ``random.Random`` stream, so changing the rare ``seed`` keeps
the common entities and pretrain.txt identical.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

from autocoa.data.corpus import Doc
from autocoa.world.config import WorldConfig
from autocoa.world.model import SPLITS, Entity, World
from autocoa.world.names import NameGenerator
from autocoa.world.schema import ENTITY_TYPES, RELATIONS, RELATIONS_BY_SUBJECT, template_words

# Shares of each rare pool by type (countries are never rare).
RARE_TYPE_SHARES = {"person": 0.30, "film": 0.20, "company": 0.15, "university": 0.10, "city": 0.25}


def _new_entity(names: NameGenerator, rng: random.Random, type: str, pool: str, n: int) -> Entity:
    stems: list[str] = []
    form = rng.choice(ENTITY_TYPES[type].name_forms)
    name = form
    while "{s}" in name:
        stems.append(names.stem())
        name = name.replace("{s}", stems[-1], 1)
    return Entity(id=f"{type}-{pool}-{n:06d}", name=name, type=type, pool=pool, stems=tuple(stems))


def _common_entities(cfg: WorldConfig, names: NameGenerator) -> list[Entity]:
    rng = random.Random(f"{cfg.common_seed}/common")
    counts = {
        "country": cfg.common_countries,
        "city": cfg.common_cities,
        "university": cfg.common_universities,
        "person": cfg.common_people,
        "company": cfg.common_companies,
        "film": cfg.common_films,
    }
    by_type = {t: [_new_entity(names, rng, t, "common", i) for i in range(n)] for t, n in counts.items()}
    countries, cities = by_type["country"], by_type["city"]
    for i, city in enumerate(cities):  # the first city of each country is its capital
        country = countries[i] if i < len(countries) else rng.choice(countries)
        city.facts["country"] = country.id
        if i < len(countries):
            country.facts["capital"] = city.id
    for t in ("university", "person", "company", "film"):
        for e in by_type[t]:
            for rel in RELATIONS_BY_SUBJECT[t]:
                e.facts[rel.name] = rng.choice(by_type[rel.object]).id
    return [e for t in counts for e in by_type[t]]


def _rare_entities(cfg: WorldConfig, names: NameGenerator, common: list[Entity]) -> list[Entity]:
    rng = random.Random(f"{cfg.seed}/rare")
    common_by_type = {t: [e for e in common if e.type == t] for t in ENTITY_TYPES}
    out: list[Entity] = []
    for pool, size in zip(SPLITS, (cfg.train_entities, cfg.dev_entities, cfg.test_entities), strict=True):
        counts = {t: max(1, round(size * share)) for t, share in RARE_TYPE_SHARES.items()}
        by_type = {t: [_new_entity(names, rng, t, pool, i) for i in range(n)] for t, n in counts.items()}
        for t, ents in by_type.items():
            for e in ents:
                for rel in RELATIONS_BY_SUBJECT[t]:
                    rare = by_type.get(rel.object)
                    use_rare = rare and rng.random() < cfg.rare_link_prob
                    e.facts[rel.name] = rng.choice(rare if use_rare else common_by_type[rel.object]).id
        out.extend(e for t in counts for e in by_type[t])
    return out


def _sentences(e: Entity, world_by_id: dict[str, Entity], rng: random.Random, named_only: bool) -> list[str]:
    """One sentence per fact, each from a random template; with ``named_only`` every sentence
    names the subject (pretraining lines stand alone), else pronoun templates may follow."""
    rels = sorted(e.facts)
    rng.shuffle(rels)
    out = []
    for rel in rels:
        templates = RELATIONS[rel].doc
        if named_only or not out:
            templates = tuple(t for t in templates if "{s}" in t)
        t = rng.choice(templates)
        out.append(t.format(s=e.name, o=world_by_id[e.facts[rel]].name))
    return out


def document(e: Entity, by_id: dict[str, Entity], rng: random.Random, intro_prob: float) -> Doc:
    sentences = _sentences(e, by_id, rng, named_only=False)
    if rng.random() < intro_prob:
        sentences.insert(0, rng.choice(ENTITY_TYPES[e.type].intros).format(s=e.name))
    return Doc(e.id, e.name, " ".join(sentences))


def pretrain_lines(common: list[Entity], by_id: dict[str, Entity], cfg: WorldConfig) -> list[str]:
    """``pretrain_repeats`` rounds; each round states every common entity's facts once, in a
    shuffled order, freshly paraphrased."""
    rng = random.Random(f"{cfg.common_seed}/pretrain")
    lines = []
    for _ in range(cfg.pretrain_repeats):
        block = [" ".join(_sentences(e, by_id, rng, named_only=True)) for e in common]
        rng.shuffle(block)
        lines.extend(block)
    return lines


def generate_world(cfg: WorldConfig, on_stage: Callable[[str], None] | None = None) -> World:
    """The whole world for ``cfg``: entities, documents, pretraining text, questions, stats.
    ``on_stage(description)`` is called as each stage starts (for a progress display)."""
    from autocoa.world.questions import generate_questions  # questions build on the entity graph

    stage = on_stage or (lambda _msg: None)
    stage("entities")
    names = NameGenerator(random.Random(f"{cfg.common_seed}/names"), forbidden=template_words())
    common = _common_entities(cfg, names)
    names.rng = random.Random(f"{cfg.seed}/names")
    world = World(cfg, common + _rare_entities(cfg, names, common))
    stage("documents")
    rng = random.Random(f"{cfg.seed}/docs")
    world.docs = [document(e, world.by_id, rng, cfg.intro_prob) for e in world.entities]
    stage("pretraining text")
    world.pretrain = pretrain_lines(common, world.by_id, cfg)
    stage("questions")
    world.questions, rejected = generate_questions(world)
    world.stats = world_stats(world, rejected)
    return world


def world_stats(world: World, rejected: Counter) -> dict:
    """Counts for world.json (no timings: the files are byte-identical for a seed)."""
    ents = Counter(f"{e.pool}/{e.type}" for e in world.entities)
    stats: dict = {
        "entities": {pool: sum(v for k, v in ents.items() if k.startswith(pool + "/")) for pool in ("common", *SPLITS)},
        "entities_by_pool_type": dict(sorted(ents.items())),
        "common_facts": sum(len(e.facts) for e in world.entities if e.common),
        "rare_facts": sum(len(e.facts) for e in world.entities if not e.common),
        "docs": len(world.docs),
        "pretrain_lines": len(world.pretrain),
        "pretrain_chars": sum(len(line) + 1 for line in world.pretrain),
        "questions": {},
        "rejected": dict(sorted(rejected.items())),
    }
    for split, rows in world.questions.items():
        hops = [r["hops"] for r in rows]
        known = sum(r["hops"] - r["n_search"] for r in rows)
        stats["questions"][split] = {
            "n": len(rows),
            "by_hops": dict(sorted(Counter(hops).items())),
            "by_n_search": dict(sorted(Counter(r["n_search"] for r in rows).items())),
            "known_hop_fraction": round(known / max(1, sum(hops)), 3),
            "common_start": sum(r["n_search"] == 0 for r in rows),
        }
    return stats
