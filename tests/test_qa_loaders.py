"""QA loaders: every supported format into one QARecord; bad rows name file, line, field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autocoa.cli import app
from autocoa.data.qa import QARecord, detect_format, load_qa, question_from_prompt
from autocoa.jsonl import DataError

FIXTURES = Path(__file__).parent / "fixtures"
REALDATA = Path(os.environ.get("AUTOCOA_REALDATA", Path(__file__).parents[2] / "shared" / "realdata"))

SEARCHR1_PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get "
    "new information. ... Question: who got the first nobel prize in physics?\n"
)
AUTOCOA_PROMPT = (
    "You are an intelligent reasoning assistant with access to a web search tool.\n\n3. **Process:**\n"
    "   - Provide your final answer in the format \\boxed{YOUR_ANSWER}. \n\n"
    "Now, please answer the user's question below: \nWhat nationality is Jane Bewick's father?\n\n"
)


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_flashrag():
    recs = load_qa(FIXTURES / "flashrag_qa.jsonl")
    assert all(isinstance(r, QARecord) for r in recs)
    assert recs[0] == QARecord("test_0", "who got the first nobel prize in physics", ["Wilhelm Conrad Röntgen"])
    assert recs[1].golden_answers == ["Olivia", "MFSK"] and recs[1].meta == {"metadata": {"source": "nq"}}
    assert (recs[2].hops, recs[2].dataset) == (2, "synthetic")
    assert recs[2].to_dict() == {
        "id": "test_2",
        "question": "Where was the director of Vorano born?",
        "golden_answers": ["Kelu"],
        "dataset": "synthetic",
        "hops": 2,
    }


def test_r1searcher():
    recs = load_qa(FIXTURES / "r1searcher_qa.jsonl", dataset="bamboogle")
    assert [r.id for r in recs] == ["1", "2"]
    assert recs[0].golden_answers == ["james madison"] and recs[1].dataset == "bamboogle"
    assert recs[0].meta == {"idx": 1, "gen_text_store": ""}


def test_hotpotqa_official_json():
    recs = load_qa(FIXTURES / "hotpotqa_dev.json")
    assert [r.id for r in recs] == ["5a8b57f25542995d1e6f1371", "5a8c7595554299585d9e36b6"]
    assert recs[0].golden_answers == ["yes"] and recs[0].dataset == "hotpotqa" and recs[0].hops == 2
    support = recs[1].meta.pop("supporting")  # the oracle simulator's evidence (supporting_facts' paragraphs)
    assert recs[1].meta == {"type": "bridge", "level": "hard"}
    assert [s["title"] for s in support] == ["Kiss and Tell (1945 film)"] and "Corliss Archer" in support[0]["text"]


def test_2wiki_official_json():
    recs = load_qa(FIXTURES / "2wiki_dev.json")
    assert recs[0].dataset == "2wikimultihopqa" and recs[0].golden_answers == ["Małgorzata Braunek"]
    support = recs[0].meta.pop("supporting")
    assert recs[0].hops == 2 and recs[0].meta == {"type": "compositional"}
    assert [s["title"] for s in support] == ["Polish-Russian War (film)", "Xawery Żuławski"]
    assert recs[1].question.startswith("Which film came out first")


def test_musique_jsonl():
    recs = load_qa(FIXTURES / "musique_dev.jsonl")
    assert recs[0].id == "2hop__460946_294723" and recs[0].dataset == "musique"
    assert recs[0].golden_answers == ["Miquette Giraudy", "Miquette"]
    assert [r.hops for r in recs] == [2, 3]
    assert recs[1].golden_answers == ["mid-June"] and recs[1].meta == {"answerable": True}


def test_searchr1_parquet(tmp_path):
    row = {
        "data_source": "nq",
        "prompt": [{"role": "user", "content": SEARCHR1_PROMPT}],
        "ability": "fact-reasoning",
        "reward_model": {"style": "rule", "ground_truth": {"target": ["Wilhelm Conrad Röntgen", "Röntgen"]}},
        "extra_info": {"split": "test", "index": 7},
    }
    recs = load_qa(write_parquet(tmp_path / "nq_test.parquet", [row]))
    assert recs == [
        QARecord(
            "7",
            "who got the first nobel prize in physics?",
            ["Wilhelm Conrad Röntgen", "Röntgen"],
            dataset="nq",
            meta={"data_source": "nq", "ability": "fact-reasoning", "split": "test"},
        )
    ]


def test_autocoa_parquet_names_dataset_by_source_file(tmp_path):
    rows = [
        {
            "id": "dev_6653",
            "source_file": "2WIKI_dev.json",
            "data_source": "HotpotQA",  # wrong in the release: source_file is the truth
            "prompt": [{"role": "user", "content": AUTOCOA_PROMPT}],
            "reward_model": {"ground_truth": ["UK", "British"], "style": "rule"},
        }
    ]
    (rec,) = load_qa(write_parquet(tmp_path / "test.parquet", rows))
    assert (rec.id, rec.dataset) == ("2wiki/dev_6653", "2wiki")  # ids repeat across the mix's sets
    assert rec.question == "What nationality is Jane Bewick's father?"
    assert rec.golden_answers == ["UK", "British"]


def test_question_from_prompt():
    assert question_from_prompt("Question: a?\nQuestion: b?\n") == "b?"
    assert question_from_prompt("Some instructions.\n\nWhere is Kelu?\n") == "Where is Kelu?"


def test_detect_format():
    assert detect_format({"id": "1", "question": "q", "golden_answers": ["a"]}) == "flashrag"
    assert detect_format({"question": "q", "answer": "a"}) == "r1searcher"
    assert detect_format({"question": "q", "answer": "a", "context": [], "type": "bridge"}) == "hotpotqa"
    assert detect_format({"question": "q", "answer": "a", "context": [], "type": "inference"}) == "2wiki"
    assert detect_format({"id": "x", "contents": "c"}) is None


def test_bad_row_names_file_line_and_field():
    path = FIXTURES / "bad_qa.jsonl"
    with pytest.raises(DataError) as err:
        load_qa(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 2, "question")
    assert str(err.value) == f"{path}:2: question: missing"


def test_skip_bad_rows_counts_them():
    bad: list[DataError] = []
    recs = load_qa(FIXTURES / "bad_qa.jsonl", skip_bad=True, bad=bad)
    assert [r.id for r in recs] == ["a", "d"]
    assert [(e.line, e.field) for e in bad] == [(2, "question"), (3, "golden_answers"), (6, "question")]
    assert "expected a string, got int" in str(bad[2])


def test_json_list_errors_give_the_element_line(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(
        '[\n  {"_id": "1", "question": "q?", "answer": "a", "context": []},\n  {"_id": "2", "context": []}\n]'
    )
    with pytest.raises(DataError) as err:
        load_qa(path)
    assert (err.value.line, err.value.field) == (3, "question")


def test_parquet_errors_give_the_row_and_dotted_field(tmp_path):
    rows = [
        {"question": "q1", "prompt": "x", "reward_model": {"ground_truth": "a"}},
        {"question": "q2", "prompt": "x", "reward_model": {"ground_truth": None}},
    ]
    path = write_parquet(tmp_path / "bad.parquet", rows)
    with pytest.raises(DataError, match=r"bad\.parquet:2: reward_model\.ground_truth: missing"):
        load_qa(path)


def test_unknown_rows_are_an_error(tmp_path):
    path = tmp_path / "what.jsonl"
    path.write_text('{"foo": 1}\n')
    with pytest.raises(DataError, match="not a QA row"):
        load_qa(path)


def test_cli_inspect_qa_and_corpus():
    runner = CliRunner()
    result = runner.invoke(app, ["data", "inspect", str(FIXTURES / "musique_dev.jsonl"), "--rows", "1"])
    assert result.exit_code == 0, result.output
    assert "2 QA records" in result.output and "by hops: {2: 1, 3: 1}" in result.output
    assert "Miquette" in result.output
    result = runner.invoke(app, ["data", "inspect", str(FIXTURES / "bad_qa.jsonl"), "--skip-bad"])
    assert result.exit_code == 0 and "3 bad rows skipped" in result.output
    result = runner.invoke(app, ["data", "inspect", str(FIXTURES / "corpus_passages.tsv")])
    assert result.exit_code == 0 and "2 documents" in result.output


def test_cli_inspect_bad_row_fails_cleanly():
    result = CliRunner().invoke(app, ["data", "inspect", str(FIXTURES / "bad_qa.jsonl")])
    assert result.exit_code != 0
    assert isinstance(result.exception, DataError) and result.exception.line == 2


# --- real files from the field, when the shared samples are present ------------------------

REAL_QA = {
    "flashrag_nq_test.jsonl": (None, None),
    "r1searcher_bamboogle.jsonl": (125, None),
    "r1searcher_hotpotqa_500.jsonl": (500, None),
    "r1searcher_2wiki_500.jsonl": (500, None),
    "r1searcher_musique_500.jsonl": (500, None),
    "r1searcher_hotpotqa_qwen_predictions.jsonl": (500, None),
    "autocoa_test.parquet": (2936, {"nq", "triviaqa", "hotpotqa", "2wiki", "musique", "bamboogle", "fanout"}),
    "autocoa_hotpotqa_dev.parquet": (400, {"hotpotqa"}),
}


@pytest.mark.parametrize("name", sorted(REAL_QA))
def test_real_qa_files(name):
    path = REALDATA / name
    if not path.exists():
        pytest.skip(f"{path} absent (shared real-data samples are not part of a fresh clone)")
    n, datasets = REAL_QA[name]
    recs = load_qa(path)
    assert len(recs) == n if n is not None else len(recs) > 0
    assert all(r.question and r.golden_answers and all(a for a in r.golden_answers) for r in recs)
    by_id: dict[str, QARecord] = {}
    for r in recs:  # ids are unique, except that the AutoCoA mix repeats one TriviaQA row verbatim
        assert by_id.setdefault(r.id, r) == r
    assert len(by_id) >= len(recs) - 1
    if datasets is not None:
        assert {r.dataset for r in recs} == datasets
    if name.endswith(".parquet"):  # the question cut out of the chat prompt is one clean line
        assert all("\n" not in r.question and "question below" not in r.question for r in recs)
        assert all(len(r.question) < 1500 for r in recs)  # not the whole instruction prompt


def test_answers_must_be_text_and_bytes_must_be_utf8(tmp_path):
    good = '{"id": "1", "question": "Q?", "golden_answers": ["A"]}\n'
    p = tmp_path / "q.jsonl"
    p.write_text(good + '{"id": "2", "question": "Q?", "golden_answers": 5}\n')
    with pytest.raises(DataError, match=r"q.jsonl:2: golden_answers: expected a string or a list of strings, got int"):
        load_qa(p)
    p.write_text(good + '{"id": "2", "question": "Q?", "golden_answers": ["A", null]}\n')
    with pytest.raises(DataError, match=r"q.jsonl:2: golden_answers:.*NoneType"):
        load_qa(p)
    p.write_bytes(good.encode() * 3 + b'{"id": "4", "question": "Q\xff?", "golden_answers": ["A"]}\n')
    with pytest.raises(DataError, match=r"q.jsonl:4: invalid UTF-8"):
        load_qa(p)
    p.write_text(good + '{"id": "2", "question": null, "golden_answers": ["A"]}\n')
    with pytest.raises(DataError, match=r"q.jsonl:2: question"):
        load_qa(p)
