"""QA datasets: every format the field uses, read into one :class:`QARecord` type.

Formats (detected from the file's extension and the fields of its first row; each also has
its own ``from_*`` row function):

- ``flashrag``: JSONL ``{"id", "question", "golden_answers": [...]}`` (FlashRAG, and the
  synthetic world's splits, whose extra fields ``hops``/``chain``/... go to ``hops``/``meta``);
- ``verl``: parquet with a chat ``prompt`` and ``reward_model.ground_truth`` (Search-R1 and
  the AutoCoA release; the AutoCoA test mix names its dataset in ``source_file``, whose
  ``data_source`` is not reliable, and repeats ids across its sets, so its ids become
  ``dataset/id``). The question is the ``question`` column if there is one,
  else it is cut out of the last user message;
- ``r1searcher``: JSONL ``{"question", "answer"}`` (R1-Searcher's eval sets; ``idx`` optional);
- ``hotpotqa``: the official JSON list ``{"_id", "question", "answer", "supporting_facts", "context"}``;
- ``2wiki``: the official 2WikiMultihopQA JSON list (as HotpotQA, plus ``type`` and ``evidences``);
- ``musique``: the official MuSiQue JSONL ``{"id", "question", "answer", "answer_aliases",
  "question_decomposition", "paragraphs"}``.

A bad row raises :class:`~autocoa.jsonl.DataError` naming the file, the line (the row number
for parquet) and the field; with ``skip_bad=True`` it is appended to ``bad`` and skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocoa.jsonl import DataError, read_jsonl


@dataclass
class QARecord:
    id: str
    question: str
    golden_answers: list[str]
    dataset: str | None = None
    hops: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The FlashRAG row, plus ``dataset``/``hops`` when known and the meta fields."""
        row: dict[str, Any] = {"id": self.id, "question": self.question, "golden_answers": self.golden_answers}
        if self.dataset is not None:
            row["dataset"] = self.dataset
        if self.hops is not None:
            row["hops"] = self.hops
        return {**self.meta, **row}


class _Row:
    """Typed access to one input row; every failure names the file, line and field."""

    def __init__(self, path: Path, line: int, data: Any):
        if not isinstance(data, dict):
            raise DataError(path, line, None, f"expected a JSON object, got {type(data).__name__}")
        self.path, self.line, self.data = path, line, data

    def error(self, name: str | None, message: str) -> DataError:
        return DataError(self.path, self.line, name, message)

    def get(self, dotted: str, default: Any = None) -> Any:
        value: Any = self.data
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value

    def text(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise self.error(name, "missing")
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {type(value).__name__}")
        if not value.strip():
            raise self.error(name, "empty")
        return value.strip()

    def answers(self, name: str, value: Any = ...) -> list[str]:
        """A list of answer strings from a string, a list of strings, or ``{"target": [...]}``.
        Anything else (a number, null, a nested list) is refused with the row's place: answers
        are text, and a silently coerced ``5`` would score against ``"5"`` without a word."""
        value = self.get(name) if value is ... else value
        if isinstance(value, dict) and "target" in value:  # Search-R1: {"target": [...]}
            value = value["target"]
        if value is None:
            raise self.error(name, "missing")
        if isinstance(value, str):
            value = [value]
        if hasattr(value, "tolist"):  # numpy array from parquet
            value = value.tolist()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            bad = value if not isinstance(value, list) else next(v for v in value if not isinstance(v, str))
            raise self.error(name, f"expected a string or a list of strings, got {type(bad).__name__} {bad!r:.40}")
        out = [v.strip() for v in value if v.strip()]
        if not out:
            raise self.error(name, "no non-empty answer")
        return out

    def id(self, *names: str) -> str:
        for name in names:
            value = self.get(name)
            if value is not None:
                return str(value)
        return str(self.line)  # no id column: the line (or row) number

    def rest(self, *used: str) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k not in used}


def from_flashrag(r: _Row) -> QARecord:
    hops = r.get("hops")
    if hops is not None and (not isinstance(hops, int) or isinstance(hops, bool) or hops < 1):
        raise r.error("hops", f"expected a positive integer, got {hops!r}")
    return QARecord(
        r.id("id"),
        r.text("question"),
        r.answers("golden_answers"),
        dataset=r.get("dataset"),
        hops=hops,
        meta=r.rest("id", "question", "golden_answers", "dataset", "hops"),
    )


