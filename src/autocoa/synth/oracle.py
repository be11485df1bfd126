"""The oracle teacher: chain-of-action trajectories written from the gold chain of a synthetic
question, with real search results.

For each hop (subject, relation, object) of the chain:

- a *known* hop (a common fact, learned in pretraining) is stated from memory:
  ``<think>Lavis is a city in Damoze.</think>``;
- a *rare* hop is looked up: ``<think>I need the director of Neshuvi.</think>
  <search>Neshuvi director</search><result>(the real top-k)</result>
  <think>Neshuvi is a film directed by Lenibo Thelalo.</think>``;

then ``<answer>object of the last hop</answer>``. Observations are the search tool's real
output (the question is dropped, and counted, when the top-k misses the fact).

Imperfection knobs (``SynthConfig``) make the teacher human-like, so that RL has something
to improve: unneeded searches of known facts, a bad first query (a garbled name) followed
by a corrected one, and a maximum number of hops the teacher covers.

Contrastive pairs for SFT-stage1 share the trajectory up to a hop boundary and then differ
only on whether the next step acts: at a rare hop the action is chosen and a confident wrong
guess rejected; at a known hop the statement from memory is chosen and an unneeded search
rejected.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from autocoa.metrics import names
from autocoa.trajectory import Segment, Trajectory, action, answer, observation, think
from autocoa.world.phrases import QUERY, RETRY, Hop, need, query, statement


def garble(name: str, rng: random.Random) -> str:
    """A plausible bad query name: one word of the name loses a letter (a copy error)."""
    words = name.split()
    i = max(range(len(words)), key=lambda j: len(words[j]))
    w = words[i]
    if len(w) > 3:
        k = rng.randrange(1, len(w) - 1)
        words[i] = w[:k] + w[k + 1 :]
    else:
        words[i] = w + w[-1]
    return " ".join(words)


@dataclass
class Plan:
    """What the teacher will do at each hop, decided before any search runs."""

    hops: list[Hop]
    search: list[bool]  # search this hop?
    bad_first: list[bool]  # first query garbled?

    def queries(self, rng_names: list[str | None]) -> list[tuple[int, str]]:
        out = []
        for i, h in enumerate(self.hops):
            if not self.search[i]:
                continue
            if self.bad_first[i]:
                out.append((i, QUERY[h.relation].format(s=rng_names[i])))
            out.append((i, query(h)))
        return out


def plan(hops: list[Hop], rng: random.Random, unneeded_search_rate: float, bad_query_rate: float) -> Plan:
    search = [not h.known or rng.random() < unneeded_search_rate for h in hops]
    bad = [s and rng.random() < bad_query_rate for s in search]
    return Plan(hops, search, bad)


def build_trajectory(
    prompt: str, p: Plan, observations: dict[tuple[int, str], str], bad_names: list[str | None]
) -> tuple[Trajectory | None, str | None]:
    """The CoA trajectory for a plan, given the search results; (None, why) if a needed
    fact was not found by its query."""
    segs: list[Segment] = []
    for i, h in enumerate(p.hops):
        if not p.search[i]:
            segs.append(think(statement(h)))
            continue
        segs.append(think(need(h)))
        if p.bad_first[i]:
            q_bad = QUERY[h.relation].format(s=bad_names[i])
            segs += [action("search", q_bad), observation(observations[i, q_bad]), think(RETRY + need(h))]
        q = query(h)
        obs = observations[i, q]
        if not names(obs, h.object):
            return None, "fact not retrieved"
        segs += [action("search", q), observation(obs), think(statement(h))]
    segs.append(answer(p.hops[-1].object))
    return Trajectory(prompt, tuple(segs)), None


def pair_at(prompt: str, traj: Trajectory, p: Plan, hop: int, wrong_object: str) -> dict[str, Any]:
    """The contrastive pair at ``hop``: both share the segments of the hops before it."""
    h = p.hops[hop]
    prefix = list(_prefix_segments(traj, p, hop))
    act = [think(need(h)), action("search", query(h))]
    if h.known:
        chosen, rejected, kind = [think(statement(h))], act, "no_action"
    else:
        chosen, rejected, kind = act, [think(statement(h, wrong_object))], "action"
    return {
        "kind": kind,
        "hop": hop,
        "prefix_segments": len(prefix),
        "chosen": Trajectory(prompt, (*prefix, *chosen)).to_dict(),
        "rejected": Trajectory(prompt, (*prefix, *rejected)).to_dict(),
    }


def _prefix_segments(traj: Trajectory, p: Plan, hop: int):
    """The segments the trajectory spends on hops before ``hop``."""
    n = 0
    for i in range(hop):
        if not p.search[i]:
            n += 1
        else:
            n += 4 + (3 if p.bad_first[i] else 0)
    return traj.segments[:n]
