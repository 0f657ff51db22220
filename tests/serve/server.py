"""A `rewardlab serve` process for the tests: started in a subprocess on 127.0.0.1 (a free port),
ready once it says so and `/ready` answers 200, stopped by SIGTERM (then SIGKILL of its process
group); and a stdlib HTTP helper."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
START_LIMIT = 180.0  # seconds: only proves the server did not hang on a loaded machine


class Server:
    """A running `rewardlab serve` process."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args = args
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.stderr = Path(os.environ.get("TMPDIR", "/tmp")) / f"rewardlab-serve-{os.getpid()}-{id(self)}.err"
        self._err = open(self.stderr, "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rewardlab.cli", "serve", *args, "--port", "0", "--host", "127.0.0.1"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._err, text=True, start_new_session=True,
            env={**os.environ, **(env or {})})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("listening http"):
                self.url = line.split()[1]
            if line.strip() == "ready":
                self.ready.set()
        self.ready.set()  # the process ended: whoever waits sees why

    def wait_ready(self) -> None:
        if not self.ready.wait(START_LIMIT) or self.proc.poll() is not None or not self.url:
            raise AssertionError(f"server did not become ready: {self.lines}\n{self.errors()}")
        status, _, body = request("GET", self.url + "/ready")
        assert status == 200 and body["ready"] is True, body

    def errors(self) -> str:
        self._err.flush()
        return self.stderr.read_text()

    def stop(self) -> int | None:
        """SIGTERM, wait; SIGKILL the whole process group if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # pool workers too, should any be left
        except ProcessLookupError:
            pass
        rc = self.proc.wait(30)
        self._reader.join(10)
        self._err.close()
        self.stderr.unlink(missing_ok=True)
        return rc

    def metrics(self) -> str:
        status, _, text = request("GET", self.url + "/metrics", raw=True)
        assert status == 200
        return text  # type: ignore[return-value]

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of the exposition (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.metrics()):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return 0.0


def request(method: str, url: str, payload: Any = None, headers: dict[str, str] | None = None,
            data: bytes | None = None, raw: bool = False, timeout: float = 120) -> tuple[int, dict[str, str], Any]:
    """(status, headers (lower-case names), JSON body or text) of one HTTP request (stdlib only)."""
    body = data if data is not None else (None if payload is None else json.dumps(payload).encode())
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, hdrs, text = resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, hdrs, text = exc.code, exc.headers, exc.read().decode()
    hdrs = {k.lower(): v for k, v in hdrs.items()}
    if raw:
        return status, hdrs, text
    return status, hdrs, json.loads(text) if text else None


def wait_until(check: Callable[[], bool], what: str, limit: float = 120.0) -> None:
    """Poll `check` until it holds (observed progress); fail after a generous `limit`."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