def from_r1searcher(r: _Row) -> QARecord:
    return QARecord(r.id("id", "idx"), r.text("question"), r.answers("answer"), meta=r.rest("question", "answer"))


def supporting_docs(row: dict[str, Any]) -> list[dict[str, str]]:
    """The documents a HotpotQA/2Wiki row names as its supporting facts: ``{"title", "text"}``
    per title of ``supporting_facts``, its text the ``context`` paragraph of that title (the
    oracle simulator's evidence on real data); none when the row lacks either field.

    >>> row = {"supporting_facts": [["A", 0]], "context": [["A", ["A is a city.", " In Osk."]], ["B", ["x"]]]}
    >>> supporting_docs(row)
    [{'title': 'A', 'text': 'A is a city. In Osk.'}]
    """
    facts, context = row.get("supporting_facts"), row.get("context")
    if not isinstance(facts, list) or not isinstance(context, list):
        return []
    paragraphs = {c[0]: c[1] for c in context if isinstance(c, list | tuple) and len(c) == 2}
    titles = list(dict.fromkeys(f[0] for f in facts if isinstance(f, list | tuple) and f))
    return [
        {"title": t, "text": " ".join(" ".join(s.strip() for s in paragraphs[t]).split())}
        for t in titles
        if isinstance(paragraphs.get(t), list)
    ]


def _hotpot_like(r: _Row, dataset: str, hops: int | None) -> QARecord:
    meta = {k: r.data[k] for k in ("type", "level") if k in r.data}
    support = supporting_docs(r.data)
    if support:
        meta["supporting"] = support
    return QARecord(r.id("_id", "id"), r.text("question"), r.answers("answer"), dataset=dataset, hops=hops, meta=meta)


def from_hotpotqa(r: _Row) -> QARecord:
    return _hotpot_like(r, "hotpotqa", 2)


def from_2wiki(r: _Row) -> QARecord:
    evidences = r.get("evidences")
    return _hotpot_like(r, "2wikimultihopqa", len(evidences) if isinstance(evidences, list) and evidences else None)


def from_musique(r: _Row) -> QARecord:
    answers = r.answers("answer")
    aliases = r.get("answer_aliases") or []
    if aliases:
        answers += [a for a in r.answers("answer_aliases", aliases) if a not in answers]
    steps = r.get("question_decomposition")
    meta = {k: r.data[k] for k in ("answerable",) if k in r.data}
    return QARecord(
        r.id("id"), r.text("question"), answers, dataset="musique", hops=len(steps) if steps else None, meta=meta
    )


# Where chat prompts put the question: Search-R1 "Question: ...", AutoCoA "question below: ...".
_QUESTION_MARKERS = re.compile(r"(?:Question:|question below:)\s*", re.IGNORECASE)


