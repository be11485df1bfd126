"""Dense retrieval (optional extra): a tiny encoder built in the test, no hub."""

from __future__ import annotations

import pytest

pytest.importorskip("faiss")
st = pytest.importorskip("sentence_transformers")

from autocoa.data.corpus import Doc  # noqa: E402
from autocoa.tools.search import SearchTool, load_index  # noqa: E402

DOCS = [Doc(f"d{i}", f"Entity{i}", f"entity{i} lives in town{i} and likes colour{i}") for i in range(30)]


@pytest.fixture(scope="module")
def encoder_path(tmp_path_factory):
    """A random static-embedding model (word vectors, mean pooled) over a word-level vocabulary."""
    try:
        from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = sorted({w for d in DOCS for w in (d.title + " " + d.text).lower().split()})
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["[UNK]", *words])}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    model = st.SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=64)], device="cpu")
    path = tmp_path_factory.mktemp("enc") / "tiny-encoder"
    model.save(str(path))
    return str(path)


def test_dense_build_save_load_search(tmp_path, encoder_path):
    from autocoa.tools.dense import DenseIndex

    index = DenseIndex.build(DOCS, encoder=encoder_path)
    queries = [f"entity{i} town{i}" for i in (3, 17)]
    hits = index.search(queries, k=2)
    assert [h[0][0].id for h in hits] == ["d3", "d17"]
    assert hits[0][0][1] > hits[0][1][1]
    index.save(tmp_path / "dense")
    loaded = load_index(tmp_path / "dense")
    assert isinstance(loaded, DenseIndex) and len(loaded) == 30
    assert [h[0][0].id for h in loaded.search(queries, k=2)] == ["d3", "d17"]
    obs = SearchTool(loaded, k=1).call("entity5 colour5")
    assert obs == "Doc 1 (Title: Entity5) entity5 lives in town5 and likes colour5"


def test_dense_cli_and_server(tmp_path, encoder_path):
    import json

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from autocoa.cli.app import app
    from autocoa.tools.server import create_app

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(d.to_dict()) + "\n" for d in DOCS))
    r = CliRunner().invoke(
        app, ["index", "--corpus", str(corpus), "--out", str(tmp_path / "ix"), "--dense-encoder", encoder_path]
    )
    assert r.exit_code == 0, r.output
    assert "(dense)" in r.output
    client = TestClient(create_app(load_index(tmp_path / "ix")), base_url="http://127.0.0.1")
    res = client.post("/retrieve", json={"queries": ["entity8 town8"], "topk": 1, "return_scores": True}).json()
    assert res["result"][0][0]["document"]["id"] == "d8"
