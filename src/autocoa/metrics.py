"""Answer metrics: THE one place that says when an answer is right.

RL rewards and evaluation both call these functions, so a reward and the number reported
for the same answer can never disagree. Everything here is pure, and cheap enough to run on
every rollout.

- :func:`normalize_answer` -- SQuAD normalisation (lowercase, drop punctuation, drop the
  articles a/an/the, collapse whitespace), extended to Unicode punctuation (below).
- :func:`exact_match` -- normalised prediction equals a normalised gold.
- :func:`f1` / :func:`f1_parts` -- token F1 (SQuAD), best over the golds, with HotpotQA's
  rule that a yes/no/noanswer prediction or gold scores 0 unless the two are equal.
- :func:`cover_exact_match` -- "cover EM" (a.k.a. ``acc``/``subem``): a normalised gold
  occurs inside the normalised prediction.
- :func:`score_one` and :func:`aggregate` -- one row's scores; means, counts and
  breakdowns (hop count, number of actions: the paper's Fig. 3 quantities).
- :func:`faith_score` and :func:`mrfs` -- Chain-of-Action's multi-reference faith score
  (Pan et al., 2024): how well an answer is backed by the references retrieved for it.

Golds are a string or a list of strings; a prediction matches if it matches *any* gold. A
prediction that is None or normalises to nothing scores 0 on every metric, and so does a
gold that normalises to nothing (it can never be matched). An empty list of golds is a data
error (ValueError), not a silent 0.

Where we depart from the usual code, and why:

- Unicode punctuation. SQuAD removes only ASCII ``string.punctuation``, so ``“Paris”`` or
  ``Lyon–Paris`` keep their curly quotes and en dash, and a model that types typographic
  quotes loses EM. We also remove every character whose Unicode category is punctuation
  (``P*``: “ ” ‘ ’ – — … « » ¿ 、 ...). On ASCII text the result is exactly SQuAD's.
  Text is put in NFC first, so a precomposed ``é`` and ``e`` + combining accent compare
  equal. Accents are *kept* (``Zürich`` != ``Zurich``), as in SQuAD; stripping them would
  also merge names that differ. No NFKC: it rewrites ``²`` to ``2`` and ``™`` to ``tm``.
- Cover EM. Implementations differ: Search-R1's ``subem_check`` and FlashRAG's ``acc`` test
  a *character* substring of the normalised strings (so gold ``art`` covers ``martin``, and
  gold ``no`` covers ``not sure``); R1-Searcher's ``cover_exact_match_score_1`` tests that
  every gold token occurs somewhere in the prediction, in any order. Our default,
  ``mode="tokens"``, asks for the gold's tokens as a *contiguous run of whole tokens*: the
  boundary-safe form of the substring test, and stricter than both. The two other
  definitions are there as ``mode="substring"`` and ``mode="bag"`` to reproduce published
  numbers.
- R1-Searcher maps a prediction of ``True``/``False`` to yes/no and replaces punctuation by
  spaces instead of deleting it; we follow SQuAD and HotpotQA's official scripts instead.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

METRICS = ("em", "f1", "cover_em")
CoverMode = Literal["tokens", "substring", "bag"]
_COVER_MODES = ("tokens", "substring", "bag")

_ASCII_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_YES_NO = frozenset({"yes", "no", "noanswer"})


def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def normalize_answer(s: str | None) -> str:
    """SQuAD normalisation, with Unicode punctuation removed too (see the module docstring).

    >>> normalize_answer("The  Eiffel Tower!")
    'eiffel tower'
    >>> normalize_answer("“Anarchy in the U.K.” – Sex Pistols")
    'anarchy in uk sex pistols'
    >>> normalize_answer("Theatre, an apple a day")  # articles only as whole words
    'theatre apple day'
    >>> normalize_answer(None)
    ''
    """
    if not s:
        return ""
    s = unicodedata.normalize("NFC", s).lower()
    s = "".join(ch for ch in s if not _is_punct(ch))
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _gold_list(golds: str | Sequence[str]) -> list[str]:
    if isinstance(golds, str):
        return [golds]
    golds = list(golds) if golds is not None else []
    if not golds:
        raise ValueError("no gold answers")
    for g in golds:
        if not isinstance(g, str):
            raise TypeError(f"a gold answer must be a string, got {type(g).__name__}")
    return golds


def exact_match(pred: str | None, golds: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals a normalised gold, else 0.0.

    >>> exact_match("the Beatles.", ["The Rolling Stones", "Beatles"])
    1.0
    >>> exact_match("Beatles, the band", "Beatles")
    0.0
    """
    p = normalize_answer(pred)
    return float(bool(p) and any(p == normalize_answer(g) for g in _gold_list(golds)))


class PRF(NamedTuple):
    """Token F1 with its precision and recall."""

    f1: float
    precision: float
    recall: float


_ZERO = PRF(0.0, 0.0, 0.0)


