"""Rows from TRL, verl and OpenRLHF layouts map to samples without conversion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardlab.io.files import read_rows
from rewardlab.io.rows import to_sample


def test_trl_standard_and_conversational() -> None:
    s = to_sample({"prompt": "2+2?", "completion": "4", "solution": "4", "level": 1})
    assert (s.prompt, s.response, s.reference, s.metadata) == ("2+2?", "4", "4", {"level": 1})
    c = to_sample({"prompt": [{"role": "user", "content": "hi"}],
                   "completion": [{"role": "assistant", "content": "hello"}]})
    assert c.response_text == "hello" and c.prompt[0].role == "user"


def test_messages_column_takes_the_last_assistant_turn() -> None:
    s = to_sample({"messages": [{"role": "user", "content": "a"},
                                {"role": "assistant", "content": "b"},
                                {"role": "user", "content": "c"},
                                {"role": "assistant", "content": "d"}]})
    assert s.response_text == "d" and len(s.prompt) == 3


def test_verl_row() -> None:
    row = {"data_source": "openai/gsm8k",
           "prompt": [{"role": "user", "content": "Q"}],
           "reward_model": {"style": "rule", "ground_truth": "72"},
           "extra_info": {"split": "test", "index": 3},
           "responses": ["The answer is 72"]}
    s = to_sample(row)
    assert s.reference == "72" and s.response == "The answer is 72"
    assert s.metadata["data_source"] == "openai/gsm8k" and s.metadata["extra_info"]["index"] == 3


def test_openrlhf_query_is_split_at_the_prompt() -> None:
    s = to_sample({"query": "Q: 1+1? A: 2", "prompt": "Q: 1+1? A:", "label": "2"})
    assert (s.prompt, s.response, s.reference) == ("Q: 1+1? A:", " 2", "2")


def test_explicit_mapping_with_dotted_paths() -> None:
    s = to_sample({"out": {"text": "y"}, "gold": {"a": 1}, "q": "x"},
                  {"response": "out.text", "reference": "gold.a", "prompt": "q"})
    assert (s.prompt, s.response, s.reference) == ("x", "y", 1)
    with pytest.raises(ValueError, match="mapped field 'missing'"):
        to_sample({"a": 1}, {"response": "missing"})


def test_row_without_response_names_what_it_looked_for() -> None:
    with pytest.raises(ValueError, match="no response field"):
        to_sample({"prompt": "x"})


def test_jsonl_reader_reports_malformed_lines_and_goes_on(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text('{"response": "a"}\n{"response": \n\n[1, 2]\n{"response": "b"}\n')
    rows = list(read_rows(f))
    assert [(r.line, r.error is None) for r in rows] == [(1, True), (2, False), (4, False),
                                                         (5, True)]
    assert "invalid JSON" in rows[1].error and "expected a JSON object" in rows[2].error


def test_parquet_and_hf_dataset_on_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    data = {"prompt": ["p1", "p2", "p3"], "completion": ["a", "b", "c"], "solution": ["a", "x", "c"]}
    ds = datasets.Dataset.from_dict(data)
    ds.to_parquet(str(tmp_path / "d.parquet"))
    ds.save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"train": ds, "test": ds.select([2])}).save_to_disk(str(tmp_path / "dd"))
    for path, split, n in [(tmp_path / "d.parquet", None, 3), (tmp_path / "single", None, 3),
                           (tmp_path / "dd", "test", 1)]:
        rows = list(read_rows(path, split))
        assert len(rows) == n
        assert to_sample(rows[-1].data).response == "c"
    with pytest.raises(ValueError, match="no split 'dev'"):
        list(read_rows(tmp_path / "dd", "dev"))
    json.dumps([r.data for r in read_rows(tmp_path / "single")])


def test_rows_of_one_layout_still_follow_the_rules_row_by_row() -> None:
    # the same keys, different values: a None in an earlier candidate column changes the choice
    rows = [{"prompt": "p", "completion": "a", "reference": None, "solution": "s1"},
            {"prompt": "p", "completion": "b", "reference": "r2", "solution": "s2"},
            {"prompt": "p", "completion": "c", "answer": "x", "k": 1},
            {"prompt": "p", "completion": "d", "answer": None, "k": 2},
            {"prompt": [{"role": "user", "content": "q"}], "completion": "e", "answer": "y", "k": 3}]
    samples = [to_sample(r, row_id=str(i)) for i, r in enumerate(rows)]
    assert [s.reference for s in samples] == ["s1", "r2", "x", None, "y"]
    assert samples[3].metadata == {"answer": None, "k": 2} and samples[3].id == "3"
    assert samples[4].prompt_text == "user: q"
    again = [to_sample(r, row_id=str(i)) for i, r in enumerate(rows)]
    assert again == samples
