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

The scale-model world (``rare_exposure_max > 0``, ``reading_passages > 0``) is the paper's
setting in small: pretraining has also *read* the encyclopedia's long tail (each rare entity's
facts stated ``exposure`` times, long-tailed: many never, a few often; train, dev and test
pools alike), and it reads reading-comprehension passages about freshly named entities that
belong to no pool, so that copying a name just read is a pretraining skill. Then pretrain.txt
depends on ``seed`` too.
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


def _new_entity(
    names: NameGenerator, rng: random.Random, type: str, pool: str, n: int, scratch: bool = False
) -> Entity:
    """A new entity named from ``names`` (``scratch``: a stem reserved by nobody, see
    :meth:`NameGenerator.scratch`)."""
    stems: list[str] = []
    form = rng.choice(ENTITY_TYPES[type].name_forms)
    name = form
    while "{s}" in name:
        stems.append(names.scratch(rng) if scratch else names.stem())
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


def draw_exposures(rare: list[Entity], cfg: WorldConfig) -> None:
    """Set each rare entity's ``exposure``: 0 with probability ``rare_exposure_zero``, else
    k in 1..``rare_exposure_max`` with P(k) ~ k^-alpha (a long tail: most seen once or twice);
    0 for the train-pool entities outside a random sample of ``read_train_entities``."""
    rng = random.Random(f"{cfg.seed}/exposure")
    ks = list(range(1, cfg.rare_exposure_max + 1))
    weights = [k**-cfg.rare_exposure_alpha for k in ks]
    train = [e for e in rare if e.pool == "train"]
    n_read = len(train) if cfg.read_train_entities is None else min(cfg.read_train_entities, len(train))
    unread = {e.id for e in train} - {e.id for e in rng.sample(train, n_read)}
    for e in rare:
        drawn = 0 if rng.random() < cfg.rare_exposure_zero else rng.choices(ks, weights)[0]
        e.exposure = 0 if e.id in unread else drawn


def rare_lines(rare: list[Entity], by_id: dict[str, Entity], cfg: WorldConfig) -> list[str]:
    """Each rare entity's facts, ``exposure`` times, each time freshly paraphrased."""
    rng = random.Random(f"{cfg.seed}/rare-text")
    return [" ".join(_sentences(e, by_id, rng, named_only=True)) for e in rare for _ in range(e.exposure)]


def reading_passage(names: NameGenerator, rng: random.Random) -> str:
    """A reading-comprehension passage: the document of a fresh entity (named by
    :meth:`NameGenerator.scratch`, so never a world entity) with freshly named objects, then a
    question about one of its facts answered from the passage, as a question-answer line or as
    the statement the agent writes after reading ("X was born in Y.")."""

    def fresh(type: str, n: int) -> Entity:
        return _new_entity(names, rng, type, "reading", n, scratch=True)

    subject = fresh(rng.choice([t for t in ENTITY_TYPES if RELATIONS_BY_SUBJECT[t]]), 0)
    by_id = {subject.id: subject}
    for n, rel in enumerate(RELATIONS_BY_SUBJECT[subject.type], start=1):
        obj = fresh(rel.object, n)
        by_id[obj.id] = obj
        subject.facts[rel.name] = obj.id
    doc = document(subject, by_id, rng, intro_prob=0.5).text
    rel = RELATIONS[rng.choice(sorted(subject.facts))]
    obj = by_id[subject.facts[rel.name]].name
    mention = rng.choice(ENTITY_TYPES[subject.type].mentions).format(n=subject.name)
    question = rng.choice(rel.question).format(x=mention)
    question = question[0].upper() + question[1:]
    if rng.random() < 0.5:
        return f"{doc} Question: {question} Answer: {obj}."
    return f"{doc} {question} {rel.doc[0].format(s=subject.name, o=obj)}"


def reading_lines(names: NameGenerator, cfg: WorldConfig) -> list[str]:
    rng = random.Random(f"{cfg.seed}/reading")
    return [reading_passage(names, rng) for _ in range(cfg.reading_passages)]


def generate_world(cfg: WorldConfig, on_stage: Callable[[str], None] | None = None) -> World:
    """The whole world for ``cfg``: entities, documents, pretraining text, questions, stats.
    ``on_stage(description)`` is called as each stage starts (for a progress display)."""
    from autocoa.world.questions import generate_questions  # questions build on the entity graph

    stage = on_stage or (lambda _msg: None)
    stage("entities")
    names = NameGenerator(random.Random(f"{cfg.common_seed}/names"), forbidden=template_words())
    common = _common_entities(cfg, names)
    names.rng = random.Random(f"{cfg.seed}/names")
    rare = _rare_entities(cfg, names, common)
    for e in common:
        e.exposure = cfg.pretrain_repeats
    if cfg.rare_exposure_max:
        draw_exposures(rare, cfg)
    world = World(cfg, common + rare)
    stage("documents")
    rng = random.Random(f"{cfg.seed}/docs")
    world.docs = [document(e, world.by_id, rng, cfg.intro_prob) for e in world.entities]
    stage("pretraining text")
    world.pretrain = pretrain_lines(common, world.by_id, cfg)
    extra = rare_lines(rare, world.by_id, cfg) + reading_lines(names, cfg)
    if extra:  # the old world's pretrain.txt stays byte-identical without them
        world.pretrain += extra
        random.Random(f"{cfg.seed}/pretrain-mix").shuffle(world.pretrain)
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
        "rare_exposure": dict(sorted(Counter(e.exposure for e in world.entities if not e.common).items())),
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
