"""The reward registry: `@reward`-decorated functions, and every reward declared through the
``rewardlab.rewards`` entry-point group. Built-in rewards register that way too (rewardlab's own
``pyproject.toml`` lists its reward modules; the model modules import their heavy dependencies
only when a model is loaded), so this module imports no reward family.

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."rewardlab.rewards"]
    my_rewards = "my_package.rewards"      # a module whose @reward functions register on import

or points at a single `RewardDef` object (``"my_package.rewards:my_reward"``). An entry that fails
to load is recorded in `Registry.load_errors` (listed by ``rewardlab list`` and named when a reward
is not found); it never hides the others.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from rewardlab.core.reward import RewardDef

ENTRY_POINT_GROUP = "rewardlab.rewards"
DISTRIBUTION = "rewardlab"  # whose entry points are the built-ins


class UnknownRewardError(KeyError):
    """A reward name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    def __init__(self) -> None:
        self._defs: dict[str, RewardDef] = {}
        self._loaded = False
        self._lock = threading.RLock()
        self.load_errors: dict[str, str] = {}

    def add(self, definition: RewardDef) -> None:
        name = definition.info.name
        existing = self._defs.get(name)
        if existing is not None and existing.fn.__module__ != definition.fn.__module__:
            raise ValueError(
                f"reward name {name!r} is taken by {existing.fn.__module__}.{existing.__name__}"
            )
        self._defs[name] = definition

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            # built-ins first, so that a plugin cannot take a built-in's name
            eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: not _is_builtin(ep))
            if not any(_is_builtin(ep) for ep in eps):
                self.load_errors[DISTRIBUTION] = (
                    f"no built-in rewards: the {ENTRY_POINT_GROUP!r} entry points of {DISTRIBUTION} are not "
                    "installed (install the package, e.g. pip install -e .)")
            for ep in eps:
                try:
                    self._add_from(ep.load())
                except Exception as exc:  # a broken plugin is reported, never hides the rest
                    self.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"

    def _add_from(self, obj: object) -> None:
        """Add a `RewardDef`, or every `RewardDef` defined in a module."""
        if isinstance(obj, RewardDef):
            self.add(obj)
        elif isinstance(obj, ModuleType):
            for value in vars(obj).values():
                if isinstance(value, RewardDef) and value.fn.__module__ == obj.__name__:
                    self.add(value)

    def get(self, name: str) -> RewardDef:
        """A reward by registered name, or by import path ``package.module:function`` (a plain
        function found that way is declared with the defaults of `@reward`)."""
        if ":" in name:
            return _import(name)
        self._load()
        try:
            return self._defs[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._defs, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            plugin = ""
            if self.load_errors:
                plugin = "; plugins that failed to load: " + ", ".join(self.load_errors)
            raise UnknownRewardError(f"unknown reward {name!r}{hint}{plugin}") from None

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._defs

    def all(self) -> list[RewardDef]:
        self._load()
        return [self._defs[k] for k in sorted(self._defs)]


def _is_builtin(ep: EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.name == DISTRIBUTION


def _import(path: str) -> RewardDef:
    from rewardlab.core.reward import reward

    module, _, attr = path.partition(":")
    try:
        obj: object = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UnknownRewardError(f"cannot import reward {path!r}: {exc}") from None
    if isinstance(obj, RewardDef):
        return obj
    if callable(obj):
        return reward(obj, register=False)  # type: ignore[no-any-return]
    raise UnknownRewardError(f"{path!r} is neither a reward nor a function")


registry = Registry()