def _token_prf(p: str, g: str) -> PRF:
    """Token F1 of two *normalised* strings (HotpotQA's official rule)."""
    if not p or not g:
        return _ZERO
    if (p in _YES_NO or g in _YES_NO) and p != g:
        return _ZERO
    pt, gt = p.split(), g.split()
    same = sum((Counter(pt) & Counter(gt)).values())
    if same == 0:
        return _ZERO
    precision, recall = same / len(pt), same / len(gt)
    return PRF(2 * precision * recall / (precision + recall), precision, recall)


def f1_parts(pred: str | None, golds: str | Sequence[str]) -> PRF:
    """Token F1, precision and recall against the gold with the highest F1 (first on ties).

    >>> f1_parts("Barack Obama Sr.", "Barack Obama")
    PRF(f1=0.8, precision=0.6666666666666666, recall=1.0)
    """
    p = normalize_answer(pred)
    return max((_token_prf(p, normalize_answer(g)) for g in _gold_list(golds)), key=lambda r: r.f1)


def f1(pred: str | None, golds: str | Sequence[str]) -> float:
    """Token F1, best over the golds; a yes/no/noanswer mismatch scores 0 (HotpotQA).

    >>> f1("Barack Obama Sr.", ["Obama", "Barack Obama"])
    0.8
    >>> f1("no", "no way")  # token overlap, but "no" is a yes/no answer
    0.0
    """
    return f1_parts(pred, golds).f1


def _covers(p: str, g: str, mode: CoverMode) -> bool:
    if not p or not g:
        return False
    if mode == "substring":
        return g in p
    pt, gt = p.split(), g.split()
    if mode == "bag":
        return set(gt) <= set(pt)
    n = len(gt)
    return any(pt[i : i + n] == gt for i in range(len(pt) - n + 1))


def cover_exact_match(pred: str | None, golds: str | Sequence[str], mode: CoverMode = "tokens") -> float:
    """1.0 if some normalised gold occurs inside the normalised prediction.

    ``mode="tokens"`` (default): as a contiguous run of whole tokens. ``"substring"``: as a
    character substring (Search-R1 ``subem_check``, FlashRAG ``acc``). ``"bag"``: every gold
    token occurs somewhere (R1-Searcher ``cover_exact_match_score_1``).

    >>> cover_exact_match("It was Marie Curie, in 1903.", "Marie Curie")
    1.0
    >>> cover_exact_match("Martin", "art"), cover_exact_match("Martin", "art", mode="substring")
    (0.0, 1.0)
    >>> cover_exact_match("Curie, Marie", "Marie Curie"), cover_exact_match("Curie, Marie", "Marie Curie", mode="bag")
    (0.0, 1.0)
    """
    if mode not in _COVER_MODES:
        raise ValueError(f"unknown cover mode {mode!r}; expected one of {_COVER_MODES}")
    p = normalize_answer(pred)
    return float(any(_covers(p, normalize_answer(g), mode) for g in _gold_list(golds)))


def names(text: str, name: str) -> bool:
    """Whether ``text`` names ``name``: its normalised tokens occur as a contiguous run of whole
    tokens (:func:`cover_exact_match`). The one rule for "this text states / asks about X", in
    question generation, the oracle teacher and the fidelity analysis.

    >>> names("Athumashe is a city in Duthepa.", "Duthepa"), names("Banana", "Ana")
    (True, False)
    """
    return bool(cover_exact_match(text, name))


def score_one(pred: str | None, golds: str | Sequence[str], cover_mode: CoverMode = "tokens") -> dict[str, float]:
    """The scores of one prediction: ``{"em", "f1", "cover_em"}``.

    >>> score_one("Paris, France", ["Paris"])
    {'em': 0.0, 'f1': 0.6666666666666666, 'cover_em': 1.0}
    """
    return {
        "em": exact_match(pred, golds),
        "f1": f1(pred, golds),
        "cover_em": cover_exact_match(pred, golds, mode=cover_mode),
    }


def _means(rows: Sequence[Mapping[str, Any]], correct: str) -> dict[str, Any]:
    n = len(rows)
    out: dict[str, Any] = {"n": n}
    for m in METRICS:
        out[m] = sum(r[m] for r in rows) / n if n else 0.0
    out["n_correct"] = sum(1 for r in rows if r[correct] >= 1.0)
    return out


def _group_order(key: Hashable) -> tuple:
    # None last, numbers in numeric order, everything else by its text.
    if key is None:
        return (2, 0, "")
    if isinstance(key, int | float) and not isinstance(key, bool):
        return (0, key, "")
    return (1, 0, str(key))


