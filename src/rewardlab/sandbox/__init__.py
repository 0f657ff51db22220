"""Run untrusted, model-written Python safely and fast.

A warm fork server (`server`) forks one isolated child per program run (`harness`): its own
process group and (as root) its own uid, resource limits (`limits`), a private working directory
in a read-only jail without network, a scrubbed environment, capped output, and a wall-clock
timeout enforced by the server, which kills the whole run. Assert tests report one verdict each
over a channel the program cannot forge; stdin/stdout runs are judged by the caller.

This package depends on the standard library only (the server never imports the rest of
rewardlab). Use `Sandbox` directly, or `default_sandbox()` (a process-wide one); the code
rewards use their Runtime's, started with `configured_sandbox()`.
"""

from rewardlab.sandbox.client import (
    AssertJob,
    Job,
    RunResult,
    Sandbox,
    SandboxError,
    StdioJob,
    TestOutcome,
    configure,
    configured_sandbox,
    default_sandbox,
)
from rewardlab.sandbox.harness import split_tests, test_label
from rewardlab.sandbox.limits import Limits

__all__ = [
    "AssertJob",
    "Job",
    "Limits",
    "RunResult",
    "Sandbox",
    "SandboxError",
    "StdioJob",
    "TestOutcome",
    "configure",
    "configured_sandbox",
    "default_sandbox",
    "split_tests",
    "test_label",
]
