"""The one error a Spark batch reports to its user: what is wrong and with which input."""

from __future__ import annotations


class SparkBatchError(Exception):
    """A Spark batch that cannot run as asked; `field` names the option or column at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"
