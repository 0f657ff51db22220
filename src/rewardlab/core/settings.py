"""Settings shared by a family of rewards, declared once as a dataclass and spliced into each
reward's keyword parameters.

A family whose rewards take the same options (the judges' endpoint and voting settings, the
implicit rewards' model-running options) declares them as one frozen dataclass, validated in
its ``__post_init__``, and decorates each reward function, which takes ``**settings``, with
``@splice(TheSettings)``. The reward then has every field as a keyword-only parameter with the
field's default, after its own parameters, so users write them flat as before (in Python and
under ``params:`` in a spec), the registry lists them, and adding a setting is one field.

Field metadata: ``fingerprint=False`` marks a setting that cannot change a score (a key, a rate
budget); ``secret=True`` one that must never be shown. Rewards with their own fingerprint logic
read these through `unfingerprinted` and `secret`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S")


def names(settings: type) -> tuple[str, ...]:
    """The setting names, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(settings))


def unfingerprinted(settings: type) -> frozenset[str]:
    """Settings declared with ``metadata={"fingerprint": False}``."""
    return frozenset(f.name for f in dataclasses.fields(settings)
                     if not f.metadata.get("fingerprint", True))


def secret(settings: type) -> frozenset[str]:
    """Settings declared with ``metadata={"secret": True}``."""
    return frozenset(f.name for f in dataclasses.fields(settings) if f.metadata.get("secret"))


def pick(settings: type[S], params: Mapping[str, Any]) -> S:
    """The settings among a reward's parameters (its own parameters are ignored), validated."""
    return settings(**{k: params[k] for k in names(settings) if k in params})


def splice(settings: type) -> Callable[[F], F]:
    """Decorator giving a function that takes ``**settings`` every field of the dataclass
    `settings` as a keyword-only parameter (with the field's default), after its own."""
    fields = dataclasses.fields(settings)
    for f in fields:
        if f.default is dataclasses.MISSING:
            raise TypeError(f"setting {settings.__name__}.{f.name} needs a plain default")

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        if len(own) == len(sig.parameters):
            raise TypeError(f"{fn.__name__} must take **settings to receive {settings.__name__}")
        clash = {p.name for p in own} & set(names(settings))
        if clash:
            raise TypeError(f"{fn.__name__} redeclares {settings.__name__} fields {sorted(clash)}")
        spliced = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                     annotation=f.type) for f in fields]
        fn.__signature__ = sig.replace(parameters=own + spliced)  # type: ignore[attr-defined]
        return fn

    return wrap
