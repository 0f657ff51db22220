"""`/metrics` is Prometheus text that prometheus-client's own parser reads, every name has the
``rewardlab_`` prefix, and its counters match the requests sent to a fresh server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import rewardlab

pytest.importorskip("fastapi")
parser = pytest.importorskip("prometheus_client.parser")

from tests.serve.server import Server, request  # noqa: E402


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in parser.text_string_to_metric_families(text):
        assert family.name.startswith("rewardlab_"), family.name
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def test_metrics_counters_match_the_requests_sent(serve: Callable[..., Server], tmp_path: Path) -> None:
    server = serve("math_answer", "--cache", str(tmp_path / "scores.db"), "--workers", "1")
    url = server.url
    sent_score, sent_reward, sent_samples = 0, 0, 0
    for k in range(1, 6):  # 5 requests of 1..5 samples, answers right on even k
        rows = [{"prompt": f"{k} + {i}?", "response": f"\\boxed{{{k + i + (k % 2)}}}", "reference": str(k + i)}
                for i in range(k)]
        assert request("POST", url + "/v1/score", {"samples": rows})[0] == 200
        sent_score += 1
        sent_samples += k
    for q in ("Q:\\boxed{4}", "Q:\\boxed{5}", "Q:nothing", "Q:\\boxed{4}"):
        assert request("POST", url + "/get_reward", {"query": [q], "prompts": ["Q:"], "labels": ["4"]})[0] == 200
        sent_reward += 1
        sent_samples += 1
    assert request("POST", url + "/get_reward", {"query": ["no prompt here"], "prompts": ["Q:"]})[0] == 200
    assert request("POST", url + "/v1/score", {"samples": [{"prompt": "no response"}]})[0] == 422
    assert request("GET", url + "/nowhere")[0] == 404

    m = _samples(server.metrics())
    assert m[("rewardlab_requests_total", (("code", "200"), ("endpoint", "/v1/score")))] == sent_score
    assert m[("rewardlab_requests_total", (("code", "422"), ("endpoint", "/v1/score")))] == 1
    assert m[("rewardlab_requests_total", (("code", "200"), ("endpoint", "/get_reward")))] == sent_reward + 1
    assert m[("rewardlab_requests_total", (("code", "404"), ("endpoint", "other")))] == 1
    assert m[("rewardlab_request_duration_seconds_count", (("endpoint", "/v1/score"),))] == sent_score + 1
    # every sample that reached the Runtime went through a batch; the unsplittable query did not
    assert m[("rewardlab_batch_size_sum", ())] == sent_samples
    ok = m[("rewardlab_samples_total", (("status", "ok"),))]
    assert ok == sent_samples
    assert m[("rewardlab_samples_total", (("status", "error"),))] == 1  # the query without its prompt
    assert m[("rewardlab_reward_samples_total", (("reward", "math_answer"), ("status", "ok")))] == sent_samples
    assert m[("rewardlab_fallbacks_total", ())] == 1
    # the repeated /get_reward sample came from the cache
    assert m[("rewardlab_cache_hits_total", ())] == 1
    assert m[("rewardlab_computed_total", ())] == sent_samples - 1
    assert m[("rewardlab_queue_depth", ())] == 0 and m[("rewardlab_inflight_requests", ())] == 0
    assert m[("rewardlab_worker_restarts_total", ())] == 0
    spec = request("GET", url + "/v1/spec")[2]
    assert m[("rewardlab_build_info", (("fingerprint", spec["fingerprint"]), ("version", rewardlab.__version__)))] == 1
