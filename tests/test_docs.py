"""The docs stay true and readable: every relative link of README.md and docs/ resolves (its
#anchor too), the README stays short, a wide results table is collapsed, every results column is
defined in the glossary, and every refusal message's pointer names a section that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autocoa.recipe.study_report import COLUMNS

ROOT = Path(__file__).resolve().parent.parent
# the pages people read; the generated study reports under docs/results/ are records, kept as written
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The page without its fenced code blocks (a link-like string in code is not a link)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def anchors(text: str) -> set[str]:
    """The #anchors a page has: GitHub's heading slugs and explicit ``<a id=...>`` / ``name``."""
    out = set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    for heading in re.findall(r"^#{1,6} (.+)$", prose(text), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def broken_links(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    problems = []
    for target in LINK.findall(prose(text)):
        if re.match(r"[a-z]+:", target) or target.startswith("//"):
            continue  # http(s), mailto: not checked here
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"{page.relative_to(ROOT)}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{page.relative_to(ROOT)}: {target}: no such anchor")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert not broken_links(page), "\n".join(broken_links(page))


def test_the_link_checker_catches_a_broken_link_and_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# A title\n\n[ok](b.md#the-part) [bad](c.md) [bad anchor](b.md#nope)\n")
    (tmp_path / "b.md").write_text("## The part\n")
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        assert broken_links(tmp_path / "a.md") == ["a.md: c.md: no such file", "a.md: b.md#nope: no such anchor"]
    finally:
        ROOT = root


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 200, f"README.md has {lines} lines (at most 200: move detail to docs/)"


def wide_tables_outside_details(text: str, most: int = 10) -> list[str]:
    """Header lines of tables with more than ``most`` columns that no collapsed (not ``open``)
    ``<details>`` block holds."""
    out, depth = [], 0
    lines = prose(text).splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*<details>", line):
            depth += 1
        elif re.match(r"\s*</details>", line):
            depth -= 1
        is_header = line.startswith("|") and i + 1 < len(lines) and re.match(r"\|\s*:?-", lines[i + 1])
        if is_header and line.strip().count("|") - 1 > most and depth == 0:
            out.append(line[:80])
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_wide_table_is_collapsed(page):
    wide = wide_tables_outside_details(page.read_text(encoding="utf-8"))
    assert not wide, f"{page.name}: tables of more than 10 columns outside <details>: {wide}"


def test_the_width_check_counts_columns_and_sees_details():
    wide = "| " + " | ".join(f"c{i}" for i in range(11)) + " |\n|" + "---|" * 11 + "\n"
    assert wide_tables_outside_details(wide) == [wide.splitlines()[0][:80]]
    assert wide_tables_outside_details(f"<details><summary>s</summary>\n\n{wide}\n</details>\n") == []
    assert wide_tables_outside_details(f"<details open>\n\n{wide}\n</details>\n") != []


def test_every_results_column_is_in_the_glossary_and_every_results_page_links_it():
    glossary = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    defined = set(re.findall(r"^\| ([^|]+?) \|", glossary, re.M))
    defined |= {c for row in re.findall(r"^\| (\d(?:, \d)*) \|", glossary, re.M) for c in row.split(", ")}
    missing = sorted({label for cols in COLUMNS.values() for label, _, _ in cols} - defined)
    assert not missing, f"columns not defined in docs/glossary.md: {missing}"
    for preset in ("default", "short", "legacy", "pretrained", "fast"):
        assert re.search(rf"^\| {preset} \|", glossary, re.M), preset
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        if re.search(r"^<!-- results:", text, re.M) and page.name != "glossary.md":
            assert "glossary.md" in text, f"{page.name} shows a results table without a link to docs/glossary.md"


def test_every_refusal_points_at_a_section_of_troubleshooting():
    sections = anchors((ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8"))
    pointers = [
        (p.relative_to(ROOT), a)
        for p in (ROOT / "src").rglob("*.py")
        for a in re.findall(r"docs/troubleshooting\.md#([\w-]+)", p.read_text(encoding="utf-8"))
    ]
    assert len(pointers) >= 10
    assert not [(p, a) for p, a in pointers if a not in sections]
    for anchor in ("fingerprint", "run-lock", "overwrite", "retriever", "chat-template"):
        assert any(a == anchor for _, a in pointers), anchor
