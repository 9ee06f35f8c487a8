"""Strict JSON that cannot fail to render: for problem documents, FastAPI's 422 echo and
JSON log lines.

``json.dumps`` either writes what is not JSON or raises on what these documents can
hold, and each failure loses the answer or the record:

- a non-finite float is written as ``NaN``/``Infinity``, tokens no JSON parser must
  accept (a log pipeline drops the line); with ``allow_nan=False`` it raises instead;
- a mapping key JSON cannot name (a tuple) raises ``TypeError``;
- with ``ensure_ascii=False`` an unpaired surrogate (``"\\ud800"``, which a JSON body
  may hold) is written as is, and encoding the text as UTF-8 raises.

Here non-finite floats are spelled as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (as pydantic's ``ser_json_inf_nan="strings"`` does), such keys become
text, and unpaired surrogates become U+FFFD. The common case pays one encoder call:
the repairs run only once the first attempt refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["encodable", "json_safe", "strict_encoder"]


def strict_encoder(
    *, ensure_ascii: bool = True, default: Callable[[Any], Any] | None = None
) -> Callable[[Any], str]:
    """A compact JSON encoder (built once) that never writes ``NaN``, accepts any mapping
    key, and whose text UTF-8 can always encode; ``default`` as ``json.dumps``'s (``str``:
    anything else as text)."""
    encode = json.JSONEncoder(
        ensure_ascii=ensure_ascii, allow_nan=False, separators=(",", ":"), default=default
    ).encode

    def strict(value: Any) -> str:
        try:
            text = encode(value)
        except (ValueError, TypeError):  # a non-finite float, or a key JSON cannot name
            text = encode(json_safe(value))
        return text if text.isascii() else encodable(text)

    return strict


def encodable(text: str) -> str:
    """``text`` with each unpaired surrogate (which UTF-8 cannot encode) made U+FFFD."""
    try:
        text.encode()
    except UnicodeEncodeError:
        # Through UTF-16 with surrogatepass, a valid pair stays one character and an
        # unpaired surrogate is the one thing the decoder replaces.
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float spelled as a string and every mapping key
    JSON cannot hold made one, so ``json.dumps(..., allow_nan=False)`` accepts it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _spelled(value)
    if isinstance(value, Mapping):
        return {_json_key(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def _spelled(number: float) -> str:
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def _json_key(key: Any) -> Any:
    if isinstance(key, float):
        return key if math.isfinite(key) else _spelled(key)
    if key is None or isinstance(key, str | int):
        return key
    return str(key)
