"""`rewardlab audit ...`: can a reward be trusted before training on it? One subcommand per
analysis; each is a thin layer over `rewardlab.audit`.
"""

from __future__ import annotations

import typer

from rewardlab.cli.audit_drift import drift_cmd
from rewardlab.cli.audit_overopt import overopt_cmd
from rewardlab.cli.audit_probes import audit_probes_cmd

audit_app = typer.Typer(help="Audit a reward: biases, robustness, gameability, over-optimisation, drift.",
                        no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@audit_app.callback()
def _audit() -> None:
    """Audit a reward (a group: each analysis is its own subcommand)."""


audit_app.command("overopt")(overopt_cmd)
audit_app.command("drift")(drift_cmd)
audit_app.command("probes")(audit_probes_cmd)