def aggregate(
    rows: Iterable[Mapping[str, Any]],
    by: str | Sequence[str] | None = None,
    correct: str = "em",
) -> dict[str, Any]:
    """Means and counts of scored rows, overall and broken down by one or more keys.

    Each row holds the :data:`METRICS` (as :func:`score_one` returns them) plus any keys to
    break down by (e.g. ``hops``, ``n_actions``). A row is *correct* when its ``correct``
    metric is 1. Each group of a breakdown reports, besides its means, the paper's Fig. 3
    quantities: ``share_of_correct`` (the fraction of *all* correct answers that fall in this
    group) and ``accuracy`` (the fraction of the group's questions answered correctly).
    Groups are ordered numerically where the keys are numbers; a missing key is a KeyError.

    >>> rows = [
    ...     {"em": 1.0, "f1": 1.0, "cover_em": 1.0, "n_actions": 1},
    ...     {"em": 0.0, "f1": 0.5, "cover_em": 1.0, "n_actions": 2},
    ...     {"em": 1.0, "f1": 1.0, "cover_em": 1.0, "n_actions": 2},
    ...     {"em": 1.0, "f1": 1.0, "cover_em": 1.0, "n_actions": 2},
    ... ]
    >>> out = aggregate(rows, by="n_actions")
    >>> out["n"], out["em"], out["f1"]
    (4, 0.75, 0.875)
    >>> {k: (g["n"], g["share_of_correct"], g["accuracy"]) for k, g in out["by"]["n_actions"].items()}
    {1: (1, 0.3333333333333333, 1.0), 2: (3, 0.6666666666666666, 0.6666666666666666)}
    """
    if correct not in METRICS:
        raise ValueError(f"correct must be one of {METRICS}, got {correct!r}")
    rows = list(rows)
    keys = [by] if isinstance(by, str) else list(by or ())
    out = _means(rows, correct)
    out["correct"] = correct
    if not keys:
        return out
    out["by"] = {}
    total_correct = out["n_correct"]
    for key in keys:
        groups: dict[Hashable, list[Mapping[str, Any]]] = defaultdict(list)
        for i, r in enumerate(rows):
            if key not in r:
                raise KeyError(f"row {i} has no key {key!r} to break down by")
            groups[r[key]].append(r)
        table = {}
        for value in sorted(groups, key=_group_order):
            g = _means(groups[value], correct)
            g["share"] = g["n"] / len(rows)
            g["share_of_correct"] = g["n_correct"] / total_correct if total_correct else 0.0
            g["accuracy"] = g["n_correct"] / g["n"]
            table[value] = g
        out["by"][key] = table
    return out


class FaithWeights(NamedTuple):
    """MRFS's weights on precision, recall and the length term, and the threshold below which
    a guess counts as unfaithful. The defaults are the values of the Chain-of-Action authors'
    released code (``0.3 P + 0.3 R + 0.4 AWL``, kept when the score is above 2)."""

    precision: float = 0.3
    recall: float = 0.3
    length: float = 0.4
    threshold: float = 2.0


class Faith(NamedTuple):
    precision: float
    recall: float
    awl: float
    score: float


def faith_score(answer: str | None, reference: str, weights: FaithWeights = FaithWeights()) -> Faith:
    """Chain-of-Action's per-reference faith score of ``answer`` against one ``reference``:
    ``w_p * P + w_r * R + w_l * AWL``, where, over the normalised words (:func:`normalize_answer`)
    of the answer ``A`` and of the reference ``R`` and their shared *distinct* words ``A & R``,
    ``P = |A & R| / |A|``, ``R = |A & R| / |R|`` and ``AWL`` is the answer's average word length
    in characters (the paper's length term: a terse guess of short words scores lower). An
    empty answer scores 0. Departure from the authors' code: it splits raw text on whitespace,
    so ``Paris.`` and ``paris`` share nothing; we normalise first, as every other metric here.

    >>> faith_score("Sabeto", "Kemaru Doli was born in Sabeto.")  # 1 of 1 answer word, of 6 reference words
    Faith(precision=1.0, recall=0.16666666666666666, awl=6.0, score=2.75)
    >>> faith_score("Orvadi", "Kemaru Doli was born in Sabeto.").score  # no shared word: AWL only
    2.4
    >>> faith_score("", "anything").score
    0.0
    """
    a = normalize_answer(answer).split()
    r = normalize_answer(reference).split()
    if not a:
        return Faith(0.0, 0.0, 0.0, 0.0)
    shared = len(set(a) & set(r))
    p = shared / len(a)
    rec = shared / len(r) if r else 0.0
    awl = sum(len(w) for w in a) / len(a)
    return Faith(p, rec, awl, round(weights.precision * p + weights.recall * rec + weights.length * awl, 12))


def mrfs(answer: str | None, references: Sequence[str], weights: FaithWeights = FaithWeights()) -> tuple[float, int]:
    """The multi-reference faith score: the best :func:`faith_score` of ``answer`` over
    ``references``, and the index of the reference that gave it (``(0.0, -1)`` without
    references). CoA keeps a guess whose MRFS exceeds ``weights.threshold`` and replaces the
    others with what the references say.

    >>> refs = ["Orvadi lies in Tesmar.", "Lunaro Pev was born in Orvadi."]
    >>> mrfs("Orvadi", refs)
    (2.775, 0)
    >>> w = FaithWeights(0.5, 0.5, 0.0, 0.3)  # overlap only, no length term
    >>> mrfs("born in Orvadi", refs, w)[0] > w.threshold, mrfs("Sabeto", refs, w)[0] > w.threshold
    (True, False)
    >>> mrfs("Orvadi", [])
    (0.0, -1)
    """
    best, at = 0.0, -1
    for i, ref in enumerate(references):
        s = faith_score(answer, ref, weights).score
        if at < 0 or s > best:
            best, at = s, i
    return best, at
