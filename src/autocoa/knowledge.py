"""What a base model knows closed-book: the recall probe of every fact of a synthetic world.

For each fact (subject, relation, object) a cloze prompt ("Lavis is a city in") is scored with
the object as its continuation, teacher-forced in one forward pass: the fact is *known* when
every object token is the model's argmax, i.e. exactly when greedy decoding would write the
object next (the same test as generating and comparing, at a fraction of the cost, so all of a
world's facts can be probed). ``p`` is the probability of the object's tokens (how sure).

The pretraining stage writes the probe of every fact as ``knowledge.jsonl``
(``subject_id``, ``relation``, ``known``, ``p``, ``exposure``, ``pool``); synthesis reads it so
that the teacher searches exactly the hops this model cannot recall (SFT-1's "when to act" is
calibrated to the model), and the report tabulates recall by exposure count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocoa.world.phrases import CLOZE  # the recall probe's prompts: a statement up to its object

# Exposure buckets of the recall table: how many times pretrain.txt states the fact (each epoch
# of pretraining reads it that many times).
BUCKETS = ((0, 0), (1, 1), (2, 3), (4, 7), (8, 15), (16, 31), (32, None))


@dataclass(frozen=True)
class Fact:
    subject_id: str
    subject: str
    relation: str
    object: str
    exposure: int = 0
    pool: str = ""


def world_facts(world_dir: Path, pools: Iterable[str] | None = None) -> list[Fact]:
    """Every fact of the world's entities (of ``pools`` only, if given), in file order."""
    from autocoa.jsonl import read_jsonl

    entities = {row["id"]: row for _, row in read_jsonl(Path(world_dir) / "entities.jsonl")}
    keep = set(pools) if pools is not None else None
    return [
        Fact(e["id"], e["name"], rel, entities[obj]["name"], int(e.get("exposure", 0)), e["pool"])
        for e in entities.values()
        if keep is None or e["pool"] in keep
        for rel, obj in sorted(e["facts"].items())
    ]


def recall(
    model: Any,
    tokenizer: Any,
    facts: Sequence[Fact],
    batch_size: int = 256,
    prompts: Sequence[str] | None = None,
) -> list[tuple[bool, float]]:
    """``(known, p)`` of each fact: greedy decoding would write the object after its cloze
    prompt (or after ``prompts[i]``, e.g. a passage and a question); the probability of the
    object's tokens."""
    import torch

    out: list[tuple[bool, float]] = []
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        for i in range(0, len(facts), batch_size):
            chunk = facts[i : i + batch_size]
            chunk_prompts = (
                list(prompts[i : i + batch_size])
                if prompts is not None
                else [CLOZE[f.relation].format(s=f.subject) for f in chunk]
            )
            p_ids = tokenizer(chunk_prompts, add_special_tokens=False)["input_ids"]
            full = tokenizer(
                [p + " " + f.object for p, f in zip(chunk_prompts, chunk, strict=True)], add_special_tokens=False
            )
            f_ids = full["input_ids"]
            width = max(map(len, f_ids))
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, seq in enumerate(f_ids):
                ids[r, : len(seq)] = torch.tensor(seq)
                mask[r, : len(seq)] = 1
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
            logp = torch.log_softmax(logits, dim=-1).cpu()
            for r, (p, seq) in enumerate(zip(p_ids, f_ids, strict=True)):
                start = len(p) if seq[: len(p)] == p else _common_prefix(p, seq)
                target = torch.tensor(seq[start:])
                pos = torch.arange(start - 1, len(seq) - 1)
                rows = logp[r, pos]
                known = bool(len(target)) and bool((rows.argmax(-1) == target).all())
                out.append((known, float(rows.gather(1, target[:, None]).sum().exp())))
    return out


