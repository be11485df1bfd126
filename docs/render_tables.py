"""Re-render every results block of README.md and docs/*.md from its results file.

A block is ``<!-- results: docs/results/NAME/results.json -->`` ... ``<!-- /results -->``;
tests/test_readme_tables.py fails when a page disagrees with its files. Usage, from the
repository root: ``python docs/render_tables.py``."""

from pathlib import Path

from autocoa.recipe.study_report import render_results_blocks

root = Path(__file__).resolve().parent.parent
for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
    text = page.read_text(encoding="utf-8")
    new = render_results_blocks(text, root)
    if new != text:
        page.write_text(new, encoding="utf-8")
        print(f"updated {page.relative_to(root)}")
