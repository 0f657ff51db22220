"""Fuzzing of the server's OpenAPI schema with schemathesis, against a real server on 127.0.0.1:
every operation, with generated valid and invalid bodies, must never answer 5xx (a malformed
request is a 4xx; a reward that fails is an error score in a 200), and every answer must match
the schema (status code, content type, headers, body)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serve.server import Server, request  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]
EXAMPLES = 100  # per operation: bounded so the run stays short on a loaded machine


@pytest.fixture(scope="module")
def served(serve: Callable[..., Server]) -> Server:
    """A composite spec (components in /get_reward's extra_logs) served with a token, a small body limit
    and a small queue, so the fuzzer reaches the 401, 413 and 422 answers as well as the 200s."""
    return serve("examples/math_format.yaml", "--no-cache", "--workers", "1", "--max-body-bytes", "65536",
                 "--token", "fuzz-token", "--response-after", "<|im_start|>assistant\n", "--strip", "<|im_end|>")


@pytest.fixture(scope="module")
def api(served: Server) -> Any:
    return schemathesis.openapi.from_url(served.url + "/openapi.json", headers={"Authorization": "Bearer fuzz-token"})


OPERATIONS = {("GET", "/health"), ("GET", "/ready"), ("GET", "/v1/spec"), ("GET", "/metrics"),
              ("POST", "/v1/score"), ("POST", "/get_reward"), ("POST", "/slime")}


def test_schema_lists_every_endpoint(api: Any) -> None:
    ops = {(op.ok().method.upper(), op.ok().path) for op in api.get_all_operations()}
    assert ops == OPERATIONS


CASES = [(method, path, mode) for method, path in sorted(OPERATIONS)
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if method == "POST" or mode is GenerationMode.POSITIVE]  # a GET without parameters has no invalid input


@pytest.mark.parametrize("method,path,mode", CASES)
def test_no_server_error_and_schema_conformance(api: Any, served: Server, method: str, path: str,
                                                mode: GenerationMode) -> None:
    operation = api[path][method]
    headers = {"Authorization": "Bearer fuzz-token"}
    seen: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS, headers=headers, timeout=120)
        seen.append(response.status_code)

    run()
    assert seen and all(code < 500 for code in seen)
    print(method, path, mode.value, sorted(Counter(seen).items()))


# Bodies a JSON schema cannot generate but Python's JSON reader takes (NaN, Infinity, numbers
# beyond float range), or that stress the reader (deep nesting, lone surrogates, not UTF-8).
RAW = [
    ("/get_reward", b'{"query": [NaN]}'),
    ("/get_reward", b'{"query": ["<|im_start|>assistant\\n 3"], "labels": [NaN]}'),
    ("/get_reward", b'{"query": ["<|im_start|>assistant\\n 3"], "labels": [Infinity], "prompts": [-Infinity]}'),
    ("/get_reward", b'{"query": ["<|im_start|>assistant\\n\\ud800"], "labels": [1e999]}'),
    ("/v1/score", b'{"samples": NaN}'),
    ("/v1/score", b'{"samples": [{"response": NaN}]}'),
    ("/v1/score", b'{"samples": [{"response": "x", "reference": NaN, "metadata": {"a": -Infinity}}]}'),
    ("/v1/score", b'{"samples": [{"reward_model": {"ground_truth": [1, NaN]}, "response": "1"}]}'),
    ("/v1/score", b'{"samples": [{"response": "1", "trajectory": [{"x": NaN}]}]}'),
    ("/v1/score", b'{"samples": [{"prompt": [{"role": NaN}], "response": "\\udfff"}]}'),
    ("/v1/score", b'{"samples": [' + b"[" * 3000 + b"]" * 3000 + b"]}"),
    ("/v1/score", b'{"samples": [{"response": "\xff\xfe"}]}'),
    ("/slime", b'{"response": "1", "label": NaN, "prompt": [{"role": Infinity}]}'),
    ("/slime", b'{"response": NaN}'),
]


@pytest.mark.parametrize("path,data", RAW, ids=[f"{p}:{i}" for i, (p, _) in enumerate(RAW)])
def test_non_standard_json_is_never_a_server_error(served: Server, path: str, data: bytes) -> None:
    status, _, body = request("POST", served.url + path, data=data, raw=True,
                              headers={"Authorization": "Bearer fuzz-token"})
    assert status in (200, 400, 422), (status, body)
    json.loads(body)  # standard JSON: no NaN or Infinity in any answer
    assert "NaN" not in body and "Infinity" not in body
