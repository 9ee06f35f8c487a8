"""A dict some of whose keys appear later, when a function that supplies them has some.

``PROBLEM_HANDLERS`` needs it: ``FastAPI(exception_handlers=...)`` keeps its own 422
handler unless the dict it is given names ``RequestValidationError`` itself (a base class
is not enough), and importing FastAPI to name it would cost every Starlette-only user
its import time. A plain dict cannot hold a key that does not exist yet, and a
``collections.ChainMap`` or ``Mapping`` is not a dict (Starlette copies the handlers with
``dict(...)`` and ``{**...}``, which read a dict subclass's keys through ``keys()`` and
``__getitem__``), so this is a dict whose every reading method adds the late keys.
A leaf module: it imports nothing of the package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["LateKeysDict"]


def _none() -> Mapping[Any, Any]:
    return {}


class LateKeysDict(dict[Any, Any]):
    """The items given, and those ``late()`` returns each time the dict is read (its own
    items win). Iteration, lookup, ``len``, ``in`` and copies all see both."""

    __slots__ = ("_late",)

    def __init__(self, items: Mapping[Any, Any], late: Callable[[], Mapping[Any, Any]]) -> None:
        super().__init__(items)
        self._late = late

    def _extra(self) -> Mapping[Any, Any]:
        # getattr: a copy made by copy.copy or pickle has the slot only once its state is set
        return getattr(self, "_late", _none)()

    def __iter__(self) -> Iterator[Any]:
        yield from super().__iter__()
        yield from (key for key in self._extra() if not dict.__contains__(self, key))

    def keys(self) -> Any:
        return list(self)

    def items(self) -> Any:
        return [(key, self[key]) for key in self]

    def values(self) -> Any:
        return [self[key] for key in self]

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._extra()

    def __missing__(self, key: Any) -> Any:
        return self._extra()[key]

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 - dict.get skips __missing__

    def copy(self) -> dict[Any, Any]:
        return dict(self.items())
