"""Prompts: how a question becomes the text the agent continues.

A tokenizer with a chat template (a real instruct / reasoning model) gets a system message
that explains the tags and the tools; the tiny default model, which learns the format in
SFT, gets the bare ``Question: ...`` line. One function, used by synthesis, training,
evaluation and serving, so that a model always sees the prompt it was trained with.
"""

from __future__ import annotations

from typing import Any

from autocoa.tags import ACTION_DESCRIPTIONS, DEFAULT_TAGS, Tags

PLAIN_TEMPLATE = "Question: {question}\n"


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
        messages = [
            {"role": "system", "content": instructions(tags)},
            {"role": "user", "content": question},
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return PLAIN_TEMPLATE.format(question=question.strip())
