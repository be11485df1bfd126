"""How the world's facts are phrased outside its documents: one owner for every later stage.

- ``STATEMENT``: a fact as a sentence, the first document template of its relation
  (``world.schema``), which the oracle teacher writes after reading or recalling a hop;
- ``CLOZE``: the same sentence up to its object, the closed-book recall probe's prompt
  (``autocoa.knowledge``);
- ``NEED`` / ``QUERY``: the teacher's "I need the director of X." and its search query;
- ``teacher_phrases``: all of a question's teacher phrases, which the tokenizer is trained on
  (``train.pretrain``) so that the reasoning text segments into whole words too.

Pretraining, the recall probe and synthesis all read these from here; none imports a stage that
runs after it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from autocoa.world.schema import RELATIONS

STATEMENT = {name: rel.doc[0] for name, rel in RELATIONS.items()}
CLOZE = {name: s.removesuffix(" {o}.") for name, s in STATEMENT.items()}
NEED = {
    "directed_by": "I need the director of {s}.",
    "produced_by": "I need the company that produced {s}.",
    "founded_by": "I need the founder of {s}.",
    "headquartered_in": "I need the city where {s} is headquartered.",
    "born_in": "I need the birthplace of {s}.",
    "educated_at": "I need the university where {s} studied.",
    "located_in": "I need the city where {s} is located.",
    "country": "I need the country of {s}.",
    "capital": "I need the capital of {s}.",
}
QUERY = {
    "directed_by": "{s} director",
    "produced_by": "{s} produced by",
    "founded_by": "{s} founder",
    "headquartered_in": "{s} headquarters",
    "born_in": "{s} born",
    "educated_at": "{s} studied",
    "located_in": "{s} located",
    "country": "{s} country",
    "capital": "{s} capital",
}
RETRY = "That is not it. "

if not all(s.endswith(" {o}.") for s in STATEMENT.values()) or set(NEED) != set(RELATIONS) != set(QUERY):
    raise AssertionError("world.phrases: every relation needs a statement ending in its object, a need and a query")


@dataclass(frozen=True)
class Hop:
    subject: str
    relation: str
    object: str
    known: bool

    @classmethod
    def from_chain(cls, chain: Sequence[dict[str, Any]]) -> list[Hop]:
        return [cls(c["subject"], c["relation"], c["object"], bool(c["known"])) for c in chain]


def statement(h: Hop, obj: str | None = None) -> str:
    return STATEMENT[h.relation].format(s=h.subject, o=obj if obj is not None else h.object)


def need(h: Hop) -> str:
    return NEED[h.relation].format(s=h.subject)


def query(h: Hop) -> str:
    return QUERY[h.relation].format(s=h.subject)


def teacher_phrases(chain: Sequence[dict[str, Any]]) -> Iterator[str]:
    """What the teacher writes around a question's hops: the need, the query, the statement."""
    for h in Hop.from_chain(chain):
        yield need(h)
        yield query(h)
        yield statement(h)
    yield RETRY
