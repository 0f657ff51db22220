"""`rewardlab list`: every registered reward, with what its score means."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rewardlab.cli.common import err
from rewardlab.core.registry import registry


def list_rewards(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per reward")] = False,
) -> None:
    """Every registered reward, with what its score means."""
    if as_json:
        for d in registry.all():
            i = d.info
            print(json.dumps({"name": i.name, "kind": i.kind, "range": list(i.range),
                              "direction": i.direction, "granularity": i.granularity,
                              "version": i.version, "description": i.description,
                              "meaning": i.describe(), "parameters": d.params}, default=repr))
    else:
        _table()
    for name, why in registry.load_errors.items():  # on stderr, so --json output stays parseable
        err.print(f"[yellow]plugin {name} failed to load: {escape(why)}")


def _table() -> None:
    table = Table(title="rewards")
    for col in ("name", "kind", "score", "description", "parameters"):
        table.add_column(col, overflow="fold")
    for d in registry.all():
        params = ", ".join(f"{k}={v!r}" for k, v in d.params.items())
        table.add_row(d.info.name, d.info.kind, d.info.describe(), d.info.description, params)
    Console().print(table)
