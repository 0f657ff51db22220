"""`rewardlab serve` refuses what it cannot serve with a one-line message and a non-zero exit,
before it listens: an unknown reward, bad limits, a port in use."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("fastapi")

from typer.testing import CliRunner  # noqa: E402

from rewardlab.cli import app  # noqa: E402

runner = CliRunner()


def _fails(code: int, *args: str) -> str:
    res = runner.invoke(app, ["serve", *args, "--no-cache", "--port", "0"])
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    return res.output


def test_unknown_reward() -> None:
    assert "no_such_reward" in _fails(2, "no_such_reward")


@pytest.mark.parametrize("option", [["--max-batch", "0"], ["--max-queue", "0"], ["--concurrent-batches", "0"],
                                    ["--max-wait-ms", "-1"], ["--max-body-bytes", "0"], ["--workers", "0"]])
def test_bad_limits(option: list[str]) -> None:
    _fails(2, "math_answer", *option)


def test_port_in_use() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = runner.invoke(app, ["serve", "math_answer", "--no-cache", "--port", str(port)])
    assert res.exit_code == 1 and "cannot listen" in res.output, res.output
