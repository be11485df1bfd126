"""The in-memory world: entities with their facts, documents, pretraining text and questions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from autocoa.data.corpus import Doc
from autocoa.world.config import WorldConfig

POOLS = ("common", "train", "dev", "test")
SPLITS = ("train", "dev", "test")  # a split's questions start from its own pool (or a common entity)
_WORD = re.compile(r"[A-Za-z]+")


@dataclass
class Entity:
    id: str  # also the id of its corpus document
    name: str
    type: str
    pool: str  # "common" (facts in pretrain.txt) or the rare pool "train" / "dev" / "test"
    stems: tuple[str, ...]  # the invented words of its name, unique to it
    facts: dict[str, str] = field(default_factory=dict)  # relation -> object entity id
    exposure: int = 0  # how many times pretrain.txt states its facts

    @property
    def common(self) -> bool:
        return self.pool == "common"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "pool": self.pool,
            "facts": self.facts,
            "exposure": self.exposure,
        }


@dataclass
class World:
    config: WorldConfig
    entities: list[Entity]
    docs: list[Doc] = field(default_factory=list)  # one per entity, same order, doc id = entity id
    pretrain: list[str] = field(default_factory=list)  # lines of pretrain.txt
    questions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # split -> QA rows
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {e.id: e for e in self.entities}
        self.by_stem = {s.lower(): e.id for e in self.entities for s in e.stems}
        if len(self.by_stem) != sum(len(e.stems) for e in self.entities):
            raise ValueError("name stems are not unique across the world")

    def pool(self, pool: str, type: str | None = None) -> list[Entity]:
        return [e for e in self.entities if e.pool == pool and (type is None or e.type == type)]

    def mentioned(self, text: str) -> set[str]:
        """Ids of the entities whose name words occur in ``text`` (stems are unique, so exact)."""
        return {self.by_stem[w] for w in (m.lower() for m in _WORD.findall(text)) if w in self.by_stem}
