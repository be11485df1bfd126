"""The oracle teacher and `autocoa synth`: well-formed data of three kinds, real observations,
pairs that share exactly their prefix, no held-out entity in training data."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from autocoa.jsonl import read_jsonl
from autocoa.synth.oracle import Hop, garble, query, statement
from autocoa.synth.run import SynthConfig, synthesize
from autocoa.tags import Kind
from autocoa.trajectory import Trajectory, render


@pytest.fixture(scope="module")
def synth_out(small_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = synthesize(small_world, out, SynthConfig(pairs_per_question=1.0))
    return out, summary


def rows(path):
    return [r for _, r in read_jsonl(path)]


def test_counts_and_well_formedness(synth_out):
    out, summary = synth_out
    coa, cot, pairs = (rows(out / f) for f in ("coa.jsonl", "cot.jsonl", "pairs.jsonl"))
    assert summary["coa"] == len(coa) > 0 and summary["cot"] == len(cot) > 0 and summary["pairs"] == len(pairs) > 0
    assert summary["counts"]["kept"] == len(coa) + len(cot)
    assert summary["counts"]["pairs: action"] + summary["counts"]["pairs: no_action"] == len(pairs)
    assert summary["counts"]["pairs: no_action"] > 0 and summary["counts"]["pairs: action"] > 0
    for r in coa + cot:
        t = Trajectory.from_dict(r)
        assert t.well_formed, (r["id"], t.problems)
        assert t.answer == r["golden_answers"][0]
    assert all(Trajectory.from_dict(r).n_actions == 0 for r in cot)
    assert all(Trajectory.from_dict(r).n_actions > 0 for r in coa)
    assert json.loads((out / "summary.json").read_text())["coa"] == len(coa)


def test_observations_are_real_search_results_that_state_the_fact(synth_out, small_world):
    out, _ = synth_out
    corpus = {r["id"]: r["contents"] for r in rows(small_world / "corpus.jsonl")}
    titles = {c.split("\n")[0].strip('"') for c in corpus.values()}
    for r in rows(out / "coa.jsonl")[:100]:
        t = Trajectory.from_dict(r)
        segs = [s for s in t.segments if not s.blank]
        for i, s in enumerate(segs):
            if s.kind is Kind.OBSERVATION:
                assert s.text.startswith("Doc 1 (Title: ")
                assert s.text.split("(Title: ")[1].split(")")[0] in titles
                # the statement after the (last, good) search names what the observation says
                nxt = segs[i + 1].text
                if not nxt.startswith("That is not it"):
                    obj = nxt.rstrip(".").split()[-1]
                    assert obj in s.text


def test_pairs_share_exactly_their_prefix(synth_out, tokenizer):
    out, _ = synth_out
    for p in rows(out / "pairs.jsonl"):
        c, r = Trajectory.from_dict(p["chosen"]), Trajectory.from_dict(p["rejected"])
        n = p["prefix_segments"]
        assert c.prompt == r.prompt and c.segments[:n] == r.segments[:n]
        assert c.segments[n:] != r.segments[n:]
        acts = (any(s.kind is Kind.ACTION for s in c.segments[n:]), any(s.kind is Kind.ACTION for s in r.segments[n:]))
        assert acts == ((True, False) if p["kind"] == "action" else (False, True))
        # token level: the shared part renders identically, the continuations differ right after it
        prefix_ids, _ = render(Trajectory(c.prompt, c.segments[:n]), tokenizer)
        (ci, _), (ri, _) = render(c, tokenizer), render(r, tokenizer)
        assert ci[: len(prefix_ids)] == ri[: len(prefix_ids)] == prefix_ids
        assert ci[len(prefix_ids) :] != ri[len(prefix_ids) :]


def test_no_dev_or_test_entity_in_training_data(synth_out, small_world):
    out, _ = synth_out
    held_out = [e["name"] for _, e in read_jsonl(small_world / "entities.jsonl") if e["pool"] in ("dev", "test")]
    text = (out / "coa.jsonl").read_text() + (out / "cot.jsonl").read_text() + (out / "pairs.jsonl").read_text()
    assert held_out and not [n for n in held_out if n in text]


def test_observations_are_masked_in_rendered_data(synth_out, tokenizer):
    out, _ = synth_out
    t = Trajectory.from_dict(rows(out / "coa.jsonl")[0])
    ids, mask = render(t, tokenizer)
    ids3, mask3 = render(t, tokenizer, mask_observations=False)
    assert ids == ids3 and sum(mask) < sum(mask3)
    toks = tokenizer.convert_ids_to_tokens(ids)
    i, j = toks.index("<result>"), toks.index("</result>")
    assert set(mask[i : j + 1]) == {0} and set(mask3[i : j + 1]) == {1}


def test_reproducible(small_world, tmp_path):
    a = synthesize(small_world, tmp_path / "a", SynthConfig(max_questions=60))
    b = synthesize(small_world, tmp_path / "b", SynthConfig(max_questions=60))
    assert a == b
    for f in ("coa.jsonl", "cot.jsonl", "pairs.jsonl"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_the_index_stages_saved_training_index_gives_the_same_data(small_world, tmp_path):
    """The recipe builds the training index once (its index stage) and synthesis loads it: the
    loaded index must write exactly what a freshly built one writes."""
    from autocoa.synth.run import train_corpus_index
    from autocoa.tools.index import BM25Index

    train_corpus_index(small_world).save(tmp_path / "index_train")
    cfg = SynthConfig(max_questions=60)
    a = synthesize(small_world, tmp_path / "a", cfg)
    b = synthesize(small_world, tmp_path / "b", cfg, index=BM25Index.load(tmp_path / "index_train"))
    assert a == b
    for f in ("coa.jsonl", "cot.jsonl", "pairs.jsonl"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_imperfection_knobs(small_world, tmp_path):
    s = synthesize(small_world, tmp_path / "u", SynthConfig(unneeded_search_rate=1.0, bad_query_rate=0.0))
    assert s["cot"] == 0  # every known fact is searched too
    for r in rows(tmp_path / "u" / "coa.jsonl"):
        assert Trajectory.from_dict(r).n_actions == r["hops"]
    s = synthesize(small_world, tmp_path / "b", SynthConfig(bad_query_rate=1.0, unneeded_search_rate=0.0))
    for r in rows(tmp_path / "b" / "coa.jsonl"):
        assert Trajectory.from_dict(r).n_actions == 2 * r["n_search"]
        assert "That is not it." in json.dumps(r)
    s = synthesize(small_world, tmp_path / "h", SynthConfig(max_teacher_hops=2))
    assert set(s["hops"]) <= {1, 2} and s["counts"]["dropped: beyond the teacher's hops"] > 0


def test_oracle_phrases():
    h = Hop("Neshuvi", "directed_by", "Lenibo Thelalo", known=False)
    assert statement(h) == "Neshuvi is a film directed by Lenibo Thelalo."
    assert query(h) == "Neshuvi director"
    import random

    g = garble("Lenibo Thelalo", random.Random(0))
    assert g != "Lenibo Thelalo" and len(g) == len("Lenibo Thelalo") - 1
    assert Counter(w[0] for w in g.split()) == Counter("LT")


def test_output_is_shuffled_across_hop_counts(synth_out):
    out, _ = synth_out
    hops = [r["hops"] for r in rows(out / "coa.jsonl")]
    assert hops != sorted(hops)  # the world's split is ordered by hops; a prefix must sample them all
    assert len(set(hops[: len(hops) // 4])) > 1


def test_rl_pool_and_unseen_holdout(small_world, tmp_path):
    full = synthesize(small_world, tmp_path / "a", SynthConfig())
    s = synthesize(small_world, tmp_path / "b", SynthConfig(rl_pool=5, holdout=4))
    coa = rows(tmp_path / "b" / "coa.jsonl")
    pool, unseen = rows(tmp_path / "b" / "rl_pool.jsonl"), rows(tmp_path / "b" / "train_unseen.jsonl")
    assert (s["rl_pool"], s["train_unseen"], len(pool), len(unseen)) == (5, 4, 5, 4)
    assert len(coa) == full["coa"] - 4  # the holdout leaves the SFT file; the pool stays in it
    assert pool == coa[:5]
    assert not {r["id"] for r in unseen} & {r["id"] for r in coa}
    # every row carries its gold chain, for the fidelity check
    train = {r["id"]: r for r in rows(small_world / "train.jsonl")}
    assert all(r["chain"] == train[r["id"]]["chain"] for r in pool + unseen + coa)
    with pytest.raises(ValueError, match="exceeds"):
        synthesize(small_world, tmp_path / "c", SynthConfig(rl_pool=len(coa), holdout=10))
