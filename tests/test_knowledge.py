"""The closed-book recall probe (autocoa.knowledge) and the scale-model world's pretraining text."""

from __future__ import annotations

import itertools
import json
import shutil

import pytest
import torch

from autocoa.knowledge import CLOZE, Fact, read_knowledge, recall, recall_by_exposure, world_facts


class Bigram(torch.nn.Module):
    """A scripted 'model' whose argmax after token a is table[a] (else token 0)."""

    def __init__(self, table: dict[int, int], vocab: int):
        super().__init__()
        self.table, self.vocab = table, vocab
        self.p = torch.nn.Parameter(torch.zeros(1))

    @property
    def device(self):
        return torch.device("cpu")

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        for b, row in enumerate(input_ids.tolist()):
            for t, a in enumerate(row):
                logits[b, t, self.table.get(a, 0)] = 20.0
        return type("Out", (), {"logits": logits})()


def test_recall_is_greedy_decoding_of_the_object(tokenizer):
    known = Fact("e1", "Kesh", "born_in", "Varnelo")
    text = CLOZE["born_in"].format(s="Kesh") + " Varnelo"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    table = dict(itertools.pairwise(ids))
    if len(table) != len(ids) - 1:
        pytest.skip("the fact's tokens repeat: a bigram table cannot script it")
    model = Bigram(table, len(tokenizer))
    other = Fact("e2", "Kesh", "born_in", "Osmira")  # same prompt, another object: not what it writes
    res = recall(model, tokenizer, [known, other, known], batch_size=2)
    assert [k for k, _ in res] == [True, False, True]
    assert res[0][1] > 0.99 and res[1][1] < 0.01
    greedy = ids[: len(tokenizer(CLOZE["born_in"].format(s="Kesh"), add_special_tokens=False)["input_ids"])]
    for _ in range(len(ids) - len(greedy)):  # the same check by decoding greedily, step by step
        greedy.append(int(model(torch.tensor([greedy])).logits[0, -1].argmax()))
    assert tokenizer.decode(greedy).endswith("Varnelo")


def test_recall_by_exposure_buckets():
    rows = [
        {"exposure": e, "known": k, "p": 0.5, "pool": pool}
        for e, k, pool in [
            (0, False, "test"),
            (1, True, "train"),
            (3, True, "test"),
            (2, False, "test"),
            (20, True, "common"),
        ]
    ]
    table = recall_by_exposure(rows)
    assert list(table) == ["0", "1", "2-3", "16-31"]
    assert table["2-3"] == {"n": 2, "recall": 0.5, "p": 0.5}
    assert list(recall_by_exposure(rows, pools=("test",))) == ["0", "2-3"]


def test_scale_world_states_the_long_tail_and_reading_passages(tmp_path):
    from autocoa.world import WorldConfig, generate_world, write_world
    from tests.conftest import SMALL_WORLD

    cfg = WorldConfig(**SMALL_WORLD, rare_exposure_max=6, reading_passages=50)
    world = generate_world(cfg)
    rare = [e for e in world.entities if not e.common]
    assert {e.exposure for e in rare} >= {0, 1} and max(e.exposure for e in rare) <= 6
    assert all(e.exposure == cfg.pretrain_repeats for e in world.entities if e.common)
    from autocoa.world.generate import rare_lines

    stated = rare_lines(rare, world.by_id, cfg)  # each rare entity's facts, `exposure` times, in order
    assert len(stated) == sum(e.exposure for e in rare)
    i = 0
    for e in rare:
        for line in stated[i : i + e.exposure]:
            assert e.id in world.mentioned(line) and all(world.by_id[o].name in line for o in e.facts.values())
        i += e.exposure
    lines = world.pretrain
    assert sorted(set(stated)) == sorted({line for line in lines if line in set(stated)})
    passages = [line for line in lines if "Question:" in line or "?" in line]
    assert len(passages) == 50
    assert not any(world.mentioned(p) for p in passages)  # reading names are never the world's
    out = write_world(world, tmp_path / "w")
    facts = world_facts(tmp_path / "w")
    assert {f.exposure for f in facts} == {e.exposure for e in world.entities if e.facts}
    assert world.stats["rare_exposure"] == {
        k: sum(e.exposure == k for e in rare) for k in sorted({e.exposure for e in rare})
    }
    # a large train pool whose names pretraining mostly never reads: only the sampled ones are stated
    few = generate_world(cfg.model_copy(update={"read_train_entities": 30}))
    train = [e for e in few.entities if e.pool == "train"]
    assert 0 < sum(e.exposure > 0 for e in train) <= 30
    assert sum(e.exposure > 0 for e in few.entities if e.pool == "test") > 0  # the held-out pools keep their tail
    # the old world is unchanged by the new fields at their defaults
    old = generate_world(WorldConfig(**SMALL_WORLD))
    assert not any("?" in line for line in old.pretrain) and all(e.exposure == 0 for e in old.entities if not e.common)
    assert out["entities.jsonl"].exists()


