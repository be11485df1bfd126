"""The GPU pages, "Reproduce the paper on GPUs" (docs/paper.md) and "One GPU, your own model and data"
(docs/gpu.md), run as written, on CPU: every command of each page's marked code block, in order, with
``configs/paper-tiny/`` for the page's configs (``configs/paper/``, ``configs/gpu/``), a random tiny Qwen2
(the paper's architecture) with SmolLM2's real byte-level BPE and chat template as the base
model, questions from real-format data (the ``../shared/realdata`` samples, 20 of each, when
present; the bundled fixtures otherwise) rewritten as the page's ``$DATA/<set>.jsonl``, a small
real corpus in wiki-18's ``{id, contents}`` format, a scripted teacher in place of ``vllm serve``
and our retrieval server on loopback in place of ``serve-retriever &``. ``accelerate launch``
lines check their launch config and run the command in this process (the 2-process runs are
the slow tests)."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.servers import completions_app, serve

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
REAL = ROOT.parent / "shared" / "realdata"
SETS = ("nq", "triviaqa", "hotpotqa", "2wiki", "musique", "bamboogle")


# each page with its configs directory (the dry run uses configs/paper-tiny/ in its place)
PAGES = {"paper.md": "configs/paper", "gpu.md": "configs/gpu"}


def raw_block(page: str = "paper.md") -> str:
    """The text of the page's bash block marked ``paper-path``."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    after = text.split("<!-- paper-path", 1)[1]
    return after.split("```bash\n", 1)[1].split("\n```", 1)[0]


