"""Tools the agent can call: the protocol and toolbox (``base``), a registry of tool
factories by name, and the tools themselves (``search``, ``calculator``).

    toolbox = Toolbox([create_tool("search", index="index/"), create_tool("calculate")])

A new tool is any object with ``name``, ``description`` and ``call(argument) -> str``;
``register_tool("lookup", make_lookup)`` makes it creatable by name (``create_tool``), and
``autocoa eval --plugin MODULE`` imports the module that registers it (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from autocoa.lazy import resolve
from autocoa.tools.base import Tool, Toolbox, ToolStats, escape_tags

if TYPE_CHECKING:
    from autocoa.tools.search import Retrieval


def __getattr__(name: str) -> Any:  # Retrieval on first use: importing autocoa.tools stays light
    if name == "Retrieval":
        from autocoa.tools.search import Retrieval

        return Retrieval
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Built-in factories, as "module:attribute" so that importing autocoa.tools stays light.
_REGISTRY: dict[str, Callable[..., Tool] | str] = {
    "search": "autocoa.tools.search:open_search",
    "calculate": "autocoa.tools.calculator:Calculator",
}


def register_tool(name: str, factory: Callable[..., Tool]) -> None:
    """Make ``create_tool(name, **kwargs)`` call ``factory(**kwargs)``."""
    if name in _REGISTRY:
        raise ValueError(f"a tool factory named {name!r} is already registered")
    _REGISTRY[name] = factory


def tool_names() -> list[str]:
    return sorted(_REGISTRY)


def create_tool(name: str, **kwargs: Any) -> Tool:
    """A tool by its registered name; ``kwargs`` go to its factory."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown tool {name!r}; registered: {', '.join(tool_names())}")
    return resolve(_REGISTRY[name])(**kwargs)


def open_toolbox(
    retrieval: Retrieval,
    *,
    k: int = 3,
    calculator: bool = True,
    max_chars: int = 2000,
    timeout: float = 10.0,
) -> Toolbox:
    """The agent's standard toolbox: search over ``retrieval`` (a local index directory or a
    retrieval server), plus the calculator. Used by ``run``, ``eval``, ``chat``, ``serve`` and RL
    so that every command offers the model the same tools."""
    tools: list[Tool] = [retrieval.search_tool(k, timeout=timeout)]
    if calculator:
        tools.append(create_tool("calculate"))
    return Toolbox(tools, max_chars=max_chars)


__all__ = [
    "Retrieval",
    "Tool",
    "ToolStats",
    "Toolbox",
    "create_tool",
    "escape_tags",
    "open_toolbox",
    "register_tool",
    "tool_names",
]
