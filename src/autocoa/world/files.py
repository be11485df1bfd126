"""The world on disk: write it to a directory and read it back.

Files (every JSONL one object a line):
- ``corpus.jsonl``: the search corpus, ``{"id", "contents"}`` with contents ``"Title"\\ntext``;
- ``pretrain.txt``: one paragraph a line (the model's parametric knowledge): the common facts, the
  rare entities' facts as often as each one's ``exposure`` says, and reading-comprehension passages;
- ``train.jsonl``, ``dev.jsonl``, ``test.jsonl``: FlashRAG QA rows (``id``, ``question``,
  ``golden_answers``) plus ``hops``, ``chain``, ``n_search``, ``pool``;
- ``entities.jsonl``: ``{"id", "name", "type", "pool", "facts": {relation: object id}, "exposure"}``;
- ``world.json``: the generation config and summary statistics.
"""

from __future__ import annotations

import json
from pathlib import Path

from autocoa.jsonl import DataError, read_jsonl, write_jsonl
from autocoa.world.config import WorldConfig
from autocoa.world.model import SPLITS, Entity, World
from autocoa.world.schema import ENTITY_TYPES

FILES = ("corpus.jsonl", "pretrain.txt", *(f"{s}.jsonl" for s in SPLITS), "entities.jsonl", "world.json")


def write_world(world: World, out_dir: str | Path) -> dict[str, Path]:
    """Write every world file into ``out_dir`` (created if needed); return name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in FILES}
    write_jsonl(paths["corpus.jsonl"], (d.to_dict() for d in world.docs))
    paths["pretrain.txt"].write_text("".join(line + "\n" for line in world.pretrain), encoding="utf-8")
    for split in SPLITS:
        write_jsonl(paths[f"{split}.jsonl"], world.questions.get(split, []))
    write_jsonl(paths["entities.jsonl"], (e.to_dict() for e in world.entities))
    summary = {"config": world.config.model_dump(mode="json"), "stats": world.stats}
    paths["world.json"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return paths


def load_world(world_dir: str | Path) -> World:
    """Read a written world back (entities, documents, pretraining text, questions, stats)."""
    from autocoa.data.corpus import read_corpus

    d = Path(world_dir)
    summary = json.loads((d / "world.json").read_text(encoding="utf-8"))
    entities = []
    for n, row in read_jsonl(d / "entities.jsonl"):
        try:
            stems = tuple(w for w in row["name"].split() if w[0].isupper() and w not in _FORM_WORDS)
            entities.append(
                Entity(
                    row["id"], row["name"], row["type"], row["pool"], stems, dict(row["facts"]), row.get("exposure", 0)
                )
            )
        except (KeyError, TypeError, IndexError) as e:
            raise DataError(d / "entities.jsonl", n, str(e).strip("'"), "missing or malformed") from None
    world = World(WorldConfig.model_validate(summary["config"]), entities, stats=summary["stats"])
    world.docs = read_corpus(d / "corpus.jsonl")
    world.pretrain = (d / "pretrain.txt").read_text(encoding="utf-8").splitlines()
    world.questions = {s: [row for _, row in read_jsonl(d / f"{s}.jsonl")] for s in SPLITS}
    return world


# Words that name forms add around stems ("University of X", "X Labs").
_FORM_WORDS = {w for t in ENTITY_TYPES.values() for form in t.name_forms for w in form.split() if w != "{s}"}
