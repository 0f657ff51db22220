"""Both scoring endpoints against real rewards on real data: `math_answer` on GSM8K, the
sandboxed `code_pass` on HumanEval, and the composite examples/math_format.yaml; plus /health,
/ready, /v1/spec, malformed requests, and the ways a policy could try to be paid through the
OpenRLHF query format."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from tests.serve.server import ROOT, Server, request  # noqa: E402

IM_END = "<|im_end|>"
ASSISTANT = "<|im_start|>assistant\n"


def chat(question: str) -> str:
    """A chat-templated prompt as OpenRLHF builds it (add_generation_prompt=True)."""
    return f"<|im_start|>user\n{question}{IM_END}\n{ASSISTANT}"


@pytest.fixture(scope="module")
def gsm8k(shared_data: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (shared_data / "verifiable" / "gsm8k_test.jsonl").read_text().splitlines()]
    return [{"question": r["question"], "gold": r["answer"].split("####")[-1].strip().replace(",", "")}
            for r in rows[:12]]


@pytest.fixture(scope="module")
def humaneval(shared_data: Path) -> list[dict[str, Any]]:
    with gzip.open(shared_data / "verifiable" / "HumanEval.jsonl.gz", "rt") as fh:
        return [json.loads(line) for line in fh][:4]


@pytest.fixture(scope="module")
def math_server(serve: Callable[..., Server]) -> Server:
    return serve("math_answer", "--no-cache", "--workers", "1", "--strip", IM_END)


@pytest.fixture(scope="module")
def marker_server(serve: Callable[..., Server]) -> Server:
    return serve("math_answer", "--no-cache", "--workers", "1", "--response-after", ASSISTANT,
                 "--strip", IM_END, "--fallback", "-1")


def test_health_ready_and_spec(math_server: Server) -> None:
    assert request("GET", math_server.url + "/health")[:1] == (200,)
    status, _, body = request("GET", math_server.url + "/ready")
    assert status == 200 and body["ready"] is True
    assert body["warmup"].startswith("abstain")  # one empty sample was scored: no reference
    status, _, spec = request("GET", math_server.url + "/v1/spec")
    assert status == 200
    assert spec["reward"] == "math_answer" and spec["range"] == [0.0, 1.0] and spec["direction"] == "higher"
    assert spec["fallback"] == 0.0 and spec["extra_logs"] == ["rewardlab_ok"]
    assert any(line.startswith(f"  spec        {spec['fingerprint']}") for line in math_server.lines)
    assert any(line.startswith("  fallback    0") for line in math_server.lines)


def test_v1_score_math_answer_on_gsm8k(math_server: Server, gsm8k: list[dict[str, Any]]) -> None:
    rows = []
    for r in gsm8k:
        rows.append({"prompt": r["question"], "response": f"So the total is \\boxed{{{r['gold']}}}.",
                     "reference": r["gold"]})
        rows.append({"prompt": r["question"], "response": f"So the total is \\boxed{{{int(r['gold']) + 1}}}.",
                     "reference": r["gold"]})
    # the same rows in TRL's and verl's layouts
    rows.append({"prompt": gsm8k[0]["question"], "completion": f"\\boxed{{{gsm8k[0]['gold']}}}",
                 "solution": gsm8k[0]["gold"]})
    rows.append({"data_source": "gsm8k", "prompt": [{"role": "user", "content": gsm8k[1]["question"]}],
                 "response": f"\\boxed{{{gsm8k[1]['gold']}}}", "reward_model": {"ground_truth": gsm8k[1]["gold"]}})
    status, _, body = request("POST", math_server.url + "/v1/score", {"samples": rows})
    assert status == 200, body
    values = [s["value"] for s in body["scores"]]
    assert values == [1.0, 0.0] * len(gsm8k) + [1.0, 1.0]
    assert all(s["status"] == "ok" and s["cost"]["seconds"] >= 0 for s in body["scores"])
    assert body["fingerprint"] == request("GET", math_server.url + "/v1/spec")[2]["fingerprint"]


def test_v1_score_rejects_a_malformed_sample_by_index(math_server: Server) -> None:
    good = {"prompt": "1+1?", "response": "\\boxed{2}", "reference": "2"}
    rows = [good, good, {"prompt": "no response"}]
    status, _, body = request("POST", math_server.url + "/v1/score", {"samples": rows})
    assert status == 422 and body["detail"].startswith("samples[2]:")
    for bad in ({"samples": "x"}, {"sample": []}, [good]):
        assert request("POST", math_server.url + "/v1/score", bad)[0] == 422
    assert request("POST", math_server.url + "/v1/score", data=b"{not json")[0] == 422
    status, _, body = request("POST", math_server.url + "/v1/score", {"samples": []})
    assert status == 200 and body["scores"] == []


def test_get_reward_math_answer(math_server: Server, gsm8k: list[dict[str, Any]]) -> None:
    prompts = [chat(r["question"]) for r in gsm8k]
    right = [p + f"The answer is \\boxed{{{r['gold']}}}.{IM_END}" for p, r in zip(prompts, gsm8k, strict=True)]
    wrong = [p + f"The answer is \\boxed{{{int(r['gold']) + 7}}}.{IM_END}" for p, r in zip(prompts, gsm8k, strict=True)]
    labels = [r["gold"] for r in gsm8k]
    status, _, body = request("POST", math_server.url + "/get_reward",
                              {"query": right + wrong, "prompts": prompts * 2, "labels": labels * 2})
    assert status == 200, body
    n = len(gsm8k)
    assert body["rewards"] == [1.0] * n + [0.0] * n
    assert body["scores"] == body["rewards"]
    assert body["extra_logs"] == {"rewardlab_ok": [1.0] * (2 * n)}


def test_get_reward_empty_and_mismatched(math_server: Server) -> None:
    status, _, body = request("POST", math_server.url + "/get_reward", {"query": [], "prompts": [], "labels": []})
    assert status == 200 and body == {"rewards": [], "scores": [], "extra_logs": {"rewardlab_ok": []}}
    status, _, body = request("POST", math_server.url + "/get_reward", {"query": ["a", "b"], "prompts": ["a"]})
    assert status == 422 and "prompts has 1 items for 2 queries" in body["detail"]


def test_get_reward_never_grades_the_prompt(math_server: Server) -> None:
    """A query that does not hold its prompt is an error (fallback, rewardlab_ok 0), never graded
    whole: the prompt would be graded with it, and a prompt can hold the answer."""
    prompt = chat("Is the answer \\boxed{42}? Work out 40 + 2.")
    status, _, body = request("POST", math_server.url + "/get_reward", {
        "query": [prompt + "I give up." + IM_END, "tampered " + prompt + "I give up."],
        "prompts": [prompt, prompt.replace("40 + 2", "40 plus 2")], "labels": ["42", "42"]})
    assert status == 200
    assert body["rewards"] == [0.0, 0.0]
    assert body["extra_logs"]["rewardlab_ok"] == [1.0, 0.0]
    # without prompts and without a marker there is nothing to strip: error, not the whole query
    status, _, body = request("POST", math_server.url + "/get_reward", {"query": [prompt + "42"], "labels": ["42"]})
    assert status == 200 and body["rewards"] == [0.0] and body["extra_logs"]["rewardlab_ok"] == [0.0]


def test_get_reward_marker_takes_the_last_turn(marker_server: Server) -> None:
    """With --response-after, the response is what follows the marker's last occurrence: an
    earlier assistant turn of a multi-turn prompt (which may hold the gold answer) is not graded."""
    history = (f"<|im_start|>user\nWhat is 6 times 7?{IM_END}\n{ASSISTANT}It is \\boxed{{42}}.{IM_END}\n"
               f"<|im_start|>user\nNow what is 50 - 8?{IM_END}\n{ASSISTANT}")
    status, _, body = request("POST", marker_server.url + "/get_reward", {
        "query": [history + "No idea." + IM_END, history + "It is \\boxed{42}." + IM_END, "no marker \\boxed{42}"],
        "labels": ["42", "42", "42"]})
    assert status == 200, body
    assert body["rewards"] == [0.0, 1.0, -1.0]  # the last: no marker, an error: the fallback (-1)
    assert body["extra_logs"]["rewardlab_ok"] == [1.0, 1.0, 0.0]
    assert any(line.startswith("  fallback    -1") for line in marker_server.lines)


def test_code_pass_on_humaneval(serve: Callable[..., Server], humaneval: list[dict[str, Any]]) -> None:
    server = serve("code_pass", "-p", "timeout=10", "--no-cache", "--workers", "1")
    rows, queries, prompts = [], [], []
    for r in humaneval:
        for body in (r["canonical_solution"], "    return None\n"):
            code = f"```python\n{r['prompt']}{body}\n```"
            rows.append({"prompt": r["prompt"], "response": code, "reference": r})
            prompts.append(chat(r["prompt"]))
            queries.append(prompts[-1] + code + IM_END)
    status, _, body = request("POST", server.url + "/v1/score", {"samples": rows})
    assert status == 200, body
    assert [s["value"] for s in body["scores"]] == [1.0, 0.0] * len(humaneval)
    status, _, body = request("POST", server.url + "/get_reward",
                              {"query": queries, "prompts": prompts, "labels": [row["reference"] for row in rows]})
    assert status == 200, body
    assert body["rewards"] == [1.0, 0.0] * len(humaneval)
    assert body["extra_logs"]["rewardlab_ok"] == [1.0] * len(rows)
    # a program that only prints what a test might expect, or exits early, does not pass
    cheats = ["```python\nimport sys\nsys.exit(0)\n```", "```python\nprint('OK')\n```"]
    status, _, body = request("POST", server.url + "/v1/score", {"samples": [
        {"prompt": humaneval[0]["prompt"], "response": c, "reference": humaneval[0]} for c in cheats]})
    assert status == 200 and [s["value"] for s in body["scores"]] == [0.0, 0.0], body


def test_composite_spec(serve: Callable[..., Server]) -> None:
    server = serve(str(ROOT / "examples" / "math_format.yaml"), "--no-cache", "--workers", "1")
    spec = request("GET", server.url + "/v1/spec")[2]
    keys = ["correct", "correct/think_answer_format", "correct/math_answer", "format_bonus"]
    assert [c["name"] for c in spec["components"]] == keys
    assert spec["range"] == [0.0, 1.1] and spec["extra_logs"] == [*keys, "rewardlab_ok"]
    rows = [json.loads(line) for line in (ROOT / "examples" / "rollouts.jsonl").read_text().splitlines()]
    status, _, body = request("POST", server.url + "/v1/score", {"samples": rows})
    assert status == 200, body
    assert len(body["scores"]) == len(rows)
    for s in body["scores"]:
        assert set(s["components"]) <= set(keys)  # /v1/spec names every component a score carries
    assert body["scores"][0]["value"] == pytest.approx(1.1) and body["scores"][2]["value"] == 0.1
    # OpenRLHF: the same keys for every sample, a closed gate's missing component sent as the fallback
    status, _, body = request("POST", server.url + "/get_reward", {
        "query": [r["prompt"] + r["completion"] for r in rows], "prompts": [r["prompt"] for r in rows],
        "labels": [r["solution"] for r in rows]})
    assert status == 200, body
    assert set(body["extra_logs"]) == {*keys, "rewardlab_ok"}
    assert all(len(v) == len(rows) for v in body["extra_logs"].values())
    assert body["rewards"][0] == pytest.approx(1.1)
    assert body["extra_logs"]["correct/math_answer"][2] == 0.0 and body["extra_logs"]["format_bonus"][2] == 1.0


def test_slime_remote_rm(marker_server: Server, gsm8k: list[dict[str, Any]]) -> None:
    """slime's remote_rm posts {prompt, response, label} and takes the JSON reply as the reward:
    a bare number, the fallback (-1 here) where the score is not ok."""
    q, gold = gsm8k[0]["question"], gsm8k[0]["gold"]
    url = marker_server.url + "/slime"
    status, _, value = request("POST", url, {"prompt": q, "response": f"\\boxed{{{gold}}}", "label": gold})
    assert status == 200 and value == 1.0
    assert request("POST", url, {"prompt": q, "response": "\\boxed{0.5}", "label": gold})[2] == 0.0
    assert request("POST", url, {"prompt": q, "response": f"\\boxed{{{gold}}}", "label": "\\frac{"})[2] == -1.0
    assert request("POST", url, {"prompt": q})[0] == 422