def reading_prompts(world_dir: Path, n: int = 200, seed: int = 0) -> tuple[list[Fact], list[str]]:
    """The reading test of a base model: for ``n`` test-pool entities pretraining never states
    (exposure 0: the answer can only come from the passage), the entity's corpus document, then
    a question about one of its facts, as the reading passages of pretraining ask it
    ("<document> Question: Who directed X? Answer:"), with the fact whose object must follow."""
    import random

    from autocoa.data.corpus import iter_corpus
    from autocoa.world.schema import RELATIONS

    docs = {d.id: d.text for d in iter_corpus(Path(world_dir) / "corpus.jsonl")}
    facts = [f for f in world_facts(world_dir, pools=("test",)) if f.exposure == 0]
    rng = random.Random(seed)
    by_subject: dict[str, list[Fact]] = {}
    for f in facts:
        by_subject.setdefault(f.subject_id, []).append(f)
    subjects = sorted(by_subject)
    rng.shuffle(subjects)
    chosen, prompts = [], []
    for sid in subjects[:n]:
        f = rng.choice(by_subject[sid])
        q = rng.choice(RELATIONS[f.relation].question).format(x=f.subject)
        chosen.append(f)
        prompts.append(f"{docs[sid]} Question: {q[0].upper() + q[1:]} Answer:")
    return chosen, prompts


def reading_share(model: Any, tokenizer: Any, facts: Sequence[Fact], prompts: Sequence[str]) -> float | None:
    """The share of reading prompts (:func:`reading_prompts`) whose object greedy decoding
    writes next; None without prompts."""
    res = recall(model, tokenizer, facts, batch_size=50, prompts=prompts)
    return round(sum(k for k, _ in res) / len(res), 4) if res else None


def reading_accuracy(model: Any, tokenizer: Any, world_dir: Path, n: int = 200) -> dict[str, Any]:
    """The reading test of ``world_dir``'s base model: :func:`reading_share` of its prompts."""
    facts, prompts = reading_prompts(world_dir, n)
    return {"n": len(facts), "accuracy": reading_share(model, tokenizer, facts, prompts)}


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return max(1, n)


def knowledge_rows(facts: Sequence[Fact], results: Sequence[tuple[bool, float]]) -> list[dict[str, Any]]:
    return [
        {
            "subject_id": f.subject_id,
            "relation": f.relation,
            "known": known,
            "p": round(p, 4),
            "exposure": f.exposure,
            "pool": f.pool,
        }
        for f, (known, p) in zip(facts, results, strict=True)
    ]


def read_knowledge(path: Path) -> dict[tuple[str, str], bool]:
    """``(subject_id, relation) -> known`` from a ``knowledge.jsonl``; errors name the line."""
    from autocoa.jsonl import DataError, read_jsonl

    out: dict[tuple[str, str], bool] = {}
    for n, row in read_jsonl(path):
        for key in ("subject_id", "relation", "known"):
            if key not in row:
                raise DataError(path, n, key, "missing (not a knowledge probe file?)")
        out[row["subject_id"], row["relation"]] = bool(row["known"])
    return out


def bucket_label(lo: int, hi: int | None) -> str:
    """A bucket's label.

    >>> bucket_label(2, 3), bucket_label(32, None), bucket_label(1, 1)
    ('2-3', '32+', '1')
    """
    return f"{lo}+" if hi is None else (str(lo) if lo == hi else f"{lo}-{hi}")


def recall_by_exposure(rows: Iterable[dict[str, Any]], pools: Iterable[str] | None = None) -> dict[str, dict]:
    """Closed-book recall per exposure bucket: ``{label: {"n", "recall", "p"}}`` (empty buckets
    left out), over the rows of ``pools`` only if given.

    >>> rows = [{"exposure": 0, "known": False, "p": 0.0}, {"exposure": 5, "known": True, "p": 0.9},
    ...         {"exposure": 6, "known": False, "p": 0.3}]
    >>> recall_by_exposure(rows)
    {'0': {'n': 1, 'recall': 0.0, 'p': 0.0}, '4-7': {'n': 2, 'recall': 0.5, 'p': 0.6}}
    """
    keep = set(pools) if pools is not None else None
    rows = [r for r in rows if keep is None or r.get("pool") in keep]
    out: dict[str, dict] = {}
    for lo, hi in BUCKETS:
        sel = [r for r in rows if r["exposure"] >= lo and (hi is None or r["exposure"] <= hi)]
        if sel:
            out[bucket_label(lo, hi)] = {
                "n": len(sel),
                "recall": round(sum(bool(r["known"]) for r in sel) / len(sel), 4),
                "p": round(sum(float(r.get("p", 0.0)) for r in sel) / len(sel), 4),
            }
    return out