def test_pretrain_writes_the_probe_and_synth_searches_what_the_model_cannot_recall(small_world, tmp_path):
    from autocoa.synth.run import SynthConfig, synthesize
    from autocoa.train.pretrain import PretrainConfig, pretrain
    from tests.pretrain_helpers import TINY

    s = pretrain(small_world, tmp_path / "base", PretrainConfig(**TINY, reading_eval_steps=2), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "base" / "knowledge.jsonl").open()]
    assert len(rows) == len(world_facts(small_world)) and s["recall_by_exposure"]["all"]
    # the reading curve: the test every 2 steps, in the metrics log beside the losses
    curve = [r for r in map(json.loads, (tmp_path / "base" / "metrics.jsonl").open()) if "reading" in r]
    assert [r["step"] for r in curve] == list(range(2, s["steps"] + 1, 2))
    assert all(0 <= r["reading"] <= 1 for r in curve)
    known = read_knowledge(tmp_path / "base" / "knowledge.jsonl")
    # a model that 'knows' exactly the facts of every other subject: the teacher searches the rest
    flipped = {k: i % 2 == 0 for i, k in enumerate(sorted(known))}
    path = tmp_path / "k.jsonl"
    path.write_text(
        "".join(json.dumps({"subject_id": a, "relation": r, "known": v}) + "\n" for (a, r), v in flipped.items())
    )
    summary = synthesize(
        small_world,
        tmp_path / "data",
        SynthConfig(max_questions=80, unneeded_search_rate=0, bad_query_rate=0),
        knowledge=path,
    )
    coa = [json.loads(line) for line in (tmp_path / "data" / "coa.jsonl").open()]
    cot = [json.loads(line) for line in (tmp_path / "data" / "cot.jsonl").open()]
    assert summary["counts"]["kept"] == len(coa) + len(cot) > 0
    for row in coa + cot:
        for hop in row["chain"]:
            assert hop["known"] == flipped[hop["subject_id"], hop["relation"]]
        assert row["n_search"] == sum(not h["known"] for h in row["chain"]) == row["n_actions"]


def test_read_knowledge_names_the_bad_line(tmp_path):
    from autocoa.jsonl import DataError

    p = tmp_path / "k.jsonl"
    p.write_text('{"subject_id": "a", "relation": "born_in", "known": true}\n{"subject_id": "b"}\n')
    with pytest.raises(DataError, match=r"k.jsonl.*2.*relation"):
        read_knowledge(p)


def test_the_report_tabulates_and_plots_recall_by_exposure(tmp_path):
    from autocoa.eval.report import load_run, read_recall, write_report
    from tests.test_html_report import fake_eval

    base = tmp_path / "base"
    base.mkdir()
    rows = [
        {
            "subject_id": f"e{i}",
            "relation": "born_in",
            "known": i % 3 == 0,
            "p": 0.4,
            "exposure": i % 20,
            "pool": "test" if i % 2 else "train",
        }
        for i in range(60)
    ]
    (base / "knowledge.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    curve = [{"step": 10, "loss": 2.0}, {"step": 10, "reading": 0.0}, {"step": 20, "reading": 0.6}]
    (base / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))
    knowledge = read_recall(base)
    assert knowledge["reading_curve"] == curve[1:]  # the pretraining curve of the reading test, losses left out
    assert knowledge["all"]["0"]["n"] == 3 and knowledge["test"]["1"]["n"] == 3
    d, _ = fake_eval(tmp_path / "run")
    paths = write_report([load_run(d)], tmp_path / "report", knowledge=knowledge)
    md = paths["report"].read_text()
    assert paths["recall"].exists() and "recall_by_exposure.png" in md
    assert paths["reading"].exists() and "reading_curve.png" in md
    line = next(x for x in md.splitlines() if x.startswith("| 16-31 |"))
    sel = [r for r in rows if r["exposure"] >= 16]
    assert line.split("|")[2].strip() == str(len(sel))
    assert line.split("|")[3].strip() == f"{sum(r['known'] for r in sel) / len(sel):.3f}"
    assert read_recall(tmp_path / "nowhere") is None


