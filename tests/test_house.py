"""Rules of the house that the code itself can be checked against."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "autocoa"
LONG = 60  # lines, def to end


def long_functions() -> list[tuple[str, int, int, str | None]]:
    """(file, line, length, reason) of every function over LONG lines; the reason is the
    ``# long: ...`` comment on the line above its ``def`` (or above its decorators)."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > LONG:
                    top = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    above = lines[top - 2].strip() if top >= 2 else ""
                    reason = above.removeprefix("# long:").strip() if above.startswith("# long:") else None
                    out.append((str(path.relative_to(SRC)), node.lineno, length, reason))
    return out


def test_every_function_over_60_lines_says_why():
    missing = [f"{f}:{line} ({n} lines)" for f, line, n, reason in long_functions() if not reason]
    assert not missing, "add a '# long: <reason>' comment above these, or split them: " + ", ".join(missing)


def test_the_rule_sees_long_functions():
    assert len(long_functions()) >= 5  # the scan works (they exist, each with its reason)
