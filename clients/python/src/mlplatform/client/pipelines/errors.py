"""Errors of pipeline files: every one names the path of the offending field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem at one place in a pipeline definition.

    `path` uses the keys as written in the pipeline file, for example
    `pipeline[0].MLSteps[1].train_model.modeling_params.estimator_list[2]`.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PipelineError(ValueError):
    """A pipeline file that cannot be used: unreadable, malformed or invalid.

    Carries every problem found, not just the first, so a user fixes them in one go.
    """

    def __init__(self, errors: list[FieldError], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        prefix = f"{source}: " if source else ""
        lines = "\n".join(f"  {error}" for error in self.errors)
        count = len(self.errors)
        super().__init__(f"{prefix}{count} problem{'s' if count != 1 else ''}:\n{lines}")


def join_path(parent: str, key: str) -> str:
    """`parent.key`, or `key` at the root."""
    return f"{parent}.{key}" if parent else key
