"""The server's parts without a server: recovering responses from OpenRLHF queries, the
/get_reward reply, the JSON form of a score, the component keys of a spec, the micro-batcher."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("fastapi")

from rewardlab import build, reward  # noqa: E402
from rewardlab.core.types import Sample, Score, TokenScores  # noqa: E402
from rewardlab.runtime.engine import Runtime  # noqa: E402
from rewardlab.serve.app import ServeConfig, score_json  # noqa: E402
from rewardlab.serve.batcher import MicroBatcher, QueueFull, TooManySamples  # noqa: E402
from rewardlab.serve.metrics import Metrics  # noqa: E402
from rewardlab.serve.openrlhf import QuerySplitter, Unsplittable, reply  # noqa: E402
from rewardlab.serve.specinfo import component_keys, describe  # noqa: E402
from tests.serve.server import ROOT  # noqa: E402


def test_splitter_by_prompt_marker_and_strip() -> None:
    by_prompt = QuerySplitter(strip=("<|im_end|>", "</s>"))
    assert by_prompt.response("<s>PROMPT answer<|im_end|></s>", "PROMPT") == " answer"
    with pytest.raises(Unsplittable):
        by_prompt.response("something else", "PROMPT")
    with pytest.raises(Unsplittable):
        by_prompt.response("PROMPT answer", None)
    by_marker = QuerySplitter(response_after="ASSISTANT:")
    assert by_marker.response("ASSISTANT: 4 USER: again ASSISTANT: 42", "ignored") == " 42"
    with pytest.raises(Unsplittable):
        by_marker.response("no marker", None)
    # a prompt the query holds is preferred to the marker (a response can forge a marker)
    assert by_marker.response("Q ASSISTANT: x ASSISTANT: 42", "Q ASSISTANT:") == " x ASSISTANT: 42"
    s = by_prompt.sample("P r", "P", "")
    assert (s.prompt, s.response, s.reference) == ("P", " r", None)
    assert by_prompt.sample("P r", "P", {"tests": []}).reference == {"tests": []}


def test_reply_keeps_every_key_and_uses_the_fallback() -> None:
    scores = [Score.of(0.5, components={"a": 1.0, "b": 0.0}), Score.error("boom", components={"a": None}),
              Score.abstain("n/a")]
    out = reply(scores, ["a", "b"], fallback=-1.0)
    assert out["rewards"] == [0.5, -1.0, -1.0] and out["scores"] == out["rewards"]
    assert out["extra_logs"] == {"a": [1.0, -1.0, -1.0], "b": [0.0, -1.0, -1.0], "rewardlab_ok": [1.0, 0.0, 0.0]}
    assert reply([], ["a"], 0.0) == {"rewards": [], "scores": [], "extra_logs": {"a": [], "rewardlab_ok": []}}


def test_score_json_has_finer_values_only_when_given() -> None:
    plain = score_json(Score.of(1.0))
    assert set(plain) == {"value", "status", "reason", "components", "cost"}
    finer = score_json(Score.of(1.0, steps=[0.5, 0.5], tokens=TokenScores(tokenizer="t", values=[1.0])))
    assert finer["steps"] == [0.5, 0.5] and finer["tokens"]["values"] == [1.0] and "turns" not in finer
    assert score_json(Score.error("x", components={"a": None}))["components"] == {"a": None}


def test_component_keys_match_what_scores_carry() -> None:
    spec = build(str(ROOT / "examples" / "math_format.yaml"))
    keys = component_keys(spec)
    assert keys == ["correct", "correct/think_answer_format", "correct/math_answer", "format_bonus"]
    d = describe(spec)
    assert d["range"] == [0.0, 1.1] and [c["reward"] for c in d["components"]][1:] == [
        "think_answer_format", "math_answer", "think_answer_format"]
    ens = build({"reward": {"ensemble": [{"reward": "math_answer", "label": "m"},
                                         {"reward": "think_answer_format", "label": "f"}], "reduce": "mean"}})
    assert component_keys(ens) == ["m", "f", "std"]
    sample = Sample(prompt="1+1?", response="<think>2</think><answer>2</answer>", reference="2")
    with Runtime(workers=1) as rt:
        for s in (spec, ens):
            carried = rt.score(s, [sample]).scores[0].components
            assert set(carried) <= set(component_keys(s))


def test_serve_config_refuses_bad_limits() -> None:
    for bad in ({"max_batch": 0}, {"max_queue": 0}, {"concurrent_batches": 0}, {"max_body_bytes": 0},
                {"max_wait": -1.0}):
        with pytest.raises(ValueError):
            ServeConfig(**bad)  # type: ignore[arg-type]


@reward(register=False, range=(0, 100))
def text_length(response_text: str) -> float:
    """The response's length in characters."""
    return float(len(response_text))


def test_batcher_scores_in_order_across_requests() -> None:
    metrics = Metrics("fp", "v", lambda: 0)

    async def main(rt: Runtime) -> None:
        b = MicroBatcher(rt, build(text_length), metrics, max_batch=4, max_wait=0.001, max_queue=10)
        b.start()
        try:
            requests = [[Sample(response="x" * (10 * r + i)) for i in range(r + 1)] for r in range(4)]
            out = await asyncio.gather(*(b.submit(s) for s in requests))
            for r, scores in enumerate(out):
                assert [s.value for s in scores] == [float(10 * r + i) for i in range(r + 1)]
            assert await b.submit([]) == []
            with pytest.raises(TooManySamples):
                await b.submit([Sample(response="x")] * 11)
            assert b.depth == 0
        finally:
            await b.stop()

    with Runtime(workers=1) as rt:
        asyncio.run(main(rt))
    sizes = {s.name: s.value for m in metrics.registry.collect() if m.name == "rewardlab_batch_size" for s in m.samples}
    assert sizes["rewardlab_batch_size_sum"] == 10  # 1+2+3+4 samples, in batches of at most 4
    assert sizes["rewardlab_batch_size_count"] >= 3


def test_batcher_refuses_when_full() -> None:
    metrics = Metrics("fp", "v", lambda: 0)

    async def main(rt: Runtime) -> None:
        b = MicroBatcher(rt, build(text_length), metrics, max_batch=1, max_queue=2)
        # not started: nothing leaves the queue, so it provably fills
        waiting = asyncio.ensure_future(b.submit([Sample(response="ab"), Sample(response="c")]))
        while b.depth < 2:
            await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await b.submit([Sample(response="d")])
        b.start()
        assert [s.value for s in await waiting] == [2.0, 1.0]
        await b.stop()

    with Runtime(workers=1) as rt:
        asyncio.run(main(rt))


class _BrokenRuntime:
    """A runtime whose scoring raises (as a model that cannot load might)."""

    async def ascore(self, spec: object, samples: object) -> object:
        raise OSError("no such model directory")


def test_a_failed_warm_up_never_reports_ready() -> None:
    from rewardlab.serve.app import create_app

    app = create_app(build(text_length), _BrokenRuntime())  # type: ignore[arg-type]

    async def main() -> None:
        async with app.router.lifespan_context(app):
            while app.state.warmup["warmup"] is None:
                await asyncio.sleep(0)
            assert app.state.warmup["warmup"] == "failed: OSError: no such model directory"
            assert not app.state.ready.is_set()

    asyncio.run(main())
