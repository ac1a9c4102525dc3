"""Serving only the model versions the platform's trainer registered (`--require-model-tag`).

Registered models are pickles: loading one runs whatever code it carries. A predictor or
inferer given a required tag serves only versions whose registry tags have it, so a version
registered by other means (a notebook, a script with registry access) is refused before its
files are downloaded. The trainer tags every version it registers (`mlp.pipeline_id`, ...).
A tag is not a signature: whoever may write the registry may also set tags, so the registry
stays a trust boundary (README, Security).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: The tag every version the platform's trainer registers carries (with its pipeline id).
TRAINER_TAG = "mlp.pipeline_id"


@dataclass(frozen=True)
class ModelTagRequirement:
    """A registry tag a version must carry: any value, or exactly `value`."""

    key: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelTagRequirement:
        """`KEY` or `KEY=VALUE`; ValueError for an empty key."""
        key, separator, value = text.strip().partition("=")
        if not key.strip():
            raise ValueError(f"require-model-tag {text!r}: expected KEY or KEY=VALUE")
        return cls(key.strip(), value if separator else None)

    def __str__(self) -> str:
        return self.key if self.value is None else f"{self.key}={self.value}"

    def refusal(self, tags: Mapping[str, str]) -> str | None:
        """Why a version with `tags` may not be served, or None when it may."""
        if self.key not in tags:
            return (
                f"the version has no tag '{self.key}', which --require-model-tag {self} "
                "requires (the platform's trainer tags what it registers); not served"
            )
        if self.value is not None and tags[self.key] != self.value:
            return (
                f"the version's tag '{self.key}' is {tags[self.key]!r}, not {self.value!r} as "
                f"--require-model-tag {self} requires; not served"
            )
        return None
