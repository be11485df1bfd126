"""Prompts: how a question becomes the text the agent continues.

A tokenizer with a chat template (a real instruct / reasoning model) gets, in the ``system``
style, a system message that explains the tags and the tools, or, in the ``short`` style, the
question alone as the user turn (the chat template's own default system line, if it has one,
stays): ~100 fewer tokens per example, for a model that learns the format from the data
anyway. The style travels with the checkpoint's tokenizer (``tokenizer_config.json``,
:func:`set_prompt_style`), so every stage after the one that chose it (SFT's ``prompt``)
prompts alike. The tiny default model, which learns the format in SFT, gets the bare
``Question: ...`` line. One function, used by synthesis, training, evaluation and serving, so
that a model always sees the prompt it was trained with.
"""

from __future__ import annotations

from typing import Any

from autocoa.tags import ACTION_DESCRIPTIONS, DEFAULT_TAGS, Tags

PLAIN_TEMPLATE = "Question: {question}\n"
PROMPT_STYLES = ("system", "short")
_STYLE_KEY = "autocoa_prompt"  # in the tokenizer's init kwargs: saved with it, read back on load


def prompt_style(tokenizer: Any) -> str:
    """The prompt style the tokenizer's checkpoint was trained with (``system`` when unset)."""
    return (getattr(tokenizer, "init_kwargs", None) or {}).get(_STYLE_KEY, "system")


def set_prompt_style(tokenizer: Any, style: str) -> None:
    """Make ``style`` the tokenizer's (and, once saved, its checkpoint's) prompt style."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; expected one of {', '.join(PROMPT_STYLES)}")
    tokenizer.init_kwargs[_STYLE_KEY] = style


def instructions(tags: Tags = DEFAULT_TAGS) -> str:
    """The system message of a chat model: the tags, and each action with its description.

    >>> lines = instructions(Tags(actions=("search", "lookup"))).splitlines()
    >>> lines[1].startswith("- <search> ... </search>: search the encyclopedia"), lines[2]
    (True, '- <lookup> ... </lookup>: the lookup tool')
    """
    tools = "\n".join(
        f"- <{name}> ... </{name}>: {ACTION_DESCRIPTIONS.get(name, f'the {name} tool')}" for name in tags.actions
    )
    return (
        "Answer the question. Reason inside <think> </think>. When you need information you do not have, "
        "call a tool by writing its tag; the result comes back inside <result> </result>. Tools:\n"
        f"{tools}\nGive the final short answer inside <answer> </answer>."
    )


def format_prompt(question: str, tokenizer: Any, tags: Tags = DEFAULT_TAGS) -> str:
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": question}]
        if prompt_style(tokenizer) == "system":
            messages.insert(0, {"role": "system", "content": instructions(tags)})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return PLAIN_TEMPLATE.format(question=question.strip())
