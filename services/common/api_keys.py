"""API keys shared by the REST gateway and the predictor: where they come from, how a caller
presents one, and how one is checked.

`MLP_API_KEYS` holds the accepted keys, comma-separated; empty (the default) turns auth off.
A caller presents a key as `Authorization: Bearer KEY` or `X-API-Key: KEY` (HTTP headers and
gRPC metadata alike: gRPC metadata keys are the lower-cased header names). Both services read
the same variable so one setting protects the REST and the gRPC surfaces together.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping

API_KEYS_ENV = "MLP_API_KEYS"
AUTHORIZATION = "authorization"
X_API_KEY = "x-api-key"
_BEARER = "bearer "


def parse_api_keys(text: str | None) -> tuple[str, ...]:
    """Keys from a comma-separated list; blanks around and between commas are ignored."""
    return tuple(key for key in (part.strip() for part in (text or "").split(",")) if key)


def api_keys_from_environment(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The keys in `MLP_API_KEYS` (empty: auth is off)."""
    return parse_api_keys((os.environ if environ is None else environ).get(API_KEYS_ENV))


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a caller presents: `Bearer KEY` in Authorization wins over X-API-Key.

    An Authorization header of another scheme (Basic, ...) presents no key, so a caller that
    also sends X-API-Key still gets in.
    """
    if authorization and authorization[: len(_BEARER)].lower() == _BEARER:
        key = authorization[len(_BEARER) :].strip()
        if key:
            return key
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


def is_forwardable(key: str) -> bool:
    """True when `key` can travel as gRPC metadata (printable ASCII, no surrounding blanks)."""
    return key.isascii() and key.isprintable() and key == key.strip()


class ApiKeys:
    """The accepted keys. Checking compares against every key in constant time, so neither the
    position of a mismatch nor which key matched shows in the response time."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(key.encode("utf-8") for key in keys)

    @property
    def enabled(self) -> bool:
        """Auth is on when at least one key is configured."""
        return bool(self._keys)

    def accepts(self, candidate: str | None) -> bool:
        """True when `candidate` is one of the keys (always False when none is configured)."""
        if candidate is None:
            return False
        presented = candidate.encode("utf-8", "surrogatepass")
        matched = False
        for key in self._keys:
            # No early exit: every key is compared whatever the outcome.
            matched |= hmac.compare_digest(presented, key)
        return matched

    def __len__(self) -> int:
        return len(self._keys)
