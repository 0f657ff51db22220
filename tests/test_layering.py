"""The import graph of `src/rewardlab` follows DESIGN.md's one direction of dependency:
core <- io, sandbox <- runtime <- rewards, models <- compose <- api <- credit <- apply, audit <- serve,
integrations, cli. Nothing imports upward.

Every module is parsed (never imported), and every import counts: module-level, inside a function,
under ``if TYPE_CHECKING``, and ``importlib.import_module("rewardlab...")`` with a literal name.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "rewardlab"
ROOT = "<root>"  # rewardlab/__init__.py: the package facade, which imports the Python API

# rank of each top-level layer: a module may import a layer of the same or a lower rank
RANK: dict[str, int] = {
    "core": 0,
    "io": 1, "sandbox": 1,
    "runtime": 2,
    "rewards": 3, "models": 3,
    "compose": 4,
    "api": 5, ROOT: 5,  # the Python API (build, score) over compose and the runtime
    "credit": 6,
    "apply": 7, "audit": 7,
    "serve": 8, "integrations": 8, "client": 8, "cli": 8,
}
# layers that may not import their siblings of the same rank either (beyond the rank rule)
ONLY: dict[str, set[str]] = {
    "core": {"core"},
    "io": {"core", "io"},
    "sandbox": {"core", "sandbox"},
}
# a layer that only its own modules import
PRIVATE = {"cli"}

# Violations that exist and are someone's to fix, each with the reason; empty means none is tolerated.
ALLOWED: set[tuple[str, str]] = set()  # (importing module, imported module)


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # the importing module, dotted
    target: str  # the imported module or name, dotted

    def __str__(self) -> str:
        return f"{self.path.relative_to(SRC.parent)}:{self.line} ({self.module}) imports {self.target}"


def module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _is_module(dotted: str) -> bool:
    parts = dotted.split(".")
    base = SRC.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path) -> list[Import]:
    """Every import of a `rewardlab` module in the file, with relative imports resolved and
    ``from package import name`` read as the submodule when `name` is one."""
    module, is_package = module_name(path)
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                targets.append(sub if _is_module(sub) else source)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                targets = [node.args[0].value]
        found += [Import(path, node.lineno, module, t) for t in targets
                  if t == "rewardlab" or t.startswith("rewardlab.")]
    return found


def layer(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def all_imports() -> list[Import]:
    return [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in imports_of(path)]


def violations(imports: list[Import]) -> list[str]:
    out: list[str] = []
    for imp in imports:
        src, dst = layer(imp.module), layer(imp.target)
        if src == dst or (imp.module, imp.target) in ALLOWED:
            continue
        if src not in RANK or dst not in RANK:
            unknown = src if src not in RANK else dst
            out.append(f"{imp}: layer {unknown!r} has no place in the layering (add it to RANK, as DESIGN.md "
                       "places it)")
        elif dst in PRIVATE:
            out.append(f"{imp}: only {dst} imports {dst}")
        elif src in ONLY and dst not in ONLY[src]:
            out.append(f"{imp}: {src} may import only {', '.join(sorted(ONLY[src]))}")
        elif RANK[dst] > RANK[src]:
            out.append(f"{imp}: {src} may not import {dst} (a layer above it)")
    return out


def test_every_layer_is_placed() -> None:
    tops = {module_name(p)[0].split(".")[1] for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"}
    assert tops - set(RANK) == set(), "top-level packages/modules missing from the layering table"


def test_nothing_imports_upward() -> None:
    found = all_imports()
    assert len(found) > 50  # the parse sees the package's imports
    problems = violations(found)
    assert not problems, "imports against DESIGN.md's direction:\n" + "\n".join(problems)


def test_core_imports_only_core() -> None:
    core = [imp for imp in all_imports() if layer(imp.module) == "core"]
    assert core, "no import seen in core/"
    assert [str(i) for i in core if layer(i.target) != "core"] == []


def test_allowed_exceptions_still_exist() -> None:
    """An allow-list entry whose import is gone must be removed, so the list cannot go stale."""
    present = {(imp.module, imp.target) for imp in all_imports()}
    assert ALLOWED - present == set()


# --- the checker itself, on files written for the purpose -------------------------------------------


@pytest.fixture
def fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    src = tmp_path / "src"
    pkg = src / "rewardlab"
    for sub in ("core", "io", "rewards", "cli", "compose", "runtime"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "api.py").write_text("")
    (pkg / "rewards" / "math.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "SRC", src)
    return pkg


def _check(pkg: Path, rel: str, code: str) -> list[str]:
    path = pkg / rel
    path.write_text(code)
    return violations(imports_of(path))


def test_function_level_and_relative_imports_are_caught(fake_tree: Path) -> None:
    problems = _check(fake_tree, "core/registry.py",
                      "import json\n\ndef load():\n    from ..rewards import math\n    return math\n")
    assert problems == ["src/rewardlab/core/registry.py:4 (rewardlab.core.registry) imports "
                        "rewardlab.rewards.math: core may import only core"]


def test_dynamic_and_type_checking_imports_are_caught(fake_tree: Path) -> None:
    code = ("import importlib\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
            "    from rewardlab.runtime import Pool\n\n"
            "def f():\n    return importlib.import_module('rewardlab.api')\n")
    problems = _check(fake_tree, "core/reward.py", code)
    assert [p.split(" imports ")[1] for p in problems] == [
        "rewardlab.runtime: core may import only core", "rewardlab.api: core may import only core"]
    assert problems[0].startswith("src/rewardlab/core/reward.py:5 ")


def test_the_package_root_counts_as_the_api(fake_tree: Path) -> None:
    assert _check(fake_tree, "runtime/engine.py", "from rewardlab import Sample\n") == [
        "src/rewardlab/runtime/engine.py:1 (rewardlab.runtime.engine) imports rewardlab: "
        "runtime may not import <root> (a layer above it)"]


def test_only_cli_imports_cli_and_allowed_directions_pass(fake_tree: Path) -> None:
    assert _check(fake_tree, "compose/nodes.py", "from rewardlab.cli.score import x\n") == [
        "src/rewardlab/compose/nodes.py:1 (rewardlab.compose.nodes) imports rewardlab.cli.score: only cli imports cli"]
    assert _check(fake_tree, "io/rows.py", "from rewardlab.rewards import math\n")[0].endswith(
        "io may import only core, io")
    ok = "from rewardlab.core import types\nfrom rewardlab.runtime import engine\nimport rewardlab.rewards.math\n"
    assert _check(fake_tree, "compose/spec.py", ok) == []
    assert _check(fake_tree, "cli/score.py", "from rewardlab.api import build\nfrom . import common\n") == []
