"""When to act, and how true the observations are: pure functions over one trajectory.

The synthetic world's questions carry their gold ``chain`` (one hop per relation, each with
``subject``, ``relation``, ``object`` and ``known``) and ``n_search``, the number of *rare*
hops: facts that are only in the search corpus. The ideal agent searches exactly those.

Definitions (per question; averaged over questions in :func:`summarise`):

- **searches** = the closed ``<search>`` actions of the trajectory (a RAG baseline's replayed
  retrieval included; calculator calls and stray closers excluded).
- **unneeded searches** = ``max(0, searches - n_search)``: searches beyond the number of rare hops.
- **missed searches** = ``max(0, n_search - searches)``: rare hops left without a search.
  Both are counts: they do not check *which* hop each search was about, so a model that
  searches a known hop and skips a rare one shows neither (the observation check below
  sees the hop each query targets).
- **observation fact check**: every observation that follows a search is paired with the hop
  the search asked about: the hops whose ``subject`` name occurs in the query (SQuAD-normalised,
  as a contiguous run of whole tokens, i.e. :func:`~autocoa.metrics.cover_exact_match`); when
  several do, the last one in chain order (a query that names an intermediate entity is about
  the later hop that starts from it). A query that names no subject is *unmatched* and not
  scored. A matched observation *states the fact* when the hop's gold ``object`` name occurs in
  it, by the same whole-token rule. In the simulated environment the observation is the
  model's own imagined ``<result>``, and the share that state the fact is the **world-model
  fidelity**; in the real environment the same share is the retriever's hit rate for the
  searched fact.
- **hallucination**: a matched observation that states something (not an ``[error]`` or
  ``[no results]`` text) but not the hop's object: an imagined result that names a wrong
  object (in the real environment: a retrieved document about something else).
- **copy accuracy**: of the *real* observations that state the searched fact, the share whose
  object the model restates (whole tokens, exactly) in the next thought or answer after the
  observation; none following counts as not restated. It measures reading: whether a name just
  read is written back intact (a copy error garbles "Havite Institute" into "Kosite Institute").
- **past the last hop**: the trajectory goes on to a hop the question did not ask for, after
  the answer (the last hop's ``object``): a search query names the answer ("Which company
  produced Rute?" -> Rifo Group -> "Rifo Group headquarters"), or a thought states the answer
  and the final answer is another name ("Mokes is a city in Thokival." -> "The capital of
  Thokival is Vobon." -> Vobon). Names match as whole tokens. Per question (0/1); the share over
  questions in :func:`summarise` and by hop count in evaluation.
- Both are also split by **hop kind**: ``rare`` (the fact is only in the corpus: the world
  model can know it only from training on that document) and ``common`` (the fact is in the
  pretraining text), from the hop's ``known`` flag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from autocoa.metrics import names
from autocoa.tags import Kind
from autocoa.tools.base import states_nothing
from autocoa.trajectory import Trajectory

SEARCH = "search"


def search_counts(searches: int, n_search: int) -> tuple[int, int]:
    """``(unneeded, missed)`` searches of one question.

    >>> search_counts(3, 1), search_counts(0, 2), search_counts(2, 2)
    ((2, 0), (0, 2), (0, 0))
    """
    return max(0, searches - n_search), max(0, n_search - searches)


def n_searches(traj: Trajectory, tool: str = SEARCH) -> int:
    """Closed ``<search>`` actions of a trajectory."""
    return sum(1 for t, _ in traj.actions if t == tool)


def match_hop(query: str, chain: Sequence[Mapping[str, Any]]) -> int | None:
    """Index of the hop a search query asks about: the last hop (in chain order) whose
    subject name occurs in the query as whole tokens; None when no subject does.

    >>> chain = [{"subject": "Sonaku", "object": "Duke Vihuve"}, {"subject": "Duke Vihuve", "object": "Topa"}]
    >>> match_hop("director of Sonaku", chain), match_hop("Duke Vihuve birthplace", chain), match_hop("x", chain)
    (0, 1, None)
    """
    found = [i for i, hop in enumerate(chain) if names(query, hop["subject"])]
    return found[-1] if found else None


def search_observations(traj: Trajectory, tool: str = SEARCH) -> list[tuple[str, str]]:
    """``(query, observation text)`` for every search action followed by an observation."""
    return [(a.text.strip(), r) for a, r in traj.action_results() if a.tool == tool and a.closed and r is not None]


def search_observation_sources(traj: Trajectory, sources: Sequence[str], tool: str = SEARCH) -> list[str | None]:
    """Who wrote each of :func:`search_observations`' results (one per item, in order): the
    entry of ``sources`` (one per observation segment of ``traj``, in order: a rollout's
    ``obs_sources``) of the observation that answered the search; None for every item when the
    two do not line up (a response replayed from elsewhere).

    >>> from autocoa.trajectory import parse
    >>> t = parse("<search>a</search><result>A</result><calculate>1</calculate><result>1</result>"
    ...           "<search>b</search><result>B</result>")
    >>> search_observation_sources(t, ["oracle", "tool", "model"])
    ['oracle', 'model']
    >>> search_observation_sources(t, ["model"])
    [None, None]
    """
    segs = [s for s in traj.segments if not s.blank]
    n_obs = sum(s.kind is Kind.OBSERVATION for s in segs)
    out: list[str | None] = []
    k = 0  # observation segments before position i
    for i, s in enumerate(segs):
        if s.kind is Kind.OBSERVATION:
            k += 1
        elif s.kind is Kind.ACTION and s.tool == tool and s.closed:
            nxt = segs[i + 1] if i + 1 < len(segs) else None
            if nxt is not None and nxt.kind is Kind.OBSERVATION:
                out.append(sources[k] if n_obs == len(sources) else None)
    return out


def tool_failures(traj: Trajectory) -> int:
    """Observations that report a failed tool call (the toolbox's ``[error] <tool> failed: ...``
    and ``[error] <tool> timed out: ...``), not the model's own malformed actions.

    >>> from autocoa.trajectory import action, observation
    >>> t = Trajectory("Q", (action("search", "x"), observation("[error] search failed: ConnectError: refused"),
    ...                      action("search", "y"), observation("[error] search timed out: 5 s"),
    ...                      action("search", "z"), observation("Doc 1 ...")))
    >>> tool_failures(t)
    2
    """
    n = 0
    for seg in traj.segments:
        if seg.kind is Kind.OBSERVATION:
            head = seg.text.strip()
            if head.startswith("[error] ") and (" failed: " in head or " timed out: " in head):
                n += 1
    return n


def hop_kind(hop: Mapping[str, Any]) -> str:
    """``common`` for a hop the pretraining text states (``known``), else ``rare``."""
    return "common" if hop.get("known") else "rare"


def check_observations(traj: Trajectory, chain: Sequence[Mapping[str, Any]], tool: str = SEARCH) -> list[dict]:
    """One record per search observation: ``query``, ``hop`` (index or None), ``kind``
    (:func:`hop_kind`), ``states_fact`` (the hop's object name occurs in the observation)
    and ``states_wrong`` (it states something else: a hallucination); the last three are
    None when the query matches no hop."""
    out = []
    for query, obs in search_observations(traj, tool):
        hop = match_hop(query, chain)
        if hop is None:
            out.append({"query": query, "hop": None, "kind": None, "states_fact": None, "states_wrong": None})
            continue
        fact = names(obs, chain[hop]["object"])
        wrong = not fact and not states_nothing(obs)
        out.append(
            {"query": query, "hop": hop, "kind": hop_kind(chain[hop]), "states_fact": fact, "states_wrong": wrong}
        )
    return out


def copy_checks(traj: Trajectory, chain: Sequence[Mapping[str, Any]], tool: str = SEARCH) -> list[bool]:
    """For every search observation that states the hop its query asks about (the rule of
    :func:`check_observations`), whether the next thought or answer restates the hop's object.

    >>> from autocoa.trajectory import action, answer, observation, think
    >>> chain = [{"subject": "Sonaku", "object": "Havite Institute"}]
    >>> good = (action("search", "Sonaku"), observation("Sonaku studied at Havite Institute."),
    ...         think("Sonaku studied at Havite Institute."), answer("Havite Institute"))
    >>> bad = (action("search", "Sonaku"), observation("Sonaku studied at Havite Institute."),
    ...        think("Sonaku studied at Kosite Institute."), answer("Kosite Institute"))
    >>> copy_checks(Trajectory("Q", good), chain), copy_checks(Trajectory("Q", bad), chain)
    ([True], [False])
    """
    segs = [s for s in traj.segments if not s.blank]
    out = []
    for i, seg in enumerate(segs[:-1]):
        nxt = segs[i + 1]
        if seg.kind is not Kind.ACTION or seg.tool != tool or not seg.closed or nxt.kind is not Kind.OBSERVATION:
            continue
        hop = match_hop(seg.text.strip(), chain)
        if hop is None or not names(nxt.text, chain[hop]["object"]):
            continue
        after = next((s for s in segs[i + 2 :] if s.kind in (Kind.THINK, Kind.ANSWER)), None)
        out.append(after is not None and names(after.text, chain[hop]["object"]))
    return out


def past_last_hop(traj: Trajectory, chain: Sequence[Mapping[str, Any]], tool: str = SEARCH) -> bool:
    """Whether the trajectory goes past the question's last hop: a search asks about the answer
    (the last hop's object, as whole tokens in the query), or a thought states the answer and
    the final answer is another name.

    >>> from autocoa.trajectory import action, answer, observation, think
    >>> chain = [{"subject": "Rute", "object": "Rifo Group"}]
    >>> read = (action("search", "Rute producer"), observation("Rute was produced by Rifo Group."))
    >>> stop = (*read, think("Rute was produced by Rifo Group."), answer("Rifo Group"))
    >>> search = (*read, action("search", "Rifo Group headquarters"), observation("It is in Bekila."), answer("Bekila"))
    >>> recall = (*read, think("Rute was produced by Rifo Group."), think("Rifo Group is in Bekila."), answer("Bekila"))
    >>> [past_last_hop(Trajectory("Q", t), chain) for t in (stop, search, recall, read)]
    [False, True, True, False]
    """
    target = chain[-1]["object"]
    if any(t == tool and names(q, target) for t, q in traj.actions):
        return True
    final = traj.answer
    stated = any(s.kind is Kind.THINK and names(s.text, target) for s in traj.segments)
    return stated and final is not None and not names(final, target)


def analyse(traj: Trajectory, chain: Sequence[Mapping[str, Any]] | None, n_search: int | None) -> dict[str, int]:
    """Per-question counts for a prediction row: ``searches`` always; with the world's
    ``n_search``, ``unneeded`` and ``missed``; with its ``chain``, ``obs_checked`` (matched
    observations), ``obs_fact`` (of those, stating the fact) and ``obs_unmatched``."""
    searches = n_searches(traj)
    out: dict[str, int] = {"searches": searches}
    if n_search is not None:
        out["unneeded"], out["missed"] = search_counts(searches, n_search)
    if chain:
        checks = check_observations(traj, chain)
        matched = [c for c in checks if c["hop"] is not None]
        out["obs_checked"] = len(matched)
        out["obs_fact"] = sum(1 for c in matched if c["states_fact"])
        out["obs_wrong"] = sum(1 for c in matched if c["states_wrong"])
        out["obs_unmatched"] = len(checks) - len(matched)
        copies = copy_checks(traj, chain)
        out["copy_checked"], out["copied"] = len(copies), sum(copies)
        out["past_last_hop"] = int(past_last_hop(traj, chain))
        for kind in KINDS:
            of_kind = [c for c in matched if c["kind"] == kind]
            out[f"obs_checked_{kind}"] = len(of_kind)
            out[f"obs_fact_{kind}"] = sum(1 for c in of_kind if c["states_fact"])
            out[f"obs_wrong_{kind}"] = sum(1 for c in of_kind if c["states_wrong"])
    return out


KINDS = ("rare", "common")


def observation_shares(rows: Iterable[Mapping[str, Any]], kind: str | None = None) -> dict[str, Any]:
    """Pooled over the rows' matched observations (of one hop ``kind``, or all): ``checked``,
    ``fact`` (share stating the hop's object) and ``wrong`` (share stating something else);
    the shares are None when nothing was checked.

    >>> rows = [{"obs_checked": 3, "obs_fact": 2, "obs_wrong": 1}, {"obs_checked": 1, "obs_fact": 0, "obs_wrong": 0}]
    >>> observation_shares(rows)
    {'checked': 4, 'fact': 0.5, 'wrong': 0.25}
    """
    suffix = f"_{kind}" if kind else ""
    rows = [r for r in rows if f"obs_checked{suffix}" in r]
    checked = sum(r[f"obs_checked{suffix}"] for r in rows)
    fact = sum(r[f"obs_fact{suffix}"] for r in rows)
    wrong = sum(r.get(f"obs_wrong{suffix}", 0) for r in rows)
    return {
        "checked": checked,
        "fact": fact / checked if checked else None,
        "wrong": wrong / checked if checked else None,
    }


def summarise(rows: Iterable[Mapping[str, Any]], simulated: bool) -> dict[str, Any]:
    """Means over the rows that carry the fields of :func:`analyse`.

    ``unneeded_searches`` / ``missed_searches``: mean per question; ``exact_searches``: share
    of questions with exactly ``n_search`` searches; ``past_last_hop``: share of questions
    whose trajectory goes past the last hop (:func:`past_last_hop`). The observation check is pooled over
    observations and reported as ``fidelity`` (simulated) or ``retrieval_hit`` (real).
    """
    rows = list(rows)
    out: dict[str, Any] = {}
    world = [r for r in rows if "unneeded" in r]
    if world:
        n = len(world)
        out["unneeded_searches"] = sum(r["unneeded"] for r in world) / n
        out["missed_searches"] = sum(r["missed"] for r in world) / n
        out["exact_searches"] = sum(1 for r in world if r["unneeded"] == r["missed"] == 0) / n
        out["n_with_needs"] = n
    checked = [r for r in rows if "obs_checked" in r]
    if checked:
        total = sum(r["obs_checked"] for r in checked)
        fact = sum(r["obs_fact"] for r in checked)
        out["past_last_hop"] = sum(r.get("past_last_hop", 0) for r in checked) / len(checked)
        out["observations"] = {
            "checked": total,
            "states_fact": fact,
            "unmatched": sum(r["obs_unmatched"] for r in checked),
            "simulated": simulated,
            "by_kind": {kind: observation_shares(checked, kind) for kind in KINDS},
        }
        shares = observation_shares(checked)
        if simulated:
            out["fidelity"], out["hallucination"] = shares["fact"], shares["wrong"]
            for kind in KINDS:
                out[f"fidelity_{kind}"] = out["observations"]["by_kind"][kind]["fact"]
        else:
            out["retrieval_hit"] = shares["fact"]
            copy_checked = sum(r.get("copy_checked", 0) for r in checked)
            if copy_checked:
                out["copy_accuracy"] = sum(r.get("copied", 0) for r in checked) / copy_checked
                out["copy_checked"] = copy_checked
    return out
