"""Unneeded / missed searches and observation fidelity on hand-made trajectories."""

from __future__ import annotations

import pytest

from autocoa.analysis import analyse, check_observations, copy_checks, match_hop, search_counts, summarise
from autocoa.trajectory import Trajectory, action, answer, observation, parse, think

CHAIN = [
    {"subject": "Sonaku", "relation": "directed_by", "object": "Duke Vihuve", "known": False},
    {"subject": "Duke Vihuve", "relation": "born_in", "object": "Topa", "known": True},
    {"subject": "Topa", "relation": "located_in", "object": "University of Duthepa", "known": False},
]


def traj(*segs):
    from autocoa.trajectory import Trajectory

    return Trajectory("Q\n", segs)


@pytest.mark.parametrize(("searches", "need", "expected"), [(0, 0, (0, 0)), (3, 1, (2, 0)), (1, 3, (0, 2))])
def test_search_counts(searches, need, expected):
    assert search_counts(searches, need) == expected


def test_match_hop_whole_tokens_and_last_in_chain_order():
    assert match_hop("who directed sonaku?", CHAIN) == 0
    assert match_hop("Where was Duke Vihuve born", CHAIN) == 1
    assert match_hop("Sonaku director Duke Vihuve", CHAIN) == 1  # names both: the later hop
    assert match_hop("Topalo city", CHAIN) is None  # no whole-token match
    assert match_hop("Duke", CHAIN) is None


def test_fidelity_checks_the_searched_hop_object():
    t = traj(
        think("need director"),
        action("search", "Sonaku director"),
        observation("Sonaku is a film by Duke Vihuve."),  # states hop 0's object
        action("search", "Duke Vihuve birthplace"),
        observation("Duke Vihuve was born in Varnelo."),  # wrong object for hop 1
        action("search", "something else"),
        observation("Topa"),  # unmatched query: not scored even though it names an object
        action("calculate", "1+1"),
        observation("2"),  # not a search
        answer("Topa"),
    )
    checks = check_observations(t, CHAIN)
    assert [(c["hop"], c["kind"], c["states_fact"], c["states_wrong"]) for c in checks] == [
        (0, "rare", True, False),
        (1, "common", False, True),  # names another place: a hallucination
        (None, None, None, None),
    ]
    row = analyse(t, CHAIN, n_search=2)
    assert row == {
        "searches": 3,
        "unneeded": 1,
        "missed": 0,
        "obs_checked": 2,
        "obs_fact": 1,
        "obs_wrong": 1,
        "obs_unmatched": 1,
        "obs_checked_rare": 1,
        "obs_fact_rare": 1,
        "obs_wrong_rare": 0,
        "obs_checked_common": 1,
        "obs_fact_common": 0,
        "obs_wrong_common": 1,
        "copy_checked": 1,  # hop 0's stated object; the next thought or answer ("Topa") does not restate it
        "copied": 0,
        "past_last_hop": 0,  # no query names the answer (Topa)
    }


def test_an_empty_or_failed_result_is_not_a_hallucination():
    t = traj(
        action("search", "Sonaku director"),
        observation("[no results] search returned nothing"),
        action("search", "Topa university"),
        observation("[error] search failed: ConnectError: refused"),
        answer("x"),
    )
    assert [(c["states_fact"], c["states_wrong"]) for c in check_observations(t, CHAIN)] == [
        (False, False),
        (False, False),
    ]


def test_action_without_observation_and_parsed_text():
    t = parse("<search>Sonaku</search><answer>x</answer>", prompt="Q\n")
    row = analyse(t, CHAIN, n_search=2)
    assert {k: v for k, v in row.items() if k.startswith("obs_")} == dict.fromkeys(
        ["obs_checked", "obs_fact", "obs_wrong", "obs_unmatched"]
        + [f"obs_{what}_{kind}" for kind in ("rare", "common") for what in ("checked", "fact", "wrong")],
        0,
    )
    assert (row["searches"], row["unneeded"], row["missed"]) == (1, 0, 1)
    # outside the world: only the search count
    assert analyse(t, None, None) == {"searches": 1}


def test_summarise_means_and_pooled_fidelity():
    rows = [
        {"unneeded": 2, "missed": 0, "obs_checked": 2, "obs_fact": 2, "obs_unmatched": 0},
        {"unneeded": 0, "missed": 0, "obs_checked": 1, "obs_fact": 0, "obs_unmatched": 1},
        {"unneeded": 0, "missed": 1, "obs_checked": 0, "obs_fact": 0, "obs_unmatched": 0},
        {"searches": 1},  # a question without world metadata is left out
    ]
    s = summarise(rows, simulated=True)
    assert s["unneeded_searches"] == pytest.approx(2 / 3) and s["missed_searches"] == pytest.approx(1 / 3)
    assert s["exact_searches"] == pytest.approx(1 / 3) and s["n_with_needs"] == 3
    assert s["fidelity"] == pytest.approx(2 / 3) and "retrieval_hit" not in s
    obs = s["observations"]
    assert (obs["checked"], obs["states_fact"], obs["unmatched"], obs["simulated"]) == (3, 2, 1, True)
    assert s["hallucination"] == 0  # these rows carry no obs_wrong counts
    rows[0].update(obs_checked_rare=2, obs_fact_rare=2, obs_wrong_rare=0)
    rows[1].update(obs_checked_rare=1, obs_fact_rare=0, obs_wrong_rare=1, obs_wrong=1)
    s = summarise(rows, simulated=True)
    assert s["fidelity_rare"] == pytest.approx(2 / 3) and s["hallucination"] == pytest.approx(1 / 3)
    assert s["fidelity_common"] is None  # no common hop was searched
    real = summarise(rows, simulated=False)
    assert real["retrieval_hit"] == pytest.approx(2 / 3) and "fidelity" not in real
    assert summarise([{"searches": 0}], simulated=False) == {}


def test_doctests():
    import doctest

    from autocoa import analysis

    result = doctest.testmod(analysis)
    assert result.attempted > 0 and result.failed == 0


def test_copy_accuracy_counts_restated_objects_of_real_observations():
    from autocoa.trajectory import action, answer, observation, think

    chain = [
        {"subject": "Sonaku", "object": "Duke Vihuve", "known": False},
        {"subject": "Duke Vihuve", "object": "Topa", "known": False},
    ]
    segs = (
        action("search", "Sonaku director"),
        observation("Sonaku was directed by Duke Vihuve."),
        think("Sonaku was directed by Duke Vihuva."),  # garbled: not restated
        action("search", "Duke Vihuve born"),
        observation("Duke Vihuve was born in Topa."),
        answer("Topa"),  # restated in the answer
        action("search", "Duke Vihuve born"),
        observation("[no results]"),  # states nothing: not counted
    )
    row = analyse(Trajectory("Q", segs), chain, n_search=2)
    assert (row["copy_checked"], row["copied"]) == (2, 1)
    real = summarise([row, {**row, "copied": 2}], simulated=False)
    assert real["copy_accuracy"] == pytest.approx(3 / 4) and real["copy_checked"] == 4
    assert "copy_accuracy" not in summarise([row], simulated=True)  # imagined results are no reading test
    # an action straight after the observation: nothing restated it
    t = Trajectory(
        "Q", (action("search", "Sonaku"), observation("Sonaku was directed by Duke Vihuve."), action("search", "x"))
    )
    assert copy_checks(t, chain) == [False]
