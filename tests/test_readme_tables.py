"""Every results table in README.md and docs/*.md is the one its results file renders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autocoa.recipe.study_report import render_results_blocks, results_block

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_tables_match_their_results_files(page):
    text = page.read_text(encoding="utf-8")
    assert render_results_blocks(text, ROOT) == text, f"{page.name}: run `python docs/render_tables.py`"


def test_a_block_is_rendered_from_its_file_and_a_stale_one_is_caught(tmp_path):
    rows = [{"name": "SFT-1&2&3", "em": {"mean": 0.5, "min": 0.4, "max": 0.6}}]
    (tmp_path / "r.json").write_text(json.dumps({"study": "demo", "seeds": [0, 1], "commit": "abc", "rows": rows}))
    page = "intro\n<!-- results: r.json -->\nold table\n<!-- /results -->\nafter\n"
    out = render_results_blocks(page, tmp_path)
    assert out != page and out.startswith("intro\n<!-- results: r.json -->\n| row |")
    assert "code abc" in out and out.endswith("<!-- /results -->\nafter\n")
    assert results_block(tmp_path / "r.json", "r.json") in out
    assert render_results_blocks(out, tmp_path) == out
    curve = [{"step": 0, "em": 0.25, "n": 30}, {"step": 6, "em": 0.5, "n": 30}]
    (tmp_path / "r.json").write_text(
        json.dumps({"study": "demo", "seeds": [0], "commit": "abc", "rows": rows, "heldout": {"seed 0": curve}})
    )
    out = render_results_blocks(page, tmp_path)
    assert "(30 dev questions" in out and "| seed 0 | 0.250 | 0.500 |" in out


def test_a_block_shows_the_studys_stage_times(tmp_path):
    rows = [{"name": "SFT-1&2&3", "em": {"mean": 0.5, "min": 0.4, "max": 0.6}}]
    times = {
        "stages": {"rl": {"per_seed": [600.0, 1200.0], "mean": 900.0, "min": 600.0, "max": 1200.0}},
        "total": {"per_seed": [600.0, None], "mean": 600.0, "min": 600.0, "max": 600.0},
    }
    data = {"study": "demo", "seeds": [0, 1], "commit": "abc", "rows": rows, "timings": times}
    (tmp_path / "r.json").write_text(json.dumps(data))
    out = results_block(tmp_path / "r.json")
    assert "| rl | 15.0 (10.0-20.0) | 10.0 / 20.0 |" in out and "| **all** | 10.0 | 10.0 / - |" in out


def test_a_block_can_show_some_columns_and_sections(tmp_path):
    rows = [
        {
            "name": "a",
            "em": {"mean": 0.5, "min": 0.4, "max": 0.6, "values": [0.4, 0.6]},
            "missed": {"mean": 1.0, "min": 1.0, "max": 1.0},
        },
        {"name": "b", "em": {"mean": 0.3, "min": 0.3, "max": 0.3, "values": [0.3, 0.3]}},
    ]
    times = {"stages": {}, "total": {"per_seed": [60.0, 60.0], "mean": 60.0, "min": 60.0, "max": 60.0}}
    paired = [{"row": "a", "baseline": "b", "per_seed": [0.1, 0.3], "mean": 0.2, "min": 0.1, "max": 0.3}]
    data = {"study": "ablations", "seeds": [0, 1], "commit": "abc", "rows": rows, "paired": paired, "timings": times}
    (tmp_path / "r.json").write_text(json.dumps(data))
    full = render_results_blocks("<!-- results: r.json -->\n<!-- /results -->\n", tmp_path)
    assert "| row | EM avg | missed/q |" in full and "Stage times" in full and "| a | b | +0.200 |" in full
    page = "<!-- results: r.json columns=em sections=paired -->\nold\n<!-- /results -->\n"
    out = render_results_blocks(page, tmp_path)
    assert "| row | EM avg |\n" in out and "missed/q" not in out
    assert "| a | b | +0.200 |" in out and "Stage times" not in out
    assert render_results_blocks(out, tmp_path) == out
    for bad in ("columns=nope", "sections=nope", "colour=red"):
        with pytest.raises(ValueError):
            render_results_blocks(f"<!-- results: r.json {bad} -->\n<!-- /results -->\n", tmp_path)
