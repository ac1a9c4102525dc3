"""JSON encoding of the free-form values a prediction holds (input row, prediction).

orjson when it is installed (it is in the locked environment): encoding a 30-feature row takes
about a tenth of the standard library's time, which is most of an append's cost. The standard
library is the fallback, with the same output rules: compact UTF-8, numpy values as plain
numbers, and NaN and infinities as null, because JSON cannot hold them and a missing feature
value is what they mean in a row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from mlplatform.common.store.base import InvalidRecordError

try:
    import orjson
except ImportError:  # pragma: no cover - exercised only where orjson is absent
    orjson = None  # type: ignore[assignment]


def plain_value(value: Any) -> Any:
    """numpy scalars and arrays (what models return) and datetimes as values JSON knows."""
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def without_non_finite(value: Any) -> Any:
    """`value` with every NaN or infinity (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: without_non_finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_non_finite(item) for item in value]
    if hasattr(value, "tolist") or hasattr(value, "item"):
        return without_non_finite(plain_value(value))
    return value


def _stdlib_dumps(value: Any) -> str:
    options: dict[str, Any] = {
        "ensure_ascii": False,
        "separators": (",", ":"),
        "allow_nan": False,
        "default": plain_value,
    }
    try:
        return json.dumps(value, **options)
    except ValueError:  # a NaN or infinity somewhere: the rare case pays for a second pass
        return json.dumps(without_non_finite(value), **options)


def dumps(value: Any, field: str) -> str:
    """`value` as compact JSON text; a value JSON cannot hold is an error naming `field`."""
    try:
        if orjson is not None:
            return orjson.dumps(
                value, default=plain_value, option=orjson.OPT_SERIALIZE_NUMPY
            ).decode()
        return _stdlib_dumps(value)
    except (TypeError, ValueError) as error:  # orjson.JSONEncodeError is a TypeError
        raise InvalidRecordError(field, str(error)) from error


def dumps_each(values: Iterable[Any], field: str) -> list[str]:
    """Each value as `dumps` writes it, in one loop: the batch inferer encodes rows by the
    thousand, and a call per row would cost more than the encoding."""
    try:
        if orjson is not None:
            encode, default, option = orjson.dumps, plain_value, orjson.OPT_SERIALIZE_NUMPY
            return [encode(value, default=default, option=option).decode() for value in values]
        return [_stdlib_dumps(value) for value in values]
    except (TypeError, ValueError) as error:
        raise InvalidRecordError(field, str(error)) from error


def loads(text: str) -> Any:
    """The value of JSON text written by `dumps`."""
    return orjson.loads(text) if orjson is not None else json.loads(text)
