"""A group-normalising spec on the server: each request is scored as its own batch, so its groups
are whole and never mixed with another request's rollouts of the same prompt, however the
requests arrive and whatever `--max-batch` is; the advantages equal those of a local run."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

import rewardlab  # noqa: E402
from tests.serve.server import Server, request  # noqa: E402

SPEC = """\
reward:
  advantage: {reward: math_answer, label: correct}
  estimator: grpo
  convention: verl
  by: prompt
  label: advantage
"""


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("groups") / "grpo.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def server(serve: Callable[..., Server], spec_file: Path) -> Server:
    # a batch of 2 would cut every group of 4 if requests were batched like samples
    return serve(str(spec_file), "--no-cache", "--workers", "1", "--max-batch", "2", "--max-wait-ms", "50")


@pytest.fixture(scope="module")
def gsm8k(shared_data: Path) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in (shared_data / "verifiable" / "gsm8k_test.jsonl").read_text().splitlines()]
    return [{"question": r["question"], "gold": r["answer"].split("####")[-1].strip()} for r in rows[:3]]


def group(row: dict[str, str], right: list[bool]) -> list[dict[str, Any]]:
    """Rollouts of one question: the gold answer where `right`, a wrong number elsewhere."""
    wrong = str(int(row["gold"].replace(",", "")) + 1)
    return [{"prompt": row["question"], "response": f"The answer is {row['gold'] if ok else wrong}.",
             "reference": row["gold"]} for ok in right]


def post(server: Server, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    status, _, body = request("POST", server.url + "/v1/score", {"samples": samples})
    assert status == 200, body
    return body["scores"]  # type: ignore[no-any-return]


def test_a_request_of_whole_groups_gets_the_local_advantages(server: Server, spec_file: Path,
                                                             gsm8k: list[dict[str, str]]) -> None:
    samples = group(gsm8k[0], [True, False, False, True]) + group(gsm8k[1], [True, True, True, False])
    got = post(server, samples)
    local = rewardlab.score(samples, str(spec_file))
    assert [s["value"] for s in got] == pytest.approx([s.value for s in local])
    assert [s["value"] for s in got[:4]] == pytest.approx([0.8660, -0.8660, -0.8660, 0.8660], abs=1e-4)
    assert [s["components"]["correct"] for s in got] == [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_concurrent_requests_for_one_prompt_are_not_mixed(server: Server, gsm8k: list[dict[str, str]]) -> None:
    """Two trainers' requests for the same question, sent at once: merged, the group would be the
    8 rollouts together and every advantage would change."""
    patterns = [[True, False, False, False], [True, True, True, False]]
    results: dict[int, list[dict[str, Any]]] = {}
    go = threading.Barrier(len(patterns))

    def send(i: int) -> None:
        go.wait()
        results[i] = post(server, group(gsm8k[2], patterns[i]))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(patterns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    alone = [post(server, group(gsm8k[2], p)) for p in patterns]
    for i in range(len(patterns)):
        assert [s["value"] for s in results[i]] == pytest.approx([s["value"] for s in alone[i]])
    # 1 of 4 right (verl: the sample std, ddof 1, is 0.5): the right one gets +1.5, the others -0.5
    assert [s["value"] for s in results[0]] == pytest.approx([1.5, -0.5, -0.5, -0.5], abs=1e-4)
