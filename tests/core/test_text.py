"""Reading responses: the final text after the thinking, fenced blocks and answer tags."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rewardlab.core import text as text_mod
from rewardlab.core.text import (
    after_think,
    check_tag_name,
    fenced_blocks,
    final_text,
    find_tags,
    last_fence,
    prompt_opens_think,
    split_think,
    tag_content,
)

# -- the final text ------------------------------------------------------------------------------


@pytest.mark.parametrize(("response", "final"), [
    ("no tags at all", "no tags at all"),
    ("<think>2+2=4</think>4", "4"),
    ("<think>a</think>mid<think>b</think> tail", " tail"),            # the last close wins
    ("reasoning</think>answer", "answer"),                            # a prefilled <think>
    ("<THINK>x</THINK>y", "y"),                                       # any case
    ("<think>x</ think >y", "y"),                                     # spaces inside
    ("<think>x</Think>y</think>z", "z"),
    ("<think>the answer is 5", ""),                                   # never closed
    ("Answer: 5 <think>hmm", "Answer: 5 "),                           # thinking runs to the end
    ("<think>a</think>5<think>b", "5"),                               # closed, then opened again
    ("<think>a</think>5<think>b<think>c", "5"),
    ("<think>a<think>b</think>c</think>d", "d"),                      # nested
    ("</think>", ""),
    ("", ""),
    ("<thinking>x</thinking>y", "<thinking>x</thinking>y"),           # another tag name
    ("<think/>x", "<think/>x"),                                       # not a tag of this form
])
def test_final_text(response: str, final: str) -> None:
    assert after_think(response) == final
    split = split_think(response)
    assert response[split.start:split.stop] == split.final == final


def test_split_says_how_the_thinking_ended() -> None:
    assert (split_think("x").closed, split_think("x").unclosed) == (False, False)
    assert (split_think("<think>a</think>b").closed, split_think("<think>a</think>b").unclosed) == (True, False)
    assert (split_think("<think>a").closed, split_think("<think>a").unclosed) == (False, True)
    assert (split_think("a</think>b<think>").closed, split_think("a</think>b<think>").unclosed) == (True, True)


@pytest.mark.parametrize(("prompt", "opens"), [
    ("<|im_start|>assistant\n<think>\n", True),               # a template that prefills it
    ("<｜Assistant｜><think>\n", True),
    ("Question: 2 + 2?\n< THINK >  \n\t", True),
    ("Question: 2 + 2?", False),
    ("What does <think> do? Answer briefly.", False),            # inside the text, not at its end
    ("<think>a</think>", False),
    ("", False),
])
def test_prompt_opens_think(prompt: str, opens: bool) -> None:
    assert prompt_opens_think(prompt) is opens


@pytest.mark.parametrize(("response", "final"), [
    ("so 4</think>The answer is 4.", "The answer is 4."),
    ("so 4</THINK>4", "4"),
    ("so the answer is 4", ""),                                 # never closed: all thinking
    ("a</think>4<think>b", "4"),
    ("<think>x</think>4", "4"),
])
def test_a_response_to_a_prompt_that_opened_the_thinking(response: str, final: str) -> None:
    prompt = "<|im_start|>assistant\n<think>\n"
    assert final_text(response, prompt) == final
    assert after_think(response, opened=True) == final
    assert final_text(response, "Question?") == after_think(response)


def test_other_tag_names_and_bad_names() -> None:
    assert after_think("<reasoning>r</reasoning>final", "reasoning") == "final"
    assert after_think("<think>r</think>final", "reasoning") == "<think>r</think>final"
    for bad in ("", "a b", "</x>", "x/y"):
        with pytest.raises(ValueError, match="not a valid tag name"):
            check_tag_name(bad)
        with pytest.raises(ValueError):
            after_think("text", bad)


def test_find_tags_spans_and_spellings() -> None:
    tags = find_tags("a<Think >b</ THINK>c", "think")
    assert [(t.closing, t.text) for t in tags] == [(False, "<Think >"), (True, "</ THINK>")]
    assert "a<Think >b</ THINK>c"[tags[1].start:tags[1].end] == "</ THINK>"
    assert find_tags("no brackets", "think") == []


def test_many_unclosed_openings_read_in_one_pass() -> None:
    """2 MB of openings: one pass each way (a rescanning pattern would take minutes)."""
    response = "</think>" + "<think>" * 250_000
    split = split_think(response)
    assert split.final == "" and split.closed and split.unclosed
    assert tag_content("<answer>" * 250_000 + "x</answer>") == "x"


# -- answer tags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("response", "content"), [
    ("<answer>4</answer>", "4"),
    ("<answer>1</answer> then <answer> 2 </answer>", " 2 "),          # the last block
    ("<ANSWER>4</Answer>", "4"),                                       # any case
    ("< answer >4</answer >", "4"),
    ("<answer>a<answer>b</answer>", "b"),                              # the last opening before
    ("<answer>a</answer></answer>", "a</answer>"),                     # the last closing
    ("<answer>unclosed", None),
    ("</answer> before <answer>", None),
    ("no tags", None),
])
def test_tag_content(response: str, content: str | None) -> None:
    assert tag_content(response) == content


# -- fenced blocks -------------------------------------------------------------------------------


def test_fenced_blocks_language_body_and_span() -> None:
    text = "Intro\n```Python title=x\nprint(1)\n```\nmid\n```\nplain\n```\n```sql\nSELECT 1\n```"
    blocks = fenced_blocks(text)
    assert [(b.lang, b.body) for b in blocks] == [("python", "print(1)\n"), ("", "plain\n"),
                                                  ("sql", "SELECT 1\n")]
    assert text[blocks[0].start:blocks[0].end] == "```Python title=x\nprint(1)\n```"
    assert last_fence(text, {"python", "py"}).body == "print(1)\n"
    assert last_fence(text, {"rust"}).body == "plain\n"                # the last untagged
    assert last_fence(text, {"rust"}, untagged=False) is None


@pytest.mark.parametrize("text", [
    "```python\nnever closed",                  # no closing fence
    "```python",                                # no newline after the opening
    "no fences",
])
def test_no_block(text: str) -> None:
    assert fenced_blocks(text) == []


def test_a_closing_fence_ends_at_the_next_backticks() -> None:
    # the body ends at the first ``` after the opening line, wherever it is
    assert [(b.lang, b.body) for b in fenced_blocks("```py\nx = 1```tail")] == [("py", "x = 1")]


def test_many_unclosed_fences_read_in_one_pass() -> None:
    assert len(fenced_blocks("```\n" * 200_000)) == 100_000


# -- the module stays at the bottom of the layers ------------------------------------------------


def test_text_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(text_mod.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "rewardlab" not in imported
    assert imported <= {"__future__", "functools", "re", "collections", "dataclasses", "typing"}
