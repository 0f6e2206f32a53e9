"""A small name -> object registry, used for architectures, datasets and methods."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from elastic.errors import UnknownName

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects. Registering a name twice is an error, and so is
    looking up a name that is not there (the message lists the known names)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""
        def decorate(item: T) -> T:
            return self.add(name, item)
        return decorate

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownName(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
