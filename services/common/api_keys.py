"""API keys shared by the REST gateway and the predictor: where they come from, how a caller
presents one, and how one is checked.

Two sources, usable together:
- `MLP_API_KEYS_FILE`: a YAML (or JSON) file of named keys, each stored as the SHA-256 digest of
  the key and given scopes (see `keys_file.py`). The file is re-read when it changes.
- `MLP_API_KEYS`: plain keys, comma-separated; each gets every scope (the simple setup).
With neither set, auth is off. A caller presents a key as `Authorization: Bearer KEY` or
`X-API-Key: KEY` (HTTP headers and gRPC metadata alike: gRPC metadata keys are the lower-cased
header names). Both services read the same variables, so one setting protects the REST and
the gRPC surfaces together.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path

from mlplatform.common.access import Scope, grants
from mlplatform.common.keys_file import CHECK_INTERVAL_S, KeyEntry, KeysFile

API_KEYS_ENV = "MLP_API_KEYS"
API_KEYS_FILE_ENV = "MLP_API_KEYS_FILE"
AUTHORIZATION = "authorization"
X_API_KEY = "x-api-key"
_BEARER = "bearer "
_EVERY_SCOPE = frozenset(Scope)


class Verdict(Enum):
    """The outcome of checking a caller's key against the scope an endpoint needs."""

    ALLOWED = "allowed"
    MISSING = "missing"  # no key presented
    INVALID = "invalid"  # a key no source knows
    FORBIDDEN = "forbidden"  # a known key without the scope


def parse_api_keys(text: str | None) -> tuple[str, ...]:
    """Keys from a comma-separated list; blanks around and between commas are ignored."""
    return tuple(key for key in (part.strip() for part in (text or "").split(",")) if key)


def key_digest(key: str) -> bytes:
    """The SHA-256 digest of a key, as keys files store it (hex-encoded there)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


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
    """The accepted keys and their scopes.

    Keys are held as SHA-256 digests and a presented key's digest is compared with every one
    in constant time (no early exit), so neither the position of a mismatch nor which key
    matched shows in the response time.
    """

    def __init__(
        self,
        keys: Iterable[str] = (),
        keys_file: Path | str | None = None,
        check_interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self._plain = tuple(
            KeyEntry(f"MLP_API_KEYS[{index}]", key_digest(key), _EVERY_SCOPE)
            for index, key in enumerate(keys)
        )
        self._file = KeysFile(Path(keys_file), check_interval_s) if keys_file else None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ApiKeys:
        """The keys `MLP_API_KEYS` and `MLP_API_KEYS_FILE` configure (none: auth is off)."""
        environ = os.environ if environ is None else environ
        return cls(
            parse_api_keys(environ.get(API_KEYS_ENV)),
            environ.get(API_KEYS_FILE_ENV, "").strip() or None,
        )

    @property
    def enabled(self) -> bool:
        """Auth is on when keys are listed or a keys file is configured (an empty file
        refuses everyone: configuring a file is asking for auth)."""
        return bool(self._plain) or self._file is not None

    def entries(self) -> tuple[KeyEntry, ...]:
        """Every accepted key, the file's as of its latest readable version."""
        if self._file is None:
            return self._plain
        return self._plain + self._file.entries()

    def identify(self, candidate: str | None) -> KeyEntry | None:
        """The entry of `candidate` (None when no source knows it)."""
        if candidate is None:
            return None
        presented = key_digest(candidate)
        found = None
        for entry in self.entries():
            # No early exit: every digest is compared whatever the outcome.
            if hmac.compare_digest(presented, entry.digest) and found is None:
                found = entry
        return found

    def accepts(self, candidate: str | None) -> bool:
        """True when `candidate` is a known key, whatever its scopes."""
        return self.identify(candidate) is not None

    def check(self, candidate: str | None, needed: Scope) -> Verdict:
        """Whether `candidate` may call an endpoint that needs `needed`."""
        if candidate is None:
            return Verdict.MISSING
        entry = self.identify(candidate)
        if entry is None:
            return Verdict.INVALID
        return Verdict.ALLOWED if grants(entry.scopes, needed) else Verdict.FORBIDDEN

    def __len__(self) -> int:
        return len(self.entries())


def api_keys_from_environment(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The plain keys in `MLP_API_KEYS` (the keys file is read by `ApiKeys.from_environment`)."""
    return parse_api_keys((os.environ if environ is None else environ).get(API_KEYS_ENV))


MISSING_KEY_HINT = "send `Authorization: Bearer KEY` or `X-API-Key: KEY`"


def refusal_message(verdict: Verdict, needed: Scope) -> str:
    """What a refused caller is told (never which keys exist)."""
    if verdict is Verdict.MISSING:
        return f"an API key is required: {MISSING_KEY_HINT}"
    if verdict is Verdict.INVALID:
        return "the API key is not valid"
    return f"the API key lacks the `{needed}` scope this endpoint needs"
