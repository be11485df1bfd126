"""``report.html``: the evaluation report as one self-contained page, with a trajectory browser.

The page holds the results table, the plots (PNG, inlined as data URIs) and sample trajectories
of every evaluated method and of RL rollouts: think / action / observation / answer segments
coloured, observations marked as masked (no training loss falls on them: the loss-mask rule of
:mod:`autocoa.trajectory`), with the gold answer and the score. Filters (run, hop count,
correct / wrong) are a few lines of inline JavaScript; the state can also be set from the URL
(``report.html#run=rl%20agent&hops=2&outcome=wrong``). Nothing is fetched from a network.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from autocoa.jsonl import read_logged
from autocoa.trajectory import parse

SAMPLES_PER_RUN = 20

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.traj{border:1px solid #ddd;border-radius:6px;margin:.4em 0;padding:.3em .6em}
.traj.ok{border-left:6px solid #2a2}.traj.bad{border-left:6px solid #c33}.traj summary{cursor:pointer}
.seg{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px;padding:1px 4px;margin:2px 0;
border-radius:3px}
.think{background:#eef3ff}.action{background:#fff4d6}.observation{background:#eee;color:#777}
.answer{background:#e3f7e3;font-weight:bold}.text{background:#fafafa}.prompt{color:#555}
.tag{font-size:10px;color:#888;margin-right:4px}#filters select{margin-right:1em}.hidden{display:none}
"""

JS = """
function apply(){var f={};['run','hops','outcome'].forEach(function(k){f[k]=document.getElementById('f-'+k).value;});
var n=0;document.querySelectorAll('.traj').forEach(function(e){var show=(f.run==='all'||e.dataset.run===f.run)&&
(f.hops==='all'||e.dataset.hops===f.hops)&&(f.outcome==='all'||e.dataset.outcome===f.outcome);
e.classList.toggle('hidden',!show);if(show)n++;});document.getElementById('shown').textContent=n;}
function fromHash(){var h=new URLSearchParams(location.hash.slice(1));['run','hops','outcome'].forEach(function(k){
if(h.has(k))document.getElementById('f-'+k).value=h.get(k);});apply();}
window.addEventListener('hashchange',fromHash);document.addEventListener('DOMContentLoaded',function(){
['run','hops','outcome'].forEach(function(k){document.getElementById('f-'+k).addEventListener('change',apply);});fromHash();});
"""


def sample_rows(path: Path, run: str, limit: int = SAMPLES_PER_RUN) -> list[dict[str, Any]]:
    """Up to ``limit`` trajectories per method of a ``predictions.jsonl`` (or RL
    ``rollouts.jsonl``), as the browser shows them; torn or foreign lines are skipped."""
    out: list[dict[str, Any]] = []
    per: dict[str, int] = {}
    if not path.exists():
        return out
    for r in read_logged(path):
        name = f"{run} {r['method']}" if "method" in r else f"{run} step {r.get('step', '?')} ({r.get('env', '?')})"
        if per.get(name, 0) >= limit:
            continue
        segs = (r.get("trajectory") or {}).get("segments")
        if segs is None and "response" in r:  # an RL rollout: its decoded response
            segs = parse(r["response"]).to_dict()["segments"]
        if segs is None:
            continue
        score = r.get("em", r.get("reward"))
        out.append(
            {
                "run": name,
                "question": r.get("question") or r.get("prompt", ""),
                "gold": r.get("golden_answers", []),
                "prediction": r.get("prediction", r.get("answer")),
                "score": score,
                "hops": r.get("hops"),
                "segments": segs,
            }
        )
        per[name] = per.get(name, 0) + 1
    return out


def _segment(s: dict[str, Any]) -> str:
    kind = s.get("kind", "text")
    label = {"observation": "observation · masked", "action": f"action · {s.get('tool', '')}"}.get(kind, kind)
    text = html.escape(s.get("text", ""))
    return f'<div class="seg {html.escape(kind)}"><span class="tag">{html.escape(label)}</span>{text}</div>'


