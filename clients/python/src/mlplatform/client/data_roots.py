"""Which data a pipeline may read: root directories and URI prefixes (`MLP_DATA_ROOTS`).

Whoever may publish to the pipelines queue chooses the path a trainer opens, so a trainer
reads only under the roots it was given. A `load_data_from_file.path` is resolved first:
`~` expanded, a relative path taken against the reading process's working directory,
symlinks followed and `..` collapsed. The resolved path must lie inside a root directory.
A Kaggle data set is named `kaggle:OWNER/DATASET/FILE` and must start with a URI prefix.
`*` allows everything, and only when it is written out.

The check reads nothing: a refused path is never opened, and the refusal says the same
whether the file exists or not, so it cannot be used to probe a worker's files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENT_VARIABLE = "MLP_DATA_ROOTS"
ALLOW_ALL = "*"
KAGGLE_PREFIX = "kaggle:"
# A scheme of two letters or more, so that a Windows drive ("C:") stays a directory.
_URI_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


class DataAccessRefused(ValueError):
    """A data source outside the allowed roots; the message names the roots."""


def resolve_data_path(raw: str, base: Path | None = None) -> Path:
    """`raw` as the reading process would open it: absolute, symlinks followed, no `..`."""
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return path.resolve()


def kaggle_uri(dataset: str, file_name: str) -> str:
    """The URI a Kaggle data set's file is checked (and recorded) as."""
    return f"{KAGGLE_PREFIX}{dataset}/{file_name}"


@dataclass(frozen=True)
class DataRoots:
    """The directories and URI prefixes data may come from (or everything, with `*`)."""

    directories: tuple[Path, ...] = ()
    uri_prefixes: tuple[str, ...] = ()
    allow_all: bool = False

    @classmethod
    def of(cls, entries: Iterable[str | Path], base: Path | None = None) -> DataRoots:
        """Roots from entries: `*`, URI prefixes (`kaggle:`, `kaggle:owner/`) or directories
        (resolved like data paths, so a root given through a symlink still matches)."""
        directories: list[Path] = []
        prefixes: list[str] = []
        allow_all = False
        for entry in entries:
            text = str(entry).strip()
            if not text:
                continue
            if text == ALLOW_ALL:
                allow_all = True
            elif isinstance(entry, str) and _URI_PREFIX.match(text):
                prefixes.append(text)
            else:
                directories.append(resolve_data_path(text, base))
        return cls(tuple(directories), tuple(prefixes), allow_all)

    @classmethod
    def parse(cls, text: str, base: Path | None = None) -> DataRoots:
        """Roots from a comma-separated list (the form of `MLP_DATA_ROOTS`)."""
        return cls.of(text.split(","), base)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> DataRoots | None:
        """The roots `MLP_DATA_ROOTS` names, or None when it is unset or empty."""
        text = (os.environ if environ is None else environ).get(ENVIRONMENT_VARIABLE, "")
        return cls.parse(text) if text.strip() else None

    def describe(self) -> str:
        """The roots as a user writes them, for messages."""
        if self.allow_all:
            return "* (everything)"
        entries = [str(directory) for directory in self.directories] + list(self.uri_prefixes)
        return ", ".join(entries) or "none"

    def check_path(self, raw: str, base: Path | None = None) -> Path:
        """The resolved path when it lies under a root; DataAccessRefused otherwise."""
        resolved = resolve_data_path(raw, base)
        if self.allow_all or any(resolved.is_relative_to(root) for root in self.directories):
            return resolved
        raise DataAccessRefused(
            f"'{raw}' is outside the data roots; allowed: {self.describe()} "
            f"(set {ENVIRONMENT_VARIABLE} on the trainers to allow more)"
        )

    def check_uri(self, uri: str) -> None:
        """Returns when `uri` starts with an allowed prefix; DataAccessRefused otherwise."""
        if self.allow_all or any(uri.startswith(prefix) for prefix in self.uri_prefixes):
            return
        raise DataAccessRefused(
            f"'{uri}' is outside the data roots; allowed: {self.describe()} "
            f"(set {ENVIRONMENT_VARIABLE} on the trainers to allow more)"
        )
