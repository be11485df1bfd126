"""Every `autocoa` command line in README.md and docs/*.md parses against the CLI itself:
the subcommand exists, every option it passes is one of that command's, and every required
option is given. A renamed option or a typo in a page fails here, not in a user's terminal."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from autocoa.cli import app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def command_lines(text: str) -> list[str]:
    """The `autocoa ...` invocations of a page's bash blocks (continuations joined, comments
    and `accelerate launch ... -m` prefixes dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = " ".join(re.sub(r"(^|\s)#.*$", "", line).split())
            for part in re.split(r"\s*(?:&&|;|\|)\s*", line):
                m = re.search(r"(?:^|\s-m\s|^)(autocoa\s.*)$", part)
                if m and not part.startswith(("pip", "python3 -m venv")):
                    out.append(m.group(1))
    return out


def check(line: str, root) -> list[str]:
    """What is wrong with one invocation (empty: nothing). ``root``: the CLI's click group
    (typer vendors its own click, so groups and options are recognised by what they have)."""
    words = shlex.split(line.replace("$", "X"))[1:]
    cmd = root
    while hasattr(cmd, "commands") and words and not words[0].startswith("-"):
        sub = cmd.commands.get(words[0])
        if sub is None:
            return [f"{line}: no command {words[0]!r}"]
        cmd, words = sub, words[1:]
    if hasattr(cmd, "commands"):
        return [] if "--help" in words else [f"{line}: names a group, not a command"]
    opts = {o: p for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    problems, given = [], set()
    for w in words:
        if w.startswith("--"):
            name = w.split("=", 1)[0]
            if name not in opts and name != "--help":
                problems.append(f"{line}: {name} is not an option of `{cmd.name}`")
            elif name in opts:
                given.add(opts[name].name)
    for p in cmd.params:
        option = p.param_type_name == "option"
        elided = "..." in words  # "autocoa eval ... --method coa": the page shortens a command shown above
        if p.required and option and p.name not in given and "--help" not in words and not elided:
            problems.append(f"{line}: required {p.opts[0]} missing")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_line_parses(page):
    root = typer.main.get_command(app)
    lines = command_lines(page.read_text(encoding="utf-8"))
    problems = [p for line in lines for p in check(line, root)]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_what_it_should():
    root = typer.main.get_command(app)
    assert check("autocoa demo --out runs/x --seed 2", root) == []
    assert check("autocoa demo --outt runs/x", root) == [
        "autocoa demo --outt runs/x: --outt is not an option of `demo`"
    ]
    assert "required --out missing" in check("autocoa world --seed 1", root)[0]
    assert "no command 'nope'" in check("autocoa nope --x", root)[0]
    assert command_lines("```bash\nautocoa eval --model m \\\n  --data d  # a comment\n```\n") == [
        "autocoa eval --model m --data d"
    ]


def test_the_pages_do_show_commands():
    assert len([line for page in PAGES for line in command_lines(page.read_text(encoding="utf-8"))]) >= 30
