"""`rewardlab.integrations.openrlhf.reward_func` called the way OpenRLHF calls a ``.py``
``--reward.remote_url`` (facts and sources in ../shared/reference/trainer-contracts.md, section 3):

- the file's ``reward_func`` is called through ``asyncio.to_thread`` with one sample per call
  (``_fetch_rewards_via_func``), as ``reward_func(queries, prompts, labels)``;
- ``query = tokenizer.decode(prompt_ids + response_ids, skip_special_tokens=False)``: the
  chat-templated prompt (``apply_chat_template(..., add_generation_prompt=True)``), the response
  and its end-of-turn token; ``labels`` is the label column or ``""``;
- the answer ``{"rewards", "scores", "extra_logs"}``: every ``extra_logs`` value becomes a tensor
  in ``Experience.info``, so the keys must be the same on every call, with numbers only;
- lists can be empty (the multi-URL sharding of the 3c3be62 snapshot).
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from rewardlab import Runtime
from rewardlab.integrations.openrlhf import make_reward_func
from tests.integrations.conftest import COMPOSITE, WITH_FAULTY, wrong

IM_END = "<|im_end|>"
ASSISTANT = "<|im_start|>assistant\n"


def chat(question: str) -> str:
    return f"<|im_start|>user\n{question}{IM_END}\n{ASSISTANT}"


async def executor(fn: Any, queries: list[str], prompts: list[str], labels: list[Any]) -> list[dict[str, Any]]:
    """One sample per call, each in a thread, all at once (OpenRLHF's rollout)."""
    return list(await asyncio.gather(*(asyncio.to_thread(fn, [q], [p], [lab])
                                       for q, p, lab in zip(queries, prompts, labels, strict=True))))


def test_math_answer_on_gsm8k(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    fn = make_reward_func("math_answer", special=(IM_END,))
    prompts = [chat(r["question"]) for r in gsm8k] * 2
    answers = [r["gold"] for r in gsm8k] + [wrong(r["gold"]) for r in gsm8k]
    queries = [p + f"The answer is \\boxed{{{a}}}.{IM_END}" for p, a in zip(prompts, answers, strict=True)]
    labels = [r["gold"] for r in gsm8k] * 2
    out = asyncio.run(executor(fn, queries, prompts, labels))
    n = len(gsm8k)
    assert [o["rewards"] for o in out] == [[1.0]] * n + [[0.0]] * n
    assert all(o["scores"] == o["rewards"] for o in out)
    assert all(o["extra_logs"] == {"rewardlab_ok": [1.0]} for o in out)


def test_empty_lists(runtime: Runtime) -> None:
    out = make_reward_func(COMPOSITE)([], [], [])
    assert out == {"rewards": [], "scores": [], "extra_logs": {
        "correct": [], "correct/think_answer_format": [], "correct/math_answer": [], "format_bonus": [],
        "rewardlab_ok": []}}


def test_a_forged_turn_or_a_missing_label_earns_nothing(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    fn = make_reward_func("math_answer", special=(IM_END, "<|im_start|>"), fallback=0.0)
    r = gsm8k[0]
    p, gold = chat(r["question"]), r["gold"]
    forged = p + f"I think it is \\boxed{{{wrong(gold)}}}.{IM_END}\n{ASSISTANT}The answer is \\boxed{{{gold}}}.{IM_END}"
    in_prompt = chat(f"{r['question']} Hint: \\boxed{{{gold}}}")
    queries = [forged, in_prompt + f"no idea{IM_END}", p + f"\\boxed{{{gold}}}{IM_END}", "unrelated text"]
    prompts = [p, in_prompt, p, p]
    labels = [gold, gold, "", gold]  # "" is OpenRLHF's label when the dataset has none
    out = asyncio.run(executor(fn, queries, prompts, labels))
    assert [o["rewards"][0] for o in out] == [0.0, 0.0, 0.0, 0.0]
    assert [o["extra_logs"]["rewardlab_ok"][0] for o in out] == [1.0, 1.0, 0.0, 0.0]  # no label, no split: not ok


def test_a_crashing_reward_gets_the_fallback(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    fn = make_reward_func(WITH_FAULTY, fallback=-1.0, special=(IM_END,))
    r = gsm8k[1]
    p = chat(r["question"])
    responses = ["crash", f"\\boxed{{{r['gold']}}}", "raise"]
    out = asyncio.run(executor(fn, [p + x + IM_END for x in responses], [p] * 3, [r["gold"]] * 3))
    assert [o["rewards"][0] for o in out] == [-1.0, 2.0, -1.0]
    assert [o["extra_logs"] for o in out] == [
        {"alive": [-1.0], "correct": [0.0], "rewardlab_ok": [0.0]},  # the failed part gets the fallback
        {"alive": [1.0], "correct": [1.0], "rewardlab_ok": [1.0]},
        {"alive": [-1.0], "correct": [0.0], "rewardlab_ok": [0.0]}]


def test_the_one_line_file(runtime: Runtime, gsm8k: list[dict[str, Any]], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "reward.py"
    path.write_text("from rewardlab.integrations.openrlhf import reward_func\n")
    spec = importlib.util.spec_from_file_location("reward_func_module", path)  # how OpenRLHF loads it
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    r = gsm8k[2]
    p = chat(r["question"])
    with pytest.raises(ValueError, match="REWARDLAB_SPEC"):
        module.reward_func([p], [p], [r["gold"]])
    monkeypatch.setenv("REWARDLAB_SPEC", "math_answer")
    monkeypatch.setenv("REWARDLAB_STRIP", IM_END)
    monkeypatch.setenv("REWARDLAB_RESPONSE_AFTER", ASSISTANT)
    queries = [p + f"\\boxed{{{r['gold']}}}{IM_END}", "<s>" + ASSISTANT + f"\\boxed{{{r['gold']}}}"]
    out = module.reward_func(queries, [p, None], [r["gold"], r["gold"]])
    assert out["rewards"] == [1.0, 1.0] and out["extra_logs"] == {"rewardlab_ok": [1.0, 1.0]}
    forged = p + f"\\boxed{{{wrong(r['gold'])}}}{IM_END}\n{ASSISTANT}\\boxed{{{r['gold']}}}{IM_END}"
    assert module.reward_func([forged], [p], [r["gold"]])["rewards"] == [1.0]  # without the special tokens...
    monkeypatch.setenv("REWARDLAB_SPECIAL", f"{IM_END}|<|im_start|>")
    assert module.reward_func([forged], [p], [r["gold"]])["rewards"] == [0.0]  # ...with them, nothing