def test_the_reading_test_asks_about_passages_pretraining_never_stated(tmp_path):
    from autocoa.knowledge import reading_prompts
    from autocoa.world import WorldConfig, generate_world, write_world
    from tests.conftest import SMALL_WORLD

    world = generate_world(WorldConfig(**SMALL_WORLD, rare_exposure_max=4, reading_passages=10))
    write_world(world, tmp_path / "w")
    facts, prompts = reading_prompts(tmp_path / "w", n=15)
    assert len(facts) == len(prompts) == 15 and len({f.subject_id for f in facts}) == 15
    docs = {d.id: d.text for d in world.docs}
    for f, p in zip(facts, prompts, strict=True):
        e = world.by_id[f.subject_id]
        assert e.pool == "test" and e.exposure == 0 and world.by_id[e.facts[f.relation]].name == f.object
        assert p.startswith(docs[e.id] + " Question: ") and p.endswith(" Answer:") and f.subject in p


def test_pretraining_until_the_base_reads_decays_once_the_test_passes_and_resumes_there(
    small_world, tmp_path, monkeypatch
):
    """With reading_target the peak learning rate is held until the reading test passes, then it
    decays linearly over decay_steps and training stops; a run killed in the decay resumes with
    the same schedule (the decay's start is read back from its metrics)."""
    import autocoa.knowledge as knowledge
    from autocoa.train.pretrain import PretrainConfig, pretrain
    from tests.pretrain_helpers import TINY

    calls = []

    def fake_share(model, tokenizer, facts, prompts):  # the test "passes" at its third run (step 6)
        calls.append(1)
        return 0.9 if len(calls) >= 3 else 0.1

    monkeypatch.setattr(knowledge, "reading_share", fake_share)
    cfg = PretrainConfig(
        **{**TINY, "epochs": 20.0, "eval_facts": 0},
        reading_eval_steps=2,
        reading_target=0.8,
        decay_steps=4,
        warmup_steps=2,
        save_steps=2,
        save_total_limit=10,
    )
    s = pretrain(small_world, tmp_path / "base", cfg, progress=False)
    assert s["decay_from_step"] == 6 and s["steps"] == 10 < s["max_steps"]
    rows = [json.loads(line) for line in (tmp_path / "base" / "metrics.jsonl").open()]
    lr = {r["step"]: r["learning_rate"] for r in rows if "learning_rate" in r}
    assert lr[4] == lr[6] == cfg.lr and lr[8] == pytest.approx(cfg.lr * 0.75)  # logged: the lr step N used
    # killed in the decay (after checkpoint-8): the resumed run decays from step 6 as well
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in ("run.json", "metrics.jsonl"):
        (killed / name).write_bytes((tmp_path / "base" / name).read_bytes())
    shutil.copytree(tmp_path / "base" / "checkpoints" / "checkpoint-8", killed / "checkpoints" / "checkpoint-8")
    resumed = pretrain(small_world, killed, cfg, progress=False)
    assert resumed["resumed_from_step"] == 8 and resumed["decay_from_step"] == 6 and resumed["steps"] == 10
    assert resumed["mean_loss"] == pytest.approx(s["mean_loss"], rel=1e-5)
    # never passing: the decay starts decay_steps before the cap
    calls.clear()
    monkeypatch.setattr(knowledge, "reading_share", lambda *a: 0.0)
    short = cfg.model_copy(update={"epochs": 1.0})
    s = pretrain(small_world, tmp_path / "never", short, progress=False)
    assert s["steps"] == s["max_steps"] and s["decay_from_step"] == s["max_steps"] - 4
    with pytest.raises(ValueError, match="reading_eval_steps"):
        PretrainConfig(reading_target=0.5)
