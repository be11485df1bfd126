"""Chain-of-Action's chain (Pan et al., 2024): the prompts that ask for it, use it and end it,
and the parser of the model's reply. Pure functions of text; the workflow is in
:mod:`autocoa.coa.method`.

A chain is a list of nodes, in the order they must be solved. Each node names an action
(``search``: the web query, here our search tool; ``knowledge``: the user's own documents, a
second index; ``calculate``: the data-analysis action, here the calculator), a sub-question
(the action's argument), whether the model lacks the knowledge to answer it (``missing``) and
its guess. The reply is JSON, as in the paper's prompt; the parser is tolerant of what models
wrap around it (prose, code fences) and of key spellings, and strict about what it needs: a
reply it cannot use raises :class:`ChainError` with the reason, which the workflow records for
that question alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ACTIONS = ("search", "knowledge", "calculate")
_ACTION_NAMES = {  # the paper's engine names and the spellings models use, to our actions
    "search": "search",
    "web search": "search",
    "web query": "search",
    "web querying": "search",
    "web querying engine": "search",
    "knowledge": "knowledge",
    "knowledge encoding": "knowledge",
    "knowledge encoding engine": "knowledge",
    "information analyzing engine": "knowledge",
    "calculate": "calculate",
    "calculator": "calculate",
    "data analysis": "calculate",
    "data analyzing": "calculate",
    "data analyzing engine": "calculate",
}
_UNKNOWN = {"", "unknown", "[unknown]", "none", "n/a", "?"}


class ChainError(ValueError):
    """The model's reply holds no usable chain (the message says why)."""


@dataclass(frozen=True)
class Node:
    action: str
    sub: str
    missing: bool
    guess: str


def _clip(s: str, n: int = 80) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."


