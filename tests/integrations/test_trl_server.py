"""The TRL adapter scoring on a rewardlab server through `RewardClient` (`trl_reward(client=...)`):
the same values, skipped samples and logged metrics as scoring in the trainer's process, and a
real `GRPOTrainer` run against two servers in the slow suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rewardlab.client import RemoteError, RewardClient
from rewardlab.integrations.trl import trl_reward
from tests.integrations.test_trl import Recorder, call_as_trl, check_grpo_run

pytest.importorskip("fastapi")
pytest.importorskip("aiohttp")

from tests.serve.server import Server  # noqa: E402 - after the skips: it is only usable with the serve extra

MODULE = "tests.integrations.rewards_for_integrations"
SUM_SPEC = f"""\
reward:
  sum:
    - reward: "{MODULE}:letters"
      label: letters
    - reward: "{MODULE}:crash_for_row"
      label: rowcheck
      weight: 0.5
"""


@pytest.fixture(scope="module")
def sum_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "sum.yaml"
    path.write_text(SUM_SPEC)
    return path


@pytest.fixture(scope="module")
def servers(sum_spec: Path) -> Iterator[tuple[Server, Server]]:
    """One server for the sum, one for the row check alone."""
    started = [Server([str(sum_spec), "--no-cache", "--workers", "1"]),
               Server([f"{MODULE}:crash_for_row", "--no-cache", "--workers", "1"])]
    try:
        for s in started:
            s.wait_ready()
        yield started[0], started[1]
    finally:
        for s in started:
            s.stop()


PROMPTS = [[{"role": "user", "content": f"What is {i}+4?"}] for i in range(4)]
COMPLETIONS = [[{"role": "assistant", "content": text}] for text in ("It is 4", "5!!", "six", "7 7 7")]
CRASH = [False, True, False, True]


def test_client_reward_matches_the_in_process_reward(servers: tuple[Server, Server], sum_spec: Path) -> None:
    remote_rec, local_rec = Recorder(), Recorder()
    remote = trl_reward(client=RewardClient(servers[0].url), name="rewardlab_sum", reference=None)
    local = trl_reward(str(sum_spec), name="rewardlab_sum", reference=None)
    got = call_as_trl(remote, PROMPTS, COMPLETIONS, remote_rec, crash=CRASH)
    want = call_as_trl(local, PROMPTS, COMPLETIONS, local_rec, crash=CRASH)
    assert got == want
    # the rows whose check crashed are skipped (None), never zeroed; the others get letters + 0.5
    assert got[1] is None and got[3] is None
    assert got[0] == pytest.approx(4 / 7 + 0.5) and got[2] == pytest.approx(1.5)
    assert remote_rec.metrics == local_rec.metrics
    assert remote_rec.metrics["rewardlab/rewardlab_sum/status/error"] == [0.5]
    assert remote_rec.metrics["rewardlab/rewardlab_sum/letters/mean"] == [pytest.approx((4 / 7 + 0 + 1 + 0) / 4)]
    statuses = remote_rec.extra["rewardlab_sum/status"]
    assert statuses[0] == "ok" and statuses[1].startswith("error") and "crash for this row" in statuses[1]


def test_a_server_that_cannot_be_reached_stops_the_step() -> None:
    """An outage is not a batch of skipped samples: training on nothing would go unnoticed."""
    dead = trl_reward(client=RewardClient("http://127.0.0.1:9", retries=1, backoff=0.0), reference=None)
    with pytest.raises(RemoteError):
        call_as_trl(dead, PROMPTS, COMPLETIONS, crash=CRASH)


def test_spec_or_client_not_both(sum_spec: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        trl_reward(str(sum_spec), client=RewardClient("http://127.0.0.1:9"))
    with pytest.raises(ValueError, match="not both"):
        trl_reward()
    assert trl_reward(client=RewardClient("http://127.0.0.1:9")).__name__ == "rewardlab"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning", "ignore::DeprecationWarning")
def test_grpo_trainer_run_through_servers(tmp_path: Path, servers: tuple[Server, Server]) -> None:
    check_grpo_run(tmp_path, trl_reward(client=RewardClient(servers[0].url), name="rewardlab_sum"),
                   {"client": RewardClient(servers[1].url)})
