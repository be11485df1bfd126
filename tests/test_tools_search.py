"""BM25 index build/save/load, the search tool's observations, the CLI, and real corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autocoa.cli.app import app
from autocoa.data.corpus import Doc, read_corpus
from autocoa.tools import Toolbox
from autocoa.tools.index import BM25Index, IndexFormatError, tokenize
from autocoa.tools.search import SearchTool, format_hits, load_index

# The checkout sits next to ../shared (tests/ -> repo root -> its parent).
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"

DOCS = [
    Doc("p1", "Ilsa Moravec", "Ilsa Moravec was born in Tarvel. She founded Pelto Works."),
    Doc("c1", "Tarvel", "Tarvel is a city in Osmira, on the northern coast."),
    Doc("c2", "Osmira", "Osmira is a country. Its capital is Lunde."),
    Doc("f1", "Pelto Works", "Pelto Works is a company founded by Ilsa Moravec in 1921."),
    Doc("x1", "", "An untitled passage about\nrivers   and lakes."),
]


def write_corpus(path: Path, docs=DOCS) -> Path:
    path.write_text("".join(json.dumps(d.to_dict()) + "\n" for d in docs), encoding="utf-8")
    return path


def test_tokenize_is_simple_and_deterministic():
    assert tokenize("Was THE founder of Pelto-Works born in 1921?") == ["founder", "pelto", "works", "born", "1921"]
    assert tokenize("the of a") == []


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_build_search_save_load(tmp_path, backend):
    index = BM25Index.build(DOCS, backend=backend)
    hits = index.search(["where was Ilsa Moravec born", "capital of Osmira", "the of", "zzzz", ""], k=2)
    assert hits[0][0][0].id == "p1" and hits[0][0][1] > 0
    assert hits[1][0][0].id == "c2"
    assert hits[2] == hits[3] == hits[4] == []  # no shared word: no hits, not random ones
    assert [len(h) for h in index.search(["Tarvel"], k=50)] == [2]  # k above the corpus size is clamped
    index.save(tmp_path / "ix")
    loaded = load_index(tmp_path / "ix", backend=backend)
    assert isinstance(loaded, BM25Index) and len(loaded) == len(DOCS)
    assert loaded.docs[4] == DOCS[4] and loaded.docs[-1] == DOCS[-1] and loaded.docs[1:3] == DOCS[1:3]
    again = loaded.search(["where was Ilsa Moravec born", "capital of Osmira"], k=2)
    assert [[(d.id, round(s, 4)) for d, s in h] for h in again] == [
        [(d.id, round(s, 4)) for d, s in h] for h in hits[:2]
    ]
    with pytest.raises(TypeError):
        loaded.search("a string, not a list", k=1)


def test_load_refuses_other_directories(tmp_path):
    with pytest.raises(IndexFormatError, match="not an index directory"):
        load_index(tmp_path)
    (tmp_path / "meta.json").write_text('{"format": "autocoa-bm25", "version": 99}')
    with pytest.raises(IndexFormatError, match="rebuild"):
        load_index(tmp_path)
    with pytest.raises(ValueError, match="empty corpus"):
        BM25Index.build([])


def test_search_tool_observation_format():
    index = BM25Index.build(DOCS, backend="numpy")
    tool = SearchTool(index, k=2)
    obs = tool.call("Ilsa Moravec")
    lines = obs.split("\n")
    assert len(lines) == 2
    assert lines[0].startswith("Doc 1 (Title: ") and lines[1].startswith("Doc 2 (Title: ")
    assert {lines[0].split(")")[0], lines[1].split(")")[0]} == {
        "Doc 1 (Title: Ilsa Moravec",
        "Doc 2 (Title: Pelto Works",
    }
    assert format_hits([(DOCS[4], 1.0)]) == "Doc 1 An untitled passage about rivers and lakes."
    assert format_hits([(DOCS[1], 1.0)], doc_chars=12) == "Doc 1 (Title: Tarvel) Tarvel is a ..."
    assert format_hits([]) == ""
    box = Toolbox([tool])
    assert box.run([("search", "qqqq"), ("search", "rivers")]) == [
        "[no results] search returned nothing",
        "Doc 1 An untitled passage about rivers and lakes.",
    ]


def test_cli_index_search_calculate(tmp_path):
    runner = CliRunner()
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    r = runner.invoke(app, ["index", "--corpus", str(corpus), "--out", str(tmp_path / "ix")])
    assert r.exit_code == 0, r.output
    assert "indexed 5 documents (BM25)" in r.output
    r = runner.invoke(app, ["search", "--index", str(tmp_path / "ix"), "--topk", "1", "capital of Osmira"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "Doc 1 (Title: Osmira) Osmira is a country. Its capital is Lunde."
    r = runner.invoke(app, ["search", "--index", str(tmp_path), "anything"])
    assert r.exit_code != 0
    r = runner.invoke(app, ["calculate", "2 ** 10 - 24"])
    assert r.exit_code == 0 and r.output.strip() == "1000"


@pytest.mark.skipif(not REALDATA.exists(), reason="no ../shared/realdata next to the repository")
@pytest.mark.parametrize("name", ["searchr1_corpus_example.jsonl", "r1searcher_kilt_wiki_sample_100.jsonl"])
def test_real_corpora(tmp_path, name):
    path = REALDATA / name
    if not path.exists():
        pytest.skip(f"{name} absent")
    if name.startswith("r1searcher_kilt"):  # read here: the sample has titles but no wikipedia_id
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        docs = [
            Doc(r["wikipedia_title"], r["wikipedia_title"], " ".join(p.strip() for p in r["text"][1:])) for r in rows
        ]
    else:
        docs = read_corpus(path)
    index = BM25Index.build(docs, backend="numpy")
    index.save(tmp_path / "ix")
    loaded = BM25Index.load(tmp_path / "ix", backend="numpy")
    # every document is found by its own title plus the first words of its text
    queries = [f"{d.title} {' '.join(d.text.split()[:12])}" for d in docs]
    top1 = [hits[0][0].id if hits else None for hits in loaded.search(queries, k=1)]
    found = sum(t == d.id for t, d in zip(top1, docs, strict=True))
    assert found >= 0.9 * len(docs), f"{found}/{len(docs)}"
    obs = SearchTool(loaded, k=3).call(queries[0])
    assert obs.startswith(f"Doc 1 (Title: {docs[0].title})")