def question_from_prompt(prompt: str) -> str:
    """The question inside a templated prompt: the text after the last known marker, else
    the last non-empty line."""
    parts = _QUESTION_MARKERS.split(prompt)
    tail = parts[-1] if len(parts) > 1 else prompt
    lines = [line.strip() for line in tail.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[0] if len(parts) > 1 else lines[-1]


def from_verl(r: _Row) -> QARecord:
    if isinstance(r.get("question"), str):
        question = r.text("question")
    else:
        prompt = r.get("prompt")
        if hasattr(prompt, "tolist"):
            prompt = prompt.tolist()
        if isinstance(prompt, str):
            content = prompt
        elif isinstance(prompt, list) and prompt and all(isinstance(m, dict) for m in prompt):
            users = [m for m in prompt if m.get("role") == "user"] or prompt
            content = users[-1].get("content")
        else:
            raise r.error("prompt", "expected a list of chat messages or a string")
        if not isinstance(content, str) or not (question := question_from_prompt(content)):
            raise r.error("prompt", "no question found in the last user message")
    answers = r.answers("reward_model.ground_truth")
    source = r.get("source_file")
    dataset = source.split("_")[0] if isinstance(source, str) and source else r.get("data_source")
    dataset = dataset.lower() if isinstance(dataset, str) else None
    meta = {k: r.data[k] for k in ("data_source", "source_file", "level", "ability") if r.data.get(k) is not None}
    split = r.get("extra_info.split")
    if split is not None:
        meta["split"] = split
    qid = r.id("id", "_id", "extra_info.index")
    if isinstance(source, str) and source:  # a mix whose ids repeat across its sets ("dev_12" in each)
        qid = f"{dataset}/{qid}"
    return QARecord(qid, question, answers, dataset=dataset, meta=meta)


FORMATS: dict[str, Callable[[_Row], QARecord]] = {
    "flashrag": from_flashrag,
    "verl": from_verl,
    "r1searcher": from_r1searcher,
    "hotpotqa": from_hotpotqa,
    "2wiki": from_2wiki,
    "musique": from_musique,
}
_2WIKI_TYPES = {"compositional", "inference", "bridge_comparison"}


def detect_format(row: Any) -> str | None:
    """The format of one row (a dict), from its fields; None if it is no QA row."""
    if not isinstance(row, dict):
        return None
    if "reward_model" in row and ("prompt" in row or "question" in row):
        return "verl"
    if "golden_answers" in row:
        return "flashrag"
    if "question_decomposition" in row or "answer_aliases" in row:
        return "musique"
    if "supporting_facts" in row or "context" in row:
        return "2wiki" if "evidences" in row or row.get("type") in _2WIKI_TYPES else "hotpotqa"
    if "question" in row and "answer" in row:
        return "r1searcher"
    return None


def iter_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line, row)`` for a JSONL file, a JSON list (line of the element's start) or parquet
    (1-based row number)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        n = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                n += 1
                yield n, row
        return
    if path.suffix == ".json":
        yield from _iter_json_list(path)
        return
    yield from read_jsonl(path)


def _iter_json_list(path: Path) -> Iterator[tuple[int, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if not stripped.startswith("["):  # a JSON file that holds JSONL after all (MuSiQue ships .jsonl)
        yield from read_jsonl(path)
        return
    decoder = json.JSONDecoder()
    pos, line, counted = len(text) - len(stripped) + 1, 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataError(path, e.lineno, None, f"invalid JSON ({e.msg} at column {e.colno})") from None
        yield line, value
        pos = end


def iter_qa(
    path: str | Path,
    skip_bad: bool = False,
    bad: list[DataError] | None = None,
    fmt: str | None = None,
    dataset: str | None = None,
) -> Iterator[QARecord]:
    """Yield every QA record of ``path``. The format is ``fmt`` or detected from the first
    row; a bad row raises :class:`DataError`, or with ``skip_bad`` is appended to ``bad``.
    ``dataset`` names the records whose rows do not name their dataset."""
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown QA format {fmt!r}; known: {', '.join(FORMATS)}")
    convert = FORMATS[fmt] if fmt else None
    for n, data in iter_rows(path):
        try:
            if convert is None:
                found = detect_format(data)
                if found is None:
                    fields = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
                    raise DataError(path, n, None, f"not a QA row of any known format (fields: {fields})")
                convert = FORMATS[found]
            record = convert(_Row(path, n, data))
            if record.dataset is None:
                record.dataset = dataset
            yield record
        except DataError as e:
            if not skip_bad:
                raise
            if bad is not None:
                bad.append(e)


def load_qa(
    path: str | Path,
    skip_bad: bool = False,
    bad: list[DataError] | None = None,
    fmt: str | None = None,
    dataset: str | None = None,
) -> list[QARecord]:
    """Every QA record of ``path`` (see :func:`iter_qa`); ``len(bad)`` counts skipped rows."""
    return list(iter_qa(path, skip_bad=skip_bad, bad=bad, fmt=fmt, dataset=dataset))


def take(records: list[QARecord], limit: int | None, shuffle_seed: int | None = None) -> list[QARecord]:
    """The first ``limit`` of ``records`` (all: None), after a shuffle with ``shuffle_seed``
    (None: in file order). The world's splits are sorted by hop count, so their first N alone
    are 1-hop questions only.

    >>> recs = [QARecord(id=str(i), question="q", golden_answers=["a"]) for i in range(6)]
    >>> [r.id for r in take(recs, 3)], [r.id for r in take(recs, 3, shuffle_seed=0)] == [r.id for r in recs[:3]]
    (['0', '1', '2'], False)
    """
    if shuffle_seed is not None:
        import random

        records = list(records)
        random.Random(shuffle_seed).shuffle(records)
    return records if limit is None else records[:limit]
