"""The API keys file (`MLP_API_KEYS_FILE`): named keys stored as SHA-256 digests, with scopes.

```yaml
keys:
  - name: ci-deployer            # shows in logs, never the key itself
    sha256: 9f86d081884c7d65...  # hex digest of the key (`mlp keys hash`)
    scopes: [predict]            # predict, outcomes, monitor, admin
```

JSON of the same shape works too (YAML reads it). The file is looked at again at most once
per `CHECK_INTERVAL_S` and re-read when its modification time, size or inode changed, so keys
can be added or revoked without a restart (an editor's atomic rename counts as a change).
A version that does not parse is refused with its reason logged, and the last good version
stays in force: a typo must not lock everybody out nor let everybody in. At start the file
must be readable and valid.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlplatform.common.access import Scope

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_SCOPE_NAMES = ", ".join(scope.value for scope in Scope)


class KeysFileError(ValueError):
    """The keys file cannot be read or does not describe keys; says where and what."""


@dataclass(frozen=True)
class KeyEntry:
    """One accepted key: its name (for logs), its SHA-256 digest and its scopes."""

    name: str
    digest: bytes
    scopes: frozenset[Scope]


def _entry(raw: Any, where: str) -> KeyEntry:
    if not isinstance(raw, dict):
        raise KeysFileError(f"{where}: expected a mapping with name, sha256 and scopes")
    unknown = sorted(set(raw) - {"name", "sha256", "scopes"})
    if unknown:
        raise KeysFileError(
            f"{where}: unknown field {unknown[0]!r} (expected name, sha256, scopes)"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise KeysFileError(f"{where}.name: expected a non-empty string")
    digest = raw.get("sha256")
    if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest.strip().lower()):
        raise KeysFileError(
            f"{where}.sha256: expected the key's SHA-256 digest as 64 hex digits "
            "(`mlp keys hash` prints it)"
        )
    scopes = raw.get("scopes")
    if not isinstance(scopes, list) or not scopes:
        raise KeysFileError(f"{where}.scopes: expected a non-empty list of {_SCOPE_NAMES}")
    parsed: set[Scope] = set()
    for position, scope in enumerate(scopes):
        try:
            parsed.add(Scope(scope))
        except ValueError:
            raise KeysFileError(
                f"{where}.scopes[{position}]: unknown scope {scope!r} (expected {_SCOPE_NAMES})"
            ) from None
    return KeyEntry(name.strip(), bytes.fromhex(digest.strip().lower()), frozenset(parsed))


def parse_keys(text: str, source: str) -> tuple[KeyEntry, ...]:
    """The entries of a keys file's text; KeysFileError naming the offending field."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise KeysFileError(f"{source}: not valid YAML or JSON{where}") from None
    if document is None:
        document = {"keys": []}
    if not isinstance(document, dict) or not isinstance(document.get("keys", []), list):
        raise KeysFileError(f"{source}: expected a mapping with a `keys` list")
    entries = tuple(
        _entry(raw, f"{source}: keys[{index}]")
        for index, raw in enumerate(document.get("keys") or [])
    )
    seen: dict[bytes, str] = {}
    for entry in entries:
        if entry.digest in seen:
            raise KeysFileError(
                f"{source}: keys {seen[entry.digest]!r} and {entry.name!r} have the same sha256"
            )
        seen[entry.digest] = entry.name
    return entries


def _signature(path: Path) -> tuple[int, int, int]:
    status = os.stat(path)
    return (status.st_mtime_ns, status.st_size, status.st_ino)


class KeysFile:
    """A keys file, re-read when it changes; `entries()` is cheap between checks."""

    def __init__(self, path: Path, check_interval_s: float = CHECK_INTERVAL_S) -> None:
        self.path = path
        self.check_interval_s = check_interval_s
        try:
            self._signature = _signature(path)
            self._entries = parse_keys(path.read_text(encoding="utf-8"), str(path))
        except OSError as error:
            raise KeysFileError(
                f"{path}: cannot read the API keys file ({error.strerror})"
            ) from None
        self._checked_at = time.monotonic()

    def entries(self) -> tuple[KeyEntry, ...]:
        now = time.monotonic()
        if now - self._checked_at >= self.check_interval_s:
            self._checked_at = now
            self._reload_if_changed()
        return self._entries

    def _reload_if_changed(self) -> None:
        try:
            signature = _signature(self.path)
            if signature == self._signature:
                return
            entries = parse_keys(self.path.read_text(encoding="utf-8"), str(self.path))
        except OSError as error:
            logger.error(
                "API keys file %s cannot be read (%s); the previous keys stay in force",
                self.path,
                error.strerror,
            )
            return
        except KeysFileError as error:
            logger.error("%s; the previous keys stay in force", error)
            self._signature = signature  # report a broken version once, not every second
            return
        self._signature = signature
        self._entries = entries
        logger.info("API keys file %s reloaded: %d keys", self.path, len(entries))
