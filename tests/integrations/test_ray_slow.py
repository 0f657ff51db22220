"""20,000 GSM8K rows (right, wrong, unformatted, hedged and empty answers) in one Parquet file:
`score_dataset` gives exactly the values, statuses, reasons and components of ``rewardlab score``
on the same file, for `math_answer` and for a composite (a format gate on `math_answer` plus a
format bonus), with the default pool and with two half-CPU actors over four blocks; and rewards
defined in the driver's own script run in the actors and their pool workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("pandas")

from rewardlab.integrations.ray import score_dataset  # noqa: E402
from tests.integrations.test_ray import (  # noqa: E402
    COMPOSITE,
    by_id,
    gsm8k_rows,
    local_scores,
    reward_part,
    write_parquet,
)

pytestmark = pytest.mark.slow
N = 20_000


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def parquet20k(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parquet(gsm8k_rows(shared_data, N), tmp_path_factory.mktemp("ray20k") / "gsm8k_20k.parquet")


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("spec", "options"), [
    ("math_answer", {}),
    (COMPOSITE, {"num_cpus": 0.5, "concurrency": 2, "blocks": 4}),
], ids=["math_answer-default-pool", "composite-two-half-cpu-actors"])
def test_20k_rows_equal_rewardlab_score(ray_cluster: None, parquet20k: Path, tmp_path: Path, spec: str,
                                        options: dict[str, Any]) -> None:
    local = local_scores(parquet20k, spec, tmp_path / "local.jsonl")
    assert len(local) == N
    opts = dict(options)
    ds = ray.data.read_parquet(str(parquet20k))
    if "blocks" in opts:
        ds = ds.repartition(opts.pop("blocks"))
    got = by_id(score_dataset(ds, spec, batch_size=512, **opts).take_all())
    assert got.keys() == local.keys()
    mismatched = [k for k in local if reward_part(got[k]) != reward_part(local[k])]
    assert mismatched == []
    values = [r["reward"] for r in got.values()]
    assert {r["reward_status"] for r in got.values()} == {"ok"}
    assert len(set(values)) > 1 and 0.1 < sum(v > 0.5 for v in values) / N < 0.9  # right and wrong, both there


SCRIPT = '''
import json
import os

import ray
import ray.data

from rewardlab import reward
from rewardlab.integrations.ray import score_dataset


@reward(kind="cpu", range=(0, 1), register=False)
def has_digit(response_text: str) -> float:
    return float(any(c.isdigit() for c in response_text))


@reward(kind="inline", range=(0, 1), register=False)
def short(response_text: str) -> float:
    return float(len(response_text) < 5)


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ds = ray.data.from_items([{"id": i, "response": r} for i, r in enumerate(["a1", "bbbbbbb", "7", ""])])
    out = {}
    for name, spec in (("cpu", has_digit), ("inline", short)):
        out[name] = sorted((r["id"], r["reward"], r["reward_status"]) for r in score_dataset(ds, spec).take_all())
    ray.shutdown()
    print("RESULT " + json.dumps(out))
'''


@pytest.mark.timeout(300)
def test_rewards_defined_in_the_driver_script(tmp_path: Path) -> None:
    """A reward defined in the script that calls `score_dataset` runs in the actors (inline) and
    in their pool workers (cpu), each importing the script without running its guarded block."""
    script = tmp_path / "my_rewards.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=280)
    assert res.returncode == 0, res.stderr[-3000:]
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["cpu"] == [[0, 1.0, "ok"], [1, 0.0, "ok"], [2, 1.0, "ok"], [3, 0.0, "ok"]]
    assert out["inline"] == [[0, 1.0, "ok"], [1, 0.0, "ok"], [2, 1.0, "ok"], [3, 1.0, "ok"]]
