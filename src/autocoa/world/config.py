"""The synthetic world's configuration: every size and probability, with its help text."""

from __future__ import annotations

from pydantic import Field, model_validator

from autocoa.config import Config


class WorldConfig(Config):
    seed: int = Field(0, description="seed of the rare entities, their links, documents and questions")
    common_seed: int = Field(
        0,
        description="seed of the common entities and the pretraining text; keep it fixed to reuse a pretrained "
        "model with worlds of other seeds",
    )
    common_countries: int = Field(24, ge=1, description="common countries (every country is common)")
    common_cities: int = Field(96, ge=1, description="common cities; the first one of each country is its capital")
    common_universities: int = Field(40, ge=1, description="common universities")
    common_people: int = Field(80, ge=1, description="common people")
    common_companies: int = Field(40, ge=1, description="common companies")
    common_films: int = Field(40, ge=1, description="common films")
    train_entities: int = Field(20000, ge=10, description="rare entities of the train pool (facts only in the corpus)")
    dev_entities: int = Field(1000, ge=10, description="rare entities of the dev pool")
    test_entities: int = Field(2000, ge=10, description="rare entities of the test pool")
    rare_link_prob: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="probability that a rare entity's fact points to a rare entity of its own pool rather than "
        "to a common one",
    )
    max_hops: int = Field(
        4,
        ge=1,
        le=6,
        description="questions have 1..max_hops hops, balanced over hop counts (the relations chain at most 6 deep: "
        "film, company, founder, university, city, country, capital)",
    )
    train_questions: int = Field(20000, ge=0, description="questions in train.jsonl")
    dev_questions: int = Field(500, ge=0, description="questions in dev.jsonl")
    test_questions: int = Field(1000, ge=0, description="questions in test.jsonl")
    common_question_fraction: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="fraction of questions that start from a common entity (every hop known: no search needed); "
        "falls back to a rare start when the common chains run out",
    )
    pretrain_repeats: int = Field(
        20, ge=1, description="how many times pretrain.txt states each common entity's facts, each time paraphrased"
    )
    rare_exposure_max: int = Field(
        0,
        ge=0,
        description="pretrain.txt also states rare entities' facts (train, dev and test pools alike), each entity "
        "k times, k long-tailed up to this (Zipf, P(k) ~ k^-rare_exposure_alpha), as Wikipedia's long tail is read; "
        "0 = rare facts only in the corpus",
    )
    rare_exposure_zero: float = Field(
        0.3, ge=0.0, le=1.0, description="share of rare entities pretraining never states (search-only)"
    )
    rare_exposure_alpha: float = Field(1.2, ge=0.0, description="Zipf exponent of the rare entities' exposure counts")
    read_train_entities: int | None = Field(
        None,
        ge=0,
        description="train-pool entities (a random sample) that pretraining may state; the rest are search-only, "
        "so a large train pool gives SFT many fresh names at no pretraining cost; None = all",
    )
    reading_passages: int = Field(
        0,
        ge=0,
        description="reading-comprehension passages in pretrain.txt: the document of a freshly named entity, never "
        "one of the world's, then a question about it answered from the passage (copying names is a pretraining skill)",
    )
    intro_prob: float = Field(
        0.5, ge=0.0, le=1.0, description="probability that a document opens with a type sentence ('X is a film.')"
    )

    @model_validator(mode="after")
    def _enough_cities(self) -> WorldConfig:
        if self.common_cities < self.common_countries:
            raise ValueError("common_cities must be >= common_countries (every country needs a capital)")
        return self