def _trajectory(t: dict[str, Any]) -> str:
    ok = bool(t["score"]) and t["score"] > 0
    outcome = "correct" if ok else "wrong"
    head = (
        f"<b>{'✓' if ok else '✗'}</b> {html.escape(str(t['question']))} — gold "
        f"<i>{html.escape(' / '.join(map(str, t['gold'])))}</i>, predicted <i>{html.escape(str(t['prediction']))}</i>"
        f" <span class='tag'>{html.escape(t['run'])}, {t['hops'] if t['hops'] is not None else '?'} hops, "
        f"score {t['score'] if t['score'] is not None else '-'}</span>"
    )
    body = "".join(_segment(s) for s in t["segments"])
    return (
        f'<details class="traj {"ok" if ok else "bad"}" data-run="{html.escape(t["run"])}" '
        f'data-hops="{t["hops"] if t["hops"] is not None else "?"}" data-outcome="{outcome}">'
        f"<summary>{head}</summary>{body}</details>"
    )


def _table(rows: Sequence[dict[str, Any]]) -> str:
    hops = sorted({h for r in rows for h in r.get("em_by_hops", {})}, key=lambda h: int(h))
    cols = ["run", "env", *(f"EM {h}-hop" for h in hops), "EM", "F1", "real calls/q", "fidelity"]
    out = ["<table><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"]
    for r in rows:

        def f(x: Any) -> str:
            return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else html.escape(str(x))

        cells = [r["label"], r.get("env", ""), *(r["em_by_hops"].get(h) for h in hops), r["em"], r.get("f1")]
        cells += [r.get("tool_calls_per_question"), r.get("fidelity")]
        out.append("<tr>" + "".join(f"<td>{f(c)}</td>" for c in cells) + "</tr>")
    return "".join(out) + "</table>"


def _options(values: Iterable[str], name: str) -> str:
    opts = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)
    return f'<label>{name} <select id="f-{name}"><option value="all">all</option>{opts}</select></label>'


def render_html(rows: Sequence[dict[str, Any]], plots: dict[str, Path], samples: Sequence[dict[str, Any]]) -> str:
    """The page as a string (pure: the plots are read and inlined)."""
    imgs = "".join(
        f'<h3>{html.escape(title)}</h3><img alt="{html.escape(title)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}">'
        for title, path in plots.items()
        if path is not None and path.exists()
    )
    runs = list(dict.fromkeys(t["run"] for t in samples))
    hops = sorted({str(t["hops"]) for t in samples if t["hops"] is not None}, key=int)
    filters = _options(runs, "run") + _options(hops, "hops") + _options(["correct", "wrong"], "outcome")
    body = "".join(_trajectory(t) for t in samples)
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>autocoa report</title>'
        f"<style>{CSS}</style><script>{JS}</script></head><body><h1>Evaluation report</h1>"
        f"<h2>Results</h2>{_table(rows)}<h2>Plots</h2>{imgs}"
        f'<h2>Trajectories</h2><div id="filters">{filters} <span id="shown">{len(samples)}</span> shown</div>'
        f"{body}</body></html>"
    )


def write_html(
    rows: Sequence[dict[str, Any]], plots: dict[str, Path], samples: Sequence[dict[str, Any]], path: Path
) -> Path:
    path.write_text(render_html(rows, plots, samples), encoding="utf-8")
    return path


def screenshot(page: Path, out: Path, width: int = 1200, height: int = 1400, fragment: str = "") -> Path:
    """A PNG of ``page`` (a report.html) as headless Chromium renders it, into ``out``; the
    README's picture of the report is made this way (``docs/results/screenshot.py``), and the
    browser test checks it renders. ``fragment``: the page's filters (``outcome=wrong&hops=2``)."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise FileNotFoundError("chromium: not installed (apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    url = f"file://{Path(page).resolve()}" + (f"#{fragment}" if fragment else "")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    subprocess.run([*cmd, f"--screenshot={out}", f"--window-size={width},{height}", url], timeout=120, check=True)
    return out