def _first_json_object(reply: str) -> dict[str, Any]:
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", reply):
        try:
            obj, _ = decoder.raw_decode(reply, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise ChainError(f"no JSON object in the reply: {_clip(reply)!r}")


def _key(d: dict[str, Any], *names: str) -> Any:
    """The value under the first of ``names`` present, compared without case, '_' or '-'."""
    folded = {re.sub(r"[\s_-]", "", str(k)).lower(): v for k, v in d.items()}
    for n in names:
        if n in folded:
            return folded[n]
    return None


def _flag(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "1"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("no", "false", "0"):
        return False
    raise ChainError(f"{where}: 'Missing' must be true or false, not {value!r}")


def parse_chain(reply: str, max_nodes: int = 6) -> tuple[list[Node], bool]:
    """The nodes of the chain in ``reply`` and whether it was cut at ``max_nodes``.

    >>> nodes, cut = parse_chain('Sure! {"Chain": [{"Action": "Web-querying Engine", "Sub": "Lunaro Pev born",'
    ...                          ' "Missing": true, "Guess": ""}], "Final": "?"}')
    >>> nodes, cut
    ([Node(action='search', sub='Lunaro Pev born', missing=True, guess='')], False)
    >>> parse_chain('{"Chain": [{"Action": "search", "Sub": "x", "Guess": "[Unknown]"}]}')[0][0].missing
    True
    >>> parse_chain("I don't know.")
    Traceback (most recent call last):
    ...
    autocoa.coa.chain.ChainError: no JSON object in the reply: "I don't know."
    >>> parse_chain('{"Chain": [{"Action": "fly", "Sub": "x"}]}')
    Traceback (most recent call last):
    ...
    autocoa.coa.chain.ChainError: node 1: unknown action 'fly' (expected search, knowledge or calculate)
    """
    obj = _first_json_object(reply)
    chain = _key(obj, "chain", "steps")
    if not isinstance(chain, list) or not chain:
        raise ChainError(f"the reply's JSON has no non-empty 'Chain' list: {_clip(json.dumps(obj))!r}")
    nodes = []
    for i, raw in enumerate(chain[:max_nodes], start=1):
        where = f"node {i}"
        if not isinstance(raw, dict):
            raise ChainError(f"{where} is not an object: {_clip(json.dumps(raw))!r}")
        action = _key(raw, "action")
        name = _ACTION_NAMES.get(re.sub(r"[\s_-]+", " ", str(action or "")).strip().lower())
        if name is None:
            expected = f"{', '.join(ACTIONS[:-1])} or {ACTIONS[-1]}"
            raise ChainError(f"{where}: unknown action {action!r} (expected {expected})")
        sub = _key(raw, "sub", "subquestion", "query")
        if not isinstance(sub, str) or not sub.strip():
            raise ChainError(f"{where}: no 'Sub' (the sub-question)")
        guess = _key(raw, "guess", "guessanswer", "answer")
        guess = "" if guess is None else str(guess).strip()
        unknown = guess.lower() in _UNKNOWN
        missing = _flag(_key(raw, "missing", "missingflag"), where)
        nodes.append(Node(name, " ".join(sub.split()), unknown if missing is None else (missing or unknown), guess))
    return nodes, len(chain) > max_nodes


def short_answer(reply: str) -> str:
    """The answer in a final reply: its first non-empty line, without an ``Answer:`` label,
    quotes or a closing full stop.

    >>> short_answer("Final answer: Tesmar.\\nBecause Orvadi lies in Tesmar.")
    'Tesmar'
    >>> short_answer('"Sabeto"')
    'Sabeto'
    """
    line = next((ln.strip() for ln in reply.splitlines() if ln.strip()), "")
    line = re.sub(r"^(final\s+)?answer\s*[:\-]\s*", "", line, flags=re.I)
    return line.strip().strip("\"'").rstrip(".").strip()


# Two worked examples, as earlier turns (few-shot: small chat models copy a format from their
# own previous replies far better than from a description); invented names in the synthetic
# world's style, not the world's.
EXAMPLES = (
    (
        "Where was Kemaru Doli born?",
        {
            "Chain": [{"Action": "search", "Sub": "Where was Kemaru Doli born?", "Missing": True, "Guess": ""}],
            "Final": "",
        },
    ),
    (
        "In which country is the city where Lunaro Pev was born?",
        {
            "Chain": [
                {"Action": "search", "Sub": "Where was Lunaro Pev born?", "Missing": False, "Guess": "Orvadi"},
                {"Action": "search", "Sub": "In which country is Orvadi?", "Missing": True, "Guess": ""},
            ],
            "Final": "",
        },
    ),
)
INSTRUCTIONS = (
    "Build a chain of actions that answers the question. Split it into sub-questions, in the order they must "
    'be answered; a later sub-question may name an earlier one\'s answer. For each give "Action": "search" '
    '(look it up in the encyclopedia), "knowledge" (look it up in the local documents) or "calculate" '
    '(arithmetic: then "Sub" is the expression, like "(3 + 4) * 2"); "Sub": the sub-question; "Missing": '
    'true if you do not know its answer, false if you do; "Guess": your answer, or "" when missing. Then '
    '"Final": your answer to the question, or "". Reply with JSON only.'
)


def decompose_prompt(question: str) -> list[dict[str, str]]:
    """Step 1: ask for the chain (one LLM call): the instructions, two worked examples as
    earlier turns, the question."""
    messages = [{"role": "system", "content": INSTRUCTIONS}]
    for q, chain in EXAMPLES:
        messages += [{"role": "user", "content": f"Question: {q}"}, {"role": "assistant", "content": json.dumps(chain)}]
    return [*messages, {"role": "user", "content": f"Question: {question}"}]


def fill_prompt(sub: str, references: Sequence[str]) -> list[dict[str, str]]:
    """Step 3's replacement: answer a sub-question from its references (one LLM call)."""
    refs = "\n".join(f"[{i}] {r}" for i, r in enumerate(references, start=1)) or "(none)"
    content = (
        f"References:\n{refs}\n\nAnswer the question with a short phrase taken from the references, and "
        f"nothing else.\nQuestion: {sub}\nAnswer:"
    )
    return [{"role": "user", "content": content}]


def final_prompt(question: str, chain: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Step 4: answer from the verified chain (one LLM call)."""
    lines = "\n".join(f"{i}. {sub} -> {ans or 'unknown'}" for i, (sub, ans) in enumerate(chain, start=1))
    content = (
        f"Verified reasoning chain (sub-question -> answer):\n{lines}\n\nFrom this chain, answer the question "
        f"with a short answer only.\nQuestion: {question}\nAnswer:"
    )
    return [{"role": "user", "content": content}]
