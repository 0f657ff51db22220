"""Executable documentation: the ``>>>`` example in the docstring of every reward that rewardlab
ships (one case per reward) and any examples in the module docstrings of the reward families
(`rewardlab.rewards.*`, `rewardlab.models.*`) run as doctests under ``python -m pytest``.

A shipped reward without an example fails, unless it is listed in `MISSING_EXAMPLE` (the
rewards whose examples have not been written yet; the list only shrinks). A listed reward that
has gained an example runs it like any other and warns that the list is stale.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
import pkgutil
import sys
import warnings
from types import ModuleType

import pytest

import rewardlab.models
import rewardlab.rewards
from rewardlab.core.registry import registry
from rewardlab.core.reward import RewardDef

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

MISSING_EXAMPLE: frozenset[str] = frozenset()
"""Shipped rewards whose docstrings hold no example yet."""


def shipped() -> list[RewardDef]:
    """Every registered reward defined by rewardlab itself (not a plugin or a test reward)."""
    return [d for d in registry.all() if d.fn.__module__.startswith("rewardlab.")]


def family_modules() -> list[ModuleType]:
    out = []
    for package in (rewardlab.rewards, rewardlab.models):
        for info in pkgutil.iter_modules(package.__path__):
            out.append(importlib.import_module(f"{package.__name__}.{info.name}"))
    return out


def run_examples(test: doctest.DocTest) -> None:
    """Run a doctest; fail with doctest's own report of each failing example."""
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test, out=out.write, clear_globs=True)
    result = runner.summarize(verbose=False)
    if result.failed:
        pytest.fail(f"{result.failed} of {result.attempted} example(s) failed in "
                    f"{test.name}:\n{out.getvalue()}", pytrace=False)


def reward_doctest(d: RewardDef) -> doctest.DocTest:
    module = sys.modules[d.fn.__module__]
    try:
        line = inspect.getsourcelines(d.fn)[1]
    except (OSError, TypeError):
        line = 0
    return doctest.DocTestParser().get_doctest(d.__doc__ or "", dict(vars(module)),
                                               f"{module.__name__}.{d.info.name}",
                                               inspect.getsourcefile(d.fn), line)


def check_reward_example(d: RewardDef, missing: frozenset[str] = MISSING_EXAMPLE) -> None:
    """Run a reward's docstring example; fail when it has none (unless listed as missing)."""
    name = d.info.name
    test = reward_doctest(d)
    if not test.examples:
        if name in missing:
            pytest.xfail(f"{name} has no docstring example yet (listed in MISSING_EXAMPLE)")
        pytest.fail(f"reward {name!r} ({d.fn.__module__}) has no runnable example in its "
                    f"docstring: add a short offline '>>>' example", pytrace=False)
    if name in missing:
        warnings.warn(f"{name} now has an example: remove it from MISSING_EXAMPLE",
                      stacklevel=1)
    run_examples(test)


@pytest.mark.parametrize("name", [d.info.name for d in shipped()])
def test_reward_docstring_example(name: str) -> None:
    check_reward_example(registry.get(name))


def test_missing_list_names_only_shipped_rewards() -> None:
    names = {d.info.name for d in shipped()}
    assert MISSING_EXAMPLE <= names, sorted(MISSING_EXAMPLE - names)


MODULES_WITH_EXAMPLES = [m.__name__ for m in family_modules()
                         if doctest.DocTestParser().get_examples(m.__doc__ or "")]


@pytest.mark.parametrize("module_name", MODULES_WITH_EXAMPLES)
def test_module_docstring_examples(module_name: str) -> None:
    module = sys.modules[module_name]
    test = doctest.DocTestParser().get_doctest(module.__doc__ or "", dict(vars(module)),
                                               module_name, module.__file__, 0)
    run_examples(test)


def test_a_failing_example_fails_the_case() -> None:
    """The runner reports a wrong example (it does not pass examples that it cannot check)."""
    wrong = doctest.DocTestParser().get_doctest(">>> 1 + 1\n3\n", {}, "wrong", None, 0)
    with pytest.raises(pytest.fail.Exception, match="1 of 1 example"):
        run_examples(wrong)


def test_a_reward_without_an_example_or_with_a_wrong_one_fails() -> None:
    from rewardlab.core.reward import reward

    def undocumented(response_text: str) -> float:
        """1 if the response is empty, else 0; higher is better."""
        return float(not response_text)

    def wrongly_documented(response_text: str) -> float:
        """1 if the response is empty, else 0; higher is better.

        >>> from rewardlab import Sample
        >>> wrongly_documented().score_local([Sample(response="")])[0].value
        0.0
        """
        return float(not response_text)

    bare = reward(undocumented, register=False)
    with pytest.raises(pytest.fail.Exception, match="has no runnable example"):
        check_reward_example(bare)
    with pytest.raises(pytest.xfail.Exception):
        check_reward_example(bare, missing=frozenset({"undocumented"}))
    wrong = reward(wrongly_documented, register=False)
    sys.modules[__name__].wrongly_documented = wrong  # type: ignore[attr-defined]
    try:
        with pytest.raises(pytest.fail.Exception, match=r"1 of 2 example(?s:.*)Got:\s+1\.0"):
            check_reward_example(wrong)
    finally:
        del sys.modules[__name__].wrongly_documented  # type: ignore[attr-defined]
