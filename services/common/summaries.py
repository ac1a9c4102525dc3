"""Lists of names in messages, kept short: errors carry names from the user's data (columns,
zip members), and a message must neither grow without bound nor carry a whole line of a file
that was not meant to be data.

Why it matters most for the predictor: a request with 10,000 unknown columns, or one column
named with 100 kB of text, made its status overflow gRPC's 16 KiB metadata limit, and the
caller got "received metadata size exceeds hard limit" instead of the error. Messages name at
most `NAMES_LIMIT` names, each cut to `NAME_WIDTH` characters, and count the rest.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Most names a message lists.
NAMES_LIMIT = 20
#: Most characters of one name a message shows.
NAME_WIDTH = 64
#: Marks where a text was cut.
ELLIPSIS = "…"


def shorten(text: str, width: int = NAME_WIDTH) -> str:
    """`text`, or its first `width - 1` characters and an ellipsis when it is longer."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS


def summarise_names(
    names: Iterable[object], limit: int = NAMES_LIMIT, width: int = NAME_WIDTH
) -> str:
    """At most `limit` names, each cut to `width` characters (with an ellipsis), comma-
    separated, then "and N more" for the rest: `a, b, c and 7 more`."""
    listed = [str(name) for name in names]
    shown = listed[: max(limit, 0)]
    text = ", ".join(shorten(name, width) for name in shown)
    rest = len(listed) - len(shown)
    if rest > 0:
        text = f"{text} and {rest} more" if text else f"{rest} names"
    return text
