"""Why an input was refused: each problem with its column, and one error carrying them all.

The error's message stays short however many columns are wrong: it names at most
`summaries.NAMES_LIMIT` columns, each cut to `summaries.NAME_WIDTH` characters, grouping the
columns that share a problem (`columns 'a', 'b': not an input of the model`) and counting the
rest. `InvalidInputError.problems` keeps every problem, untruncated, for callers that list them
(the predictor caps what it sends; see predictor/grpc_errors.py).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from mlplatform.common.summaries import NAMES_LIMIT, shorten, summarise_names


@dataclass(frozen=True)
class InputProblem:
    """One reason an input was refused; `column` is None for frame-wide problems."""

    column: str | None
    message: str

    def __str__(self) -> str:
        if self.column is None:
            return self.message
        return f"column {shorten(self.column)!r}: {self.message}"


class InvalidInputError(ValueError):
    """Input that does not match the model's input schema; carries every problem found."""

    def __init__(self, problems: Sequence[InputProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(describe_problems(self.problems))

    @property
    def columns(self) -> tuple[str, ...]:
        """The offending columns, in the order found (frame-wide problems name none)."""
        return tuple(problem.column for problem in self.problems if problem.column is not None)

    def __reduce__(self) -> tuple[type[InvalidInputError], tuple[tuple[InputProblem, ...]]]:
        return (type(self), (self.problems,))


def _quoted_names(columns: Sequence[str], limit: int) -> str:
    """`'a', 'b' and 9 more`: the first `limit` columns, each cut to `NAME_WIDTH` and quoted as
    Python quotes them (escapes included), then how many more."""
    quoted = [repr(shorten(column)) for column in columns[:limit]]
    named = summarise_names(quoted, limit, width=sys.maxsize)  # cut before quoting, not after
    rest = len(columns) - len(quoted)
    return f"{named} and {rest} more" if rest > 0 else named


def describe_problems(problems: Sequence[InputProblem], limit: int = NAMES_LIMIT) -> str:
    """One message for `problems`: frame-wide ones first, then each problem with the columns
    that have it (`columns 'a', 'b': missing; ...`), naming at most `limit` columns in all;
    problems whose columns are past that are counted."""
    frame_wide = [problem.message for problem in problems if problem.column is None]
    columns_by_message: dict[str, list[str]] = {}
    for problem in problems:
        if problem.column is not None:
            columns_by_message.setdefault(problem.message, []).append(problem.column)
    parts = frame_wide
    names_left = limit
    untold = 0
    for message, columns in columns_by_message.items():
        if names_left <= 0:
            untold += len(columns)
        elif len(columns) == 1:
            parts.append(f"column {shorten(columns[0])!r}: {message}")
            names_left -= 1
        else:
            parts.append(f"columns {_quoted_names(columns, names_left)}: {message}")
            names_left -= min(len(columns), names_left)
    if untold:
        parts.append(f"{untold} more columns with other problems")
    return "; ".join(parts)
