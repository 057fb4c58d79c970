"""Named extension points (model variants, annotation formats, tasks): one name, one entry.

Each extension point is a :class:`Registry` that its entries add themselves to when their module is
imported; a second entry of a name is a programming error, an unknown name the extension point's own
one-line error naming the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """A dict of named entries with registration and lookup rules."""

    def __init__(self, kind: str, unknown: Callable[[str, list[str]], Exception]) -> None:
        """``kind`` names an entry in messages (``task``); ``unknown(name, valid names)`` is the error of a
        lookup that finds nothing."""
        super().__init__()
        self.kind, self.unknown = kind, unknown

    def register(self, name: str, entry: T) -> T:
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self)

    def lookup(self, name: str) -> T:
        if name not in self:
            raise self.unknown(name, self.names())
        return self[name]

    def copy(self) -> Registry[T]:
        """A registry with the same entries and rules (a test registers into a copy)."""
        other = Registry(self.kind, self.unknown)
        other.update(self)
        return other
