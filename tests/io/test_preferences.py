"""The preference reader: every layout users have, on real HH-RLHF rows (as published, and
re-laid out as prompt columns, chat messages, UltraFeedback-style conversations and RewardBench 2
sets), in JSONL, gzip, JSON, Parquet and HF dataset directories; malformed rows reported with
where they are while the rest is read; doubtful rows kept and flagged."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from rewardlab.core.types import Message, PreferencePair, PreferenceSet
from rewardlab.io.files import InputError
from rewardlab.io.preferences import (
    PreferenceData,
    preference_from_row,
    read_preferences,
    split_dialogue,
)

HH = Path("preference") / "hh_rlhf_harmless_base_test.jsonl.gz"
TURN = re.compile(r"\n\n(Human|Assistant):")


@pytest.fixture(scope="module")
def hh_rows(shared_data: Path) -> list[dict[str, Any]]:
    with gzip.open(shared_data / HH, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def turns(dialogue: str) -> list[dict[str, str]]:
    """An HH dialogue as chat messages, parsed here independently of the reader."""
    parts = TURN.split(dialogue)
    assert parts[0] == ""
    role = {"Human": "user", "Assistant": "assistant"}
    return [{"role": role[who], "content": text.strip()} for who, text in zip(parts[1::2], parts[2::2], strict=True)]


def write_jsonl(path: Path, rows: list[Any], extra_lines: tuple[str, ...] = ()) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        for line in extra_lines:
            f.write(line + "\n")
    return path


# -- split_dialogue -------------------------------------------------------------------------------

def test_split_dialogue_keeps_the_last_assistant_turn_as_response() -> None:
    text = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how are you?\n\nAssistant: Fine, thanks."
    prompt, response = split_dialogue(text)
    assert prompt == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how are you?\n\nAssistant:"
    assert response == "Fine, thanks."
    assert split_dialogue("\n\nHuman: say nothing\n\nAssistant:") == (
        "\n\nHuman: say nothing\n\nAssistant:", "")
    with pytest.raises(ValueError, match="Assistant"):
        split_dialogue("\n\nHuman: no answer")


# -- the published HH-RLHF file -------------------------------------------------------------------

def test_reads_every_hh_rlhf_dialogue_and_flags_what_looks_odd(shared_data: Path,
                                                              hh_rows: list[dict[str, Any]]) -> None:
    data = read_preferences(shared_data / HH)
    assert data.problems == [] and len(data.items) == len(hh_rows) == 2312
    assert dict(data.layouts) == {"dialogue": 2312}
    assert data.where[:2] == ["line 1", "line 2"]
    for pair, row in zip(data.items, hh_rows, strict=True):
        assert isinstance(pair, PreferencePair) and isinstance(pair.prompt, str)
        assert pair.prompt.endswith("\n\nAssistant:")
        # each side is its dialogue, cut once: prompt + " " + response (an empty response has no space)
        for prompt, response, whole in ((pair.prompt, pair.chosen, row["chosen"]),
                                        (pair.prompt_of_rejected, pair.rejected, row["rejected"])):
            assert whole in (f"{prompt} {response}", f"{prompt}{response}")
            assert "\n\nAssistant:" not in response
    # four harmless-base rows prefer saying nothing: kept, and flagged
    empty = [i + 1 for i, r in enumerate(hh_rows) if r["chosen"].rstrip().endswith("\n\nAssistant:")]
    assert len(empty) == 4 and data.flagged["empty_chosen"] == [f"line {n}" for n in empty]
    assert all(data.items[n - 1].chosen == "" for n in empty)  # type: ignore[union-attr]
    # five rows whose earlier turns differ keep each side's own prompt
    differ = [i + 1 for i, r in enumerate(hh_rows)
              if TURN.split(r["chosen"])[:-1] != TURN.split(r["rejected"])[:-1]]
    assert data.flagged["different_prompts"] == [f"line {n}" for n in differ] and len(differ) == 5
    for n in differ:
        pair = data.items[n - 1]
        assert isinstance(pair, PreferencePair) and pair.rejected_prompt not in (None, pair.prompt)
        assert not pair.identical
    assert "identical" not in data.flagged and "empty_rejected" not in data.flagged
    assert "2312 rows read (2312 dialogue)" in data.summary()
    assert "4 rows where a chosen response is empty (kept), first: line 87" in data.summary()
    # the samples a reward scores carry each side's own prompt
    chosen, rejected = data.items[differ[0] - 1].samples()  # type: ignore[union-attr]
    assert chosen.prompt != rejected.prompt and rejected.response_text == data.items[differ[0] - 1].rejected


# -- the same real rows in the other layouts ------------------------------------------------------

def as_prompt_columns(row: dict[str, Any]) -> dict[str, Any]:
    prompt, chosen = split_dialogue(row["chosen"])
    return {"prompt": prompt, "chosen": " " + chosen, "rejected": row["rejected"][len(prompt):]}


def test_prompt_column_layout_gives_the_same_pairs(tmp_path: Path, hh_rows: list[dict[str, Any]]) -> None:
    rows = [as_prompt_columns(r) for r in hh_rows[:200]
            if split_dialogue(r["chosen"])[0] == split_dialogue(r["rejected"])[0]]
    dialogues = read_preferences(write_jsonl(tmp_path / "d.jsonl", [r for r in hh_rows[:200]
                                 if split_dialogue(r["chosen"])[0] == split_dialogue(r["rejected"])[0]]))
    data = read_preferences(write_jsonl(tmp_path / "p.jsonl", rows))
    assert data.problems == [] and dict(data.layouts) == {"text": len(rows)}
    # the prompt column keeps responses as written (here with their leading space)
    assert [(p.prompt, p.chosen.lstrip(), p.rejected.lstrip()) for p in data.items] == \
        [(p.prompt, p.chosen, p.rejected) for p in dialogues.items]  # type: ignore[union-attr]
    # responses that repeat the whole prompt on both sides have it cut
    whole = [{"prompt": r["prompt"], "chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]}
             for r in rows[:20]]
    again = read_preferences(write_jsonl(tmp_path / "w.jsonl", whole))
    cut = [(p.chosen, p.rejected) for p in again.items]  # type: ignore[union-attr]
    assert cut == [(r["chosen"], r["rejected"]) for r in rows[:20]]


def test_messages_layouts_hh_in_chat_form_trl_explicit_and_ultrafeedback(
        tmp_path: Path, hh_rows: list[dict[str, Any]]) -> None:
    real = hh_rows[:100]
    # HH-RLHF as message lists (implicit prompt: the shared leading turns)
    implicit = [{"chosen": turns(r["chosen"]), "rejected": turns(r["rejected"])} for r in real]
    data = read_preferences(write_jsonl(tmp_path / "m.jsonl", implicit))
    assert data.problems == [] and dict(data.layouts) == {"messages": 100}
    for pair, row in zip(data.items, implicit, strict=True):
        assert isinstance(pair, PreferencePair) and isinstance(pair.prompt, list)
        chosen, rejected = pair.samples()
        assert chosen.response_text == row["chosen"][-1]["content"]
        assert rejected.response_text == row["rejected"][-1]["content"]
        assert [m.model_dump(exclude_none=True) for m in pair.prompt] == row["chosen"][:-1]
        assert pair.prompt[-1].role == "user"
    # TRL explicit prompt: prompt turns in `prompt`, only the answers in chosen / rejected
    explicit = [{"prompt": r["chosen"][:-1], "chosen": r["chosen"][-1:], "rejected": r["rejected"][-1:]}
                for r in implicit if r["chosen"][:-1] == r["rejected"][:-1]]
    again = read_preferences(write_jsonl(tmp_path / "e.jsonl", explicit))
    assert again.problems == [] and len(again.items) == len(explicit) > 90
    same = [p for p in data.items if p.rejected_prompt is None]  # type: ignore[union-attr]
    prompts = [p.samples()[0].prompt_text for p in again.items]  # type: ignore[union-attr]
    assert prompts == [p.samples()[0].prompt_text for p in same]
    # UltraFeedback-binarized: a text prompt plus whole conversations that repeat it
    single = [r for r in real if r["chosen"].count("\n\nHuman:") == 1]
    uf = [{"prompt": turns(r["chosen"])[0]["content"], "prompt_id": f"p{i}",
           "chosen": turns(r["chosen"]), "rejected": turns(r["rejected"]), "score_chosen": 8.0}
          for i, r in enumerate(single)]
    got = read_preferences(write_jsonl(tmp_path / "uf.jsonl", uf))
    assert got.problems == [] and len(got.items) == len(uf) > 10
    first = got.items[0]
    assert isinstance(first, PreferencePair)
    assert first.samples()[0].prompt_text == "user: " + uf[0]["prompt"]
    assert first.metadata == {"prompt_id": "p0", "score_chosen": 8.0}


def test_rewardbench2_sets_with_one_or_several_chosen(tmp_path: Path, hh_rows: list[dict[str, Any]]) -> None:
    # RewardBench 2's layout, filled with real HH responses: one chosen, three rejected
    rows = []
    for i in range(0, 40, 4):
        prompt, chosen = split_dialogue(hh_rows[i]["chosen"])
        rejected = [split_dialogue(hh_rows[i + k]["rejected"])[1] for k in range(3)]
        rows.append({"id": i, "prompt": prompt, "chosen": [chosen], "rejected": rejected,
                     "num_correct": 1, "subset": "Safety"})
    ties = {"id": "tied:1", "prompt": "Name a primary colour.", "chosen": ["Red.", "Blue.", "Yellow."],
            "rejected": ["Green.", "Purple."], "subset": "Ties"}
    data = read_preferences(write_jsonl(tmp_path / "rb2.jsonl", [*rows, ties]))
    assert data.problems == [] and dict(data.layouts) == {"set of text": 11}
    first = data.items[0]
    assert isinstance(first, PreferenceSet) and first.id == "0" and first.subset == "Safety"
    assert len(first.chosen) == 1 and len(first.rejected) == 3 and first.metadata == {"num_correct": 1}
    assert [s.response for s in first.samples()] == [*first.chosen, *first.rejected]
    assert [p.id for p in first.pairs()] == ["0:0", "0:1", "0:2"]
    tied = data.items[-1]
    assert isinstance(tied, PreferenceSet) and len(tied.pairs()) == 6
    assert [p.id for p in tied.pairs()][:3] == ["tied:1:0:0", "tied:1:0:1", "tied:1:1:0"]
    assert len(data.pairs()) == 10 * 3 + 6
    assert all(p.samples()[0].metadata["subset"] in ("Safety", "Ties") for p in data.pairs())


def test_file_formats_gzip_json_parquet_and_hf_datasets(tmp_path: Path, hh_rows: list[dict[str, Any]]) -> None:
    rows = [{"id": i, **as_prompt_columns(r)} for i, r in enumerate(hh_rows[:30])]
    want = read_preferences(write_jsonl(tmp_path / "a.jsonl", rows)).items
    assert len(want) == 30
    gz = read_preferences(write_jsonl(tmp_path / "a.jsonl.gz", rows))
    (tmp_path / "a.json").write_text(json.dumps(rows, indent=1))
    js = read_preferences(tmp_path / "a.json")
    with gzip.open(tmp_path / "a.json.gz", "wt", encoding="utf-8") as f:
        json.dump(rows, f)
    jsgz = read_preferences(tmp_path / "a.json.gz")
    lines_named_json = read_preferences(write_jsonl(tmp_path / "b.json", rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    parquet = read_preferences(tmp_path / "a.parquet")
    for got in (gz, js, jsgz, lines_named_json, parquet):
        assert got.problems == [] and got.items == want
    assert gz.where[0] == lines_named_json.where[0] == "line 1"
    assert js.where[0] == parquet.where[0] == "row 0"  # arrays and Parquet count rows from 0
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "hf"))
    assert read_preferences(tmp_path / "hf").items == want


# -- messy data -----------------------------------------------------------------------------------

def test_malformed_rows_are_reported_by_line_and_the_rest_is_read(tmp_path: Path,
                                                                 hh_rows: list[dict[str, Any]]) -> None:
    good = hh_rows[:3]
    user = {"role": "user", "content": "hi"}
    bad: list[tuple[Any, str]] = [
        ({"prompt": "q", "chosen": "a"}, "no 'rejected' column"),
        ({"prompt": "q", "chosen": "a", "rejected": None}, "'rejected' is null"),
        ({"prompt": "q", "chosen": "a", "rejected": []}, "'rejected' is an empty list"),
        ({"prompt": "q", "chosen": 42, "rejected": "b"}, "'chosen' has type int"),
        ({"prompt": "q", "chosen": {"text": "a"}, "rejected": "b"}, "'chosen' has type dict"),
        ({"prompt": "q", "chosen": ["a", 3], "rejected": ["b"]}, "'chosen'[1] has type int"),
        ({"prompt": 7, "chosen": "a", "rejected": "b"}, "'prompt' has type int"),
        ({"chosen": [user, {"role": "assistant", "content": 5}], "rejected": [user]},
         "chosen message 1: invalid 'content'"),
        ({"chosen": [user, {"role": "assistant", "content": "x"}], "rejected": [user]},
         "rejected ends with a 'user' message"),
        ({"chosen": good[0]["chosen"], "rejected": "no dialogue here"},
         "rejected has no '\\n\\nAssistant:' turn"),
        ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}, "'margin' must be a finite number"),
        ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": True}, "'margin' must be a finite number"),
        ({"prompt": "q", "chosen": ["a"], "rejected": [[user, {"role": "assistant", "content": "b"}]]},
         "rejected[0] continues a different conversation"),
        ([1, 2], "expected a JSON object, got list"),
    ]
    lines = [json.dumps(r) for r in good[:2]] + [json.dumps(r) for r, _ in bad] + \
        ["{not json", "", '{"prompt": "q", "chosen": "a", "rejected": NaN, "margin": 1}', json.dumps(good[2])]
    path = tmp_path / "messy.jsonl"
    path.write_text("\n".join(lines) + "\n")
    data = read_preferences(path)
    assert len(data.items) == 3 and data.where == ["line 1", "line 2", f"line {len(lines)}"]
    assert [p.split(":")[0] for p in data.problems] == [f"line {n}" for n in range(3, 3 + len(bad) + 1)] + \
        [f"line {len(lines) - 1}"]  # the blank line is no row; NaN is no response
    for problem, (_, why) in zip(data.problems, bad, strict=False):
        assert why in problem, (problem, why)
    assert "invalid JSON" in data.problems[len(bad)]
    assert "'rejected' has type float" in data.problems[-1]
    assert data.items[2] == read_preferences(write_jsonl(tmp_path / "one.jsonl", [good[2]])).items[0]
    assert f"{len(bad) + 2} unreadable rows, first: line 3: no 'rejected' column" in data.summary()


def test_doubtful_rows_are_kept_and_flagged(tmp_path: Path) -> None:
    rows = [
        {"prompt": "q", "chosen": "same", "rejected": "same"},
        {"prompt": "q", "chosen": "a", "rejected": "   "},
        {"prompt": "q", "chosen": "", "rejected": "b"},
        {"prompt": "q", "chosen": ["a"], "rejected": ["b", "a"]},
        {"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}],
         "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]},
        {"prompt": "q", "chosen": "a", "rejected": "b"},
    ]
    data = read_preferences(write_jsonl(tmp_path / "f.jsonl", rows))
    assert data.problems == [] and len(data.items) == 6
    assert data.flagged == {"identical": ["line 1", "line 4", "line 5"], "empty_rejected": ["line 2"],
                            "empty_chosen": ["line 3"]}
    assert [item.identical for item in data.items] == [True, False, False, True, True, False]
    assert "3 rows where chosen equals rejected (kept), first: line 1" in data.summary()


def test_a_response_with_tool_turns_and_ids_labels_and_metadata() -> None:
    user = {"role": "user", "content": "Weather in Paris?"}
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": "{}"}}]}
    result = {"role": "tool", "content": "18C", "tool_call_id": "1"}
    row = {"uid": 12, "category": "tools", "subset": 3, "margin": 1.5, "source": "synthetic",
           "chosen": [user, call, result, {"role": "assistant", "content": "18C and sunny."}],
           "rejected": [user, {"role": "assistant", "content": "I cannot check."}]}
    item, layout, flags = preference_from_row(row)
    assert layout == "messages" and flags == []
    assert isinstance(item, PreferencePair) and item.id == "12" and item.subset == "3"
    assert item.category == "tools" and item.margin == 1.5 and item.metadata == {"source": "synthetic"}
    assert item.prompt == [Message(role="user", content="Weather in Paris?")]
    assert isinstance(item.chosen, list) and [m.role for m in item.chosen] == ["assistant", "tool", "assistant"]
    chosen, _ = item.samples()
    assert chosen.response_text == "18C and sunny." and chosen.metadata["category"] == "tools"
    # a tool-call-only response is not empty
    _, _, flags = preference_from_row({**row, "chosen": [user, call]})
    assert "empty_chosen" not in flags


def test_missing_and_unreadable_files() -> None:
    with pytest.raises(FileNotFoundError):
        read_preferences("/no/such/pairs.jsonl")
    with pytest.raises(FileNotFoundError):
        read_preferences("/no/such/pairs.jsonl.gz")


def test_corrupt_parquet_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="broken.parquet"):
        read_preferences(path)


def test_an_empty_file_reads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    assert read_preferences(path) == PreferenceData()
    assert read_preferences(path).summary() == "0 rows read (none)"