def page_block(page: str = "paper.md") -> list[str]:
    """The command lines of the page's block marked ``paper-path`` (comments dropped)."""
    lines = [re.sub(r"\s+#.*$", "", ln).strip() for ln in raw_block(page).splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def page_sets(page: str) -> tuple[str, ...]:
    """The evaluation sets the page's ``$SET`` line runs over, as its comment names them."""
    return tuple(re.search(r"\(SET = ([\w ]+)\)", raw_block(page)).group(1).split())


def sources() -> dict[str, list[Path]]:
    """Real-format QA files for each of the page's data files."""
    if REAL.exists():
        r = REAL
        return {
            "hotpotqa_train": [r / "autocoa_hotpotqa_dev.parquet"],
            "hotpotqa_dev": [r / "r1searcher_hotpotqa_500.jsonl"],
            "nq": [r / "flashrag_nq_test.jsonl"],
            "triviaqa": [r / "autocoa_test.parquet"],
            "hotpotqa": [r / "r1searcher_hotpotqa_500.jsonl"],
            "2wiki": [r / "r1searcher_2wiki_500.jsonl"],
            "musique": [r / "r1searcher_musique_500.jsonl"],
            "bamboogle": [r / "r1searcher_bamboogle.jsonl"],
        }
    f = FIX
    return {
        "hotpotqa_train": [f / "hotpotqa_dev.json", f / "r1searcher_qa.jsonl"],
        "hotpotqa_dev": [f / "flashrag_qa.jsonl"],
        "nq": [f / "flashrag_qa.jsonl"],
        "triviaqa": [f / "r1searcher_qa.jsonl"],
        "hotpotqa": [f / "hotpotqa_dev.json"],
        "2wiki": [f / "2wiki_dev.json"],
        "musique": [f / "musique_dev.jsonl"],
        "bamboogle": [f / "r1searcher_qa.jsonl"],
    }


def write_data(data: Path) -> dict[str, str]:
    """``$DATA``: each set as FlashRAG JSONL (read from its real format), and the corpus; the
    training questions' golds (for the scripted teacher)."""
    from autocoa.data.corpus import read_corpus
    from autocoa.data.qa import load_qa

    data.mkdir()
    golds = {}
    for name, files in sources().items():
        records = [rec for f in files for rec in load_qa(f)]
        if name == "triviaqa" and REAL.exists():
            records = [r for r in records if "trivia" in (r.dataset or "").lower()] or records
        records = records[20:40] if name == "hotpotqa_dev" and REAL.exists() else records[:20]
        with (data / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps({"id": r.id, "question": r.question, "golden_answers": r.golden_answers}) + "\n")
        if name == "hotpotqa_train":
            golds = {r.question: r.golden_answers[0] for r in records}
    for alias, name in (("train", "hotpotqa_train"), ("dev", "hotpotqa_dev")):  # docs/gpu.md's names
        (data / f"{alias}.jsonl").write_text((data / f"{name}.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    corpora = [REAL / "searchr1_corpus_example.jsonl", REAL / "r1searcher_kilt_wiki_sample_100.jsonl"]
    docs = [d for c in corpora if c.exists() for d in read_corpus(c)] or [
        d for c in (FIX / "corpus_kilt.jsonl", FIX / "corpus_title_text.jsonl") for d in read_corpus(c)
    ]
    with (data / "wiki-18.jsonl").open("w", encoding="utf-8") as fh:
        for i, d in enumerate(docs):
            fh.write(json.dumps({"id": str(i), "contents": f'"{d.title}"\n{d.text[:600]}'}) + "\n")
    return golds


def teacher_app(golds: dict[str, str]):
    """In place of ``vllm serve``: a /v1/completions teacher whose samples, in turn, search and
    answer the gold, answer wrongly at once, and answer the gold at once: CoA and CoT rows and
    pairs, as a real teacher's disagreeing samples give them."""
    counter = itertools.count()

    def reply(prompt: str) -> str:
        _, _, response = prompt.rpartition("Question: ")
        question, _, response = response.partition("\n")
        gold = golds.get(question.strip(), "unknown")
        if "<result>" in response:
            return f"<think>The documents say it.</think><answer>{gold}"
        turn = next(counter) % 3
        if turn == 0:
            return f"<think>I should look this up.</think><search>{question.strip()[:80]}"
        return f"<think>I believe I know.</think><answer>{gold if turn == 2 else 'Nobody'}"

    return completions_app(reply)


def tiny_qwen2(tokenizer_dir: Path, out: Path) -> Path:
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    from tests.agent_helpers import tiny_qwen2_config

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    Qwen2ForCausalLM(tiny_qwen2_config(len(tok))).save_pretrained(out)
    tok.save_pretrained(out)
    return out


# docs/gpu.md's run is slow (a second full run, minutes on 2 cores): the default suite checks that its
# block runs the commands paper.md's runs, with the same options (test_the_one_gpu_page_...)
@pytest.mark.parametrize("page", ["paper.md", pytest.param("gpu.md", marks=pytest.mark.slow)])
def test_the_gpu_page_runs_as_written(page, smol, tmp_path):
    from autocoa.cli import app
    from autocoa.tools.search import load_index
    from autocoa.tools.server import create_app

    lines, sets = page_block(page), page_sets(page)
    assert lines[0].startswith("CFG=") and any("train rl" in ln for ln in lines)
    env = dict(tok.split("=", 1) for tok in shlex.split(lines[0]))
    assert env["CFG"] == PAGES[page]
    env.update(CFG=str(ROOT / "configs" / "paper-tiny"), DATA=str(tmp_path / "data"), RUN=str(tmp_path / "run"))
    env["BASE"] = str(tiny_qwen2(smol, tmp_path / "base"))
    golds = write_data(tmp_path / "data")
    runner = CliRunner()
    servers = []

    def sub(line: str, **extra: str) -> list[str]:
        line = re.sub(r"\$(\w+)", lambda m: {**env, **extra}[m.group(1)], line)
        return shlex.split(line)

    def run(args: list[str]) -> None:
        t0 = time.perf_counter()
        res = runner.invoke(app, args)
        print(f"{time.perf_counter() - t0:6.1f} s  autocoa {' '.join(args[:2])}")
        assert res.exit_code == 0, f"{' '.join(args)}\n{res.output}\n{res.exception!r}"

    try:
        for line in lines[1:]:
            if line.startswith("autocoa serve-retriever"):
                args = sub(line.rstrip("&").strip())
                server = serve(create_app(load_index(args[args.index("--index") + 1])))
                env["RETRIEVER"] = server.__enter__()
                servers.append(server)
            elif line.startswith("vllm serve"):
                server = serve(teacher_app(golds))
                env["TEACHER"] = server.__enter__() + "/v1"
                servers.append(server)
            elif line.startswith("accelerate launch"):
                args = sub(line)
                launch = yaml.safe_load((ROOT / args[args.index("--config_file") + 1]).read_text())
                assert launch["distributed_type"] in ("MULTI_GPU", "DEEPSPEED", "FSDP")
                run(args[args.index("-m") + 2 :])  # what follows `-m autocoa`
            elif "$SET" in line:
                for s in sets:
                    run(sub(line, SET=s)[1:])
            else:
                run(sub(line)[1:])
    finally:
        for server in servers:
            server.__exit__(None, None, None)
    run_dir = tmp_path / "run"
    summary = json.loads((run_dir / "data" / "summary.json").read_text())
    assert summary["kept"] > 0 and summary["pairs"] > 0
    for stage in ("sft1", "sft12", "sft123", "rl"):
        assert (run_dir / stage / "model.safetensors").exists(), stage
    rl = json.loads((run_dir / "rl" / "rl.json").read_text())
    assert (rl["sim_steps_done"], rl["real_steps_done"]) == (1, 1)
    assert [json.loads(x)["step"] for x in (run_dir / "rl" / "heldout.jsonl").read_text().splitlines()] == [0, 2]
    for s in sets:
        methods = json.loads((run_dir / "eval" / s / "metrics.json").read_text())["methods"]
        assert set(methods) == {"agent", "direct", "rag", "react"}, s
    assert (run_dir / "report" / "report.html").exists() and (run_dir / "report" / "rl_curves.png").exists()


def command_shapes(page: str) -> set[tuple[str, ...]]:
    """Each ``autocoa`` command of the page's block as its subcommand words and its option names
    (an ``accelerate launch ... -m`` prefix dropped; values and the order of options ignored)."""
    shapes = set()
    for line in page_block(page):
        words = shlex.split(line)
        if words[0] == "accelerate":
            words = words[words.index("-m") + 1 :]
        if words[0] != "autocoa":
            continue
        sub = tuple(w for w in words[1:3] if not w.startswith("-") and not w.startswith("$"))
        shapes.add(sub + tuple(sorted({w for w in words if w.startswith("--")})))
    return shapes


def test_the_one_gpu_page_runs_the_commands_the_paper_dry_run_runs():
    """Every command of docs/gpu.md's block is one that paper.md's dry run runs, with the same
    options, so the default suite's run of paper.md covers it (the full run of gpu.md is slow)."""
    gpu, paper = command_shapes("gpu.md"), command_shapes("paper.md")
    assert len(gpu) >= 8 and gpu <= paper, gpu - paper


def test_a_7b_model_trains_under_a_sharded_launch():
    """docs/paper.md's 7B stages run under ZeRO-3 or FSDP: DDP holds the whole model, its fp32
    weights and AdamW states on every GPU (about 3B in bf16 fits 80 GB: configs/accelerate/ddp.yaml)."""
    launches = [ln for ln in page_block("paper.md") if ln.startswith("accelerate launch")]
    assert any(" train rl " in ln for ln in launches)
    for ln in launches:
        args = shlex.split(ln)
        launch = yaml.safe_load((ROOT / args[args.index("--config_file") + 1]).read_text())
        assert launch["distributed_type"] in ("DEEPSPEED", "FSDP"), ln


def test_the_tiny_twin_has_the_paper_configs_fields():
    for path in sorted((ROOT / "configs" / "paper").glob("*.yaml")):
        twin = ROOT / "configs" / "paper-tiny" / path.name
        assert set(yaml.safe_load(twin.read_text())) == set(yaml.safe_load(path.read_text())), path.name


@pytest.mark.parametrize("page, line", [(p, ln) for p in sorted(PAGES) for ln in page_block(p)])
def test_every_page_line_is_a_command_we_know(page, line):
    assert line.split()[0] in (f"CFG={PAGES[page]}", "autocoa", "vllm", "accelerate"), line
