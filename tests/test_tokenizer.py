"""The tokenizer builder: tags as single non-special ids, save/load, adding tags to a real tokenizer."""

from __future__ import annotations

import pytest

from autocoa.tags import Tags
from autocoa.tokenizer import add_tags, load_tokenizer, train_tokenizer
from autocoa.trajectory import check_tags


def test_save_and_load_round_trip(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    text = "<think>é 漢</think><search>Rotema</search><result>x</result><answer>y</answer>"
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert again.decode(again(text)["input_ids"]) == text
    assert check_tags(again) == check_tags(tokenizer)


def test_pad_and_eos_are_special_and_tags_are_not(tokenizer):
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.eos_token == "<|endoftext|>"
    assert set(check_tags(tokenizer).values()).isdisjoint(tokenizer.all_special_ids)


def test_add_tags_to_a_tokenizer_without_them():
    tok = train_tokenizer(["some real text"] * 5, vocab_size=300, min_frequency=1, tags=Tags(actions=("lookup",)))
    n_before = len(tok)
    added = add_tags(tok)
    assert added == 4  # <search> </search> <calculate> </calculate>
    assert len(tok) == n_before + 4
    check_tags(tok)
    assert add_tags(tok) == 0  # idempotent


def test_check_tags_sees_a_tokenizer_change_after_its_answer_is_kept():
    tok = train_tokenizer(["some real text"] * 5, vocab_size=300, min_frequency=1, tags=Tags(actions=("lookup",)))
    with pytest.raises(ValueError, match="<search>"):
        check_tags(tok)  # asked twice: the refusal is not cached into an answer
    with pytest.raises(ValueError, match="<search>"):
        check_tags(tok)
    assert "<lookup>" in check_tags(tok, Tags(actions=("lookup",)))
    add_tags(tok)
    ids = check_tags(tok)
    assert ids["<search>"] == tok.convert_tokens_to_ids("<search>")
    ids["<search>"] = -1  # a caller's copy: the kept answer is not changed through it
    assert check_tags(tok)["<search>"] == tok.convert_tokens_to_ids("<search>")
    tok.add_special_tokens({"additional_special_tokens": ["<search>"]})
    with pytest.raises(ValueError, match="special"):
        check_tags(tok)


def test_add_tags_refuses_special_tags():
    tok = train_tokenizer(["x y"] * 5, vocab_size=300, min_frequency=1, tags=Tags(actions=("lookup",)))
    tok.add_special_tokens({"additional_special_tokens": ["<search>"]})
    with pytest.raises(ValueError, match="special"):
        add_tags(tok)


def test_load_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "nope")


def test_vocab_size_floor():
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["x"], vocab_size=100)


def test_syllable_pre_tokenizer_cuts_names_into_syllables(tmp_path):
    texts = ["Rerul Bothol was born in Gitatun. Zesifon Toshato studied at Nafa College."] * 30
    tok = train_tokenizer(texts, vocab_size=400, min_frequency=1, syllables=True)
    assert tok.tokenize(" Zesifon Toshato studied") == ["ĠZe", "si", "fon", "ĠTo", "sha", "to", "Ġstudied"]
    unseen = "Where was Kalimora Tepuzo born? <think>é 漢</think>"
    assert tok.decode(tok(unseen)["input_ids"]) == unseen  # lossless, tags intact
    # an unseen name: pieces may be smaller than syllables, never straddle two
    pieces = tok.tokenize(" Kalimora")
    cuts = {sum(len(p) for p in pieces[: i + 1]) for i in range(len(pieces))}  # "Ġ" counts as one char
    assert {3, 5, 7, 9} <= cuts  # Ka|li|mo|ra: every syllable boundary is a token boundary
    tok.save_pretrained(tmp_path / "t")
    assert load_tokenizer(tmp_path / "t").tokenize(" Zesifon") == ["ĠZe", "si", "fon"]
