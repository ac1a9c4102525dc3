"""Lists of names in messages, kept short: errors carry names of the user's data (columns,
zip members), and a message must neither grow without bound nor carry a whole line of a
file that was not meant to be data."""

from __future__ import annotations

from collections.abc import Iterable

ELLIPSIS = "…"


def summarise_names(names: Iterable[object], limit: int = 20, width: int = 64) -> str:
    """At most `limit` names, each cut to `width` characters (with an ellipsis), comma-
    separated, then "and N more" for the rest: `a, b, c and 7 more`."""
    listed = [str(name) for name in names]
    shown = [
        name if len(name) <= width else name[: max(width - 1, 0)] + ELLIPSIS
        for name in listed[:limit]
    ]
    text = ", ".join(shown)
    rest = len(listed) - len(shown)
    if rest > 0:
        text = f"{text} and {rest} more" if text else f"{rest} names"
    return text
