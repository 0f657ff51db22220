"""The reward registry: built-ins (every module of `rewardlab.rewards` and `rewardlab.models`;
those import their heavy dependencies only when a model is loaded), `@reward`-decorated
functions, and third-party rewards registered through the ``rewardlab.rewards`` entry-point
group.

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."rewardlab.rewards"]
    my_rewards = "my_package.rewards"      # a module whose @reward functions register on import

or points at a single `RewardDef` object (``"my_package.rewards:my_reward"``).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import threading
from importlib.metadata import entry_points
from types import ModuleType

from rewardlab.core.reward import RewardDef

ENTRY_POINT_GROUP = "rewardlab.rewards"


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
            import rewardlab.models
            import rewardlab.rewards

            for package in (rewardlab.rewards, rewardlab.models):
                for mod in pkgutil.iter_modules(package.__path__):
                    if not mod.name.startswith("_") and mod.name != "cli":
                        self._add_from(importlib.import_module(f"{package.__name__}.{mod.name}"))
            for ep in entry_points(group=ENTRY_POINT_GROUP):
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
